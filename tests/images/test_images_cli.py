"""``bezkit images train | reflow | distill | evaluate``: help, errors (exit 2, one line), and a
tiny end-to-end digits session in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bezkit.cli import main
from bezkit.models.branched import BranchedVelocity
from bezkit.training.model_io import load_model

SMALL = ["--steps", "2", "--batch-size", "8", "--quiet"]
PAIRS = ["--n-pairs", "16", "--teacher-steps", "4", "--shard-size", "8"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip()


def test_help_lists_the_stages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["images", "--help"]) == 0
    out = capsys.readouterr().out
    for stage in ("train", "reflow", "distill", "evaluate", "torchrun", "cifar10"):
        assert stage in out
    assert main(["images", "distill", "--help"]) == 0
    assert "--method {distill,bezier,bdense}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["images"], "choose a stage"),
        (["images", "train", "--preset", "cifar10", "--out", "x"], "needs --data-root"),
        (["images", "train", "--preset", "mnist", "--out", "x"], "invalid choice"),
        (["images", "reflow", "--teacher", "nope", "--pairs", "p", "--out", "o"], "not found"),
        (["images", "evaluate", "nope"], "not found"),
        (["images", "train", "--ema-decay", "1", "--out", "x"], "--ema-decay must be < 1"),
        # unwritable outputs are found before any work ("blocker" is a file)
        (["images", "train", "--out", "blocker/1rf"], "--out: "),
        (
            ["images", "reflow", "--teacher", "nope", "--pairs", "blocker/p", "--out", "o"],
            "--pairs: ",
        ),
        (["images", "evaluate", "nope", "--out", "blocker/e.json"], "--out: "),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocker").write_text("a file, not a folder")
    assert main(argv) == 2
    err = _err(capsys)
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_digits_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = tmp_path
    assert main(["images", "train", "--out", str(r / "1rf"), *SMALL]) == 0
    assert main(["images", "train", "--out", str(r / "1rf"), *SMALL]) == 2
    assert "already exists" in _err(capsys)
    reflow = ["images", "reflow", "--teacher", str(r / "1rf"), "--pairs", str(r / "p1"),
              "--out", str(r / "2rf"), "--segments", "2", *PAIRS, *SMALL]  # fmt: skip
    assert main(reflow) == 0
    _, meta = load_model(r / "2rf")
    assert meta["images"]["stage"] == "2-RF" and meta["step"] == 2
    assert (r / "p1" / "pairs.json").is_file() and (r / "p1" / "segment-2").is_dir()
    capsys.readouterr()
    assert main([*reflow[:-1], "--pairs-only"]) == 0  # the pairs are verified, nothing trained
    assert "0 shard(s) generated, 4 verified and kept" in capsys.readouterr().out
    assert main(["images", "reflow", "--teacher", str(r / "1rf"), "--pairs", str(r / "p1")]) == 2
    assert "--out is required" in _err(capsys)

    distill = ["images", "distill", "--teacher", str(r / "1rf"), "--pairs", str(r / "p1"),
               *PAIRS, *SMALL]  # fmt: skip
    assert main([*distill, "--segments", "2", "--out", str(r / "d")]) == 0
    assert main([*distill, "--segments", "2", "--method", "bdense", "--branches", "2",
                 "--out", str(r / "bd")]) == 0  # fmt: skip
    assert isinstance(load_model(r / "bd")[0], BranchedVelocity)
    bezier = ["images", "distill", "--method", "bezier", "--teacher", str(r / "1rf"),
              "--pairs", str(r / "rev"), *PAIRS, *SMALL]  # fmt: skip
    assert main([*bezier, "--out", str(r / "bz")]) == 0
    assert json.loads((r / "rev" / "pairs.json").read_text())["direction"] == "reverse"
    assert load_model(r / "bz")[1]["images"]["bezier"]["distill_steps"] is None  # uniform t
    # --distill-steps 1 is the 1-step grid (t = 0 only), not silently uniform t
    assert main([*bezier, "--out", str(r / "bz1"), "--distill-steps", "1"]) == 0
    assert load_model(r / "bz1")[1]["images"]["bezier"]["distill_steps"] == 1
    # the wrong folder for the method is a one-line error
    assert (
        main([*distill, "--segments", "2", "--pairs", str(r / "rev"), "--out", str(r / "x")]) == 2
    )
    assert "other settings" in _err(capsys)

    capsys.readouterr()
    ev = ["images", "evaluate", str(r / "d"), str(r / "bz"), "--n", "64", "--steps", "1", "2",
          "--no-frechet", "--out", str(r / "ev.json"), "--grid", str(r / "grid.png")]  # fmt: skip
    assert main(ev) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [x["stage"] for x in reports] == ["distill", "bezier"]
    assert reports[0]["nfe"] == {"1": 1, "2": 2} and "noise_floor" in reports[0]
    assert json.loads((r / "ev.json").read_text()) == reports
    assert (r / "grid-1.png").is_file() and (r / "grid-2.png").is_file()


def test_evaluate_refuses_outputs_over_its_inputs_before_sampling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 item 1 (`images evaluate ... --out im.safetensors` replaced the checkpoint) and a
    --grid whose numbered file is a folder, found only after evaluating."""
    import bezkit.cli.images as images_cli

    r = tmp_path
    assert main(["images", "train", "--out", str(r / "a"), *SMALL]) == 0
    capsys.readouterr()
    before = (r / "a.safetensors").read_bytes()

    def no_sampling(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluated before refusing the output")

    monkeypatch.setattr(images_cli, "evaluate_images", no_sampling)
    (r / "g-2.png").mkdir()
    one = ["images", "evaluate", str(r / "a"), "--n", "16", "--steps", "1"]
    two = [*one[:3], str(r / "a"), *one[3:]]
    for argv, message in (
        ([*two, "--out", str(r / "a.safetensors")], "--out"),
        ([*one, "--out", str(r / "a")], "--out"),
        ([*one, "--grid", str(r / "a.json")], "--grid"),  # one checkpoint: the file named
        ([*two, "--grid", str(r / "g.png")], "--grid"),  # two: g-1.png, g-2.png (a folder)
    ):
        assert main(argv) == 2, argv
        err = _err(capsys)
        assert err.count(message) >= 1 and len(err.splitlines()) == 1 and "Traceback" not in err
        assert "input file" in err or "g-2.png" in err, err
    assert (r / "a.safetensors").read_bytes() == before
