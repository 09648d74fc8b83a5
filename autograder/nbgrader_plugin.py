"""nbgrader integration: ``nbgrader autograde`` (and formgrader's autograde button) run a submission
once, in the sandbox, and record verdicts that student code could not influence.

What replaces what in nbgrader's autograde (wired in ``course_config.py``):

* reading the file -- ``LenientNotebookExporter``: a notebook that is not valid JSON becomes the
  release notebook marked unreadable, so it still gets an autograded notebook, zero on every item
  and the reason, instead of vanishing from the gradebook;
* a misnamed file (``mlp_backprop (1).ipynb``) -- ``find_misnamed_notebook``, nbgrader's pre-convert
  hook, grades it under the expected name (the submitted file is not touched);
* sanitizing -- ``KeepDemonstrationOutputs`` (instead of nbgrader's ``ClearOutput``) keeps the
  student's saved outputs of demonstration cells, capped in bytes; ``RestoreCheckCells`` puts back
  deleted, duplicated or renamed check cells from the release, each exactly once;
* executing -- ``SandboxedGrading`` (instead of nbgrader's ``Execute``, so no kernel ever runs student
  code as the grader's user): one sandboxed run gives both the cells' outputs for the feedback and
  the calls on the secret hidden cases for the verdicts; each check cell's outputs become the
  verdict text and the points, which nbgrader's ``SaveAutoGrades`` records as partial credit;
* ``FlagForReview`` (after ``SaveAutoGrades``) marks the submission in the gradebook for manual
  review when the static review or the sandbox's guard found something, with the reasons in the
  autograded notebook.

nbgrader's scoring rules this relies on: a test cell whose outputs end in an ``execute_result`` that
is a number gets that many points; a cell with no output would get full points, and one with stderr
output zero, so every check cell gets exactly one stdout stream and one number.
"""

from __future__ import annotations

import base64
import os
import shutil
import traceback
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import nbformat
from nbconvert.exporters import HTMLExporter, NotebookExporter
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, DeduplicateIds, IgnorePattern,
                                    LimitOutput, NbGraderPreprocessor, OverwriteCells, OverwriteKernelspec,
                                    SaveAutoGrades)
from traitlets import Bool, Enum, Float, Int, List, Unicode, default

from .assignments import assignment_ids, load
from .harness import ItemReport
from .classgrade.plan import GradingPlan, recording_checksum, take_precomputed
from .notebook_code import METADATA_KEY, assignment_of, grade_id, grading_cells, is_demonstration, is_test_cell
from .course_folder import KIT_ROOT
from .sandbox import Limits, SandboxSource
from .sandbox.isolation import LEVELS, ResourceLimits
from .spec import Assignment
from .static_review import review

# The feedback page's template: a file that extends nbgrader's own feedback template.
TEMPLATES = Path(__file__).resolve().parent / "templates"
FEEDBACK_TEMPLATE = "backprop_feedback.html.j2"


class FeedbackExporter(HTMLExporter):
    """``nbgrader generate_feedback``'s exporter (``c.GenerateFeedback.exporter_class``): nbgrader's
    feedback page, with the kit's items named in its score index and its notes on how the notebook
    was graded. Only for feedback: formgrader's own pages keep their templates."""

    @default("template_file")
    def _kit_template_file(self) -> str:
        return FEEDBACK_TEMPLATE

    @default("template_paths")
    def _kit_template_paths(self) -> list[str]:
        return [str(TEMPLATES), *self._template_paths()]

PRIVATE_COURSE_PATHS = ("source", "solutions", "submitted", "autograded", "feedback", "release", "gradebook.db",
                        "tests", "nbgrader_config.py", "course_config.py", ".course_secret", "grades.csv")
KIT_PRIVATE_PATHS = ("source", "solutions", "course_config.py", "nbgrader_config.py", ".course_secret")


# Where a PostgreSQL server on this machine listens: a Unix socket is reachable without a network,
# so its folder is hidden too (as is one named by the gradebook's URL, ``?host=/folder``).
DATABASE_SOCKET_FOLDERS = ("/run/postgresql", "/var/run/postgresql")


