"""The Zendesk sidebar app as an agent uses it: Debian's headless Chromium loads the app's page against
``cxbridge serve`` and the sandbox, with a harness standing in for the Zendesk frame; the agent escalates, grants a
credit within their grant, then asks for one beyond it; the emulators' state and the audit are checked, and a
screenshot of each state is written to ``tests/artifacts/zendesk_app/`` (the path is printed).

The harness serves the app's own ``assets/`` from another origin than cxbridge, with ``zaf_sdk.js`` replaced by
``agent_app/fake_zaf.js``: a ZAF client that signs the app's claims HS256 with the shared secret, as Zendesk's proxy
does, and calls cxbridge cross-origin (so CORS is exercised for real).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from cxbridge.models import Ref
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors
from cxbridge.signals import EscalationRequested
from cxbridge.testing import SandboxRuntimes
from cxbridge.webhooks.serve import serving
from cxbridge.worker import Worker
from cxbridge.workflows.events import enqueue_signal

pytestmark = [pytest.mark.sandbox, pytest.mark.filterwarnings("ignore::ResourceWarning")]

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "apps" / "zendesk" / "assets"
FAKE_ZAF = Path(__file__).parent / "agent_app" / "fake_zaf.js"
ARTIFACTS = Path(os.environ.get("CXBRIDGE_ARTIFACTS", Path(__file__).parent / "artifacts")) / "zendesk_app"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SECRET = "zendesk-app-shared-secret-0123456789"
PUBLIC_URL = "https://cxbridge.test"
AGENTS = {
    "sam": {"id": 9001, "email": "sam@cxbridge.example", "name": "Sam Tier1"},
    "lee": {"id": 9002, "email": "lee@cxbridge.example", "name": "Lee Lead"},
}
WAIT = 30


def _browser_missing() -> str | None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        return f"Debian's chromium and chromium-driver are not installed ({CHROMIUM}, {CHROMEDRIVER})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture
def browser_ready() -> None:
    missing = _browser_missing()
    if missing and os.environ.get("CXBRIDGE_REQUIRE_BROWSER"):
        pytest.fail(f"CXBRIDGE_REQUIRE_BROWSER is set but {missing}")
    if missing:
        pytest.skip(missing)


class _Harness(SimpleHTTPRequestHandler):
    """The app's assets, with the SDK replaced by the fake ZAF client and its settings."""

    sdk: bytes = b""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/assets/zaf_sdk.js":
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            self.send_header("Content-Length", str(len(self.sdk)))
            self.end_headers()
            self.wfile.write(self.sdk)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[tuple[str, type[_Harness]]]:
    site = tmp_path / "site"
    shutil.copytree(ASSETS, site / "assets")
    handler = type("Harness", (_Harness,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def runtime(
    vendors: Vendors,
    sandbox_runtime: SandboxRuntimes,
    policies: dict[str, Any],
    harness: tuple[str, type[_Harness]],
    monkeypatch: pytest.MonkeyPatch,
) -> Runtime:
    monkeypatch.setenv("CXB_TEST_APP_SECRET", SECRET)
    agent_api = {
        "secrets": [{"env": "CXB_TEST_APP_SECRET"}],
        "issuer": "https://acme.zendesk.com",
        "audience": PUBLIC_URL,
        "origins": [harness[0]],
    }
    return sandbox_runtime(
        vendors, extra={"policies": policies, "agent_api": agent_api}, systems={"jira": {"max_retries": 0}}
    )


@pytest.fixture
def driver(browser_ready: None) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=340,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def shoot(driver: Any, name: str) -> Path:
    """A screenshot of the whole sidebar (the window grown to the page's height), at the sidebar's width."""
    height = int(driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)"))
    driver.set_window_size(340, min(max(height + 120, 400), 4000))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    return path


def internal_notes(vendors: Vendors, ticket_id: int) -> list[str]:
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)
    return [c["body"] for c in ticket["comments"] if not c["public"]]


def test_an_agent_escalates_then_decides_from_the_sidebar(
    driver: Any, runtime: Runtime, vendors: Vendors, harness: tuple[str, type[_Harness]]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    origin, handler = harness
    wait = WebDriverWait(driver, WAIT)
    shots: list[Path] = []
    with serving(runtime, workers=0, require_secrets=False) as server:
        config = {"sharedSecret": SECRET, "cxbridgeUrl": PUBLIC_URL, "upstream": server.url, "subdomain": "acme"}
        settings = f"window.CXB_HARNESS = {json.dumps({**config, 'agents': AGENTS})};\n"
        handler.sdk = settings.encode() + FAKE_ZAF.read_bytes()

        def notice(kind: str) -> str:
            box = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, f"#notice.{kind}")))
            return str(box.text)

        # 1. Sam opens ticket 1: not escalated, the escalation form, the customer, Sam's grants.
        driver.get(f"{origin}/assets/iframe.html?ticket=1&agent=sam&origin=https://acme.zendesk.com&app_guid=test")
        wait.until(ec.visibility_of_element_located((By.ID, "no-links")))
        customer = driver.find_element(By.ID, "customer").text
        assert "Tier" in customer
        assert "ARR" in customer
        assert "Renewal" in customer
        refusals = driver.find_element(By.CSS_SELECTOR, "li[data-action='reopen']").text
        assert "team-lead-credits" in refusals
        unlabelled = driver.execute_script(
            "return Array.from(document.querySelectorAll('input, select, textarea'))"
            ".filter(function (e) { return !e.labels || e.labels.length === 0; }).map(function (e) { return e.id; })"
        )
        assert unlabelled == []  # every field has a label a screen reader announces
        driver.find_element(By.ID, "esc-note").send_keys("Exports fail for every CSV over 10 MB; reproduced.")
        shots.append(shoot(driver, "2-escalation-form"))

        # 2. Escalate: one issue in the tracker, the note on the ticket; the sidebar shows the link and the impact.
        driver.find_element(By.ID, "escalate").click()
        assert "Escalated" in notice("granted")
        [issue] = vendors["jira"].state()["issues"]
        key = issue["key"]
        box = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, f".issue[data-issue='{key}']")))
        assert "ARR at stake" in box.text
        assert "Customers" in box.text
        link = box.find_element(By.CSS_SELECTOR, "a.issue-key")
        assert link.get_attribute("href") == issue["self"].split("/rest/")[0] + f"/browse/{key}"
        assert any(key in n for n in internal_notes(vendors, 1))
        shots.append(shoot(driver, "1-linked-issue-with-impact"))

        # 3. A credit within Sam's grant (100 USD): one click, a confirmation, granted once.
        driver.find_element(By.ID, "credit-amount").send_keys("50")
        driver.find_element(By.ID, "credit-go").click()
        wait.until(ec.element_to_be_clickable((By.ID, "confirm"))).click()
        granted = notice("granted")
        assert "Credit of 50 USD granted by sam@cxbridge.example under rule tier1-credits" in granted
        shots.append(shoot(driver, "3-decision-granted"))
        assert len([n for n in internal_notes(vendors, 1) if "Credit of 50 USD granted" in n]) == 1

        # 4. A credit beyond it (500 USD): refused, naming the rule that would allow it; nothing written.
        notes_before = internal_notes(vendors, 1)
        amount = driver.find_element(By.ID, "credit-amount")
        amount.clear()
        amount.send_keys("500")
        driver.find_element(By.ID, "credit-go").click()
        wait.until(ec.element_to_be_clickable((By.ID, "confirm"))).click()
        refused = notice("refused")
        assert "team-lead-credits" in refused
        assert driver.find_element(By.ID, "notice").get_attribute("role") == "alert"
        shots.append(shoot(driver, "4-decision-refused"))
        assert internal_notes(vendors, 1) == notes_before

        entries = runtime.store.audit_entries()
        rows = [(e.actor, e.action, e.result, e.policy) for e in entries if e.action == "act.credit"]
        assert rows == [
            ("sam@cxbridge.example", "act.credit", "granted", "tier1-credits"),
            ("sam@cxbridge.example", "act.credit", "refused", None),
        ]
        signed = driver.execute_script("return window.CXB_REQUESTS.filter(function (r) { return r.claims; })")
        assert {r["claims"]["email"] for r in signed} == {"sam@cxbridge.example"}
        assert {r["claims"]["aud"] for r in signed} == {PUBLIC_URL}

        # 5. Ticket 3's escalation failed for good in a worker (the tracker refused the create): the sidebar says so.
        fault = {"status": 400, "count": 1, "method": "POST", "path": "/rest/api/3/issue$"}
        assert requests.post(f"{vendors.base_url('jira')}/_sandbox/fail-next", json=fault, timeout=5).ok
        enqueue_signal(runtime, "zendesk", "poll-ticket-3", EscalationRequested(ticket=Ref("zendesk", "ticket", "3")))
        worker = Worker(runtime, backoff_base=0.0)
        while worker.run_once():
            pass
        [letter] = runtime.store.dead_letters()
        driver.get(f"{origin}/assets/iframe.html?ticket=3&agent=lee&origin=https://acme.zendesk.com&app_guid=test")
        failure = wait.until(ec.visibility_of_element_located((By.ID, "failure")))
        assert "The escalation failed" in failure.text
        assert f"dead-letters replay {letter.id}" in failure.text
        assert "400" in failure.text
        shots.append(shoot(driver, "5-failure-shown"))
        errors = [e["message"] for e in driver.get_log("browser") if e["source"] == "javascript"]
        assert errors == []
    print(f"\nscreenshots in {ARTIFACTS}: " + ", ".join(p.name for p in shots))
    assert len(shots) == 5
    assert {p.name for p in shots} <= {p.name for p in ARTIFACTS.glob("*.png")}
