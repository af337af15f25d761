"""``millstream dashboard`` in a real headless chromium, watching a real worker at work.

Debian's chromium (/usr/bin/chromium; scripts/test installs it) driven by Playwright:
the page loads, its numbers move while records flow, the group's member is listed,
the app's custom panels of all four kinds render, and a screenshot is saved under the
test's tmp_path (also to docs/images/dashboard.png when MILLSTREAM_SAVE_SCREENSHOT is set).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import Page, sync_playwright
from postgres_support import free_port
from support import ROOT, Names, WorkerProcess, wait_for

from millstream.config import Settings
from millstream.kafka import make_producer

APP = "tests.integration.apps.dashboard_app:app"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Bound of every wait on the page; a refresh comes every half second.
PAGE_TIMEOUT_MS = 60_000


@pytest.fixture
def input_partitions() -> int:
    return 4  # as apps/dashboard_app.py declares


class Traffic:
    """Publishes orders to ``topic`` from a thread, about ``rate`` a second, until stopped."""

    def __init__(self, settings: Settings, topic: str, rate: int) -> None:
        self.sent = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._producer = make_producer(
            settings, on_delivery=lambda err, _msg: err and self.errors.append(str(err))
        )
        self._thread = threading.Thread(target=self._run, args=(topic, rate))
        self._thread.start()

    def _run(self, topic: str, rate: int) -> None:
        batch = max(rate // 10, 1)
        while not self._stop.wait(0.1):
            for i in range(self.sent, self.sent + batch):
                value = orjson.dumps({"id": i, "amount": i % 50 + 1})
                self._producer.produce(topic, value, f"c{i % 13}")
            self.sent += batch
            self._producer.poll(0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        assert self._producer.flush(60) == 0, "records still queued after 60 s"
        assert not self.errors, f"delivery failed: {self.errors[:3]}"


def served(log: Path) -> str | None:
    """The dashboard's address, once its log line says it (it listens on port 0)."""
    match = re.search(r"on (http://[\d.]+:\d+)/", log.read_text())
    return match[1] if match else None


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def running(
    names: Names, settings: Settings, bootstrap_servers: str, tmp_path: Path
) -> Iterator[tuple[str, WorkerProcess]]:
    """A worker of the test app with records flowing in, and its dashboard; yields the
    dashboard's URL and the worker."""
    metrics_port = free_port()
    env = names.env(bootstrap_servers, tmp_path / "state", TEST_SLOW_US="2000")
    worker = WorkerProcess(
        APP, {**env, "MILLSTREAM_METRICS_PORT": str(metrics_port)}, tmp_path / "worker.log"
    )
    traffic = Traffic(settings, names.source, rate=400)
    command = [
        sys.executable, "-m", "millstream", "dashboard", APP,
        "--port", "0",
        "--metrics", f"http://127.0.0.1:{metrics_port}/metrics",
        "--interval", "0.5",
    ]  # fmt: skip
    with (tmp_path / "dashboard.log").open("wb") as log:
        dashboard = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    log_path = tmp_path / "dashboard.log"
    try:
        wait_for(
            lambda: dashboard.poll() is None and worker.running() and served(log_path) is not None,
            60,
            "the dashboard to say where it serves",
            observed=lambda: log_path.read_text()[-2000:],
        )
        url = served(log_path)
        assert url is not None
        wait_for(lambda: healthy(url + "/healthz"), 30, "the dashboard's /healthz")
        yield url, worker
    finally:
        dashboard.terminate()
        try:
            dashboard.wait(30)
        except subprocess.TimeoutExpired:
            dashboard.kill()
            dashboard.wait(30)
        worker.stop()
        traffic.stop()
    assert dashboard.returncode == 0, (tmp_path / "dashboard.log").read_text()[-3000:]


def text(page: Page, selector: str) -> str:
    return page.locator(selector).inner_text()


def wait_for_change(page: Page, selector: str, before: str, what: str) -> str:
    """Wait (bounded) until ``selector``'s text differs from ``before``; returns the new text."""
    page.wait_for_function(
        "([sel, before]) => document.querySelector(sel).innerText !== before",
        arg=[selector, before],
        timeout=PAGE_TIMEOUT_MS,
    )
    after = text(page, selector)
    assert after != before, what
    return after


