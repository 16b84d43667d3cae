"""Time the training steps: `python src/bench.py [--sizes 64x200,4x200]` (= `make bench`). The
benchmark is a tool, not part of the library: tools/benchmark.py."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import benchmark  # noqa: E402  (tools/benchmark.py)

from avrnn.cli import run  # noqa: E402


def main() -> None:
    benchmark.main(ROOT / "conf")


if __name__ == "__main__":
    run(main)
