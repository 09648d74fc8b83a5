"""``backprop-kit``: it never loses a file, fails in one clear line, and explains itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from autograder.assignments import assignment_ids
from autograder.cli import main
from autograder.course_folder import MADE_BY_KIT, CourseFolderError, make_fresh_folder

from conftest import KIT_ROOT


def one_line_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"backprop-kit {command}: error: "), err
    return err


def test_version_and_help_on_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("backprop-kit ")
    for command, words in (("grade", ("--all", "--course", "--workers", "--scheduler", "--force")),
                           ("demo", ("--course", "--dir", "--force", "ASSIGNMENT")),
                           ("release", ("--course", "ASSIGNMENT"))):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        text = capsys.readouterr().out
        assert done.value.code == 0 and all(w in text for w in words), text


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.txt").write_text("three years of work")
    assert main(["demo", "--dir", str(mine), "mlp_backprop"]) == 2
    err = one_line_error(capsys, "demo")
    assert "was not made by backprop-kit" in err and "--force" in err
    assert (mine / "thesis.txt").read_text() == "three years of work" and sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]


def test_a_folder_the_kit_made_is_replaced_and_only_with_force_otherwise(tmp_path: Path) -> None:
    made = tmp_path / "scratch"
    make_fresh_folder(made)
    (made / "old.txt").write_text("from an earlier demo")
    make_fresh_folder(made)  # the kit's own: recreated
    assert sorted(p.name for p in made.iterdir()) == [MADE_BY_KIT]
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "x").write_text("x")
    with pytest.raises(CourseFolderError):
        make_fresh_folder(theirs)
    make_fresh_folder(theirs, force=True)
    assert sorted(p.name for p in theirs.iterdir()) == [MADE_BY_KIT]
    empty = tmp_path / "empty"
    empty.mkdir()
    make_fresh_folder(empty)  # an empty folder holds nothing to lose


def test_an_unknown_assignment_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "mlp_backpropp"]) == 2
    err = one_line_error(capsys, "demo")
    assert "unknown assignment mlp_backpropp" in err and all(aid in err for aid in assignment_ids())
    assert main(["grade", "--course", str(KIT_ROOT)]) == 2
    assert "name the assignments to grade, or --all" in one_line_error(capsys, "grade")


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exception, match="unknown assignment"):
        main(["--debug", "demo", "nope"])


def copy_course(tmp_path: Path, ids: list[str]) -> Path:
    course = tmp_path / "course"
    course.mkdir()
    for name in ("course_config.py", "nbgrader_config.py"):
        shutil.copy(KIT_ROOT / name, course / name)
    for aid in ids:
        for folder in ("source", "release", "solutions"):
            shutil.copytree(KIT_ROOT / folder / aid, course / folder / aid)
    return course


def snapshot(course: Path) -> dict[str, bytes]:
    return {str(p.relative_to(course)): p.read_bytes() for folder in ("release", "solutions")
            for p in sorted((course / folder).rglob("*")) if p.is_file()}


def test_release_checks_every_source_before_it_writes_anything(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    course = copy_course(tmp_path, ["micrograd", "mlp_backprop"])
    before = snapshot(course)
    broken = course / "source" / "mlp_backprop" / "mlp_backprop.ipynb"
    broken.write_text(broken.read_text()[:5000])  # cut off: not a notebook
    assert main(["release", "--course", str(course), "micrograd", "mlp_backprop"]) == 1
    err = one_line_error(capsys, "release")
    assert "nothing was written" in err and "mlp_backprop.ipynb is not a readable notebook" in err
    assert snapshot(course) == before
    # a notebook that parses but lost a check cell is refused the same way
    nb = nbformat.read(str(KIT_ROOT / "source" / "mlp_backprop" / "mlp_backprop.ipynb"), as_version=4)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "dC"]
    nbformat.write(nb, str(broken))
    assert main(["release", "--course", str(course), "mlp_backprop"]) == 1
    assert "check cells must be one per item" in one_line_error(capsys, "release")
    assert snapshot(course) == before


def test_a_release_that_fails_in_nbgrader_leaves_release_and_solutions_as_they_were(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    course = copy_course(tmp_path, ["micrograd"])
    before = snapshot(course)
    path = course / "source" / "micrograd" / "micrograd.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    setup = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    setup.source += "\nraise RuntimeError('a typo the instructor made')"  # the solution cannot run
    nbformat.write(nb, str(path))
    assert main(["release", "--course", str(course), "micrograd"]) == 1
    err = one_line_error(capsys, "release")
    assert "nothing was written: the solution of micrograd raises in cell 1 (RuntimeError: a typo the instructor made)" in err
    assert snapshot(course) == before
