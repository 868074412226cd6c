"""Issue 17 (reliability v3): outputs that would replace an input, locks through symbolic links,
interrupted training, diverged runs on badly scaled data, and the clear errors of the low list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from bezkit.cli import main
from bezkit.training import load_checkpoint

FAST = ["--steps", "6", "--hidden", "16", "--depth", "1", "--batch-size", "32", "--quiet"]
EVAL_FAST = ["--n", "100", "--steps", "1", "--m-crossings", "10"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small checkpoint trained on a point file (the source) and a named target."""
    folder = tmp_path_factory.mktemp("trained")
    points = folder / "points.csv"
    rows = np.random.default_rng(0).normal(size=(200, 2))
    points.write_text("".join(f"{a},{b}\n" for a, b in rows))
    ckpt = folder / "base"
    assert main(["train", *FAST, "--source", str(points), "--out", str(ckpt)]) == 0
    return ckpt, points


@pytest.mark.parametrize(
    "out",
    ["{ckpt}", "{ckpt}.safetensors", "{ckpt}.json", "link.safetensors", "hard.json", "{points}"],
)
def test_evaluate_out_refuses_any_input_file(trained, tmp_path, cli_error, out):
    """Issue 17 item 1: `evaluate base --out base.safetensors` replaced the checkpoint."""
    ckpt, points = trained
    (tmp_path / "link.safetensors").symlink_to(f"{ckpt}.safetensors")
    os.link(f"{ckpt}.json", tmp_path / "hard.json")
    before = {p: p.read_bytes() for p in (points, *ckpt.parent.glob("base.*"))}
    target = out.format(ckpt=ckpt, points=points)
    target = target if os.path.isabs(target) else str(tmp_path / target)
    line = cli_error(["evaluate", str(ckpt), *EVAL_FAST, "--out", target])
    assert "--out" in line and "input file" in line and "replace" in line
    assert {p: p.read_bytes() for p in before} == before
    load_checkpoint(ckpt)  # still a good checkpoint


def test_evaluate_out_refuses_a_given_data_file(trained, tmp_path, cli_error):
    ckpt, _ = trained
    other = tmp_path / "other.npy"
    np.save(other, np.zeros((50, 2), dtype=np.float32))
    line = cli_error(
        ["evaluate", str(ckpt), *EVAL_FAST, "--target", str(other), "--out", str(other)]
    )
    assert "input file" in line
    assert np.load(other).shape == (50, 2)


def test_evaluate_out_beside_the_checkpoint_still_works(trained, tmp_path, capsys):
    ckpt, _ = trained
    out = tmp_path / "base.eval.json"
    assert main(["evaluate", str(ckpt), *EVAL_FAST, "--out", str(out)]) == 0
    capsys.readouterr()
    assert json.loads(out.read_text())["checkpoint"] == str(ckpt)


