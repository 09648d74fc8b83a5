"""Where a course is, and which folders the kit may remove.

A *course folder* is what nbgrader runs in: ``course_config.py`` (loaded by ``nbgrader_config.py``)
and ``source/<id>/<id>.ipynb``, with ``release/``, ``submitted/``, ... beside them. The kit's own
checkout is one. The kit's commands take one with ``--course``, so they work the same from an
installed package as from a checkout (``find_course``).

The kit removes only folders it made itself, which it marks (``MADE_BY_KIT``): a folder it did not
make, with anything in it, is refused unless the command is given ``--force``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

KIT_ROOT = Path(__file__).resolve().parent.parent  # the checkout, when the kit runs from one
COURSE_FILES = ("course_config.py", "nbgrader_config.py")
MADE_BY_KIT = ".made-by-backprop-kit"


class CourseFolderError(Exception):
    """A folder that is not what a command needs, or that it may not replace."""


def is_course(path: Path) -> bool:
    return all((path / name).is_file() for name in COURSE_FILES) and (path / "source").is_dir()


def kit_checkout() -> Path | None:
    """The kit's checkout when the kit runs from one (an editable install), else None."""
    return KIT_ROOT if is_course(KIT_ROOT) else None


def find_course(given: Path | None, cwd: Path | None = None) -> Path:
    """``--course``, else the current folder if it is a course, else the kit's checkout."""
    if given is not None:
        course = given.resolve()
        if not is_course(course):
            raise CourseFolderError(f"{given} is not a course folder: it needs {' and '.join(COURSE_FILES)} "
                                    "and a source/ folder (a checkout of the kit is one)")
        return course
    here = (cwd or Path.cwd()).resolve()
    found = here if is_course(here) else kit_checkout()
    if found is None:
        raise CourseFolderError("no course folder here: run this in one, or pass --course DIR (a folder with "
                                f"{' and '.join(COURSE_FILES)} and source/, such as a checkout of the kit)")
    return found


def make_fresh_folder(path: Path, force: bool = False) -> None:
    """An empty folder at ``path``, marked as the kit's. An existing one is replaced only if the kit
    made it, or it is empty, or ``force`` is given; otherwise nothing is touched."""
    if path.exists():
        if not path.is_dir():
            raise CourseFolderError(f"{path} exists and is not a folder; choose another place")
        made_by_kit = (path / MADE_BY_KIT).is_file()
        if not made_by_kit and any(path.iterdir()) and not force:
            raise CourseFolderError(f"{path} already exists and was not made by backprop-kit: choose another "
                                    "folder, or pass --force to replace it and everything in it")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MADE_BY_KIT).write_text("made by backprop-kit; it may remove this folder\n")
