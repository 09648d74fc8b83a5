"""``backprop-kit``: the instructor commands that nbgrader does not have. A thin layer over
``classgrade``, ``pipeline`` and ``release``; the tests call those functions directly.

Every command works on a course folder (``--course``; by default the current folder if it is one,
else the kit's checkout), so the commands work the same from an installed package. A command never
removes a folder it did not make (``course_folder.make_fresh_folder``), and one that fails leaves
what it would have replaced as it was. Errors are one line and a non-zero exit status (2: the
command was used wrongly; 1: it ran and failed); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import metadata
from pathlib import Path

from .assignments import assignment_ids
from .course_folder import CourseFolderError, find_course

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """The command was asked for something it cannot do (an unknown assignment, a missing option)."""


def version() -> str:
    try:
        return metadata.version("backprop-kit")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _course_option(parser: argparse.ArgumentParser, default: str = "the current folder if it is one, "
                   "else the kit's checkout") -> None:
    parser.add_argument("--course", type=Path, default=None, metavar="DIR",
                        help=f"the course folder: course_config.py, nbgrader_config.py and source/ (default: "
                             f"{default})")


def _worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="grading workers on this machine (default: one per core)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="grade on the workers of an existing Dask scheduler (tcp://host:8786) instead")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="backprop-kit", description="The kit's instructor commands (nbgrader does the rest).",
        epilog="Run `backprop-kit COMMAND --help` for a command's arguments.")
    main.add_argument("--version", action="version", version=f"backprop-kit {version()}")
    main.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    grade = sub.add_parser("grade", help="grade every submission in a course's submitted/ folder, in parallel",
                           description="Grade every submission in the course's submitted/ folder on parallel "
                                       "workers, and record the grades through nbgrader's own autograde.")
    grade.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="the assignments to grade (or --all)")
    grade.add_argument("--all", action="store_true", help="every assignment in the course's gradebook")
    _course_option(grade, default="the current folder")
    grade.add_argument("--force", action="store_true",
                       help="grade again the submissions whose recorded grade is up to date")
    _worker_options(grade)

    demo = sub.add_parser("demo", help="grade the bundled sample submissions end to end in a scratch course",
                          description="Build a scratch course from the course folder's sources, submit the "
                                      "bundled samples, grade them, write feedback and export the grades.")
    demo.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="the assignments (default: all)")
    _course_option(demo)
    demo.add_argument("--dir", type=Path, default=None, metavar="DIR",
                      help="the scratch course (default: demo/ in the course folder); recreated if backprop-kit "
                           "made it, refused if it holds anything else")
    demo.add_argument("--force", action="store_true", help="replace --dir even if backprop-kit did not make it")
    _worker_options(demo)

    rel = sub.add_parser("release", help="regenerate release/ and solutions/ from source/",
                         description="Check every source notebook, then regenerate release/<id> and "
                                     "solutions/<id> with nbgrader; if anything fails, nothing is written.")
    rel.add_argument("assignments", nargs="*", metavar="ASSIGNMENT",
                     help="the assignments (default: every one in the course's source/)")
    _course_option(rel)
    return main


def chosen(names: list[str], available: list[str]) -> list[str]:
    """``names`` (or all of ``available``), each checked against the kit's assignments."""
    known = assignment_ids()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown assignment{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                         f"the kit's assignments are {', '.join(known)}")
    return names or available


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return {"grade": _grade, "demo": _demo, "release": _release}[args.command](args)
    except KeyboardInterrupt:  # a second Ctrl-C while no grade was being written
        print(f"backprop-kit {args.command}: stopped; run the same command again to go on", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        usage = isinstance(exc, (UsageError, CourseFolderError)) or type(exc).__name__ == "NotAKitCourse"
        message = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, ModuleNotFoundError):
            message = (f"this command needs the instructor's install ({exc.name} is missing): "
                       "pip install 'backprop-kit[instructor]'")
            usage = True
        print(f"backprop-kit {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE if usage else EXIT_FAILED


def _in_source(course: Path) -> list[str]:
    return [aid for aid in assignment_ids() if (course / "source" / aid).is_dir()]


def _release(args: argparse.Namespace) -> int:
    from .release import regenerate

    course = find_course(args.course)
    ids = chosen(args.assignments, _in_source(course))
    regenerate(course, ids)
    for aid in ids:
        print(f"{aid}: release/{aid} and solutions/{aid} regenerated from source/{aid} in {course}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    if bool(args.assignments) == bool(args.all):
        raise UsageError("name the assignments to grade, or --all")
    from .classgrade.engine import grade_course
    from .classgrade.report import format_class_run

    ids = None if args.all else chosen(args.assignments, [])
    course = args.course.resolve() if args.course is not None else Path.cwd()
    run = grade_course(course, ids, workers=args.workers, scheduler=args.scheduler, force=args.force)
    print(format_class_run(run))
    return _exit_code(run)


def _exit_code(run: object) -> int:
    if run.interrupted:  # type: ignore[attr-defined]
        return EXIT_INTERRUPTED
    return EXIT_FAILED if run.count("failed") else 0  # type: ignore[attr-defined]


def _demo(args: argparse.Namespace) -> int:
    from .assignments import load
    from .classgrade.engine import grade_course
    from .classgrade.report import assignment_runs, format_class_run
    from .pipeline import add_roster, export_grades, nbgrader, prepare_course
    from .samples import sample_roster, write_samples

    start = time.perf_counter()
    source = find_course(args.course)
    ids = chosen(args.assignments, _in_source(source))
    course = (args.dir or source / "demo").resolve()
    prepare_course(course, ids, source, force=args.force)
    for aid in ids:
        write_samples(course, load(aid))
    add_roster(course, sample_roster(ids))
    run = grade_course(course, ids, workers=args.workers, scheduler=args.scheduler, force=True)
    for aid in ids:
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
        print(f"backprop-kit demo: error: samples graded differently than they were made to show: {unexpected}",
              file=sys.stderr)
        return EXIT_FAILED
    return _exit_code(run)


if __name__ == "__main__":
    sys.exit(main())
