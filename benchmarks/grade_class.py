"""Benchmark: plain ``nbgrader autograde`` against the kit's parallel class grader, on one machine.

For N submissions per assignment (a mix cycled from the assignment's bundled samples: right, partly
wrong, cheating, broken, blank) it times

(a) plain ``nbgrader autograde <aid> --force`` with nbgrader's default pipeline (every cell run in a
    kernel, no sandbox), sequentially, in a course folder of its own (optionally on a sample of K
    submissions per assignment, extrapolated to N);
(b) ``grade_course`` (``backprop-kit grade``) on the kit's course, all N, on ``--workers`` workers;
(c) the kit's own sequential ``nbgrader autograde`` (``pipeline.grade_assignment``), on a copy of the
    kit's course, only to check that (b) records the same score for every student and item.

Target: ratio (a)/(b) >= 10 at N=40 per assignment on 2 cores. Exit status 1 if (b) and (c) disagree.

    .venv/bin/python benchmarks/grade_class.py --n 40 --baseline-sample 6 --json out.json
    .venv/bin/python benchmarks/grade_class.py --smoke          # about a minute: the test's run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from autograder.assignments import assignment_ids, load
from autograder.classgrade.engine import ClassRun, grade_course
from autograder.classgrade.report import summary_line
from autograder.pipeline import course_id_and_db, grade_assignment, nbgrader, prepare_course
from autograder.course_folder import KIT_ROOT, MADE_BY_KIT, CourseFolderError, make_fresh_folder
from autograder.samples import write_samples
from autograder.spec import Assignment, Sample

TARGET_RATIO = 10.0
TARGET_N = 40
TARGET_CORES = 2
GB = 1024**3

# The order a class's submissions cycle through: most students are right or partly right, so those
# come first and a small N (or a small baseline sample) still holds the common cases.
KINDS = ("right", "partly wrong", "cheating", "broken", "blank")

# nbgrader's defaults, except what a course must say: where it is, its gradebook, and the same answer
# stub as the kit's course_config.py (so released cells, and their checksums, match the kit's).
BASELINE_CONFIG = '''\
import os
c = get_config()
ROOT = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "backprop-baseline"
c.CourseDirectory.root = ROOT
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(ROOT, "gradebook.db")
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
'''

Scores = dict[str, dict[str, float | None]]  # student -> "notebook/grade id" -> score


@dataclass(frozen=True)
class Entry:
    student: str   # s001-solution
    kind: str      # one of KINDS
    sample: str    # the bundled sample it was made from


@dataclass
class Baseline:
    """Plain nbgrader on one assignment: ``seconds`` is for all N (measured, or extrapolated)."""
    seconds: float
    timed: list[Entry]
    sampled: bool
    startup_seconds: float = 0.0
    per_student: dict[str, float] = field(default_factory=dict)
    scores: dict[str, str] = field(default_factory=dict)  # student -> "score / max" or why not graded


# ---- the submissions --------------------------------------------------------------------------

def kind_of(sample: Sample) -> str:
    if sample.corrupt:
        return "broken"
    if sample.base == "release":
        return "blank"
    if sample.student == "sample-solution":
        return "right"
    if "grad" in sample.student:  # sample-autograd, sample-grad-copy: autograd instead of derivation
        return "cheating"
    return "partly wrong"


def class_mix(assignment: Assignment, n: int) -> list[tuple[Entry, Sample]]:
    """N submissions cycling through the bundled samples in KINDS order, renamed per student."""
    ordered = sorted(assignment.samples, key=lambda s: KINDS.index(kind_of(s)))  # stable within a kind
    mix: list[tuple[Entry, Sample]] = []
    for i in range(n):
        sample = ordered[i % len(ordered)]
        student = f"s{i + 1:03d}-{sample.student.removeprefix('sample-')}"
        mix.append((Entry(student, kind_of(sample), sample.student), dataclasses.replace(sample, student=student)))
    return mix


def write_class(course: Path, assignment: Assignment, n: int) -> list[Entry]:
    """Write the mix with the kit's own ``write_samples`` (it names folders by ``Sample.student``)."""
    mix = class_mix(assignment, n)
    write_samples(course, dataclasses.replace(assignment, samples=tuple(s for _, s in mix)))
    return [e for e, _ in mix]


def baseline_sample(entries: list[Entry], k: int) -> list[Entry]:
    """The first K of the cycle: one of each sample before any repeats, so the mix is kept (with K at
    least the number of samples, 6, every sample's own time is measured)."""
    return entries[:k]


# ---- gradebooks -------------------------------------------------------------------------------

