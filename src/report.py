"""Summarise a sweep: `python src/report.py logs/multirun/<date>/<time>` -> report.md, report.csv, a plot."""

import argparse
import sys

from avrnn.cli import run
from avrnn.command_line import one_line_errors
from avrnn.analysis.sweep_report import report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dir")
    args = one_line_errors(parser, "python src/report.py --help").parse_args()
    try:
        written = report(args.sweep_dir)
    except FileNotFoundError as error:
        sys.exit(f"error: {error}")
    print("\n".join(f"wrote {path}" for path in written))
    print(written[0].read_text())


if __name__ == "__main__":
    run(main)
