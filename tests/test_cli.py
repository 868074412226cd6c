"""The ``bezkit`` command line, called in process through ``bezkit.cli.main``."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bezkit
import bezkit.cli
from bezkit.cli import SUBCOMMANDS, build_parser, main
from bezkit.cli.common import COMMAND_HELP
from bezkit.training import load_checkpoint
from bezkit.training.model_io import save_model

FAST = ["--steps", "50", "--hidden", "32", "--depth", "2", "--batch-size", "64", "--quiet"]
EVAL_FAST = ["--n", "300", "--steps", "1", "2", "8", "--m-crossings", "40"]
# the checkout whose bezkit this test imports, for subprocesses started in another folder
REPO_ROOT = Path(bezkit.__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: one thread is fastest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint from ``bezkit train`` (50 steps, hidden 32)."""
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("ckpt") / "flow"
    assert main(["train", *FAST, "--out", str(path)]) == 0
    return path


def _finite_numbers(obj) -> list[float]:
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _finite_numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _finite_numbers(v)]
    return []


# -- help and version ----------------------------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_help_explains_every_option(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # no wrapping inside "(default: ...)"
    parser = build_parser()
    commands = _subparsers(parser)
    assert {"train", "evaluate"} <= commands.keys()
    for argv, sub in [([], parser), *(([name], p) for name, p in commands.items())]:
        assert main([*argv, "--help"]) == 0
        text = capsys.readouterr().out
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name in action.choices:
                    assert name in text
                continue
            assert action.help, f"{argv}: {action.dest} has no help"
            for option in action.option_strings:
                assert option in text, f"{argv}: {option} missing from --help"
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                assert f"(default: {action.default})" in text, f"{argv}: {action.dest} default"


def test_train_help_names_the_choices(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for word in (
        "independent",
        "minibatch-ot",
        "sinkhorn",
        "full-ot",
        "tangent",
        "endpoint",
        "ushaped",
        "logitnormal",
        "8gaussians",
        "checkerboard",
        ".npy",
        "linear",
    ):
        assert word in text


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bezkit {bezkit.__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_python_dash_m_bezkit_help():
    proc = subprocess.run(
        [sys.executable, "-m", "bezkit", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: bezkit") and "evaluate" in proc.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--help"], ""),
        (["train", "--steps", "0"], "--steps"),
        (["evaluate", "--help"], ""),
        (["evaluate", "f", "--n", "x"], "--n"),
        (["experiment", "--help"], ""),
        (["experiment", "--jobs", "0"], "--jobs"),
        (["experiment", "--pair", "8gaussians"], "SOURCE:TARGET"),
        (["experiment", "--resume", "r", "--seeds", "3"], "drop --seeds"),
        (["images", "--help"], ""),
        (["images", "distill", "--help"], ""),
        (["images"], "choose a stage"),
        (["images", "train", "--steps", "0"], "--steps"),
        (["images", "train", "--out", "i", "--ema-decay", "1"], "--ema-decay must be < 1"),
        (
            ["images", "distill", "--teacher", "a", "--teacher", "b", "--pairs", "p"],
            "one --teacher",
        ),
        (["lessons", "--help"], ""),
        (["lessons", "copy", "--help"], ""),
        (["lessons", "copy"], "DIR"),
        (["lessons", "nope"], "invalid choice"),
        (["benchmark", "--help"], ""),
        (["benchmark", "torchcfm-2d", "--out", "b", "--tasks", "N->x"], "--tasks"),
        (["benchmark", "torchcfm-2d", "--out", "b", "--seeds", "1", "1"], "lists a value twice"),
    ],
)
def test_help_and_usage_errors_import_no_torch(tmp_path, argv, message):
    """Issue 17: every subcommand took 2.6-3 s to start (23 s on a busy machine), also for --help
    and usage errors: each parser is built from a torch-free module (PARSER_MODULES), and the
    option checks that need no torch (``check_args``) run before the command module is imported.
    Nothing is written (the current folder is empty afterwards)."""
    code = (
        f"import sys\nfrom bezkit.cli import main\nprint(main({argv!r}), 'torch' in sys.modules)\n"
    )
    pythonpath = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *pythonpath])},
    )
    assert proc.returncode == 0, proc.stderr
    status, torch_loaded = proc.stdout.strip().splitlines()[-1].split()
    assert status == ("0" if "--help" in argv else "2"), proc.stderr
    assert torch_loaded == "False"
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_torch_free_dataset_names_are_the_samplers():
    from bezkit.cli.datasets import DATASET_NAMES, MODEL_SHAPE_NAMES
    from bezkit.data import NAMED_DATASETS
    from bezkit.models.mlp import MODEL_SHAPES

    assert tuple(NAMED_DATASETS) == DATASET_NAMES
    assert tuple(MODEL_SHAPES) == MODEL_SHAPE_NAMES
    from bezkit.cli.evaluate_options import SOLVER_NAMES
    from bezkit.solvers import SOLVERS

    assert SOLVER_NAMES == SOLVERS


