"""Images: bezkit's methods on digits (CPU) and CIFAR-10 (GPUs), stage by stage.

Only the data, the model and the evaluation change from the 2D kit: every stage hands the *same*
losses, paths, couplings and students as ``bezkit.methods`` to the method's own recipe
(``train_flow``, ``distill``, ``bdense_train``; each takes ``resume_from``). The stages
(``bezkit images train | reflow | distill | evaluate`` call them), one idea per module:

- ``presets``: ``ImagePreset`` / ``get_preset`` (data, the U-Net of ``models.unet_config``, each
  stage's optimisation, pairs, evaluation), the data and a fresh U-Net.
- ``stages``: ``train_rectified_flow`` (the 1-RF on independent (noise, image) pairs) and
  ``train_from_pairs`` (k-RF, distill, Bezier distillation, B-DENSE from a pairs folder).
- ``pairs``: ``generate_pairs``, the teacher's forward (optionally cut into time segments) or
  reverse ODE pairs as resumable shards, read back by ``bezkit.couplings.shard_pairs.ShardPairs``.
- ``bezier_pairs``: Bezier distillation's guides computed batch by batch from a pairs folder.
- ``outputs``: the stage's ``TrainConfig``, its files, resuming an interrupted run, ``StageResult``.
- ``evaluation``: ``evaluate_images`` (Euler samples at several step counts; exact and sliced W2 in
  pixel space and the digits Frechet distance, or FID for CIFAR-10, each with its noise floor),
  ``sample_images``, ``image_grid``.

Every training stage writes ``OUT.safetensors`` + ``OUT.json`` (the final weights: the EMA weights
when EMA is on, loadable by ``bezkit.training.model_io.load_model``) and keeps the resumable
training state (weights, EMA, optimizer, step) in ``OUT.train.safetensors`` + ``.json``. Running
a stage again after an interruption resumes from that state, exactly as if it had not stopped.

Under ``torchrun`` the trainer wraps the model in ``DistributedDataParallel`` (``batch_size`` is
per process) and only rank 0 writes files.
"""

from bezkit.couplings.shard_pairs import PAIRS_FORMAT, ShardPairs
from bezkit.experiments.images.bezier_pairs import BezierShardPairs
from bezkit.experiments.images.evaluation import evaluate_images, image_grid, sample_images
from bezkit.experiments.images.outputs import StageResult, load_stage_model
from bezkit.experiments.images.pairs import generate_pairs
from bezkit.experiments.images.presets import (
    PRESETS,
    ImagePreset,
    StageConfig,
    StandardNormal,
    data_shape,
    get_preset,
    image_data,
    new_unet,
)
from bezkit.experiments.images.stages import METHODS, train_from_pairs, train_rectified_flow

__all__ = [
    "METHODS",
    "PAIRS_FORMAT",
    "PRESETS",
    "BezierShardPairs",
    "ImagePreset",
    "ShardPairs",
    "StageConfig",
    "StageResult",
    "StandardNormal",
    "data_shape",
    "evaluate_images",
    "generate_pairs",
    "get_preset",
    "image_data",
    "image_grid",
    "load_stage_model",
    "new_unet",
    "sample_images",
    "train_from_pairs",
    "train_rectified_flow",
]