def number(value: str) -> float:
    return float(value.replace(",", ""))


def test_the_page_shows_a_live_pipeline(
    running: tuple[str, WorkerProcess], names: Names, tmp_path: Path
) -> None:
    url, worker = running
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing (scripts/test installs it: apt-get install chromium)"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(url + "/")
            page.wait_for_selector("#status-dot.live")
            assert text(page, "#app-id") == names.app
            check_throughput(page)
            check_lag(page, names)
            check_group(page, names, worker)
            check_custom_panels(page)
            save_screenshot(page, tmp_path / "dashboard.png")
        finally:
            browser.close()


def check_throughput(page: Page) -> None:
    """Records come in and go out, and the totals move between two reads."""
    page.wait_for_function(
        "() => ['total-in', 'total-out'].every(id => "
        "parseFloat(document.getElementById(id).innerText.replace(/,/g, '')) > 0)"
    )
    before = text(page, "#total-in")
    after = wait_for_change(page, "#total-in", before, "records in")
    assert number(after) > number(before)
    page.wait_for_function(
        "() => parseFloat(document.getElementById('rate-in').innerText.replace(/,/g, '')) > 0"
    )


def check_lag(page: Page, names: Names) -> None:
    """One row per partition, with committed offsets that move on."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('#partitions tbody tr')]"
        ".filter(r => /\\d/.test(r.cells[3].innerText)).length === 4"
    )
    rows = page.locator("#partitions tbody tr")
    assert [rows.nth(i).get_attribute("data-partition") for i in range(4)] == [
        f"{names.source}[{i}]" for i in range(4)
    ]
    committed = text(page, "#partitions tbody")
    wait_for_change(page, "#partitions tbody", committed, "committed offsets")
    assert number(text(page, "#lag-total")) >= 0


def check_group(page: Page, names: Names, worker: WorkerProcess) -> None:
    """The worker is the group's one member, owning the four partitions; its /metrics
    are read too."""
    client = f"{names.app}-{worker.pid}"
    member = page.locator(f'#members tbody tr[data-client="{client}"]')
    member.wait_for()
    assert page.locator("#members tbody tr").count() == 1
    assert all(f"{names.source}[{i}]" in member.inner_text() for i in range(4))
    assert text(page, "#member-count") == "1"
    page.wait_for_function(
        f"() => document.querySelector('#workers tbody').innerText.includes('{client}')"
    )


def check_custom_panels(page: Page) -> None:
    """The test app's four panels (apps/dashboard_app.py), each drawn by its kind."""
    stats = page.locator('.panel[data-title="Order stats"]')
    stats.wait_for()
    assert stats.get_attribute("data-kind") == "stats"
    value = '.panel[data-title="Order stats"] .stat:first-child .value'
    wait_for_change(page, value, text(page, value), "the stats panel's refresh count")
    assert "started" in stats.inner_text()
    table = page.locator('.panel[data-title="Top customers"]')
    assert table.locator("tbody tr").count() == 2
    assert table.locator("th").all_inner_texts() == ["customer", "orders"]
    assert "c-7" in table.locator("tbody tr").first.inner_text()
    bars = page.locator('.panel[data-title="Orders by size"] .hbar')
    assert bars.count() == 3
    widths = [bars.nth(i).locator(".fill").evaluate("e => e.style.width") for i in range(3)]
    assert widths[0] == "100%" and float(widths[2].rstrip("%")) < float(widths[1].rstrip("%"))
    series = page.locator('.panel[data-title="Amount per second"]')
    assert series.get_attribute("data-kind") == "series"
    assert series.locator("svg path").count() == 2
    assert "10 points" in series.inner_text()


def save_screenshot(page: Page, shot: Path) -> None:
    """The whole page to ``shot``; also to docs/images/dashboard.png, after some history
    (40 refreshes) is in the sparklines, when MILLSTREAM_SAVE_SCREENSHOT is set."""
    for_docs = bool(os.environ.get("MILLSTREAM_SAVE_SCREENSHOT"))
    if for_docs:
        page.wait_for_function(
            "() => document.querySelector('#spark-in path:last-child')"
            ".getAttribute('d').split('L').length > 40"
        )
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if for_docs:
        target = ROOT / "docs" / "images" / "dashboard.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
