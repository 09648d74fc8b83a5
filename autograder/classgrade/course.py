"""A course folder as nbgrader sees it: its configuration, its submissions, and for each submission
the checksum a grade is stored with and the sandboxed run it needs.

Everything is read the way nbgrader reads it: the configuration from the course's
``nbgrader_config.py`` (after the user's and the system's Jupyter configuration), the folders from
its ``CourseDirectory`` (any names an instructor chose), the notebooks through nbgrader's own
``Autograde`` converter, stopped after sanitizing, so the plan made here is the one
``SandboxedGrading`` makes when nbgrader's autograde runs for real.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import nbformat
from jupyter_core.paths import jupyter_config_path
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps.api import NbGraderAPI
from nbgrader.converters import Autograde
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from ..nbgrader_plugin import SandboxedGrading
from ..pipeline import NBGRADER_CONFIG
from .plan import GradingPlan

KIT_PACKAGE = Path(__file__).resolve().parents[1]


class NotAKitCourse(RuntimeError):
    pass


@dataclass(frozen=True)
class Submission:
    assignment_id: str
    student: str
    folder: Path      # the submitted folder (nbgrader's submitted/<student>/<assignment>)
    checksum: str     # of its files and of everything the grade depends on besides them
    problem: str = "" # why it cannot be graded at all (the batch goes on without it)

    @property
    def label(self) -> str:
        return f"{self.student}/{self.assignment_id}"


def load_course_config(root: Path) -> Config:
    """What ``nbgrader`` run in ``root`` reads: Jupyter's config folders, then the course's own file."""
    config = Config()
    for folder in reversed(jupyter_config_path()):  # lowest priority first
        if os.path.exists(os.path.join(folder, NBGRADER_CONFIG)):
            config.merge(PyFileConfigLoader(NBGRADER_CONFIG, path=folder).load_config())
    if not (root / NBGRADER_CONFIG).exists():
        raise NotAKitCourse(f"{root} has no {NBGRADER_CONFIG}: not an nbgrader course folder")
    config.merge(PyFileConfigLoader(NBGRADER_CONFIG, path=str(root)).load_config())
    if "root" not in config.CourseDirectory:
        config.CourseDirectory.root = str(root)
    return config


def _digest_tree(base: Path, digest: hashlib._Hash | None = None, suffix: str = "") -> hashlib._Hash:
    """Names and contents of every file under ``base`` (links by their target, never followed;
    checkpoints and Python's bytecode caches left out: they change without the sources), streamed."""
    digest = digest or hashlib.sha256()
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d not in (".ipynb_checkpoints", "__pycache__"))
        for name in sorted(files):
            if not name.endswith(suffix) or name.endswith(".pyc"):
                continue
            path = os.path.join(folder, name)
            digest.update(os.fsencode(os.path.relpath(path, base)) + b"\0")
            if os.path.islink(path):
                digest.update(b"link:" + os.fsencode(os.readlink(path)) + b"\0")
            elif os.path.isfile(path):
                with open(path, "rb") as fh:
                    digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest


