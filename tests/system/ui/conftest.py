"""A headless Chromium for the web pages' tests (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium), and a screenshot of every failing test's page."""

from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import httpx
import pytest
from pluggy import Result
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from infra.config.api_tokens import read_dev_token
from infra.config.settings import Settings

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1366, 768)

# The machine has no internet: without these, Chromium keeps calling Google's hosts.
_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs the tests as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the session, with a fresh profile."""
    for path, package in ((CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")):
        if not path.exists():
            pytest.fail(f"{path} is missing: run `make install` (it installs {package})")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in _FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    logs = tmp_path_factory.mktemp("chromedriver")
    driver = webdriver.Chrome(
        options=options,
        service=Service(str(CHROMEDRIVER), log_output=str(logs / "chromedriver.log")),
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def dev_token(stack: Settings) -> str:
    """The development token of the stack's run directory (every scope)."""
    token = read_dev_token(stack.run_dir)
    assert token is not None
    return token


@pytest.fixture(scope="module")
async def api_module(stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the stack's API with its development token, for module fixtures."""
    async with httpx.AsyncClient(
        base_url=stack.api_url,
        timeout=30,
        headers={"Authorization": f"Bearer {dev_token(stack)}"},
    ) as client:
        yield client


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots of failing tests go (named in the failure's report)."""
    return tmp_path_factory.mktemp("ui-screenshots")


@pytest.fixture(autouse=True)
def _screenshot_on_failure(screenshots: Path) -> Path:
    """Puts the screenshot folder among every test's fixtures, for the report hook."""
    return screenshots


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Result[pytest.TestReport], None]:
    """On a failing test that used the browser, save its page as a PNG and say where."""
    outcome = yield
    report = outcome.get_result()
    funcargs = getattr(item, "funcargs", {})
    driver = funcargs.get("browser")
    folder = funcargs.get("screenshots")
    if report.failed and report.when in ("setup", "call") and driver and folder:
        path = Path(folder) / f"{item.name}.png"
        try:
            driver.save_screenshot(str(path))
            (path.with_suffix(".html")).write_text(driver.page_source, encoding="utf-8")
        except Exception as exc:  # noqa: BLE001 - a failed screenshot must not hide the failure
            report.sections.append(("screenshot", f"no screenshot: {exc}"))
        else:
            report.sections.append(
                ("screenshot", f"the page at the failure: {path} (and its HTML beside it)")
            )
