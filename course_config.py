"""nbgrader configuration of the course.

nbgrader reads ``nbgrader_config.py`` from the folder it runs in; that file only loads this one, so
``nbgrader generate_assignment``, ``autograde``, ``generate_feedback`` and ``export`` work from the
repository root with no extra flags. Paths are relative to this file, so a copy of the course
folder (the test suite makes some) is a course of its own.
"""

import os
import secrets

from autograder.nbgrader_plugin import (AUTOGRADE_PREPROCESSORS, SANITIZE_PREPROCESSORS, course_private_paths,
                                        find_misnamed_notebook)

c = get_config()  # noqa: F821  (provided by traitlets when it loads the file)
ROOT = os.path.dirname(os.path.abspath(__file__))
COURSE_ID = "backprop-by-hand"

c.CourseDirectory.course_id = COURSE_ID
c.CourseDirectory.root = ROOT
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.solution_directory = "solutions"
# The gradebook: embedded SQLite beside this file by default. A shared one (several graders, a big
# class) lives in PostgreSQL: set BACKPROP_KIT_DB_URL, or this line, to a SQLAlchemy URL such as
# postgresql+psycopg://grader:password@db.example.org/backprop (driver: psycopg, in backprop-kit[instructor]).
c.CourseDirectory.db_url = os.environ.get("BACKPROP_KIT_DB_URL") or "sqlite:///" + os.path.join(ROOT, "gradebook.db")
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# generate_solution still executes the instructor's own notebooks in a kernel (trusted code).
c.Execute.timeout = 120
c.ExecutePreprocessor.timeout = 120
# No per-cell timestamps in executed notebooks: solutions/ then changes only when its content does.
c.Execute.record_timing = False

# Release notebooks: the answer stub students see in place of each solution region.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Feedback pages: nbgrader's own template and styles (it extends them), with the kit's items named in the
# score index and its notes on how the notebook was graded (autograder/templates/backprop_feedback.html.j2).
c.GenerateFeedback.exporter_class = "autograder.nbgrader_plugin.FeedbackExporter"

# ---- Autograde: student code runs once, in the sandbox, never in an nbgrader kernel.
c.Autograde.exporter_class = "autograder.nbgrader_plugin.LenientNotebookExporter"
c.Autograde.sanitize_preprocessors = SANITIZE_PREPROCESSORS
c.Autograde.autograde_preprocessors = AUTOGRADE_PREPROCESSORS
c.Autograde.pre_convert_hook = find_misnamed_notebook
c.ClearMetadataPreprocessor.preserve_nb_metadata_mask = {("language_info", "name"), ("backprop_kit",)}
c.ClearMetadataPreprocessor.preserve_cell_metadata_mask = {("nbgrader",), ("tags",)}
c.FlagForReview.course_id = COURSE_ID
c.SandboxedGrading.hide = course_private_paths(ROOT, c.CourseDirectory.db_url)
# The weakest sandbox this course accepts: 'bubblewrap' (default), 'namespaces' or 'limits' (a laptop).
c.SandboxedGrading.require_isolation = os.environ.get("BACKPROP_KIT_REQUIRE_ISOLATION", "bubblewrap")
# Demonstrations (training, plots) show the student's saved outputs; True re-runs them in the sandbox.
c.SandboxedGrading.rerun_demonstrations = False

# The course secret the hidden cases are drawn from: made once, kept beside this file, hidden from
# the sandbox (and ignored by git). Set BACKPROP_KIT_SECRET to share one across graders.
_secret_file = os.path.join(ROOT, ".course_secret")
if not os.environ.get("BACKPROP_KIT_SECRET") and not os.path.exists(_secret_file):
    with open(os.open(_secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write(secrets.token_hex(32))
c.SandboxedGrading.secret = os.environ.get("BACKPROP_KIT_SECRET") or open(_secret_file).read().strip()
