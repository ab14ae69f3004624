"""The browser tests' support: Debian's chromium driven by Playwright's async API, axe-core
accessibility checks, and screenshots of the pages of failed tests.

The browser is the `chromium` package from Debian (`make install` and `make test` install it with
apt-get when it is missing), never one Playwright downloads: `playwright install` is not run.
`DEALFLOW_CHROMIUM` names another binary. The fixtures built on these (`browser`, `page`) are in
tests/conftest.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]
from playwright.async_api import Browser, Page, async_playwright

from tests.support import ROOT

CHROMIUM_ENV = "DEALFLOW_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
INSTALL_COMMAND = "apt-get update && apt-get install -y chromium"

# headless, as root, on 2 cores, with no network but this machine's: without the background-networking
# flags chromium tries to reach Google's services at start (component updates, sync, field trials),
# and even with them it still looks up accounts.google.com, which the resolver rule stops: a page can
# reach 127.0.0.1 and localhost, and any other host, address or name, fails at once with
# net::ERR_NAME_NOT_RESOLVED (the rule maps IP addresses too)
CHROMIUM_ARGS = (
    "--no-sandbox",  # the sandbox refuses to run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",  # a container's /dev/shm can be 64 MB: shared memory goes to /tmp
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
)

# where `page` saves the screenshot of a failed test; DEALFLOW_TEST_ARTIFACTS moves it
ARTIFACTS_ENV = "DEALFLOW_TEST_ARTIFACTS"

# each phase's report (setup, call, teardown), stored on the item by conftest's pytest_runtest_makereport
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()

SERIOUS = ("serious", "critical")


class ChromiumMissing(RuntimeError):
    """No browser where the tests look for one: an error, not a skip (a skipped test is a failure here)."""


def chromium_path() -> str:
    """The browser binary: `DEALFLOW_CHROMIUM`, else Debian's /usr/bin/chromium, which must exist."""
    path = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ChromiumMissing(
            f"no chromium at {path}: the browser tests need Debian's chromium; `make install` installs it "
            f"when run as root, or install it yourself with `{INSTALL_COMMAND}` "
            f"(or set {CHROMIUM_ENV} to a Chromium binary)"
        )
    return path


@asynccontextmanager
async def launch_chromium(*, extra_args: Sequence[str] = (), headless: bool = True) -> AsyncIterator[Browser]:
    """Debian's chromium (or `DEALFLOW_CHROMIUM`) under Playwright, closed on leaving."""
    path = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=path, args=[*CHROMIUM_ARGS, *extra_args], headless=headless
        )
        try:
            yield browser
        finally:
            await browser.close()


# --- accessibility: axe-core, as axe-playwright-python bundles it ---


@dataclass(frozen=True)
class Violation:
    """One axe-core rule a page breaks, and the elements that break it."""

    rule: str
    impact: str
    help: str
    help_url: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.rule} ({self.impact}): {self.help} [{', '.join(self.targets)}] {self.help_url}"


@dataclass(frozen=True)
class AxeReport:
    """The violations of the impacts asked for (serious and critical unless told otherwise)."""

    violations: tuple[Violation, ...]

    @property
    def rules(self) -> set[str]:
        return {v.rule for v in self.violations}

    @property
    def message(self) -> str:
        if not self.violations:
            return "no accessibility violations"
        lines = [f"{len(self.violations)} accessibility violation(s):", *(f"  {v}" for v in self.violations)]
        return "\n".join(lines)


def _selector(target: Any) -> str:
    # a node inside a shadow root or an iframe is a list of selectors, outermost first
    return " >> ".join(map(str, target)) if isinstance(target, list) else str(target)


def violations_of(response: dict[str, Any], impacts: Sequence[str] = SERIOUS) -> AxeReport:
    """The violations of `impacts` in the result of axe-core's `axe.run()`."""
    return AxeReport(
        tuple(
            Violation(
                rule=v["id"],
                impact=v["impact"],
                help=v["help"],
                help_url=v["helpUrl"],
                targets=tuple(_selector(t) for node in v["nodes"] for t in node["target"]),
            )
            for v in response["violations"]
            if v["impact"] in impacts
        )
    )


async def axe_check(page: Page, impacts: Sequence[str] = SERIOUS) -> AxeReport:
    """Run axe-core on the page as it is now; `assert not report.violations, report.message`."""
    results = await Axe().run(page)
    return violations_of(cast(dict[str, Any], results.response), impacts)


# --- screenshots ---


def screenshot_dir() -> Path:
    return Path(os.environ.get(ARTIFACTS_ENV) or ROOT / "test-artifacts") / "screenshots"


def screenshot_path(test_name: str, directory: Path | None = None) -> Path:
    """`<directory>/<test name>.png`, the name made safe for a file (parameters keep their brackets)."""
    return (directory or screenshot_dir()) / (re.sub(r"[^\w.\[\]=-]", "_", test_name) + ".png")


async def save_screenshot(page: Page, test_name: str, directory: Path | None = None) -> Path:
    """A full-page PNG of the page, written to `screenshot_path(test_name, directory)`."""
    path = screenshot_path(test_name, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=path, full_page=True)
    return path


def failed(item: pytest.Item) -> bool:
    """Whether the test's own call failed (as the reports stored on the item by conftest say)."""
    report = item.stash.get(REPORTS, {}).get("call")
    return report is not None and report.failed
