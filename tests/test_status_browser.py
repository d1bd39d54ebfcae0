"""The status page in real headless Chromium, served by a real ``garrison serve``.

Screenshots (desktop and phone widths) are kept under ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from garrison.db import Database
from garrison.ops.status.models import StatusDay
from garrison.settings import DatabaseSettings
from tests import services
from tests.helpers import LoggedProcess, free_port, wait_until_accepting

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).parent / "artifacts"
PAYLOAD = "<script>window.__pwned = 1</script><img src=x onerror=alert(1)>"
PASSWORD = "correct horse battery staple"


def _binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        services.unavailable("Chromium", "install the Debian packages chromium and chromium-driver")
    assert chromium is not None
    assert driver is not None
    return chromium, driver


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    port = free_port()
    data = tmp_path_factory.mktemp("served") / "var"
    env = {
        "GARRISON_DATA_DIR": str(data),
        "GARRISON_LOG__FORMAT": "json",
        "GARRISON_STATUS__CACHE_SECONDS": "0",
        "GARRISON_STATUS__TITLE": "Acme API status",
    }
    server = LoggedProcess([sys.executable, "-m", "garrison", "serve", "--port", str(port)], env)
    try:
        server.wait_for("garrison.ready")
        wait_until_accepting(port)
        yield f"http://127.0.0.1:{port}", data
    finally:
        server.stop()


def _admin_token(base: str, data: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    env["GARRISON_DATA_DIR"] = str(data)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "garrison",
            "users",
            "create",
            "--email",
            "ops@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    response = httpx.post(
        f"{base}/api/v1/auth/login", json={"email": "ops@example.com", "password": PASSWORD}
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def _seed_history(data: Path) -> None:
    """Ninety days of rollups, with a few bad days, as the sampler would have left them."""

    async def write() -> None:
        db = Database(f"sqlite+aiosqlite:///{(data / 'garrison.db').resolve()}", DatabaseSettings())
        today = datetime.now(UTC).date()
        rows: list[dict[str, Any]] = []
        for component in ("api", "database", "outbox", "disk"):
            for offset in range(1, 90):
                down = 0
                slow = 0
                if component == "database" and offset in (12, 40):
                    down = 37
                if component == "outbox" and offset in (5, 6, 61):
                    slow = 120
                rows.append(
                    {
                        "component": component,
                        "day": today - timedelta(days=offset),
                        "operational": 1440 - down - slow,
                        "degraded": slow,
                        "outage": down,
                    }
                )
        async with db.transaction() as session:
            await session.execute(insert(StatusDay), rows)
        await db.dispose()

    asyncio.run(write())


def _driver(width: int, height: int, *, phone: bool = False) -> Any:
    chromium, driver_path = _binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    if phone:  # a desktop window cannot be narrower than 500 px; emulate the device
        options.add_experimental_option(
            "mobileEmulation",
            {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}},
        )
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def _keep(path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)


def test_status_page_in_chromium(served: tuple[str, Path], tmp_path: Path) -> None:
    _binaries()
    base, data = served
    _seed_history(data)
    token = _admin_token(base, data)
    auth = {"Authorization": f"Bearer {token}"}

    browser = _driver(1280, 1500)
    try:
        from selenium.webdriver.common.by import By

        browser.get(f"{base}/status")
        banner = browser.find_element(By.CSS_SELECTOR, ".banner h2").text
        assert banner == "All systems operational"
        pills = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".component .pill")]
        assert pills
        assert all(text.endswith("Operational") for text in pills), pills
        bars = browser.find_elements(By.CSS_SELECTOR, ".component svg.bars rect")
        assert len(bars) == 90 * len(pills)
        browser.save_screenshot(str(tmp_path / "status-all-green.png"))
        _keep(tmp_path / "status-all-green.png")

        created = httpx.post(
            f"{base}/api/v1/status/incidents",
            headers=auth,
            json={
                "title": "Elevated error rates on record writes",
                "message": f"We are investigating. {PAYLOAD}",
                "impact": "major",
                "components": ["api", "database"],
            },
        )
        assert created.status_code == 201, created.text
        incident = created.json()["id"]
        httpx.post(
            f"{base}/api/v1/status/incidents/{incident}/updates",
            headers=auth,
            json={
                "status": "identified",
                "message": "A slow migration holds a lock; rolling back.",
            },
        ).raise_for_status()
        now = datetime.now(UTC)
        httpx.post(
            f"{base}/api/v1/status/maintenances",
            headers=auth,
            json={
                "title": "Database upgrade to MariaDB 11.4",
                "description": "Writes pause for up to ten minutes.",
                "components": ["database"],
                "starts_at": (now + timedelta(days=2)).isoformat(),
                "ends_at": (now + timedelta(days=2, minutes=30)).isoformat(),
                "read_only": True,
            },
        ).raise_for_status()

        browser.get(f"{base}/status")
        assert browser.find_element(By.CSS_SELECTOR, ".banner h2").text != "All systems operational"
        text = browser.find_element(By.CSS_SELECTOR, f"#incident-{incident}").text
        assert PAYLOAD in text  # shown as text, never run
        states = {
            e.find_element(By.TAG_NAME, "h3").text: e.find_element(By.CLASS_NAME, "pill").text
            for e in browser.find_elements(By.CSS_SELECTOR, ".component")
        }
        assert states["Database"].endswith("Degraded performance"), states
        assert states["Disk"].endswith("Operational"), states
        assert browser.execute_script("return window.__pwned") is None
        assert browser.find_elements(By.CSS_SELECTOR, ".incident img") == []
        browser.save_screenshot(str(tmp_path / "status-incident.png"))
        _keep(tmp_path / "status-incident.png")

        # Subscribing works without JavaScript: a plain form post.
        browser.find_element(By.ID, "email").send_keys("reader@example.com")
        browser.find_element(By.CSS_SELECTOR, ".subscribe button").click()
        assert browser.find_element(By.CSS_SELECTOR, ".card h2").text == "Check your inbox"
    finally:
        browser.quit()

    phone = _driver(390, 1600, phone=True)
    try:
        phone.get(f"{base}/status")
        width = phone.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390  # nothing runs off a phone's screen
        phone.save_screenshot(str(tmp_path / "status-phone.png"))
        _keep(tmp_path / "status-phone.png")
    finally:
        phone.quit()

    httpx.post(
        f"{base}/api/v1/status/incidents/{incident}/resolve", headers=auth, json={}
    ).raise_for_status()
    page = httpx.get(f"{base}/status").text
    assert "Resolved this week" in page


def test_a_second_instance_watches_the_first(served: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = served
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    env["GARRISON_DATA_DIR"] = str(tmp_path / "watcher")
    result = subprocess.run(
        [sys.executable, "-m", "garrison", "monitor", "--once", "--json", f"{base}/api/health"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [probe] = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["state"] == "operational"
    assert probe["component"] == f"monitor:{base.removeprefix('http://')}/api/health"