def gradebook_scores(course: Path, aid: str) -> Scores:
    course_id, db_url = course_id_and_db(course)
    scores: Scores = {}
    with Gradebook(db_url, course_id) as gb:
        for student in sorted(s.id for s in gb.students):
            try:
                submission = gb.find_submission(aid, student)
            except MissingEntry:
                continue
            scores[student] = {f"{nb.name}/{g.name}": g.score for nb in submission.notebooks for g in nb.grades}
    return scores


def total_scores(course: Path, aid: str) -> dict[str, str]:
    course_id, db_url = course_id_and_db(course)
    totals: dict[str, str] = {}
    with Gradebook(db_url, course_id) as gb:
        for student in (s.id for s in gb.students):
            try:
                sub = gb.find_submission(aid, student)
            except MissingEntry:
                continue
            totals[student] = f"{sub.score:g} / {sub.max_score:g}"
    return totals


def mismatches(aid: str, kit: Scores, reference: Scores, students: list[str]) -> list[str]:
    found: list[str] = []
    for student in students:
        if student not in kit or student not in reference:
            found.append(f"{aid}/{student}: in the gradebook of "
                         f"{'only the sequential run' if student in reference else 'only grade_course' if student in kit else 'neither'}")
            continue
        a, b = kit[student], reference[student]
        for item in sorted(set(a) | set(b)):
            x, y = a.get(item), b.get(item)
            if x is None or y is None or abs(x - y) > 1e-9:
                found.append(f"{aid}/{student}/{item}: grade_course {x}, sequential nbgrader {y}")
    return found


# ---- (a) plain nbgrader -----------------------------------------------------------------------

def run_nbgrader(course: Path, *args: str) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = nbgrader(course, *args)
    return time.perf_counter() - start, done.returncode, done.stderr


def prepare_baseline(course: Path, kit_course: Path, aid: str, timed: list[Entry]) -> None:
    if not course.exists():
        make_fresh_folder(course)
    (course / "nbgrader_config.py").write_text(BASELINE_CONFIG, encoding="utf-8")
    shutil.copytree(KIT_ROOT / "source" / aid, course / "source" / aid)
    seconds, rc, log = run_nbgrader(course, "generate_assignment", aid, "--force")
    if rc != 0:
        raise RuntimeError(f"plain nbgrader generate_assignment {aid} failed:\n{log[-3000:]}")
    for entry in timed:  # the very files the kit grades
        shutil.copytree(kit_course / "submitted" / entry.student / aid, course / "submitted" / entry.student / aid)


def time_baseline(course: Path, aid: str, entries: list[Entry], k: int) -> Baseline:
    if k >= len(entries):  # the real thing: one command over the whole class
        seconds, rc, log = run_nbgrader(course, "autograde", aid, "--force")
        if rc != 0:
            print(f"  note: plain nbgrader autograde {aid} exited {rc}: {last_error(log)}", file=sys.stderr)
        return Baseline(seconds, list(entries), sampled=False, scores=baseline_outcomes(course, aid, entries))
    timed = baseline_sample(entries, k)
    # Each one-student command pays nbgrader's start (imports, config, gradebook) that the whole-class
    # command pays once: measure it on a student with nothing submitted, and charge it once.
    startup, _, _ = run_nbgrader(course, "autograde", aid, "--force", "--student", "nobody-submitted")
    per_student: dict[str, float] = {}
    for entry in timed:
        seconds, rc, log = run_nbgrader(course, "autograde", aid, "--force", "--student", entry.student)
        per_student[entry.student] = seconds
        if rc != 0:
            print(f"  note: plain nbgrader autograde {aid} --student {entry.student} exited {rc}: "
                  f"{last_error(log)}", file=sys.stderr)
    work = {e.student: max(0.0, per_student[e.student] - startup) for e in timed}
    return Baseline(startup + extrapolate(work, timed, entries), timed, sampled=True, startup_seconds=startup,
                    per_student=per_student, scores=baseline_outcomes(course, aid, timed))


def extrapolate(work: dict[str, float], timed: list[Entry], entries: list[Entry]) -> float:
    """Seconds for all entries: each costs what the timed ones of its sample cost (the samples differ
    a lot: a broken file fails at once, a solution runs every training demo); a sample not timed
    costs the mean of those that were."""
    by_sample: dict[str, list[float]] = {}
    for e in timed:
        by_sample.setdefault(e.sample, []).append(work[e.student])
    mean = sum(work.values()) / len(work)
    return sum(sum(by_sample[e.sample]) / len(by_sample[e.sample]) if e.sample in by_sample else mean
               for e in entries)


def baseline_outcomes(course: Path, aid: str, timed: list[Entry]) -> dict[str, str]:
    totals = total_scores(course, aid)
    return {e.student: totals.get(e.student, "NOT GRADED (no grade in the gradebook)") for e in timed}


def last_error(log: str) -> str:
    errors = [ln for ln in log.splitlines() if "[ERROR]" in ln]
    return (errors[-1] if errors else (log.strip().splitlines() or ["(no log)"])[-1])[:300]


