"""Draw the paper's Fig. 2 and Fig. 3 (and a KL panel) for a run: `python src/plot.py logs/runs/<date>/<time>`."""

import argparse
import sys

from avrnn.cli import run
from avrnn.command_line import one_line_errors
from avrnn.analysis.figures import plot_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", help="a run folder (holding tensorboard/)")
    parser.add_argument("--every", type=int, default=None,
                        help="average training curves over this many iterations (default: as the run's own figures, "
                             "100, or a tenth of a shorter run)")
    parser.add_argument("--output-dir", default=None, help="default: <run_dir>/plots")
    args = one_line_errors(parser, "python src/plot.py --help").parse_args()
    try:
        written = plot_run(args.run_dir, args.every, args.output_dir)
    except FileNotFoundError as error:
        sys.exit(f"error: {error}")
    print("\n".join(f"wrote {path}" for path in written))


if __name__ == "__main__":
    run(main)
