"""A real, throwaway PostgreSQL server for the tests (a pytest plugin, listed in conftest's pytest_plugins).

    postgres_server  (session fixture) -> PostgresServer: one cluster for the whole run
    new_database(server, name) -> str:    a fresh, empty database on it, as a SQLAlchemy URL
    postgres_url     (function fixture) -> str: a fresh database for each test that asks for it

Why not pytest-postgresql: it runs initdb and pg_ctl as the current user and keeps the data directory
under pytest's basetemp (mode 0700, owned by the caller). PostgreSQL refuses to run as root, and CI runs
the suite as root, so it cannot start a server there. Here, under root, the cluster is made and run by the
`postgres` system user (created by Debian's postgresql package) in a temp folder that user owns.

The server listens only on a Unix socket in that private folder (listen_addresses=''): no TCP port to
pick, so no clash with another server or another test run. psycopg 3 takes the folder as `?host=`.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPERUSER = "postgres"  # initdb's superuser name, the same whoever runs it
PORT = 5432  # only names the socket file (.s.PGSQL.5432) inside our private folder
_TOOLS = ("initdb", "pg_ctl", "postgres")


@dataclass(frozen=True)
class PostgresServer:
    folder: Path  # holds data/, the socket and the log; removed at the end of the session
    bindir: Path
    run_as: list[str]  # prefix that runs a command as the cluster's owner ([] when not root)
    start_seconds: float  # initdb + start, for the run's figures

    @property
    def socket_dir(self) -> Path:
        return self.folder

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@/{dbname}?host={self.socket_dir}&port={PORT}"


def find_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None.

    Debian keeps them in /usr/lib/postgresql/<major>/bin, off PATH; a PATH entry may be a symlink there.
    """
    candidates: list[Path] = []
    if os.environ.get("POSTGRES_BINDIR"):
        candidates.append(Path(os.environ["POSTGRES_BINDIR"]))
    on_path = shutil.which("initdb") or shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                         reverse=True)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in _TOOLS):
            return bindir
    return None


def _run(prefix: list[str], argv: list[str], cwd: Path, what: str, log: Path | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # a stray PGDATA/PGPORT must not steer
    done = subprocess.run(prefix + argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n{tail}")


def start_server(bindir: Path) -> PostgresServer:
    begin = time.perf_counter()
    run_as: list[str] = []
    owner: pwd.struct_passwd | None = None
    parent: str | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root, but there is no `postgres` user to run PostgreSQL as "
                               "(apt-get install postgresql creates it)") from None
        run_as = ["runuser", "-u", "postgres", "--"]
        # The postgres user must be able to reach the folder: $TMPDIR may be a private one of root's.
        parent = tempfile.gettempdir() if os.stat(tempfile.gettempdir()).st_mode & 0o001 else "/tmp"
    folder = Path(tempfile.mkdtemp(prefix="pg-test-", dir=parent))  # mode 0700
    try:
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        data, log = folder / "data", folder / "server.log"
        # trust: only the socket in this 0700 folder is open, so only its owner (and root) can connect.
        _run(run_as, [str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
                      "--no-locale", "-E", "UTF8", "--no-sync", "--no-instructions"], folder, "initdb")
        # pg_ctl hands -o to a shell, hence the quoting. Durability is useless for a throwaway cluster:
        # turning it off makes the tests faster.
        options = (f"-k {shlex.quote(str(folder))} -p {PORT} -c listen_addresses='' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        _run(run_as, [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60",
                      "start"], folder, "pg_ctl start", log)
    except BaseException:  # e.g. pg_ctl timed out while a postmaster did start: stop it, remove the folder
        stop_server(PostgresServer(folder, bindir, run_as, 0.0))
        raise
    return PostgresServer(folder, bindir, run_as, time.perf_counter() - begin)


def stop_server(server: PostgresServer) -> None:
    """Stop the server and remove its folder; whatever fails, the folder goes and no postgres is left."""
    data = server.folder / "data"
    try:
        _run(server.run_as, [str(server.bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
             server.folder, "pg_ctl stop")
    except Exception:
        pid_file = data / "postmaster.pid"  # its first line is the postmaster's pid
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
            except (ValueError, IndexError, ProcessLookupError, PermissionError):
                pass
    finally:
        shutil.rmtree(server.folder, ignore_errors=True)


def new_database(server: PostgresServer, name: str) -> str:
    """Create an empty database `name` (at most 63 bytes) and return its SQLAlchemy URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=str(server.socket_dir), port=PORT, user=SUPERUSER, dbname="postgres",
                         autocommit=True) as conn:  # CREATE DATABASE cannot run in a transaction
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        reason = "PostgreSQL is not installed (apt-get install postgresql, or `make system-deps` as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must test the PostgreSQL gradebook", pytrace=False)
        pytest.skip(reason)
    server = start_server(bindir)
    try:
        yield server
    finally:  # runs when tests failed or the run was interrupted, too
        stop_server(server)


_counter = iter(range(1_000_000))


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh database named after the test (the counter keeps parametrized tests apart)."""
    slug = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower())
    return new_database(postgres_server, f"t{next(_counter)}_{slug}"[:63])
