"""The image stages (``bezkit.experiments.images``): one training step on the CPU, exact resume,
teacher pairs with segments and reverse pairs, each student equal to its method's recipe, the
evaluation, and the stages under a two-process gloo group."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from bezkit.couplings.independent import IndependentCoupling
from bezkit.couplings.pairs import PairPool, Pairs
from bezkit.experiments import images as I
from bezkit.experiments.images import (
    ShardPairs,
    evaluate_images,
    generate_pairs,
    get_preset,
    image_grid,
    train_from_pairs,
    train_rectified_flow,
)
from bezkit.experiments.images.bezier_pairs import BatchRows
from bezkit.methods import BDenseLoss, BezierDistillConfig, bezier_distill, distill
from bezkit.methods.bdense import branched_from_teacher
from bezkit.methods.flow import student_from, train_flow
from bezkit.models.branched import BranchedVelocity
from bezkit.models.unet import UNetVelocity
from bezkit.solvers.ode import solve_ode
from bezkit.training import TrainConfig, train
from bezkit.training.checkpoint import checkpoint_files, load_checkpoint, save_checkpoint
from bezkit.training.model_io import load_model

TINY = {
    "unet": {"base_channels": 8, "channel_mults": (1,), "num_res_blocks": 1,
             "attention_resolutions": ()},
    "flow": {"steps": 4, "batch_size": 16},
    "reflow": {"steps": 3, "batch_size": 16},
    "distill": {"steps": 3, "batch_size": 16},
    "n_pairs": 40, "shard_size": 16, "teacher_steps": 4, "segments": 2, "branches": 2,
    "checkpoint_every": 2, "eval_n": 100, "eval_steps": (1, 2),
}  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def preset() -> I.ImagePreset:
    return get_preset("digits", **TINY)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, preset: I.ImagePreset) -> Path:
    """A 1-RF and its forward (2 segments) and reverse pairs."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("images-run")
    train_rectified_flow(preset, root / "1rf", progress=False)
    generate_pairs(root / "1rf", preset, root / "fwd", progress=False)
    generate_pairs(root / "1rf", preset, root / "rev", direction="reverse", progress=False)
    return root


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _recipe_config(preset: I.ImagePreset, stage: str) -> TrainConfig:
    s = preset.stage(stage)
    return TrainConfig(steps=s.steps, batch_size=s.batch_size, lr=s.lr, ema_decay=s.ema_decay,
                       warmup_steps=s.warmup_steps, seed=preset.seed, device="cpu",
                       progress=False)  # fmt: skip


def test_one_training_step_on_cpu(tmp_path: Path, preset: I.ImagePreset) -> None:
    one = get_preset(preset, flow={"steps": 1})
    result = train_rectified_flow(one, tmp_path / "rf", progress=False)
    assert result.path == tmp_path / "rf.safetensors" and result.path.is_file()
    assert (tmp_path / "rf.train.safetensors").is_file()  # the resumable state
    assert len(result.losses) == 1 and torch.isfinite(torch.tensor(result.losses)).all()
    model, meta = load_model(result.path)
    assert isinstance(model, UNetVelocity) and _same_weights(model, result.model)
    assert meta["images"]["stage"] == "1-RF" and meta["images"]["k"] == 1
    assert meta["weights"] == "ema" and meta["step"] == 1
    with pytest.raises(FileExistsError, match="overwrite"):
        train_rectified_flow(one, tmp_path / "rf", progress=False)


class _Crash(Exception):
    pass


