"""The Zendesk sidebar app as an agent uses it: Debian's headless Chromium loads the app's page against
``cxbridge serve`` and the sandbox, with a harness standing in for the Zendesk frame; the agent escalates, grants a
credit within their grant, then asks for one beyond it; the emulators' state and the audit are checked, and a
screenshot of each state is written to ``tests/artifacts/zendesk_app/`` (the path is printed).

The harness stands in for Zendesk on another origin than cxbridge: a page that POSTs the app's initial request to
cxbridge's ``/agent/app`` with a ``token`` signed RS256 by a key pair made in the test (Zendesk signs with the app's
key pair; cxbridge holds the public key), naming the agent by their Zendesk user URL. cxbridge verifies it, reads
the agent from the Zendesk emulator and serves the app's page with a session; the app's assets come from cxbridge
(``[agent_api] app_dir``), with ``zaf_sdk.js`` replaced by ``agent_app/fake_zaf.js`` (the ticket id, resize).
"""

from __future__ import annotations

import html
import os
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from zaf_keys import SESSION_SECRET, add_user, agent_api_section, app_token

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
    """Zendesk's part: ``/open?...`` answers a page that POSTs the signed initial request to cxbridge's /agent/app."""

    target: str = ""

    def do_GET(self) -> None:
        params = dict(p.split("=", 1) for p in self.path.split("?", 1)[-1].split("&") if "=" in p)
        if not self.path.startswith("/open?") or not self.target:
            self.send_error(404)
            return
        query = f"origin=https://acme.zendesk.com&app_guid=test&ticket={params['ticket']}"
        token = app_token(params["user"])
        page = (
            "<!doctype html><html><body>"
            f'<form method="post" action="{html.escape(self.target)}/agent/app?{html.escape(query)}">'
            f'<input type="hidden" name="token" value="{html.escape(token)}"></form>'
            "<script>document.forms[0].submit();</script></body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[tuple[str, type[_Harness]]]:
    handler = type("Harness", (_Harness,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """The built app as cxbridge serves it, with the fake ZAF client as its SDK."""
    folder = tmp_path / "app"
    shutil.copytree(ASSETS, folder / "assets")
    shutil.copyfile(FAKE_ZAF, folder / "assets" / "zaf_sdk.js")
    return folder


@pytest.fixture
def runtime(
    vendors: Vendors,
    sandbox_runtime: SandboxRuntimes,
    policies: dict[str, Any],
    harness: tuple[str, type[_Harness]],
    app_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Runtime:
    agent_api = agent_api_section(monkeypatch, app_dir=str(app_dir), origins=[harness[0]])
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
    sam = add_user(vendors, "Sam Tier1", "sam@cxbridge.example")
    lee = add_user(vendors, "Lee Lead", "lee@cxbridge.example")
    with serving(runtime, workers=0, require_secrets=False) as server:
        handler.target = server.url

        def notice(kind: str) -> str:
            box = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, f"#notice.{kind}")))
            return str(box.text)

        # 1. Sam opens ticket 1: not escalated, the escalation form, the customer, Sam's grants.
        driver.get(f"{origin}/open?ticket=1&user={sam}")
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
        session = driver.execute_script("return document.querySelector('meta[name=\"cxbridge-session\"]').content")
        claims = jwt.decode(session, SESSION_SECRET, algorithms=["HS256"], audience="cxbridge-agent-api")
        assert (claims["sub"], claims["email"]) == (str(sam), "sam@cxbridge.example")  # who Zendesk vouched for

        # 5. Ticket 3's escalation failed for good in a worker (the tracker refused the create): the sidebar says so.
        fault = {"status": 400, "count": 1, "method": "POST", "path": "/rest/api/3/issue$"}
        assert requests.post(f"{vendors.base_url('jira')}/_sandbox/fail-next", json=fault, timeout=5).ok
        enqueue_signal(runtime, "zendesk", "poll-ticket-3", EscalationRequested(ticket=Ref("zendesk", "ticket", "3")))
        worker = Worker(runtime, backoff_base=0.0)
        while worker.run_once():
            pass
        [letter] = runtime.store.dead_letters()
        driver.get(f"{origin}/open?ticket=3&user={lee}")
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