def course_private_paths(root: str, db_url: str = "") -> list[str]:
    """What a submission's code must not see: the course's notebooks with solutions, the other
    submissions, the gradebook (and the sockets of a database server), the configuration and its
    secret -- and the same in the kit's checkout."""
    sockets = list(DATABASE_SOCKET_FOLDERS)
    query = parse_qs(urlsplit(db_url).query)
    sockets += [h for h in query.get("host", []) if h.startswith("/")]
    return ([os.path.join(root, name) for name in PRIVATE_COURSE_PATHS]
            + [str(KIT_ROOT / name) for name in KIT_PRIVATE_PATHS] + sockets)


def kit_metadata(nb: NotebookNode) -> dict:
    return nb.setdefault("metadata", {}).setdefault(METADATA_KEY, {})


# ---------------------------------------------------------------- reading and sanitizing


def release_notebook(coursedir: object, assignment_id: str, notebook_id: str) -> NotebookNode:
    """The student version, from the course's release folder, else the kit's committed one."""
    release = Path(coursedir.format_path(coursedir.release_directory, ".", assignment_id)) / f"{notebook_id}.ipynb"
    if not release.exists():
        release = KIT_ROOT / "release" / assignment_id / f"{notebook_id}.ipynb"
    return nbformat.read(str(release), as_version=4)


class LenientNotebookExporter(NotebookExporter):
    """Reads a submitted notebook; one that cannot be read becomes the release, marked unreadable."""

    def from_filename(self, filename: str, resources: dict | None = None, **kw: object):  # type: ignore[override]
        try:
            return super().from_filename(filename, resources=resources, **kw)
        except Exception as exc:
            reason = f"the notebook file cannot be opened ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
            info = (resources or {}).get("nbgrader", {})
            notebook_id = info.get("notebook") or Path(filename).stem
            nb = release_notebook(self.parent.coursedir, info.get("assignment") or notebook_id, notebook_id)
            kit_metadata(nb)["unreadable"] = reason
            return self.from_notebook_node(nb, resources=resources, **kw)


def find_misnamed_notebook(assignment: str, student: str, notebooks: list[str], **kw: object) -> None:
    """nbgrader's pre-convert hook: a kit notebook submitted under another name (``mlp_backprop (1).ipynb``,
    ``Copy of mlp_backprop.ipynb``) is graded as the expected one. The list is nbgrader's own, changed in
    place; the submitted file is copied, never renamed."""
    by_folder: dict[str, list[str]] = {}
    for path in notebooks:
        by_folder.setdefault(os.path.dirname(path), []).append(path)
    for folder, paths in by_folder.items():
        aid = os.path.basename(folder)
        if aid not in assignment_ids() or any(os.path.basename(p) == f"{aid}.ipynb" for p in paths):
            continue
        if len(paths) != 1:
            continue  # several candidates: nbgrader's own rule applies (missing notebook, scored zero)
        # nbgrader finds student and assignment from the path, so the copy sits beside the original.
        copy = Path(folder) / f"{aid}.ipynb"
        try:
            nb = nbformat.read(paths[0], as_version=nbformat.NO_CONVERT)
        except Exception:  # unreadable: copied as it is, and graded as unreadable under its right name
            shutil.copyfile(paths[0], copy)
        else:
            kit_metadata(nb)["submitted_as"] = os.path.basename(paths[0])
            nbformat.write(nb, str(copy))
        notebooks[notebooks.index(paths[0])] = str(copy)