# ---- the report -------------------------------------------------------------------------------

def ratio(baseline: float, kit: float) -> float:
    return baseline / kit if kit > 0 else float("inf")


def figures(aid: str, n: int, baseline: Baseline, run: ClassRun) -> dict:
    a, b = baseline.seconds / n, run.seconds / n
    return {"assignment": aid, "submissions": n,
            "baseline_seconds_per_submission": round(a, 4), "kit_seconds_per_submission": round(b, 4),
            "ratio": round(ratio(a, b), 4),
            "baseline_timed": len(baseline.timed), "baseline_sampled": baseline.sampled,
            "baseline_startup_seconds": round(baseline.startup_seconds, 3),
            "baseline_students": [{"student": e.student, "kind": e.kind, "seconds": round(baseline.per_student.get(e.student, 0.0), 3),
                                   "score": baseline.scores.get(e.student, "")} for e in baseline.timed],
            "kit_seconds": round(run.seconds, 3), "baseline_seconds": round(baseline.seconds, 3),
            "workers": run.workers, "peak_worker_gb": round(run.peak_worker_bytes / GB, 2),
            "peak_total_gb": round(run.peak_total_bytes / GB, 2),
            "graded": run.count("graded"), "failed": run.count("failed")}


def overall(rows: list[dict]) -> dict:
    n = sum(r["submissions"] for r in rows)
    base, kit = sum(r["baseline_seconds"] for r in rows), sum(r["kit_seconds"] for r in rows)
    return {"assignment": "overall", "submissions": n,
            "baseline_seconds_per_submission": round(base / n, 4), "kit_seconds_per_submission": round(kit / n, 4),
            "ratio": round(ratio(base, kit), 4), "baseline_timed": sum(r["baseline_timed"] for r in rows),
            "baseline_sampled": any(r["baseline_sampled"] for r in rows),
            "kit_seconds": round(kit, 3), "baseline_seconds": round(base, 3),
            "workers": max(r["workers"] for r in rows),
            "peak_worker_gb": max(r["peak_worker_gb"] for r in rows),
            "peak_total_gb": max(r["peak_total_gb"] for r in rows),
            "graded": sum(r["graded"] for r in rows), "failed": sum(r["failed"] for r in rows)}


def table(rows: list[dict]) -> str:
    head = (f"{'assignment':<14} {'subs':>5} {'plain s/sub':>12} {'kit s/sub':>10} {'ratio':>7} {'workers':>8} "
            f"{'peak worker':>12} {'peak run':>9} {'graded':>7} {'failed':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['assignment']:<14} {r['submissions']:>5} {r['baseline_seconds_per_submission']:>12.2f} "
                     f"{r['kit_seconds_per_submission']:>10.2f} {r['ratio']:>7.1f} {r['workers']:>8} "
                     f"{r['peak_worker_gb']:>9.2f} GB {r['peak_total_gb']:>6.2f} GB {r['graded']:>7} {r['failed']:>7}")
    return "\n".join(lines)


def verdict(total: dict, n: int, cores: int) -> str:
    met = "MET" if total["ratio"] >= TARGET_RATIO else "NOT MET"
    comparable = n == TARGET_N and cores == TARGET_CORES
    return (f"target: ratio >= {TARGET_RATIO:g} at N={TARGET_N} per assignment on {TARGET_CORES} cores; "
            f"this run: N={n} on {cores} cores, ratio {total['ratio']:.1f}: {met}"
            + ("" if comparable else " (not the target's setting: indicative only)"))


# ---- the run ----------------------------------------------------------------------------------

def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=TARGET_N, help="submissions per assignment (default 40)")
    p.add_argument("--assignments", nargs="+", choices=assignment_ids(), default=None)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="grade_course workers (default: cores)")
    p.add_argument("--baseline-sample", type=int, default=None, metavar="K",
                   help="time plain nbgrader on only K submissions per assignment and extrapolate (default: all N)")
    p.add_argument("--skip-kit-nbgrader", action="store_true",
                   help="skip the kit's sequential nbgrader autograde (and so the score check)")
    p.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the scratch courses")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--smoke", action="store_true", help="N=2 of mlp_backprop, baseline sample 1 (about a minute)")
    args = p.parse_args(argv)
    if args.smoke:
        args.n, args.assignments, args.baseline_sample = 2, ["mlp_backprop"], 1
    args.assignments = args.assignments or assignment_ids()
    args.baseline_sample = min(args.baseline_sample or args.n, args.n)
    if args.n < 1 or args.baseline_sample < 1:
        p.error("--n and --baseline-sample must be at least 1")
    return args


