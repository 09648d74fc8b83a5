"""The two installs: the student package beside what a student's environment already has, and the
instructor's commands from an installed package (no checkout), on a course folder."""

from __future__ import annotations

import shutil
import sys
import subprocess
import zipfile
from pathlib import Path

from environments import (DEMO_ASSIGNMENT, THEIR_NUMPY, THEIR_PYTEST, installed_env, kit_command)

from conftest import KIT_ROOT

INSTRUCTOR_ONLY = ("nbgrader", "dask", "distributed", "psycopg", "sqlalchemy", "alembic", "tqdm")


def test_the_student_package_keeps_what_the_environment_has(student_venv: Path,
                                                            student_venv_versions: dict) -> None:
    before, after = student_venv_versions["before"], student_venv_versions["after"]
    assert before["numpy"] == after["numpy"] == THEIR_NUMPY
    assert before["pytest"] == after["pytest"] == THEIR_PYTEST
    assert before["torch"] == after["torch"]
    assert "backprop-kit" in after
    added = set(after) - set(before)
    assert not added & {name for name in INSTRUCTOR_ONLY}, added
    assert "jupyter" not in added and "notebook" not in added and "jupyterlab" not in added


def test_a_release_notebook_checks_itself_in_the_students_environment(student_venv: Path, tmp_path: Path) -> None:
    for name in ("release", "solutions"):
        shutil.copy(KIT_ROOT / name / DEMO_ASSIGNMENT / f"{DEMO_ASSIGNMENT}.ipynb", tmp_path / f"{name}.ipynb")
    python = str(student_venv / "bin" / "python")
    fresh = subprocess.run([python, "-m", "pytest", "release.ipynb", "-p", "no:cacheprovider"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 1 and "29 failed" in fresh.stdout and "not answered yet" in fresh.stdout, fresh.stdout[-2000:]
    solved = subprocess.run([python, "-m", "pytest", "solutions.ipynb", "-p", "no:cacheprovider"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert solved.returncode == 0 and "29 passed" in solved.stdout, solved.stdout[-2000:]


def test_instructor_commands_say_what_to_install_in_the_students_environment(student_venv: Path,
                                                                             tmp_path: Path) -> None:
    command = str(student_venv / "bin" / "backprop-kit")
    version = subprocess.run([command, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("backprop-kit ")
    grade = subprocess.run([command, "grade", "--all", "--course", str(tmp_path)], capture_output=True, text=True)
    assert grade.returncode == 2 and "Traceback" not in grade.stderr
    assert grade.stderr.strip().count("\n") == 0 and "pip install 'backprop-kit[instructor]'" in grade.stderr


def test_the_wheel_holds_the_package_and_no_course_material(kit_wheel: Path) -> None:
    names = zipfile.ZipFile(kit_wheel).namelist()
    assert "autograder/cli.py" in names and "autograder/data/names.txt" in names
    assert "autograder/templates/backprop_feedback.html.j2" in names
    assert not [n for n in names if n.endswith(".ipynb") or n.startswith(("source/", "solutions/", "release/"))]
    assert not [n for n in names if n.endswith(("course_config.py", "nbgrader_config.py"))]


def test_the_installed_kit_releases_and_grades_a_course_folder(installed_kit: Path, course_folder: Path,
                                                                demo_course: Path, tmp_path: Path) -> None:
    where = subprocess.run([sys.executable, "-c", "import autograder; print(autograder.__file__)"],
                           env=installed_env(installed_kit), capture_output=True, text=True, cwd=tmp_path)
    assert where.stdout.startswith(str(installed_kit))  # the package, not the checkout
    for folder in ("release", "solutions"):
        assert (course_folder / folder / DEMO_ASSIGNMENT / f"{DEMO_ASSIGNMENT}.ipynb").is_file()
    assert (demo_course / "gradebook.db").is_file() and (demo_course / "grades.csv").is_file()
    feedback = list((demo_course / "feedback").glob(f"*/{DEMO_ASSIGNMENT}/{DEMO_ASSIGNMENT}.html"))
    assert len(feedback) == 6
    # outside a course, with no checkout behind the package, the command says what it needs
    lost = kit_command(installed_kit, "demo", DEMO_ASSIGNMENT, cwd=tmp_path)
    assert lost.returncode == 2 and "no course folder here" in lost.stderr and "Traceback" not in lost.stderr
