"""Regenerate an assignment's student version (``release/``) and executed solution (``solutions/``)
from ``source/``, with nbgrader's own commands run from the kit's root."""

from __future__ import annotations

import shutil
from pathlib import Path

from .pipeline import nbgrader
from .samples import KIT_ROOT


def regenerate(assignment_id: str, kit_root: Path = KIT_ROOT) -> None:
    for command, folder in (("generate_assignment", "release"), ("generate_solution", "solutions")):
        done = nbgrader(kit_root, command, assignment_id, "--force")
        if done.returncode != 0:
            raise RuntimeError(f"nbgrader {command} {assignment_id} failed:\n{done.stderr[-3000:]}")
        assert (kit_root / folder / assignment_id).is_dir()
    # generate_assignment records the assignment in a gradebook at the root; the kit does not keep one.
    for leftover in ("gradebook.db",):
        (kit_root / leftover).unlink(missing_ok=True)
    shutil.rmtree(kit_root / "release" / assignment_id / ".ipynb_checkpoints", ignore_errors=True)