def test_every_parser_names_a_function_that_exists():
    """A torch-free parser's ``func`` ("MODULE" or "MODULE:FUNCTION") names a function of a
    command module (a renamed function would otherwise fail only when that command runs)."""
    named = []
    todo = list(_subparsers(build_parser()).values())
    while todo:
        parser = todo.pop()
        todo.extend(_subparsers(parser).values())
        func = parser.get_default("func")
        assert func is not None or _subparsers(parser), parser.prog  # `lessons`: an ACTION
        if isinstance(func, str):
            module, _, function = func.partition(":")
            runner = getattr(importlib.import_module(f"bezkit.cli.{module}"), function or "run")
            assert callable(runner), (parser.prog, func)
            named.append(func)
    assert {"train", "evaluate", "experiment", "lessons", "benchmark"} <= set(named)
    assert {f"images:run_{stage}" for stage in ("train", "reflow", "distill", "evaluate")} <= set(
        named
    )


def test_the_torch_free_experiment_and_benchmark_options_are_the_library_s():
    """The names and defaults that the experiment's and the benchmark's torch-free parsers repeat
    (bezkit.cli.experiment_options, bezkit.cli.benchmark_options) are the library's."""
    from dataclasses import asdict

    from bezkit.cli import benchmark_options, experiment_options
    from bezkit.experiments import protocol
    from bezkit.experiments.config import CHAIN_KINDS, ExperimentConfig
    from bezkit.protocols import torchcfm2d

    assert tuple(protocol.STUDENTS) == experiment_options.STUDENT_NAMES
    assert experiment_options.DEFAULT_STUDENTS == protocol.DEFAULT_STUDENTS
    assert experiment_options.BASELINE_METHODS == protocol.BASELINE_METHODS
    assert experiment_options.CHAIN_KINDS == CHAIN_KINDS
    config = ExperimentConfig()
    for name, value in asdict(experiment_options.DEFAULTS).items():
        assert getattr(config, name) == value, name
    # every option --resume refuses is a field of the run's config (--exact: exact_methods)
    assert set(experiment_options.RUN_OPTIONS) - {"exact"} <= set(asdict(config))
    assert benchmark_options.PUBLISHED_SEEDS == torchcfm2d.PUBLISHED_SEEDS
    assert benchmark_options.PUBLISHED_STEPS == torchcfm2d.PUBLISHED_STEPS
    assert benchmark_options.METHODS == torchcfm2d.METHODS
    assert tuple(torchcfm2d.TASKS) == benchmark_options.TASK_NAMES