class KeepDemonstrationOutputs(NbGraderPreprocessor):
    """nbgrader's ``ClearOutput``, except for demonstration cells: their saved outputs are what the
    feedback shows (they are not re-run), capped in bytes and marked as not re-run."""

    max_bytes = Int(100_000, help="Bytes of saved output kept per demonstration cell.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        aid = resources.get("nbgrader", {}).get("assignment") or assignment_of(nb)
        assignment = load(aid) if aid in assignment_ids() else None
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            if assignment is not None and is_demonstration(cell, assignment) and not is_test_cell(cell):
                cell.outputs = cap_outputs(cell.get("outputs", []), self.max_bytes)
                cell.outputs.insert(0, _note("not re-run for grading: the outputs below are the ones saved in "
                                             "your notebook"))
            else:
                cell.outputs = []
            cell.execution_count = None
            cell.get("metadata", {}).pop("collapsed", None)
        return nb, resources


def cap_outputs(outputs: list[NotebookNode], max_bytes: int) -> list[NotebookNode]:
    """Keep outputs until ``max_bytes`` of their text and data; say so when something was cut."""
    kept, size = [], 0
    for output in outputs:
        weight = len(str(output.get("text", ""))) + sum(len(str(v)) for v in output.get("data", {}).values())
        if size + weight > max_bytes:
            kept.append(_note(f"output cut off after {max_bytes} bytes"))
            break
        kept.append(output)
        size += weight
    return kept


class RestoreCheckCells(NbGraderPreprocessor):
    """Every check cell of the release, exactly once, in the release's place: deleted ones come back,
    duplicates and cells whose grade_id was renamed lose their grading metadata (their code stays)."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        info = resources.get("nbgrader", {})
        aid = info.get("assignment") or assignment_of(nb)
        if aid not in assignment_ids():
            return nb, resources
        release = release_notebook(_coursedir(self), aid, info.get("notebook") or aid)
        wanted = [c for c in release.cells if is_test_cell(c)]
        wanted_ids = {grade_id(c) for c in wanted}
        seen: set[str] = set()
        for cell in nb.cells:
            gid = grade_id(cell)
            if is_test_cell(cell) and (gid not in wanted_ids or gid in seen):
                cell.metadata.pop("nbgrader", None)  # a renamed or duplicated check cell: plain code now
            elif is_test_cell(cell):
                seen.add(gid)
        # Put back missing check cells after the cell that precedes them in the release.
        for position, cell in enumerate(release.cells):
            if not is_test_cell(cell) or grade_id(cell) in seen:
                continue
            anchor = release.cells[position - 1] if position > 0 else None
            where = _index_of(nb, anchor)
            nb.cells.insert(where + 1 if where is not None else len(nb.cells), nbformat.from_dict(cell))
            seen.add(grade_id(cell))
            kit_metadata(nb).setdefault("restored_check_cells", []).append(grade_id(cell))
        return nb, resources


def _coursedir(preprocessor: object) -> object:
    """nbgrader's CourseDirectory of the converter running this preprocessor (preprocessor ->
    exporter -> converter), or the kit's own folders when run outside nbgrader."""
    node = preprocessor
    while node is not None:
        if hasattr(node, "coursedir"):
            return node.coursedir
        node = getattr(node, "parent", None)
    return _NoCourse()


class _NoCourse:
    release_directory = "release"

    def format_path(self, *parts: str) -> str:
        return str(KIT_ROOT / "release" / parts[-1])


def _index_of(nb: NotebookNode, anchor: NotebookNode | None) -> int | None:
    if anchor is None:
        return -1
    anchor_id = grade_id(anchor)
    for index, cell in enumerate(nb.cells):
        if anchor_id and grade_id(cell) == anchor_id:
            return index
    for index, cell in enumerate(nb.cells):
        if cell.source == anchor.source:
            return index
    return None


# ---------------------------------------------------------------- grading


def check_cell_outputs(report: ItemReport, execution_count: int | None, graded_in: str = "") -> list[NotebookNode]:
    """The outputs nbgrader scores: the feedback on stdout, the picture of where a wrong gradient
    differs (an image the feedback page embeds), then the points as the cell's value."""
    text = report.text() + (f"\n{'graded in':<20} | {graded_in}" if graded_in else "")
    outputs = [new_output("stream", name="stdout", text=text + "\n")]
    picture = report.draw_picture()
    if picture is not None:
        outputs.append(new_output("display_data", data={"image/png": base64.b64encode(picture).decode("ascii"),
                                                        "text/plain": f"<where {report.item.name} differs>"}))
    outputs.append(new_output("execute_result", data={"text/plain": repr(float(report.earned))},
                              execution_count=execution_count))
    return outputs


def zero_outputs(reason: str, execution_count: int | None = None) -> list[NotebookNode]:
    return [new_output("stream", name="stdout", text=f"not graded: {reason}\nscore | 0\n"),
            new_output("execute_result", data={"text/plain": "0.0"}, execution_count=execution_count)]


def _note(text: str) -> NotebookNode:
    return new_output("stream", name="stdout", text=f"[grader] {text}\n")


