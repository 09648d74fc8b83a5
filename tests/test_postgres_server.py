"""nbgrader's gradebook on a real PostgreSQL server (tests/postgres_server.py starts it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from sqlalchemy import make_url

from conftest import FIGURES
from postgres_server import PostgresServer, new_database


@pytest.fixture(autouse=True)
def _alembic_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Gradebook on an empty database runs `alembic heads` by name to stamp it (as autograder.pipeline
    # notes): the venv's bin/ must be on PATH even when pytest is run without activating it.
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


# nbgrader's add_submission trips SQLAlchemy 2's autoflush warnings; the rows are stored all the same
# (the submission is found and scored below).
@pytest.mark.filterwarnings("ignore:Object of type:sqlalchemy.exc.SAWarning")
def test_gradebook_on_postgres(postgres_server: PostgresServer, postgres_url: str) -> None:
    FIGURES.append(("PostgreSQL throwaway server start (initdb + pg_ctl start)",
                    postgres_server.start_seconds, "s"))
    assert make_url(postgres_url).get_backend_name() == "postgresql"  # never a silent SQLite pass

    with Gradebook(postgres_url, "course") as gb:
        assert gb.engine.dialect.name == "postgresql"
        gb.add_assignment("ps1", duedate="2026-01-15 12:00:00")
        gb.add_notebook("problem1", "ps1")
        gb.add_grade_cell("q1", "problem1", "ps1", max_score=3, cell_type="code")
        gb.add_student("alice", first_name="Alice", last_name="Liddell", email="alice@example.org")
        gb.add_submission("ps1", "alice")

    # A second connection reads back what the first one committed.
    with Gradebook(postgres_url, "course") as gb:
        assignment = gb.find_assignment("ps1")
        assert [nb.name for nb in assignment.notebooks] == ["problem1"]
        assert assignment.course_id == "course"
        assert assignment.max_score == 3
        student = gb.find_student("alice")
        assert (student.first_name, student.last_name, student.email) == ("Alice", "Liddell", "alice@example.org")
        grade = gb.find_grade("q1", "problem1", "ps1", "alice")
        grade.manual_score = 2
        gb.db.commit()
        assert gb.find_submission("ps1", "alice").score == 2  # nbgrader's score query runs on PostgreSQL
        assert [s.id for s in gb.students] == ["alice"]


def test_new_database_is_separate(postgres_server: PostgresServer) -> None:
    with Gradebook(new_database(postgres_server, "other_course"), "other") as gb:
        assert gb.assignments == [] and gb.students == []
