"""``backprop-kit``: the instructor commands that nbgrader does not have. A thin layer over
``classgrade``, ``pipeline`` and ``release``; the tests call those functions directly."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .assignments import assignment_ids, load
from .classgrade.course import NotAKitCourse
from .classgrade.engine import ClassRun, grade_course
from .classgrade.report import assignment_runs, format_class_run
from .pipeline import export_grades, nbgrader, prepare_course
from .release import regenerate
from .samples import KIT_ROOT, write_samples
from .sandbox import IsolationUnavailable


def _grade_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None,
                        help="grading workers on this machine (default: one per core)")
    parser.add_argument("--scheduler", default=None,
                        help="address of an existing Dask scheduler (tcp://host:8786) to grade on its workers")


def _exit_code(run: ClassRun) -> int:
    if run.interrupted:
        return 130
    return 1 if run.count("failed") else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backprop-kit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    grade = sub.add_parser("grade", help="grade every submission in a course's submitted/ folder, in parallel")
    grade.add_argument("assignments", nargs="*", help="assignment ids (or --all)")
    grade.add_argument("--all", action="store_true", help="every assignment in the course's gradebook")
    grade.add_argument("--course", type=Path, default=Path.cwd(),
                       help="the course folder, with its nbgrader_config.py (default: the current folder)")
    grade.add_argument("--force", action="store_true", help="grade again submissions whose grade is up to date")
    _grade_options(grade)
    demo = sub.add_parser("demo", help="grade the bundled sample submissions end to end in a scratch course")
    demo.add_argument("--dir", type=Path, default=KIT_ROOT / "demo", help="scratch course folder (recreated)")
    demo.add_argument("assignments", nargs="*", default=None, help="assignment ids (default: all)")
    _grade_options(demo)
    rel = sub.add_parser("release", help="regenerate release/ and solutions/ from source/")
    rel.add_argument("assignments", nargs="*", default=None)
    args = parser.parse_args(argv)

    if args.command == "release":
        for aid in args.assignments or assignment_ids():
            regenerate(aid)
            print(f"{aid}: release/{aid} and solutions/{aid} regenerated from source/{aid}")
        return 0
    try:
        if args.command == "grade":
            return _grade(args)
        return _demo(args)
    except (NotAKitCourse, IsolationUnavailable, ValueError) as exc:
        print(f"backprop-kit {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C while no grade was being written
        print(f"backprop-kit {args.command}: stopped; run the same command again to go on", file=sys.stderr)
        return 130


def _grade(args: argparse.Namespace) -> int:
    if bool(args.assignments) == bool(args.all):
        print("backprop-kit grade: name the assignments to grade, or --all", file=sys.stderr)
        return 2
    run = grade_course(args.course, None if args.all else args.assignments, workers=args.workers,
                       scheduler=args.scheduler, force=args.force)
    print(format_class_run(run))
    return _exit_code(run)


def _demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    course = args.dir.resolve()
    chosen = args.assignments or assignment_ids()
    prepare_course(course, chosen)
    for aid in chosen:
        write_samples(course, load(aid))
    run = grade_course(course, chosen, workers=args.workers, scheduler=args.scheduler, force=True)
    for aid in chosen:
        done = nbgrader(course, "generate_feedback", aid, "--force")
        if done.returncode != 0:
            print(f"nbgrader generate_feedback {aid} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
    grades_csv = export_grades(course)
    runs = assignment_runs(run, samples=True)
    print(format_class_run(run, runs))
    print(f"gradebook: {course / 'gradebook.db'}")
    print(f"grades:    {grades_csv}")
    print(f"feedback:  {course / 'feedback'}/<student>/<assignment>/<notebook>.html")
    print(f"total time {time.perf_counter() - start:.1f} s (release, grading, feedback, export)")
    unexpected = [f"{r.assignment.id}/{row.student}" for r in runs for row in r.rows
                  if row.expected.startswith("UNEXPECTED")]
    if unexpected:
        print(f"samples graded differently than they were made to show: {unexpected}", file=sys.stderr)
        return 1
    return _exit_code(run)


if __name__ == "__main__":
    sys.exit(main())
