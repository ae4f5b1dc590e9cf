"""Regenerate the summary tables of benchmarks/README.md from benchmarks/results/*.json.

Only files written by ``antema-scale bench`` (format ``antema-scale-bench-v1``) are read;
the other benchmark scripts' JSON files are skipped. The text between the summary
markers of the README is replaced; everything else in the README is left alone.

Usage::

    python benchmarks/summarize.py [--results benchmarks/results] [--readme benchmarks/README.md]
        [--check]

``--check`` exits with status 1 when the README is not up to date (nothing is written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from antema_scale.benchmark.report import read_records, replace_summary, summary_markdown

HERE = Path(__file__).resolve().parent


def main() -> int:
    """Rewrite (or check) the README summary; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--readme", type=Path, default=HERE / "README.md")
    parser.add_argument("--check", action="store_true", help="only check that it is up to date")
    args = parser.parse_args()
    records = read_records(args.results.glob("*.json"))
    current = args.readme.read_text() if args.readme.is_file() else "# Benchmarks\n"
    updated = replace_summary(current, summary_markdown(records))
    if args.check:
        if updated != current:
            print(f"{args.readme} is out of date; run python benchmarks/summarize.py")
            return 1
        return 0
    args.readme.write_text(updated)
    print(f"wrote the summary of {len(records)} benchmark record(s) into {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