def grading_plan(nb: NotebookNode, assignment: Assignment, student: str, secret: str, hide: list[str],
                 limits: Limits, require: str, rerun_demonstrations: bool = False) -> GradingPlan:
    """What the trusted verdict on this notebook depends on: the cells the sandbox runs, the items
    whose check cells it has, the student's secret hidden cases, the sandbox's settings."""
    check_ids = {grade_id(c) for c in nb.cells if is_test_cell(c)}
    return GradingPlan.make(assignment.id, student, grading_cells(nb, assignment, rerun_demonstrations),
                            [item.name for item in assignment.items if item.name in check_ids], secret, hide,
                            limits, require)


def grade_submission(nb: NotebookNode, assignment: Assignment, student: str, secret: str, hide: list[str],
                     limits: Limits, require: str, rerun_demonstrations: bool = False,
                     ) -> tuple[list[ItemReport], SandboxSource]:
    """The trusted verdict on every item: one sandboxed run, on the student's secret hidden cases."""
    verdicts = grading_plan(nb, assignment, student, secret, hide, limits, require, rerun_demonstrations).run()
    return verdicts.reports, verdicts.source


class SandboxedGrading(NbGraderPreprocessor):
    """Takes the place of nbgrader's ``Execute``: see the module docstring."""

    require_isolation = Enum(LEVELS, "bubblewrap", help=(
        "The weakest sandbox grading accepts. When this machine cannot give it, grading stops and "
        "records nothing. 'limits' suits a laptop that trusts its own code.")).tag(config=True)
    secret = Unicode("", help="The course secret the hidden cases are drawn from (keep it out of the "
                              "students' reach; course_config.py reads it from .course_secret).").tag(config=True)
    hide = List(Unicode(), help="Paths the sandbox must not see (gradebook, configuration, notebooks).").tag(config=True)
    rerun_demonstrations = Bool(False, help="Run cells tagged as demonstrations (training, plots) in the "
                                            "sandbox too, instead of showing their saved outputs.").tag(config=True)
    per_call_s = Float(10.0, help="Seconds one call of a student function may take.").tag(config=True)
    per_cell_s = Float(30.0, help="Seconds one notebook cell may take in the sandbox.").tag(config=True)
    memory_mb = Int(8192, help="Address space of the sandboxed process, in MiB.").tag(config=True)
    output_bytes = Int(200_000, help="Bytes of output kept per cell.").tag(config=True)

    def limits(self) -> Limits:
        return Limits(per_call_s=self.per_call_s, per_cell_s=self.per_cell_s, output_bytes_per_cell=self.output_bytes,
                      resources=ResourceLimits(memory_bytes=self.memory_mb * 1024**2))

    def plan_for(self, nb: NotebookNode, resources: dict) -> GradingPlan | None:
        """The sandboxed run this notebook needs (None for an unreadable one: it scores zero as it is)."""
        info = resources.get("nbgrader", {})
        aid = info.get("assignment") or assignment_of(nb)
        if aid not in assignment_ids():
            raise RuntimeError(f"{aid!r} is not a kit assignment: no sandboxed grader for it")
        if kit_metadata(nb).get("unreadable"):
            return None
        return grading_plan(nb, load(aid), info.get("student") or "unknown", self.secret, list(self.hide),
                            self.limits(), self.require_isolation, self.rerun_demonstrations)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        info = resources.get("nbgrader", {})
        aid = info.get("assignment") or assignment_of(nb)
        if aid not in assignment_ids():
            raise RuntimeError(f"{aid!r} is not a kit assignment: no sandboxed grader for it")
        meta = kit_metadata(nb)
        student = info.get("student") or "unknown"
        if meta.get("unreadable"):
            for cell in nb.cells:
                if is_test_cell(cell):
                    cell.outputs = zero_outputs(meta["unreadable"])
            meta["grading"] = {"isolation": "not run: unreadable notebook", "review": []}
            _store_checksum(meta)
            self.log.warning("SandboxedGrading: %s/%s: %s", student, aid, meta["unreadable"])
            return nb, resources
        plan = self.plan_for(nb, resources)
        assert plan is not None  # readable
        # ``backprop-kit grade`` ran this very plan on a worker already; anything else runs it here.
        verdicts = take_precomputed(plan) or plan.run()
        reports, source = verdicts.reports, verdicts.source
        by_name = {r.item.name: r for r in reports}
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if is_test_cell(cell):
                report = by_name.get(grade_id(cell))
                cell.outputs = (check_cell_outputs(report, index, source.isolation_note) if report is not None
                                else zero_outputs("this check cell is not part of the assignment", index))
                cell.execution_count = index
            elif index in source.cell_outputs:
                outputs, _failed = source.cell_outputs[index]
                cell.outputs = [nbformat.from_dict(o) for o in outputs]
                for output in cell.outputs:
                    if output.output_type == "execute_result":
                        output.execution_count = index
                cell.execution_count = index
        # Every cell the student wrote or changed: answers, added cells, edited given cells.
        given = {c.source for c in release_notebook(_coursedir(self), aid, info.get("notebook") or aid).cells}
        code = [(i, c.source) for i, c in enumerate(nb.cells)
                if c.cell_type == "code" and not is_test_cell(c) and c.source not in given]
        flags = [str(f) for f in review(code, allowed=load(aid).review_allows)]
        flags += [f"the sandbox's guard ended the process: {t}" for t in source.tampering]
        flags += [f"item {r.item.name}: {r.problem}" for r in reports if r.problem and "not allowed" in r.problem]
        meta["grading"] = {"isolation": source.isolation_note, "review": flags,
                           "skipped_cells": source.skipped_cells}
        _store_checksum(meta)
        earned = sum(r.earned for r in reports)
        self.log.info("SandboxedGrading: %s/%s: %g / %g points (%s)%s", student, aid, earned,
                      sum(r.item.points for r in reports), source.isolation_note,
                      f"; flagged for review: {flags}" if flags else "")
        return nb, resources