def test_interrupted_training_resumes_exactly(
    tmp_path: Path, preset: I.ImagePreset, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = train_rectified_flow(preset, tmp_path / "ref", progress=False)

    calls = {"n": 0}
    real = IndependentCoupling.sample

    def crashing(self, n, generator=None):  # the 4th batch never comes: a crash at step 3
        calls["n"] += 1
        if calls["n"] > 3:
            raise _Crash
        return real(self, n, generator)

    monkeypatch.setattr(IndependentCoupling, "sample", crashing)
    with pytest.raises(_Crash):
        train_rectified_flow(preset, tmp_path / "run", progress=False)
    assert not (tmp_path / "run.safetensors").exists()  # no final weights, a state at step 2
    monkeypatch.setattr(IndependentCoupling, "sample", real)
    resumed = train_rectified_flow(preset, tmp_path / "run", progress=False)
    assert resumed.resumed_from == 2
    assert _same_weights(resumed.model, reference.model)
    assert resumed.losses == reference.losses
    again = train_rectified_flow(preset, tmp_path / "run", overwrite=True, progress=False)
    assert again.resumed_from is None and _same_weights(again.model, reference.model)
    other = get_preset(preset, flow={"lr": 1e-4})
    monkeypatch.setattr(IndependentCoupling, "sample", crashing)
    calls["n"] = 0
    with pytest.raises(_Crash):
        train_rectified_flow(other, tmp_path / "run2", progress=False)
    monkeypatch.setattr(IndependentCoupling, "sample", real)
    with pytest.raises(ValueError, match="different settings"):
        train_rectified_flow(preset, tmp_path / "run2", progress=False)


def test_resume_needs_only_the_safetensors_state_and_its_stage_metadata(
    tmp_path: Path, preset: I.ImagePreset, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = IndependentCoupling.sample

    def crashing(self, n, generator=None):  # a crash at step 3, after the state of step 2
        calls["n"] += 1
        if calls["n"] > 3:
            raise _Crash
        return real(self, n, generator)

    for name in ("nojson", "killed"):
        calls["n"] = 0
        monkeypatch.setattr(IndependentCoupling, "sample", crashing)
        with pytest.raises(_Crash):
            train_rectified_flow(preset, tmp_path / name, progress=False)
    monkeypatch.setattr(IndependentCoupling, "sample", real)
    # the JSON copy is optional: the safetensors state alone resumes
    checkpoint_files(tmp_path / "nojson.train")[1].unlink()
    assert train_rectified_flow(preset, tmp_path / "nojson", progress=False).resumed_from == 2
    # a state without the stage metadata (e.g. one written by bezkit 0.1, which added it only
    # after training) cannot be checked: refused
    state = load_checkpoint(tmp_path / "killed.train")
    meta = {k: v for k, v in state.metadata.items() if k not in ("format", "sha256", "images")}
    save_checkpoint(state.path, state.tensors, meta, overwrite=True)
    with pytest.raises(ValueError, match="no 'images' metadata"):
        train_rectified_flow(preset, tmp_path / "killed", progress=False)


def _copy_state(src: Path, dst: Path) -> None:
    """Copy the training state files of stem ``src`` to stem ``dst`` (what a killed process
    leaves on disk is what it had written so far)."""
    for a, b in zip(checkpoint_files(src), checkpoint_files(dst), strict=True):
        if a.exists():
            shutil.copyfile(a, b)


@pytest.mark.parametrize("stage", ["1-RF", "distill"])
def test_a_stage_killed_mid_training_resumes_to_the_uninterrupted_weights(
    tmp_path: Path, run: Path, preset: I.ImagePreset, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """The periodic states carry the stage metadata as they are written (the recipes pass it to
    the trainer), so the files of a process killed mid-training (no cleanup ran: copied at the
    moment of the kill) resume, and give the uninterrupted run's weights."""

    def fit(out: Path) -> I.StageResult:
        if stage == "1-RF":
            return train_rectified_flow(preset, out, progress=False)
        return train_from_pairs("distill", run / "1rf", run / "fwd", preset, out, progress=False)

    reference = fit(tmp_path / "ref")
    owner = IndependentCoupling if stage == "1-RF" else ShardPairs
    real = owner.sample
    calls = {"n": 0}

    def killed(self, n, generator=None):  # killed while drawing the 3rd batch, after step 2's state
        calls["n"] += 1
        if calls["n"] > 2:
            _copy_state(tmp_path / "run.train", tmp_path / "killed.train")
            raise _Crash
        return real(self, n, generator)

    monkeypatch.setattr(owner, "sample", killed)
    with pytest.raises(_Crash):
        fit(tmp_path / "run")
    monkeypatch.setattr(owner, "sample", real)
    state = load_checkpoint(tmp_path / "killed.train")
    assert state.metadata["step"] == 2 and "images" in state.metadata
    resumed = fit(tmp_path / "killed")
    assert resumed.resumed_from == 2
    assert _same_weights(resumed.model, reference.model)
    assert resumed.losses == reference.losses


def test_pairs_follow_the_teacher_ode(run: Path, preset: I.ImagePreset) -> None:
    teacher, _ = load_model(run / "1rf")
    fwd = ShardPairs(run / "fwd", states=2)
    p = fwd.all_pairs()
    assert len(fwd) == 40 and len(p.guides) == 1
    x1 = solve_ode(teacher, p.x0, steps=4).x
    half = solve_ode(teacher, p.x0, steps=2, t_end=0.5).x
    torch.testing.assert_close(p.x1, x1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(p.guides[0], half, atol=1e-5, rtol=1e-5)
    plain = ShardPairs(run / "fwd").all_pairs()
    assert plain.guides == () and torch.equal(plain.x1, p.x1)
    rev = ShardPairs(run / "rev").all_pairs()
    x0 = solve_ode(teacher, rev.x1, steps=4, t_start=1.0, t_end=0.0).x
    torch.testing.assert_close(rev.x0, x0, atol=1e-5, rtol=1e-5)
    lo, hi = float(rev.x1.min()), float(rev.x1.max())
    assert lo >= -1.0 and hi <= 1.0  # real images at t = 1
    # the lazy reader draws exactly the pairs of the in-memory one
    lazy = ShardPairs(run / "fwd", states=2, in_memory_bytes=0)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = fwd.sample(7, g1), lazy.sample(7, g2)
    assert torch.equal(a.x0, b.x0) and torch.equal(a.x1, b.x1)
    assert torch.equal(a.guides[0], b.guides[0])
    with pytest.raises(ValueError, match="multiple of 4"):
        ShardPairs(run / "fwd", states=4)


def test_pairs_resume_and_refuse_another_teacher(run: Path, preset: I.ImagePreset) -> None:
    reports = generate_pairs(run / "1rf", preset, run / "fwd", progress=False)
    assert all(r.generated == () and r.complete for r in reports)  # verified, kept
    other = I.new_unet(preset, seed=5)
    with pytest.raises(ValueError, match="other settings"):
        generate_pairs(other, preset, run / "fwd", progress=False)


def test_reflow_and_distill_stages_equal_the_recipes(run: Path, preset: I.ImagePreset) -> None:
    teacher, _ = load_model(run / "1rf")
    stage = train_from_pairs("reflow", run / "1rf", run / "fwd", preset, run / "2rf",
                             progress=False)  # fmt: skip
    recipe = train_flow(
        student_from(teacher), ShardPairs(run / "fwd"), _recipe_config(preset, "reflow")
    )
    assert stage.metadata["images"]["stage"] == "2-RF" and stage.metadata["images"]["k"] == 2
    assert _same_weights(stage.model, recipe.model)

    stage = train_from_pairs("distill", run / "1rf", run / "fwd", preset, run / "distill",
                             progress=False)  # fmt: skip
    recipe = distill(teacher, ShardPairs(run / "fwd"), _recipe_config(preset, "distill"))
    assert _same_weights(stage.model, recipe.model)
    with pytest.raises(ValueError, match="another teacher"):
        train_from_pairs("distill", run / "2rf", run / "fwd", preset, run / "x", progress=False)


def test_bezier_stage_equals_bezier_distill_on_the_same_pairs(
    run: Path, preset: I.ImagePreset
) -> None:
    teacher, _ = load_model(run / "1rf")
    cfg = BezierDistillConfig(order=3, placement="interpolate")  # one teacher, two guides
    stage = train_from_pairs("bezier", run / "1rf", run / "rev", preset, run / "bezier",
                             bezier=cfg, progress=False)  # fmt: skip
    assert stage.metadata["images"]["bezier"]["order"] == 3
    # the recipe, with every guide computed up front on the folder's pairs
    p = ShardPairs(run / "rev").all_pairs()
    recipe = bezier_distill(
        [teacher], BatchRows(p.x0), BatchRows(p.x1), _recipe_config(preset, "distill"),
        dataclasses.replace(cfg, endpoint="independent", n_pairs=len(p.x0)),
    )  # fmt: skip
    for a, b in zip(stage.model.state_dict().values(), recipe.model.state_dict().values(),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="reverse pairs"):
        train_from_pairs("distill", run / "1rf", run / "rev", preset, run / "y", progress=False)


def test_bezier_stage_takes_the_secant_target(run: Path, preset: I.ImagePreset) -> None:
    """The secant target needs its grid (``distill_steps``), as in ``bezier_distill``."""
    cfg = BezierDistillConfig(endpoint="teacher", target="secant", distill_steps=2)
    stage = train_from_pairs("bezier", run / "1rf", run / "fwd", preset, run / "secant",
                             bezier=cfg, progress=False)  # fmt: skip
    assert stage.metadata["images"]["bezier"]["target"] == "secant"
    assert len(stage.losses) == 3 and torch.isfinite(torch.tensor(stage.losses)).all()


def test_bdense_stage_equals_the_recipe(run: Path, preset: I.ImagePreset) -> None:
    teacher, _ = load_model(run / "1rf")
    stage = train_from_pairs("bdense", run / "1rf", run / "fwd", preset, run / "bdense",
                             progress=False)  # fmt: skip
    assert type(stage.model) is BranchedVelocity and stage.model.num_branches == 2
    loaded, meta = load_model(run / "bdense")
    assert isinstance(loaded, BranchedVelocity) and meta["images"]["branches"] == 2
    student = branched_from_teacher(teacher, 2)
    recipe = train(student, BDenseLoss(2), ShardPairs(run / "fwd", states=2).sample,
                   _recipe_config(preset, "distill"))  # fmt: skip
    assert _same_weights(stage.model, recipe.model)
    x = torch.randn(3, 1, 8, 8)
    assert stage.model.sample(x, 2).shape == x.shape


def test_branched_student_starts_as_the_unet_teacher(preset: I.ImagePreset) -> None:
    teacher = I.new_unet(preset, seed=1)
    torch.nn.init.normal_(teacher.conv_out.weight)  # a non-zero output layer
    student = branched_from_teacher(teacher, 3)
    x, t = torch.randn(4, 1, 8, 8), torch.rand(4)
    v = student.velocities(x, t)
    for j in range(3):
        torch.testing.assert_close(v[:, j], teacher(x, t))


def test_evaluate_is_seeded_and_has_noise_floors(
    run: Path, preset: I.ImagePreset, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from bezkit.metrics import load_digits_classifier

    cache = tmp_path_factory.mktemp("cache")
    load_digits_classifier(cache, epochs=2)  # a quick feature extractor, cached for the test
    a = evaluate_images(run / "1rf", preset, cache=cache)
    b = evaluate_images(load_model(run / "1rf")[0], preset, cache=cache)
    assert a["nfe"] == {"1": 1, "2": 2} and a["n"] == 100 and a["n_reference"] == 359
    for key in ("w2", "sliced_w2", "frechet"):
        assert a[key] == b[key] and set(a[key]) == {"1", "2"}
        assert 0 <= a["noise_floor"][key] < min(a[key].values())  # real images beat a 4-step model
    grid = image_grid(torch.zeros(10, 1, 8, 8), nrow=4)
    assert grid.shape == (3 * 9 + 1, 4 * 9 + 1) and grid[1, 1] == 0.5 and grid[0, 0] == 1.0


def test_stage_options_are_checked(run: Path, preset: I.ImagePreset) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        train_from_pairs("nope", run / "1rf", run / "fwd", preset, run / "z")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one teacher"):
        train_from_pairs("distill", [run / "1rf", run / "1rf"], run / "fwd", preset, run / "z")
    with pytest.raises(ValueError, match="unknown image preset"):
        get_preset("mnist")
    with pytest.raises(ValueError, match="reverse"):
        generate_pairs(run / "1rf", preset, run / "r2", direction="reverse", segments=2)
    with pytest.raises(FileNotFoundError):
        ShardPairs(run / "missing")
    pool = PairPool(Pairs(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)))
    assert len(pool) == 2


# -- two processes on gloo -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, root: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})  # fmt: skip
    torch.set_num_threads(1)
    from bezkit.training.distributed import cleanup, init_distributed

    init_distributed(device="cpu", timeout_s=60)
    preset = get_preset("digits", **TINY)
    base = Path(root)
    generate_pairs(base / "teacher", preset, base / "ddp-fwd", progress=False)
    res = train_from_pairs("bdense", base / "teacher", base / "ddp-fwd", preset,
                           base / "ddp-bdense", progress=False)  # fmt: skip
    torch.save({k: v for k, v in res.model.state_dict().items()}, base / f"rank{rank}.pt")
    cleanup()


def test_stages_under_two_processes(tmp_path: Path, preset: I.ImagePreset) -> None:
    teacher = I.new_unet(preset, seed=2)
    from bezkit.training.model_io import save_model

    save_model(tmp_path / "teacher", teacher, {"images": {"k": 1}})
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    # shards split over the ranks hold exactly the pairs of one process
    generate_pairs(tmp_path / "teacher", preset, tmp_path / "one", progress=False)
    a = ShardPairs(tmp_path / "ddp-fwd", states=2).all_pairs()
    b = ShardPairs(tmp_path / "one", states=2).all_pairs()
    assert torch.equal(a.x0, b.x0) and torch.equal(a.x1, b.x1)
    assert torch.equal(a.guides[0], b.guides[0])
    # DDP kept both ranks' B-DENSE students identical, and rank 0 wrote them
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    saved, _ = load_model(tmp_path / "ddp-bdense")
    assert all(torch.equal(saved.state_dict()[k], r0[k]) for k in r0)


def test_unwritable_output_is_refused_before_any_work(
    tmp_path: Path, preset: I.ImagePreset
) -> None:
    from bezkit.files.run_dir import OutputPathError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputPathError, match="a-file"):
        train_rectified_flow(preset, blocker / "1rf", progress=False)
    with pytest.raises(OutputPathError, match="a-file"):
        generate_pairs(I.new_unet(preset), preset, blocker / "pairs", progress=False)
    assert blocker.read_text() == "not a folder"


def test_a_second_job_on_the_same_outputs_is_refused(run: Path, preset: I.ImagePreset) -> None:
    from bezkit.files.run_dir import RunLock, RunLocked

    other_job = RunLock(run / "fwd", folder=True, what="pair generation")
    with other_job, pytest.raises(RunLocked, match="pair generation"):
        generate_pairs(run / "1rf", preset, run / "fwd", progress=False)
    other_job = RunLock(run / "locked", folder=False, what="training stage")
    with other_job, pytest.raises(RunLocked, match="training stage"):
        train_from_pairs("reflow", run / "1rf", run / "fwd", preset, run / "locked",
                         progress=False)  # fmt: skip
    assert not (run / "locked.safetensors").exists()
    # released: the pairs are verified and kept
    assert all(r.complete for r in generate_pairs(run / "1rf", preset, run / "fwd", progress=False))
