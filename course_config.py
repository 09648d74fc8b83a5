"""nbgrader configuration of the course.

nbgrader reads ``nbgrader_config.py`` from the folder it runs in; that file only loads this one, so
``nbgrader generate_assignment``, ``autograde``, ``generate_feedback`` and ``export`` work from the
repository root with no extra flags. Paths are relative to this file, so a copy of the course
folder (the test suite makes some) is a course of its own.
"""

import os

from autograder.nbgrader_plugin import AUTOGRADE_PREPROCESSORS, course_private_paths

c = get_config()  # noqa: F821  (provided by traitlets when it loads the file)
ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "backprop-by-hand"
c.CourseDirectory.root = ROOT
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.solution_directory = "solutions"
# The embedded SQLite gradebook.
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(ROOT, "gradebook.db")
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# The training cell runs a few seconds; leave room on a busy machine (nbgrader's default is 30 s).
c.Execute.timeout = 120
c.ExecutePreprocessor.timeout = 120
# No per-cell timestamps in executed notebooks: solutions/ then changes only when its content does.
c.Execute.record_timing = False

# Release notebooks: the answer stub students see in place of each solution region.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Autograde: nbgrader executes the notebook as usual (outputs for the feedback), then the kit's
# TrustedGrades re-grades every item in a sandbox and overwrites the check cells' outputs, so the
# gradebook records verdicts that student code could not influence.
c.Autograde.autograde_preprocessors = AUTOGRADE_PREPROCESSORS
c.TrustedGrades.hide = course_private_paths(ROOT)