def benchmark(args: argparse.Namespace, scratch: Path) -> int:
    kit, kit_copy, plain = scratch / "kit", scratch / "kit-nbgrader", scratch / "plain-nbgrader"
    print(f"scratch: {scratch}; {args.n} submissions per assignment of {', '.join(args.assignments)}; "
          f"{os.cpu_count()} cores, {args.workers} workers", flush=True)
    prepare_course(kit, args.assignments)
    entries = {aid: write_class(kit, load(aid), args.n) for aid in args.assignments}
    if not args.skip_kit_nbgrader:
        shutil.copytree(kit, kit_copy)  # same secret, same submissions, a gradebook of its own

    rows: list[dict] = []
    problems: list[str] = []
    for aid in args.assignments:
        timed = entries[aid] if args.baseline_sample >= args.n else baseline_sample(entries[aid], args.baseline_sample)
        prepare_baseline(plain, kit, aid, timed)
        print(f"\n{aid}: (a) plain nbgrader autograde, default pipeline, sequential, "
              + (f"SAMPLED: {len(timed)} of {args.n} timed one at a time, extrapolated" if len(timed) < args.n
                 else f"all {args.n} in one command"), flush=True)
        base = time_baseline(plain, aid, entries[aid], args.baseline_sample)
        for e in base.timed:
            took = f"{base.per_student[e.student]:6.1f} s" if e.student in base.per_student else ""
            print(f"  {e.student:<24} {e.kind:<13} {took:>8}  {base.scores.get(e.student, '')}")
        if base.sampled:
            print(f"  nbgrader's start-up (charged once): {base.startup_seconds:.1f} s; "
                  f"extrapolated to {args.n}: {base.seconds:.1f} s")
        else:
            print(f"  {base.seconds:.1f} s for {args.n}")

        if not args.skip_kit_nbgrader:
            seq = grade_assignment(kit_copy, aid)
            print(f"{aid}: (c) kit's sequential nbgrader autograde: {seq.autograde_seconds:.1f} s "
                  f"({seq.autograde_seconds / args.n:.2f} s per submission; scores only)", flush=True)

        run = grade_course(kit, [aid], workers=args.workers, force=True, progress=sys.stderr)
        print(f"{aid}: (b) grade_course: {summary_line(run)}", flush=True)
        if run.count("failed"):
            for o in run.outcomes:
                if o.status == "failed":
                    print(f"  failed: {o.submission.label}: {o.reason}")
        rows.append(figures(aid, args.n, base, run))

        if not args.skip_kit_nbgrader:
            students = [e.student for e in entries[aid]]
            problems += mismatches(aid, gradebook_scores(kit, aid), gradebook_scores(kit_copy, aid), students)

    total = overall(rows)
    sampled = [r for r in rows if r["baseline_sampled"]]
    print("\n" + table([*rows, total]))
    print("plain nbgrader: " + (f"SAMPLED, {sum(r['baseline_timed'] for r in rows)} of {total['submissions']} "
                                "submissions timed, the rest extrapolated" if sampled
                                else f"all {total['submissions']} submissions timed"))
    print(verdict(total, args.n, os.cpu_count() or 1))
    if args.skip_kit_nbgrader:
        print("scores: not checked (--skip-kit-nbgrader)")
    elif problems:
        print(f"scores: {len(problems)} MISMATCHES between grade_course and sequential nbgrader autograde:")
        print("\n".join(f"  {p}" for p in problems))
    else:
        print(f"scores: grade_course and sequential nbgrader autograde agree on every student and item "
              f"({total['submissions']} submissions)")
    if args.json:
        args.json.write_text(json.dumps({
            "n_per_assignment": args.n, "assignments": args.assignments, "cores": os.cpu_count(),
            "baseline_sample": args.baseline_sample, "baseline_sampled": bool(sampled),
            "target": {"ratio": TARGET_RATIO, "n_per_assignment": TARGET_N, "cores": TARGET_CORES},
            "rows": rows, "overall": total,
            "scores_checked": not args.skip_kit_nbgrader, "score_mismatches": problems}, indent=2))
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    scratch = args.dir.resolve() if args.dir else Path(tempfile.mkdtemp(prefix="grade-class-"))
    made = [scratch / name for name in ("kit", "kit-nbgrader", "plain-nbgrader")]
    if args.dir:
        for path in made:  # left over from a kept run: every course starts fresh
            if path.exists() and not (path / MADE_BY_KIT).is_file():
                raise CourseFolderError(f"{path} exists and was not made by this benchmark: choose another --dir")
            shutil.rmtree(path, ignore_errors=True)
    try:
        return benchmark(args, scratch)
    finally:
        if args.keep:
            print(f"kept: {scratch}")
        elif args.dir:  # never remove a folder the user named, only what this run made in it
            for path in made:
                shutil.rmtree(path, ignore_errors=True)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