def test_top_level_help_imports_no_subcommand_module_and_no_torch():
    """``bezkit --help`` lists every command by its one-line help without importing the command
    modules (and with them torch): ``bezkit.cli.load_subcommand`` is the one lazy place."""
    code = (
        "import sys\n"
        "from bezkit.cli import main\n"
        "assert main(['--help']) == 0\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('bezkit.')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    *help_lines, loaded = proc.stdout.strip().splitlines()
    # bezkit.executor (standard library only) gives --jobs its 'auto' (bezkit.cli.common)
    assert loaded == "['bezkit.cli', 'bezkit.cli.common', 'bezkit.executor']"
    text = "\n".join(help_lines)
    for name, summary in COMMAND_HELP.items():
        assert name in text and summary.split()[0] in text


def test_a_subcommand_gets_its_full_parser_only_when_named(capsys):
    parser = build_parser(load=("evaluate",))
    subparsers = _subparsers(parser)
    assert set(subparsers) == set(SUBCOMMANDS)
    assert "--solver" in subparsers["evaluate"].format_help()
    assert "--coupling" not in subparsers["train"].format_help()  # listed, not loaded
    assert main(["train", "--help"]) == 0
    assert "--coupling" in capsys.readouterr().out


# -- subcommand discovery ------------------------------------------------------------------------


def test_missing_subcommand_modules_are_skipped(monkeypatch):
    monkeypatch.setattr(bezkit.cli, "SUBCOMMANDS", ("train", "no_such_command"))
    assert set(_subparsers(build_parser())) == {"train"}


def test_other_import_errors_propagate(monkeypatch):
    real = bezkit.cli.importlib.import_module

    def fake(name, *args):
        if name == "bezkit.cli.experiment_options":
            raise ModuleNotFoundError(
                "No module named 'missing_dependency'", name="missing_dependency"
            )
        return real(name, *args)

    monkeypatch.setattr(bezkit.cli.importlib, "import_module", fake)
    with pytest.raises(ModuleNotFoundError, match="missing_dependency"):
        build_parser()


# -- train ---------------------------------------------------------------------------------------


def test_train_writes_both_checkpoint_files(trained):
    st, js = trained.with_name("flow.safetensors"), trained.with_name("flow.json")
    assert st.is_file() and js.is_file()
    ckpt = load_checkpoint(trained)
    meta = ckpt.metadata
    assert {"model", "train_config", "data", "coupling", "objective", "step"} <= meta.keys()
    assert meta["step"] == 50 and len(meta["losses"]) == 50
    assert meta["data"] == {"source": "8gaussians", "target": "moons"}
    assert meta["coupling"] == {"name": "independent"}
    assert meta["objective"] == {
        "path": "linear",
        "target_kind": "tangent",
        "time_sampling": "uniform",
    }
    assert meta["model"]["config"]["hidden"] == 32 and meta["model"]["config"]["depth"] == 2
    assert meta["train_config"]["steps"] == 50 and meta["train_config"]["ema_decay"] == 0.99
    prefixes = {k.split(".")[0] for k in ckpt.tensors}
    assert prefixes == {"model", "ema", "optimizer"}


def test_train_prints_a_summary(tmp_path, capsys):
    assert main(["train", *FAST[:-1], "--out", str(tmp_path / "f")]) == 0
    captured = capsys.readouterr()
    assert "saved" in captured.out and "step 50" in captured.out
    assert "EMA weights still hold" in captured.err  # 0.99 ** 50 is 61%: the user is told


def test_train_same_seed_same_weights(tmp_path):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert main(["train", *FAST, "--seed", seed, "--out", str(tmp_path / name)]) == 0
    a, b, c = (load_checkpoint(tmp_path / n).tensors for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.net.0.weight"], c["model.net.0.weight"])


def test_train_refuses_an_existing_checkpoint_unless_overwrite(tmp_path, capsys, cli_error):
    out = str(tmp_path / "f")
    assert main(["train", *FAST, "--steps", "5", "--out", out]) == 0
    capsys.readouterr()
    line = cli_error(["train", *FAST, "--steps", "5", "--out", out])
    assert "already exists" in line and "--overwrite" in line
    assert main(["train", *FAST, "--steps", "7", "--out", out + ".json", "--overwrite"]) == 0
    assert load_checkpoint(out).metadata["step"] == 7


@pytest.mark.parametrize("coupling", ["minibatch-ot", "sinkhorn", "full-ot"])
def test_train_couplings_options_and_data_files(tmp_path, coupling):
    target = tmp_path / "points.npy"
    np.save(target, np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32))
    out = tmp_path / "f"
    argv = [
        "train",
        *FAST,
        "--steps",
        "10",
        "--coupling",
        coupling,
        "--target",
        str(target),
        "--target-kind",
        "endpoint",
        "--time-sampling",
        "ushaped",
        "--ema-decay",
        "0",
        "--full-ot-points",
        "64",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    ckpt = load_checkpoint(out)
    assert ckpt.metadata["data"]["target"] == str(target.resolve())
    assert ckpt.metadata["coupling"]["name"] == coupling
    assert ckpt.metadata["objective"]["target_kind"] == "endpoint"
    assert not ckpt.section("ema") and ckpt.metadata["train_config"]["ema_decay"] is None


def test_resume_continues_an_interrupted_run_exactly(tmp_path, monkeypatch, capsys):
    import bezkit.training.trainer as trainer

    assert main(["train", *FAST, "--out", str(tmp_path / "straight")]) == 0

    real_save = trainer._save

    def save_then_stop(path, model, opt, ema, step, *args):
        real_save(path, model, opt, ema, step, *args)
        if step == 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save", save_then_stop)
    out = str(tmp_path / "resumed")
    assert main(["train", *FAST, "--checkpoint-every", "10", "--out", out]) == 130
    assert "interrupted" in capsys.readouterr().err
    partial = load_checkpoint(out).metadata
    assert partial["step"] == 20 and partial["data"]["target"] == "moons"  # metadata added
    monkeypatch.setattr(trainer, "_save", real_save)

    # finish it in place: settings and the total come from the checkpoint
    assert main(["train", "--resume", out, "--quiet"]) == 0
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(out)
    assert b.metadata["step"] == 50 and b.metadata["losses"] == a.metadata["losses"]
    for key in a.tensors:
        if key.startswith(("model.", "ema.")):
            assert torch.equal(a.tensors[key], b.tensors[key]), key


def test_resume_extends_and_rejects_conflicts(trained, tmp_path, capsys, cli_error):
    out = str(tmp_path / "more")
    more = ["--steps", "60", "--out", out]
    line = cli_error(["train", "--resume", str(trained), "--hidden", "64", *more])
    assert "--hidden 64 conflicts" in line and "32" in line
    line = cli_error(["train", "--resume", str(trained), "--target", "spirals", *more])
    assert "--target spirals conflicts" in line
    line = cli_error(["train", "--resume", str(trained), "--out", out])
    assert "complete" in line
    line = cli_error(["train", "--resume", str(trained), "--steps", "40", "--out", out])
    assert "--steps 40" in line
    # giving the checkpoint's own values is fine; --steps extends the run
    assert (
        main(
            [
                "train",
                "--resume",
                str(trained),
                "--hidden",
                "32",
                "--target",
                "moons",
                "--steps",
                "60",
                "--out",
                out,
                "--quiet",
            ]
        )
        == 0
    )
    meta = load_checkpoint(out).metadata
    assert meta["step"] == 60 and len(meta["losses"]) == 60
    assert meta["model"]["config"]["hidden"] == 32


# -- evaluate ------------------------------------------------------------------------------------


def _evaluate(capsys, argv: list[str]) -> tuple[dict, str]:
    assert main(["evaluate", *argv]) == 0
    out = capsys.readouterr().out
    return json.loads(out), out


def test_evaluate_json_keys_and_finite_values(trained, capsys):
    report, _ = _evaluate(capsys, [str(trained), *EVAL_FAST])
    assert {
        "checkpoint",
        "model",
        "weights",
        "train_step",
        "source",
        "target",
        "solver",
        "n",
        "seed",
        "noise_floor",
        "ot_cost",
        "results",
        "path_metrics",
    } <= report.keys()
    assert report["noise_floor"] > 0 and report["ot_cost"] > 0
    assert report["weights"] == "ema" and report["train_step"] == 50
    assert [r["steps"] for r in report["results"]] == [1, 2, 8]
    assert [r["nfe"] for r in report["results"]] == [1, 2, 8]
    for r in report["results"]:
        assert r.keys() == {"steps", "nfe", "w2"}
        assert r["w2"] > 0
    pm = report["path_metrics"]
    assert {
        "steps",
        "nfe",
        "n",
        "straightness",
        "normalised_straightness",
        "curvature",
        "transport_cost",
        "path_energy",
        "crossings",
    } <= pm.keys()
    assert pm["steps"] == 8 and pm["n"] == 300
    assert pm["crossings"]["m"] == 40 and 0 <= pm["crossings"]["fraction"] <= 1
    numbers = _finite_numbers(report)
    assert numbers and all(math.isfinite(x) for x in numbers)


def test_evaluate_is_seeded(trained, capsys, tmp_path):
    _, first = _evaluate(capsys, [str(trained), *EVAL_FAST, "--out", str(tmp_path / "r.json")])
    _, second = _evaluate(capsys, [str(trained), *EVAL_FAST])
    _, other = _evaluate(capsys, [str(trained), *EVAL_FAST, "--seed", "1"])
    assert first == second and first != other
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(first)


def test_evaluate_solvers_and_weights(trained, capsys):
    rk4, _ = _evaluate(
        capsys,
        [
            str(trained),
            "--n",
            "200",
            "--solver",
            "rk4",
            "--steps",
            "2",
            "--weights",
            "model",
            "--m-crossings",
            "500",
        ],
    )
    assert rk4["results"][0]["nfe"] == 8 and rk4["weights"] == "model"
    assert rk4["path_metrics"]["crossings"]["m"] == 200  # capped at --n
    dopri, _ = _evaluate(
        capsys,
        [str(trained), "--n", "200", "--solver", "dopri5", "--atol", "1e-4", "--rtol", "1e-4"],
    )
    assert [r["steps"] for r in dopri["results"]] == [None]
    assert dopri["path_metrics"]["nfe"] > 0 and dopri["atol"] == 1e-4
    assert all(math.isfinite(x) for x in _finite_numbers(dopri))


def test_evaluate_a_checkpoint_without_data_needs_source_and_target(tmp_path, capsys, cli_error):
    torch.manual_seed(0)
    from bezkit.models import MLPVelocity

    save_model(tmp_path / "bare", MLPVelocity(2, hidden=8, depth=1), {})
    line = cli_error(["evaluate", str(tmp_path / "bare")])
    assert "--source" in line
    report, _ = _evaluate(
        capsys,
        [
            str(tmp_path / "bare"),
            "--source",
            "gaussian",
            "--target",
            "rings",
            "--n",
            "100",
            "--steps",
            "2",
        ],
    )
    assert report["source"] == "gaussian" and report["weights"] == "model"


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "--target", "no_such_toy"], ["unknown dataset", "no_such_toy"]),
        (["train", "--source", "missing.csv"], ["data file not found", "missing.csv"]),
        (["train", "--steps", "0"], ["--steps", ">= 1"]),
        (["train", "--coupling", "magic"], ["--coupling", "magic"]),
        (["evaluate", "no_such_checkpoint"], ["not found", "no_such_checkpoint"]),
        (["evaluate", "{ckpt}", "--steps", "0"], ["--steps", ">= 1"]),
        (["evaluate", "{ckpt}", "--steps", "2", "-1"], ["--steps"]),
        (["evaluate", "{ckpt}", "--solver", "leapfrog"], ["--solver", "leapfrog"]),
        (["evaluate", "{ckpt}", "--n", "1"], ["--n"]),
        (["no_such_command"], ["no_such_command"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(trained, capsys, argv, words, cli_error):
    line = cli_error([a.replace("{ckpt}", str(trained)) for a in argv])
    for word in words:
        assert word in line


def test_altered_checkpoint_is_refused(trained, tmp_path, capsys, cli_error):
    for suffix in (".safetensors", ".json"):
        shutil.copy(trained.with_name("flow" + suffix), tmp_path / ("copy" + suffix))
    st = tmp_path / "copy.safetensors"
    data = bytearray(st.read_bytes())
    data[-1] ^= 0x01
    st.write_bytes(bytes(data))
    line = cli_error(["evaluate", str(tmp_path / "copy")])
    assert "altered" in line
    line = cli_error(["train", "--resume", str(tmp_path / "copy"), "--steps", "60"])
    assert "altered" in line
