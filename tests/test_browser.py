"""The instructor's and the student's interfaces, in a real browser (headless Debian Chromium, driven by
Playwright; Playwright's own browser downloads are never used).

* The instructor: a Jupyter server on 127.0.0.1 with nbgrader's formgrader, over a course graded by the
  installed kit (``environments.demo_course``): every student is listed by name with the score the
  gradebook holds, a failing item's feedback (with its picture) shows in the grading view, and the
  feedback page opens with the items named.
* The student: JupyterLab from a student's environment (no nbgrader, so no instructor menus), a
  release notebook opened, "Run All" reaching the score summary, one function answered, its check
  cell run, and the ``cmp`` row read off the page.

The screenshots are saved in ``test-artifacts/screenshots/`` (what an instructor or a student sees).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from environments import DEMO_ASSIGNMENT, run

from conftest import FIGURES, KIT_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = KIT_ROOT / "test-artifacts" / "screenshots"
# Chromium as a root process in a container, with none of its background calls to Google's services
# (this machine has no network to reach them, and each refused call slows the start).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="Chromium is not installed (sudo apt-get install chromium chromium-driver)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def jupyter_lab(bin_dir: Path, root: Path, log: Path) -> Iterator[tuple[str, str]]:
    """``jupyter lab`` from ``bin_dir`` serving ``root`` on 127.0.0.1; yields (base URL, token)."""
    port, token = free_port(), secrets.token_hex(16)
    command = [str(bin_dir / "jupyter"), "lab", "--no-browser", f"--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(f"jupyter lab did not start:\n{log.read_text()[-3000:]}")
                    time.sleep(0.5)
            yield base, token
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def new_page(browser: object, token: str, width: int) -> object:
    """A page whose every request, the pages' own API calls too, carries the server's token."""
    context = browser.new_context(viewport={"width": width, "height": 900},  # type: ignore[attr-defined]
                                  extra_http_headers={"Authorization": f"token {token}"})
    return context.new_page()


def screenshot(page: object, name: str, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)  # type: ignore[attr-defined]
    FIGURES.append((f"screenshot: {path.relative_to(KIT_ROOT)}", path.stat().st_size / 1024, "KiB"))
    return path


def gradebook_scores(course: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    from autograder.pipeline import course_id_and_db

    course_id, db_url = course_id_and_db(course)
    with Gradebook(db_url, course_id) as gb:
        return {s.student.id: float(s.score) for s in gb.assignment_submissions(DEMO_ASSIGNMENT)}


def test_formgrader_shows_every_submission_its_feedback_and_the_feedback_page(
        browser: object, demo_course: Path, tmp_path: Path) -> None:
    scores = gradebook_scores(demo_course)
    assert len(scores) == 6
    start = time.perf_counter()
    with jupyter_lab(Path(sys.executable).parent, demo_course, tmp_path / "formgrader.log") as (base, token):
        page = new_page(browser, token, 1280)
        # every student, by the name the course lists, with the score the gradebook holds
        page.goto(f"{base}/formgrader/manage_students?token={token}")
        page.wait_for_selector("text=sample-partly-right", timeout=60_000)
        for student, score in scores.items():
            row = page.locator("tr", has_text=student)
            assert row.count() == 1, student
            assert f"{score:g} / 42" in row.inner_text(), (student, row.inner_text())
            assert "None, None" not in row.inner_text()
        assert "Sample, Partly right" in page.inner_text("body")
        screenshot(page, "formgrader-students")

        # every submission of the assignment with its score, then the grading view of a failing one
        page.goto(f"{base}/formgrader/gradebook/{DEMO_ASSIGNMENT}/{DEMO_ASSIGNMENT}?token={token}")
        page.wait_for_selector("text=Submission #1", timeout=60_000)
        page.get_by_text("Show All Names").click()
        page.wait_for_selector("text=Sample, Partly right")
        for student, score in scores.items():
            assert f"{score:g} / 42" in page.inner_text("body")
        screenshot(page, "formgrader-submissions")
        page.locator("tr", has_text="Sample, Partly right").locator("a:visible").first.click()
        page.wait_for_selector("text=each row holds the gradient of only one position", timeout=60_000)
        text = page.inner_text("body")
        assert "dC" in text and "transpose of the gradient" in text and "score                | 0 / 2" in text
        pictures = page.locator("img[src^='data:image/png']")
        assert pictures.count() >= 1  # where the wrong dC differs
        page.get_by_text("each row holds the gradient of only one position").first.scroll_into_view_if_needed()
        screenshot(page, "formgrader-grading-view", full_page=False)

        # the feedback page the student gets
        page.goto(f"{base}/files/feedback/sample-partly-right/{DEMO_ASSIGNMENT}/{DEMO_ASSIGNMENT}.html?token={token}")
        page.wait_for_selector("#toc", timeout=60_000)
        toc = page.inner_text("#toc")
        assert "dlogprobs" in toc and "dC" in toc and "Test cell" not in toc
        assert "How this notebook was graded" in page.inner_text("body")
        screenshot(page, "feedback-page", full_page=False)
        page.close()
    FIGURES.append(("browser: formgrader and the feedback page", time.perf_counter() - start, "s"))


@pytest.fixture(scope="module")
def student_lab(student_venv: Path) -> Path:
    """The student's environment, with JupyterLab as requirements/student.txt pins it (no nbgrader)."""
    run([str(student_venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         "-c", str(KIT_ROOT / "requirements" / "student.txt"), "jupyterlab", "ipykernel"])
    return student_venv


ANSWER = '''def backward_logprobs(logprobs: Tensor, Yb: Tensor) -> Tensor:
    """logprobs (n, V), Yb (n,) int64 -> dlogprobs (n, V)"""
    n, V = logprobs.shape
    dlogprobs = torch.zeros_like(logprobs)
    dlogprobs[torch.arange(n), Yb] = -1.0 / n
    return dlogprobs'''


def test_a_student_answers_one_function_in_jupyterlab_and_reads_the_cmp_row(
        browser: object, student_lab: Path, tmp_path: Path) -> None:
    work = tmp_path / "student"
    work.mkdir()
    shutil.copy(KIT_ROOT / "release" / DEMO_ASSIGNMENT / f"{DEMO_ASSIGNMENT}.ipynb", work)
    start = time.perf_counter()
    with jupyter_lab(student_lab / "bin", work, tmp_path / "lab.log") as (base, token):
        page = new_page(browser, token, 1400)
        page.goto(f"{base}/lab/tree/{DEMO_ASSIGNMENT}.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        menus = page.inner_text(".lm-MenuBar")
        assert "Run" in menus and "Nbgrader" not in menus  # the student's JupyterLab: no instructor menu
        page.wait_for_function("() => document.body.innerText.includes('Idle')", timeout=120_000)  # kernel up

        # Run All: the untouched release reaches the score summary at the end
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        summary = page.locator(".jp-Cell").last
        summary.scroll_into_view_if_needed()
        page.wait_for_function("() => document.body.innerText.includes('first wrong step: dlogprobs')",
                               timeout=180_000)

        # answer backward_logprobs, run it, then its check cell
        answer = page.locator(".jp-CodeCell", has_text="def backward_logprobs")
        answer.scroll_into_view_if_needed()
        answer.locator(".cm-content").click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(ANSWER)
        page.keyboard.press("Shift+Enter")   # runs the answer, selects the check cell
        page.keyboard.press("Shift+Enter")   # runs grader.check("dlogprobs")
        check = page.locator(".jp-CodeCell", has_text='grader.check("dlogprobs")')
        check.locator(".jp-OutputArea-output", has_text="score").wait_for(timeout=120_000)
        output = check.locator(".jp-OutputArea").inner_text()
        assert "dlogprobs" in output and "| exact: True  | approximate: True  | maxdiff: 0.0" in output, output
        assert "score                | 1 / 1" in output
        check.scroll_into_view_if_needed()
        screenshot(page, "jupyterlab-student-check", full_page=False)
        page.close()
    FIGURES.append(("browser: JupyterLab, Run All, one answer and its check", time.perf_counter() - start, "s"))
