"""The browser-test support itself (tests/support/browser.py and the `browser` and `page` fixtures):
Debian's chromium opens pages served on 127.0.0.1 and runs their scripts, axe-core finds what is
inaccessible and passes what is not, and a failed test leaves a screenshot of its page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, expect

from tests.support import ROOT
from tests.support.browser import (
    ARTIFACTS_ENV,
    CHROMIUM_ENV,
    INSTALL_COMMAND,
    ChromiumMissing,
    axe_check,
    chromium_path,
    save_screenshot,
    screenshot_path,
)

PNG = b"\x89PNG\r\n\x1a\n"

HEAD = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'

PAGES = {
    "/button": HEAD.format(title="Button")
    + """<body><main><h1>Button</h1>
<p id="status">Not clicked</p>
<button type="button" onclick="document.getElementById('status').textContent = 'Clicked'">Click me</button>
</main></body></html>""",
    "/accessible": HEAD.format(title="Accessible form")
    + """<body><main><h1>A new deal</h1>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="The dealflow logo">
<form><label for="company">Company</label> <input id="company" name="company" type="text">
<button type="submit">Start the deal</button></form>
</main></body></html>""",
    "/inaccessible": HEAD.format(title="Inaccessible form")
    + """<body><main><h1>A new deal</h1>
<img id="logo" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<form><input id="company" name="company" type="text"><button type="submit">Start the deal</button></form>
</main></body></html>""",
}


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGES.get(self.path)
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """PAGES, served on a free port of 127.0.0.1 from a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_a_click_runs_the_pages_script(page: Page, site: str) -> None:
    await page.goto(f"{site}/button")
    status = page.locator("#status")
    await expect(status).to_have_text("Not clicked")
    await page.get_by_role("button", name="Click me").click()
    await expect(status).to_have_text("Clicked")
    assert await status.text_content() == "Clicked"


async def test_the_browser_reaches_this_machine_and_nothing_else(page: Page, site: str) -> None:
    await page.goto(site.replace("127.0.0.1", "localhost") + "/button")
    await expect(page).to_have_title("Button")
    for elsewhere in ("http://example.com/", "http://10.255.255.1/"):
        with pytest.raises(PlaywrightError, match="ERR_NAME_NOT_RESOLVED"):
            await page.goto(elsewhere, timeout=10_000)


async def test_axe_passes_an_accessible_page(page: Page, site: str) -> None:
    await page.goto(f"{site}/accessible")
    report = await axe_check(page)
    assert not report.violations, report.message


async def test_axe_finds_an_unlabelled_input_and_an_image_without_alt(page: Page, site: str) -> None:
    await page.goto(f"{site}/inaccessible")
    report = await axe_check(page)
    assert {"label", "image-alt"} <= report.rules, report.message
    by_rule = {v.rule: v for v in report.violations}
    assert by_rule["label"].targets == ("#company",)
    assert by_rule["image-alt"].targets == ("#logo",)
    assert all(v.impact in ("serious", "critical") for v in report.violations)
    # the message names each rule, its impact, its help and the elements
    for v in report.violations:
        assert f"{v.rule} ({v.impact}): {v.help} [{', '.join(v.targets)}]" in report.message
    assert "#company" in report.message and "#logo" in report.message


async def test_save_screenshot_writes_a_png(page: Page, site: str, tmp_path: Path) -> None:
    await page.goto(f"{site}/button")
    path = await save_screenshot(page, "test_x[a/b c]", tmp_path)
    assert path == tmp_path / "test_x[a_b_c].png"
    assert path.read_bytes().startswith(PNG)


@pytest.mark.unit
def test_screenshots_go_to_test_artifacts_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ARTIFACTS_ENV, raising=False)
    assert screenshot_path("test_y") == ROOT / "test-artifacts" / "screenshots" / "test_y.png"


@pytest.mark.unit
def test_a_missing_chromium_is_an_error_naming_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CHROMIUM_ENV, str(tmp_path / "chromium"))
    with pytest.raises(ChromiumMissing, match=re.escape(INSTALL_COMMAND)):
        chromium_path()


FAILING = """
from playwright.async_api import Page


async def test_fails_on_purpose(page: Page) -> None:
    await page.set_content("<h1>the page of a failed test</h1>")
    assert False, "on purpose"
"""


def test_a_failed_test_leaves_a_screenshot_of_its_page(tmp_path: Path) -> None:
    """A failing test in a pytest of its own, with this suite's settings and fixtures: its page's
    PNG is saved and its path printed."""
    module = tmp_path / "test_failing.py"
    module.write_text(FAILING)
    # the suite's settings (asyncio mode) and its conftest, loaded as a plugin since the module is elsewhere
    settings = ["-c", str(ROOT / "pyproject.toml"), "-p", "tests.conftest", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *settings, str(module)],
        cwd=ROOT,
        env={**os.environ, ARTIFACTS_ENV: str(tmp_path / "artifacts")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "on purpose" in run.stdout, run.stdout
    png = tmp_path / "artifacts" / "screenshots" / "test_fails_on_purpose.png"
    assert png.read_bytes().startswith(PNG), run.stdout
    assert f"screenshot of the failed test's page: {png}" in run.stdout
