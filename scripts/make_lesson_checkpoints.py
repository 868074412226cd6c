"""Regenerate the pretrained lesson checkpoints in ``data/checkpoints/`` (bit-for-bit on a given
machine: every training is seeded and runs on one torch thread).

    python scripts/make_lesson_checkpoints.py            # refuses to replace existing files
    python scripts/make_lesson_checkpoints.py --overwrite
    python scripts/make_lesson_checkpoints.py --out /tmp/ckpt

Writes ``8gaussians-moons-{1,2,3}rf.{safetensors,json}`` by the recipes of
``bezkit.lessons`` (the same as ``notebooks/README.md``); about 15 s on one CPU core.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bezkit.lessons import make_lesson_checkpoints

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "data" / "checkpoints", help="output folder"
    )
    parser.add_argument("--rounds", type=int, default=3, help="reflow rounds K (k = 1..K)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing checkpoints")
    args = parser.parse_args(argv)
    make_lesson_checkpoints(args.out, rounds=args.rounds, overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
