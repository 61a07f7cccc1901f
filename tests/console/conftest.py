"""The console's tests drive Debian's chromium (installed by scripts/install-browser.sh; never a
downloaded browser build) through Playwright, headless, WebGL through SwiftShader, against
the daemon on loopback. The console itself is built by ``make ui`` (scripts/build-console.sh),
which these fixtures run too, so that a failure says which step failed."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
        "--ignore-gpu-blocklist", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(REPO) / "test-artifacts"


@pytest.fixture(scope="session")
def console_built() -> None:
    for script in ("install-browser.sh", "build-console.sh"):
        done = subprocess.run(["bash", str(Path(REPO) / "scripts" / script)], capture_output=True,
                              text=True, timeout=900, check=False)
        if done.returncode != 0:
            pytest.fail(f"scripts/{script} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)


@pytest.fixture
async def browser(console_built: None) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield instance
        finally:
            await instance.close()


class Problems:
    """The page's console errors and uncaught exceptions."""

    def __init__(self, page: Any) -> None:
        self.items: list[str] = []
        page.on("console", lambda m: self.items.append(f"console.{m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.items.append(f"pageerror: {e}"))


async def open_console(browser: Any, url: str, before: Any = None,
                       **options: Any) -> tuple[Any, Problems]:
    """A new page on ``url`` once the console says connected; ``before(page)`` (a coroutine
    function) runs before it loads, to route what the page will open."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, **options)
    page = await context.new_page()
    problems = Problems(page)
    if before is not None:
        await before(page)
    await page.goto(url)
    await page.wait_for_selector("#connection[data-state='connected']", timeout=20_000)
    return page, problems
