"""Environments other than the suite's own, made for the tests that install the kit (a pytest plugin,
listed in conftest's pytest_plugins).

    student_venv     (session) -> Path: a fresh virtual environment that already holds torch and
                     *other* versions of numpy and pytest than the course pins (a student's own
                     environment, or Colab's), with the student package installed into it; its
                     versions before and after are in ``student_venv_versions``
    kit_wheel        (session) -> Path: the kit built as a wheel (dist/ of a scratch folder)
    installed_kit    (session) -> Path: a folder holding the kit installed from that wheel, to put
                     first on PYTHONPATH: the kit as a package, with no checkout behind it
    demo_course      (session) -> Path: a course graded end to end by the installed kit's commands,
                     from a course folder that is not a checkout (`backprop-kit release`, then
                     `backprop-kit demo`), with the feedback written
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

KIT_ROOT = Path(__file__).resolve().parent.parent
# Versions a student's environment may already have, other than the course's pins (requirements/).
THEIR_NUMPY, THEIR_PYTEST = "2.2.6", "8.4.2"
TORCH = "torch==2.13.0"  # the course's torch, already there (Colab has its own)
DEMO_ASSIGNMENT = "mlp_backprop"


def run(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                             f"{done.stderr[-3000:]}")
    return done


def versions(venv: Path) -> dict[str, str]:
    """Each installed distribution's version (or where it came from: ``name @ file://...``)."""
    frozen = run([str(venv / "bin" / "pip"), "freeze", "--disable-pip-version-check"]).stdout
    found: dict[str, str] = {}
    for line in frozen.splitlines():
        name, sep, version = line.partition("==") if "==" in line else line.partition(" @ ")
        if sep:
            found[name.strip()] = version.strip()
    return found


@pytest.fixture(scope="session")
def student_venv_versions() -> dict[str, dict[str, str]]:
    return {}


@pytest.fixture(scope="session")
def student_venv(tmp_path_factory: pytest.TempPathFactory, student_venv_versions: dict) -> Path:
    from conftest import FIGURES

    venv = tmp_path_factory.mktemp("student") / "venv"
    start = time.perf_counter()
    run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    run(pip + [TORCH, f"numpy=={THEIR_NUMPY}", f"pytest=={THEIR_PYTEST}"])
    student_venv_versions["before"] = versions(venv)
    run(pip + [str(KIT_ROOT)])  # the student package, as `pip install backprop-kit` installs it
    student_venv_versions["after"] = versions(venv)
    FIGURES.append(("a student's environment: venv, torch and their numpy/pytest, then the kit",
                    time.perf_counter() - start, "s"))
    return venv


@pytest.fixture(scope="session")
def kit_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")
    shutil.copytree(KIT_ROOT, build / "kit", ignore=shutil.ignore_patterns(
        ".venv*", ".git", "demo", "dist", "build", "*.egg-info", "__pycache__", "test-artifacts"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(dist), str(build / "kit")])
    (wheel,) = dist.glob("backprop_kit-*.whl")
    return wheel


@pytest.fixture(scope="session")
def installed_kit(tmp_path_factory: pytest.TempPathFactory, kit_wheel: Path) -> Path:
    target = tmp_path_factory.mktemp("site")
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
         "--target", str(target), str(kit_wheel)])
    target.chmod(0o755)  # pytest makes it 0700: the sandbox's user must read the kit like any installed package
    return target


def installed_env(installed_kit: Path) -> dict[str, str]:
    """This interpreter (with nbgrader and the rest), but the kit from ``installed_kit``, not the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(installed_kit)
    env["PATH"] = f"{installed_kit / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def kit_command(installed_kit: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autograder.cli", *args], cwd=cwd, env=installed_env(installed_kit),
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def course_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course folder an instructor made by copying the kit's configuration and one source notebook."""
    course = tmp_path_factory.mktemp("my-course")
    for name in ("course_config.py", "nbgrader_config.py"):
        shutil.copy(KIT_ROOT / name, course / name)
    shutil.copytree(KIT_ROOT / "source" / DEMO_ASSIGNMENT, course / "source" / DEMO_ASSIGNMENT)
    return course


@pytest.fixture(scope="session")
def demo_course(tmp_path_factory: pytest.TempPathFactory, installed_kit: Path, course_folder: Path) -> Iterator[Path]:
    from conftest import FIGURES

    start = time.perf_counter()
    released = kit_command(installed_kit, "release", "--course", str(course_folder), DEMO_ASSIGNMENT,
                           cwd=tmp_path_factory.mktemp("elsewhere"))
    assert released.returncode == 0, released.stderr[-3000:]
    demo = tmp_path_factory.mktemp("graded") / "demo"
    done = kit_command(installed_kit, "demo", "--course", str(course_folder), "--dir", str(demo), DEMO_ASSIGNMENT,
                       cwd=tmp_path_factory.mktemp("elsewhere"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    FIGURES.append((f"installed kit: release, then demo of {DEMO_ASSIGNMENT} from a course folder",
                    time.perf_counter() - start, "s"))
    yield demo