class Course:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.config = load_course_config(self.root)
        self.api = NbGraderAPI(config=self.config)
        self.coursedir = self.api.coursedir
        steps = [p if isinstance(p, str) else f"{p.__module__}.{p.__name__}"
                 for p in self.config.Autograde.get("autograde_preprocessors", [])]
        if not any(s.endswith("SandboxedGrading") for s in steps):
            raise NotAKitCourse(
                f"{self.root}: this course's autograde does not use the kit's sandboxed grading; its "
                f"{NBGRADER_CONFIG} must load the kit's course configuration (see course_config.py)")
        self.grading = SandboxedGrading(config=self.config)  # the settings nbgrader's autograde will use

    @property
    def db_url(self) -> str:
        return self.coursedir.db_url

    @property
    def course_id(self) -> str:
        return self.coursedir.course_id

    def assignments(self) -> list[str]:
        """Every assignment in the gradebook (made by ``nbgrader generate_assignment``)."""
        with Gradebook(self.db_url, self.course_id) as gb:
            return sorted(a.name for a in gb.assignments)

    @cached_property
    def grader_fingerprint(self) -> str:
        """What else a grade depends on: the kit (code and data), torch's and nbgrader's versions,
        the course's configuration wherever nbgrader reads it, the kit's environment settings and
        the secret."""
        import nbgrader
        import torch

        digest = _digest_tree(KIT_PACKAGE, suffix="")
        digest.update(f"torch {torch.__version__}\0nbgrader {nbgrader.__version__}\0".encode())
        for folder in [*jupyter_config_path(), str(self.root)]:
            for name in (NBGRADER_CONFIG, "course_config.py"):
                if os.path.isfile(os.path.join(folder, name)):
                    with open(os.path.join(folder, name), "rb") as fh:
                        digest.update(hashlib.file_digest(fh, "sha256").digest())
        digest.update(repr(sorted((k, v) for k, v in os.environ.items()
                                  if k.startswith("BACKPROP_KIT_") and k != "BACKPROP_KIT_SECRET")).encode())
        digest.update(hashlib.sha256(self.grading.secret.encode()).digest())
        return digest.hexdigest()

    def _deadlines(self, assignment_id: str) -> dict[str, str]:
        """The due date and each student's extension: nbgrader's late penalty depends on them."""
        with Gradebook(self.db_url, self.course_id) as gb:
            assignment = gb.find_assignment(assignment_id)
            found = {"": str(assignment.duedate)}
            for submission in assignment.submissions:
                found[submission.student.id] = str(submission.extension)
        return found

    def submissions(self, assignment_id: str) -> list[Submission]:
        """Every student's submitted folder for the assignment, in student order."""
        step = self.coursedir.submitted_directory
        pattern = self.coursedir.format_path(step, "*", assignment_id)
        regexp = re.compile(self.coursedir.format_path(step, "(?P<student_id>[^/]+)", assignment_id, escape=True) + "$")
        release = Path(self.coursedir.format_path(self.coursedir.release_directory, ".", assignment_id))
        common = hashlib.sha256(f"{self.grader_fingerprint}\0{assignment_id}\0".encode())
        if release.is_dir():
            _digest_tree(release, common, suffix=".ipynb")
        deadlines = self._deadlines(assignment_id)
        common.update(deadlines[""].encode())
        found = []
        for folder in sorted(glob.glob(pattern)):
            match = regexp.match(folder)
            if match is None or not os.path.isdir(folder) or os.path.islink(folder):
                continue
            student = match.group("student_id")
            problem = ""
            digest = common.copy()
            digest.update(f"\0{deadlines.get(student)}\0".encode())
            if glob.has_magic(student):
                problem = f"the student id {student!r} has glob characters: nbgrader would grade other students with it"
            else:
                try:
                    _digest_tree(Path(folder), digest)
                except (OSError, ValueError) as exc:
                    problem = f"its files cannot be read ({type(exc).__name__}: {exc})"[:300]
            found.append(Submission(assignment_id, student, Path(folder), digest.hexdigest(), problem))
        return found

    def recorded_checksum(self, sub: Submission) -> str | None:
        """The checksum stored with this submission's grade, if a complete grade is recorded: its
        autograded notebooks carry it, and the gradebook has a score for every graded cell."""
        folder = Path(self.coursedir.format_path(self.coursedir.autograded_directory, sub.student, sub.assignment_id))
        notebooks = sorted(folder.glob("*.ipynb"))
        if not notebooks:
            return None
        checksums = set()
        with Gradebook(self.db_url, self.course_id) as gb:
            for path in notebooks:
                try:
                    meta = nbformat.read(str(path), as_version=4).metadata.get("backprop_kit", {})
                    recorded = gb.find_submission_notebook(path.stem, sub.assignment_id, sub.student)
                except (MissingEntry, OSError, ValueError):
                    return None
                # every autograded cell has its score (a written answer waits for a human: not missing)
                if any(g.auto_score is None and g.manual_score is None and not g.needs_manual_grade
                       for g in recorded.grades):
                    return None
                checksums.add(meta.get("grading", {}).get("submission_checksum"))
        return checksums.pop() if len(checksums) == 1 else None

    def plans(self, sub: Submission) -> list[GradingPlan]:
        """The sandboxed runs nbgrader's autograde of this submission will make (one per readable kit
        notebook). Nothing is written, except what nbgrader's pre-convert hook itself writes."""
        return [plan for nb, resources in self._sanitized(sub)
                if (plan := self.grading.plan_for(nb, resources)) is not None]

    def _sanitized(self, sub: Submission) -> Iterator[tuple[nbformat.NotebookNode, dict]]:
        app = Autograde(coursedir=self.coursedir, parent=self.api)
        saved = self.coursedir.assignment_id, self.coursedir.student_id
        self.coursedir.assignment_id, self.coursedir.student_id = sub.assignment_id, sub.student
        try:
            app.init_notebooks()
            app.exporter = app.exporter_class(parent=app, config=app.config)
            with Gradebook(self.db_url, self.course_id) as gb:
                known = {n.name for n in gb.find_assignment(sub.assignment_id).notebooks}
            for notebooks in app.assignments.values():
                app.notebooks = notebooks
                app.run_pre_convert_hook()
                app._sanitizing = True
                app._init_preprocessors()
                for path in app.notebooks:
                    if Path(path).stem not in known:  # nbgrader skips notebooks it does not know
                        continue
                    resources = app.init_single_notebook_resources(path)
                    output, resources = app.exporter.from_filename(path, resources=resources)
                    yield nbformat.reads(output, as_version=4), resources
        finally:
            self.coursedir.assignment_id, self.coursedir.student_id = saved