@contextmanager
def _held_elsewhere(path):
    """The lock of checkpoint prefix ``path``, held by another process while the block runs."""
    code = textwrap.dedent(
        f"""
        import sys
        from bezkit.files.run_dir import RunLock
        lock = RunLock({str(path)!r}, folder=False, what="'bezkit train'").acquire()
        print("locked", flush=True)
        sys.stdin.read()
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
        yield
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_a_symbolic_link_does_not_bypass_the_run_lock(trained, tmp_path, cli_error):
    """Issue 17 item 4: `train --out lnk --overwrite` with lnk.* -> c1.* replaced c1 while its
    run held c1.lock."""
    ckpt, _ = trained
    c1 = tmp_path / "c1"
    for suffix in (".safetensors", ".json"):
        Path(f"{c1}{suffix}").write_bytes(Path(f"{ckpt}{suffix}").read_bytes())
        (tmp_path / f"lnk{suffix}").symlink_to(f"{c1}{suffix}")
    before = Path(f"{c1}.safetensors").read_bytes()
    with _held_elsewhere(c1):
        line = cli_error(["train", *FAST, "--out", str(tmp_path / "lnk"), "--overwrite"])
    assert "another 'bezkit train' is using" in line and "c1" in line
    assert Path(f"{c1}.safetensors").read_bytes() == before


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("", "--out is empty"),
        ("/", "names a folder"),
        ("sub/", "names a folder"),
        ("/dev/full", "is a device"),
    ],
)
def test_train_out_that_is_no_checkpoint_path_is_a_clear_error(
    tmp_path, monkeypatch, cli_error, out, message
):
    monkeypatch.chdir(tmp_path)
    line = cli_error(["train", *FAST, "--out", out])
    assert message in line
    assert not Path("/dev/full.safetensors").exists()


def test_a_refused_train_creates_no_lock_and_no_folder(trained, tmp_path, cli_error):
    ckpt, _ = trained
    line = cli_error(["train", *FAST, "--out", str(ckpt)])
    assert "--overwrite" in line
    assert not Path(f"{ckpt}.lock").exists()
    line = cli_error(["train", *FAST, "--lr", "-1", "--out", str(tmp_path / "new" / "run")])
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--n-pairs", "1000000000"], "--n-pairs 1000000000"),
        (["--n-eval", "1000000000"], "--n-eval 1000000000"),
        (["--eval-draws", "100000000", "--n-eval", "100000"], "--eval-draws 100000000"),
    ],
)
def test_experiment_sizes_beyond_memory_are_refused_before_any_work(
    tmp_path, cli_error, options, message
):
    """Issue 17 item 6: `--n-pairs 100000000` ran 9 minutes, then failed to allocate."""
    line = cli_error(["experiment", "--quick", "--quiet", *options, "--out", str(tmp_path / "q")])
    assert message in line and "GiB" in line and f"smaller {message.split()[0]}" in line
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--hidden", "200000", "--depth", "3"], "--hidden 200000"),
        (["--coupling", "full-ot", "--full-ot-points", "10000000"], "--full-ot-points 10000000"),
    ],
)
def test_train_memory_estimate_names_the_option_that_dominates(
    tmp_path, cli_error, options, message
):
    line = cli_error(["train", *FAST, *options, "--out", str(tmp_path / "f")])
    assert (
        message in line and f"smaller {message.split()[0]}" in line and "--batch-size" not in line
    )


def test_experiment_pairs_with_the_same_file_names_are_refused_up_front(tmp_path, cli_error):
    """Issue 17 item 5: v1/points.npy and v2/points.npy trained for minutes, then crashed."""
    for sub in ("v1", "v2"):
        (tmp_path / sub).mkdir()
        np.save(tmp_path / sub / "points.npy", np.random.default_rng(0).normal(size=(300, 2)))
    a, b = (f"gaussian:{tmp_path / s / 'points.npy'}" for s in ("v1", "v2"))
    out = str(tmp_path / "q")
    line = cli_error(["experiment", "--quick", "--quiet", "--pair", a, "--pair", b, "--out", out])
    assert "same file names" in line and "gaussian-to-points" in line
    line = cli_error(["experiment", "--quick", "--quiet", "--pair", a, "--pair", a, "--out", out])
    assert "given twice" in line
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.zeros((1, 2)), "held out"),
        (np.random.default_rng(0).normal(size=(1000, 3)), "shape (3,)"),
    ],
)
def test_experiment_point_files_that_cannot_work_are_clear_errors(
    tmp_path, cli_error, rows, message
):
    np.save(tmp_path / "p.npy", rows.astype(np.float32))
    line = cli_error(
        ["experiment", "--quick", "--quiet", "--pair", f"gaussian:{tmp_path / 'p.npy'}",
         "--out", str(tmp_path / "q")]
    )  # fmt: skip
    assert message in line and "p.npy" in line


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_on_train_saves_a_checkpoint_and_the_resume_finishes_the_same_run(
    signame, tmp_path, monkeypatch, capsys
):
    """Issue 17 item 8: Ctrl-C with the default --checkpoint-every 0 lost all training; SIGTERM
    (``timeout``, a batch scheduler's time limit) lost it too, and is now handled the same way."""
    import signal

    import bezkit.training.trainer as trainer

    run = ["train", *FAST, "--steps", "20", "--seed", "3"]
    assert main([*run, "--out", str(tmp_path / "whole")]) == 0
    real = trainer.generator_for

    def ctrl_c_at_step_7(seed, step, stream):
        if step == 7 and stream == "loss":
            signal.raise_signal(getattr(signal, signame))  # as a Ctrl-C in the middle of step 7
        return real(seed, step, stream)

    monkeypatch.setattr(trainer, "generator_for", ctrl_c_at_step_7)
    cut = tmp_path / "cut"
    capsys.readouterr()
    assert main([*run, "--out", str(cut)]) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 8 of 20" in err and f"bezkit train --resume {cut}" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert load_checkpoint(cut).metadata["step"] == 8  # step 7 finished, then saved
    monkeypatch.undo()
    assert main(["train", "--resume", str(cut), "--quiet"]) == 0
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(cut)
    assert b.metadata["losses"] == a.metadata["losses"]
    for key, value in a.tensors.items():
        assert torch.equal(value, b.tensors[key]), key


def test_a_run_diverging_on_badly_scaled_data_names_the_scale(tmp_path, capsys):
    """Issue 17 item 9: data around 1e18 said only "lower the lr"."""
    points = tmp_path / "huge.npy"
    np.save(points, (np.random.default_rng(0).normal(size=(200, 2)) * 1e20).astype(np.float32))
    assert main(["train", *FAST, "--source", str(points), "--out", str(tmp_path / "f")]) == 1
    err = capsys.readouterr().err
    assert "training diverged" in err and "data scale" in err and "huge.npy" in err
    assert "e+20" in err and "standardise" in err  # (1e20)^2 overflows float32: inf at once


def _edit_header(st_path, change):
    """Change the bezkit metadata inside a safetensors header, keeping the file loadable."""
    from bezkit.training.checkpoint import HEADER_KEY

    raw = Path(st_path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header["__metadata__"][HEADER_KEY])
    change(meta)
    header["__metadata__"][HEADER_KEY] = json.dumps(meta, separators=(",", ":"))
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= n
    Path(st_path).write_bytes(raw[:8] + text.ljust(n) + raw[8 + n :])


def test_an_edited_header_is_reported_as_the_checkpoint_not_as_the_json_copy(tmp_path):
    from bezkit.training import CheckpointError
    from bezkit.training.checkpoint import save_checkpoint

    tensors = {"model.w": torch.arange(6.0).reshape(2, 3)}
    save_checkpoint(tmp_path / "c", tensors, {"step": 500})
    _edit_header(tmp_path / "c.safetensors", lambda m: m.update(step=5))
    with pytest.raises(CheckpointError, match=r"c\.safetensors is damaged or was altered") as err:
        load_checkpoint(tmp_path / "c")
    assert "edited by hand" not in str(err.value)
    # the JSON copy edited: still reported as the copy
    save_checkpoint(tmp_path / "d", tensors, {"step": 500})
    meta = json.loads((tmp_path / "d.json").read_text())
    (tmp_path / "d.json").write_text(json.dumps({**meta, "step": 5}))
    with pytest.raises(CheckpointError, match=r"d\.json was edited by hand"):
        load_checkpoint(tmp_path / "d")


# -- the low list: clear errors -------------------------------------------------------------------

BIG_SEED = str(2**64 + 5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", *FAST, "--seed", BIG_SEED, "--out", "s"], "--seed"),
        (["experiment", "--quick", "--seed", BIG_SEED, "--out", "e"], "--seed"),
        (["images", "train", "--seed", BIG_SEED, "--out", "i"], "--seed"),
        (["experiment", "--quick", "--out", ""], "--out is empty"),
        (["experiment", "--quick", "--out", "/"], "file-system root"),
        (["lessons", "copy", ""], "empty"),
        (["lessons", "student", ""], "empty"),
        (["evaluate", "nope", "--out", ""], "--out is empty"),
    ],
)
def test_bad_outputs_and_seeds_are_one_line_errors(tmp_path, monkeypatch, cli_error, argv, message):
    import bezkit.cli.experiment as experiment_cli

    def no_run(*args, **kwargs):  # a regression must not run an experiment into "/"
        raise AssertionError("the experiment ran")

    monkeypatch.setattr(experiment_cli, "run_experiment", no_run)
    monkeypatch.chdir(tmp_path)
    line = cli_error(argv)
    assert message in line
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a lock or a folder


def test_evaluate_seed_beyond_64_bits_is_refused(trained, cli_error):
    ckpt, _ = trained
    line = cli_error(["evaluate", str(ckpt), *EVAL_FAST, "--seed", BIG_SEED])
    assert "--seed" in line and "2**62" in line


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_old_one(
    trained, tmp_path, monkeypatch, capsys
):
    import errno

    import bezkit.training.checkpoint as checkpoint

    ckpt, _ = trained
    out = tmp_path / "c"
    for suffix in (".safetensors", ".json"):
        Path(f"{out}{suffix}").write_bytes(Path(f"{ckpt}{suffix}").read_bytes())
    before = Path(f"{out}.safetensors").read_bytes()

    def full(tensors, filename, metadata=None):
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    monkeypatch.setattr(checkpoint, "save_file", full)
    capsys.readouterr()
    assert main(["train", *FAST, "--out", str(out), "--overwrite"]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("bezkit")]
    assert "Traceback" not in err and "No space left on device" in lines[-1]
    assert "intact" in lines[-1]
    assert Path(f"{out}.safetensors").read_bytes() == before


def test_redraw_of_damaged_files_is_a_clear_error_and_cleans_stale_temp_files(tmp_path, cli_error):
    results = Path(__file__).resolve().parents[1] / "data" / "results"
    if not (results / "results.json").is_file():
        pytest.skip("no committed experiment results")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("results.json", "chain-trajectories.npz"):
        (run / name).write_bytes((results / name).read_bytes())
    stale = run / ".chain-trajectories.npz.x1y2z3.tmp"
    stale.write_bytes(b"half an npz")
    (run / "chain-trajectories.npz").write_bytes(b"PK\x03\x04 not a zip")
    line = cli_error(["experiment", "--redraw", str(run)])
    assert "--redraw" in line and "damaged" in line
    assert not stale.exists()
    (run / "chain-trajectories.npz").write_bytes((results / "chain-trajectories.npz").read_bytes())
    for text in ('{"schema_version": 2, "experiments": [1]}',
                 '{"schema_version": 2, "experiments": [{"source": 1}]}'):  # fmt: skip
        (run / "results.json").write_text(text)
        line = cli_error(["experiment", "--redraw", str(run)])
        assert "--redraw" in line and "results.json" in line


def test_an_interrupted_lessons_copy_says_so(tmp_path, monkeypatch, capsys, cli_error):
    import bezkit.course.kit as kit

    real, written = kit.atomic_write, []

    def killed_after_three(target, write):
        if len(written) == 3:
            raise KeyboardInterrupt
        written.append(target)
        return real(target, write)

    monkeypatch.setattr(kit, "atomic_write", killed_after_three)
    assert main(["lessons", "copy", str(tmp_path / "course")]) == 130
    capsys.readouterr()
    monkeypatch.undo()
    line = cli_error(["lessons", "copy", str(tmp_path / "course")])
    assert "interrupted copy" in line and "--overwrite" in line
    assert main(["lessons", "copy", str(tmp_path / "course"), "--overwrite"]) == 0
    assert not (tmp_path / "course" / kit.INCOMPLETE_MARKER).exists()
    line = cli_error(["lessons", "copy", str(tmp_path / "course")])
    assert "already has" in line and "--overwrite" in line


def test_evaluate_shows_its_progress_on_a_terminal_and_not_with_quiet(trained, monkeypatch, capsys):
    """Issue 17: `bezkit evaluate` printed nothing for 27 s to 2 minutes."""
    import sys

    ckpt, _ = trained
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["evaluate", str(ckpt), *EVAL_FAST]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert any("noise floor" in line for line in lines) and lines[-1].endswith("done")
    assert all(line.startswith("bezkit evaluate: ") and " s: " in line for line in lines)
    assert json.loads(out)["n"] == 100  # stdout stays the JSON alone
    assert main(["evaluate", str(ckpt), *EVAL_FAST, "--quiet"]) == 0
    assert capsys.readouterr().err == ""
