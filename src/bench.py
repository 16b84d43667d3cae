"""Time the training steps: `python src/bench.py [--sizes 64x200,4x200]` (= `make bench`); see avrnn.bench."""

from pathlib import Path

from avrnn import bench
from avrnn.cli import run

CONF = Path(__file__).resolve().parents[1] / "conf"


def main() -> None:
    bench.main(CONF)


if __name__ == "__main__":
    run(main)
