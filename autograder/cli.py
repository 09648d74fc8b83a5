"""``backprop-kit``: the instructor commands that nbgrader does not have. A thin layer over
``pipeline`` and ``release``; the tests call those functions directly."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .assignments import assignment_ids
from .pipeline import format_run, run_demo
from .release import regenerate
from .samples import KIT_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backprop-kit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="grade the bundled sample submissions end to end in a scratch course")
    demo.add_argument("--dir", type=Path, default=KIT_ROOT / "demo", help="scratch course folder (recreated)")
    demo.add_argument("assignments", nargs="*", default=None, help="assignment ids (default: all)")
    rel = sub.add_parser("release", help="regenerate release/ and solutions/ from source/")
    rel.add_argument("assignments", nargs="*", default=None)
    args = parser.parse_args(argv)

    chosen = args.assignments or assignment_ids()
    if args.command == "release":
        for aid in chosen:
            regenerate(aid)
            print(f"{aid}: release/{aid} and solutions/{aid} regenerated from source/{aid}")
        return 0

    start = time.perf_counter()
    runs, grades_csv = run_demo(args.dir.resolve(), chosen)
    for run in runs:
        print(format_run(run))
    course = args.dir.resolve()
    print(f"gradebook: {course / 'gradebook.db'}")
    print(f"grades:    {grades_csv}")
    print(f"feedback:  {course / 'feedback'}/<student>/<assignment>/<notebook>.html")
    print(f"total time {time.perf_counter() - start:.1f} s")
    unexpected = [r.student for run in runs for r in run.rows if r.expected.startswith("UNEXPECTED")]
    if unexpected:
        print(f"samples graded differently than they were made to show: {unexpected}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
