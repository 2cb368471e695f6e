"""`orch web` in a real browser: Playwright driving Debian's Chromium (no browser download) against the page, with
the daemon and the scripted agent at work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kit.harness import ASKS, Workspace, wait_for

pytestmark = [pytest.mark.tmux, pytest.mark.e2e, pytest.mark.web]

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def web(ws: Workspace, tmp_path: Path) -> Iterator[str]:
    """`orch web` on a free port, with the daemon running; yields the URL it printed (with its token)."""
    ws.daemon(tmp_path / "daemon.log").start()
    log = tmp_path / "web.log"  # (a file, not a pipe nobody reads: a full pipe would stop the server)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "orch", "web", "--port", "0"], cwd=ws.root, env=ws.env,
                                stdout=out, stderr=subprocess.STDOUT)
    line = wait_for(lambda: next((x for x in log.read_text().splitlines() if x.startswith("orch web: ")), None), 30,
                    "orch web's URL")
    assert isinstance(line, str) and "/?token=" in line, log.read_text()
    yield line.removeprefix("orch web: ")
    proc.terminate()
    proc.wait(10)
    print(log.read_text())


@pytest.fixture
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed: `make test` installs it (scripts/check-tools.sh --tests)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def test_the_board_lives_answers_and_refuses_strangers(ws: Workspace, web: str, browser) -> None:  # noqa: ANN001
    base = web.split("/?", 1)[0]
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    # nothing without the token
    assert page.goto(base + "/").status == 403
    assert page.goto(base + "/api/model").status == 403
    assert page.goto(base + "/events").status == 403

    assert page.goto(web).status == 200
    page.wait_for_selector("#live:text('live')")
    page.evaluate("window.__same_page = true")
    ws.task("shed", ASKS)  # written after the page opened: it comes in by itself, queued while its file settles
    page.wait_for_selector("[data-group='queued'] [data-task='shed']", timeout=30_000)
    page.wait_for_selector("[data-group='needs-input'] [data-task='shed']", timeout=60_000)
    card = page.locator("[data-task='shed'] .state").inner_text()
    assert re.fullmatch(r"(working|idle|waiting) - (hook|screen|prompt)[\w ]*, \d+ s", card), card  # state, source, age
    assert page.evaluate("window.__same_page") is True  # no reload
    assert page.title().startswith("(1) ")  # the tab says someone needs you

    # the task's own page: its live screen, and the question answered from there
    page.click("[data-task='shed'] a.slug")
    page.wait_for_url(base + "/t/shed")
    page.wait_for_selector("#screen:has-text('thinking about colours')", timeout=30_000)
    assert "which colour?" in page.locator("[data-key='question']").inner_text()

    # a request from another site is refused, whatever it carries
    stranger = page.request.post(base + "/t/shed/reply", data={"text": "red"},
                                 headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert stranger.status == 403
    no_csrf = page.request.post(base + "/t/shed/reply", data={"text": "red"})
    assert no_csrf.status == 403
    assert ws.task_status("shed")["state"] == "needs-input"

    page.fill("form.reply input", "blue")
    page.click("form.reply button")
    page.wait_for_selector("pre.said:has-text('answered shed')")

    # back on the board, it goes on to ready while we watch
    page.goto(base + "/")
    page.evaluate("window.__same_page = true")
    page.wait_for_selector("[data-group='ready'] [data-task='shed']", timeout=90_000)
    assert page.evaluate("window.__same_page") is True
    assert "ready - verdict approve on " in page.locator("[data-task='shed'] .state").inner_text()
    shot = os.environ.get("ORCH_WEB_SCREENSHOT")  # (the README's picture: a board with a few more tasks)
    if shot:
        ws.task("lights", ASKS.replace("which colour?", "warm or cold light?").replace("Paint the shed", "Fix lights"))
        ws.task("roof", "---\nhold: true\n---\nMend the roof.\n")
        page.wait_for_selector("[data-group='needs-input'] [data-task='lights']", timeout=60_000)
        page.wait_for_selector("[data-group='queued'] [data-task='roof']", timeout=60_000)
        page.screenshot(path=shot, full_page=True)

    # land it from its page: the plan first (confirmed in a dialog), then the train
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(base + "/t/shed")
    page.click("button[data-action='land']")
    try:
        said = wait_for(lambda: (text := page.locator("pre.said").inner_text()) and "dry run" not in text and text,
                        60, "the landing's answer")
    except AssertionError:
        trains = list((ws.root / ".orch" / "trains").glob("*.json"))
        raise AssertionError((ws.task_status("shed")["state"], [t.read_text()[:600] for t in trains],
                              ws.orch("log", "-n", "15").out)) from None
    assert "landed on main at" in said, said
    wait_for(lambda: ws.task_status("shed")["state"] == "merged", 30, "shed merged")

    # a phone's width: nothing wider than the screen
    phone = browser.new_page(viewport={"width": 390, "height": 800})
    phone.goto(web)
    phone.wait_for_selector("[data-task='shed']")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_task_url_without_the_cookie_is_refused(ws: Workspace, web: str, browser) -> None:  # noqa: ANN001
    base = web.split("/?", 1)[0]
    ws.task("quiet", "A task.\n\n```scripted\ncoder:\n  wait\n```\n")
    wait_for(lambda: ws.task_status("quiet")["state"] == "coding", 60, "quiet's coder")
    page = browser.new_page()
    assert page.goto(base + "/t/quiet").status == 403
    assert page.goto(base + "/t/quiet/screen").status == 403