def _store_checksum(meta: dict) -> None:
    """``backprop-kit grade`` stores the submission's checksum with its grade, to skip it while unchanged."""
    checksum = recording_checksum()
    if checksum:
        meta["grading"]["submission_checksum"] = checksum


class FlagForReview(NbGraderPreprocessor):
    """After the grades are saved: mark the submission for manual review in formgrader when the
    static review or the sandbox's guard found something (the reasons are in the notebook's metadata)."""

    course_id = Unicode("", help="The course id of the gradebook (course_config.py sets it).").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        flags = kit_metadata(nb).get("grading", {}).get("review")
        info = resources.get("nbgrader", {})
        if not flags or not info.get("db_url"):
            return nb, resources
        with Gradebook(info["db_url"], self.course_id) as gb:
            try:
                submission = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
            except MissingEntry:
                return nb, resources
            submission.flagged = True
            gb.db.commit()
        return nb, resources


class _MetadataValidatorOnce(MetadataValidator):
    """nbgrader's validator of cell metadata, with its (fixed) schema checked once: nbgrader calls
    ``jsonschema.validate`` per cell, which checks the schema itself every time (a third of the time
    recording one grade took)."""

    def __init__(self) -> None:
        super().__init__()
        self._validator = jsonschema.validators.validator_for(self.schema)(self.schema)

    def validate_cell(self, cell: NotebookNode) -> None:
        if "nbgrader" not in cell.metadata:
            return
        version = cell.metadata["nbgrader"].get("schema_version", 0)
        if version != self.schema_version:
            return super().validate_cell(cell)  # nbgrader's own errors for too old or too new
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(cell.metadata["nbgrader"]))
        if error is not None:
            raise error


class CheckCellMetadataOnce(CheckCellMetadata):
    """nbgrader's ``CheckCellMetadata``, the same checks, with the schema checked once per process."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        try:
            _metadata_validator().validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg)
        return nb, resources


@lru_cache(maxsize=1)
def _metadata_validator() -> _MetadataValidatorOnce:
    return _MetadataValidatorOnce()


SANITIZE_PREPROCESSORS = [KeepDemonstrationOutputs, RestoreCheckCells, DeduplicateIds, OverwriteKernelspec,
                          OverwriteCells, CheckCellMetadataOnce]
# nbgrader's default autograde pipeline with Execute replaced by the sandboxed run.
AUTOGRADE_PREPROCESSORS = [SandboxedGrading, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
                           FlagForReview, AssignLatePenalties, CheckCellMetadataOnce]
