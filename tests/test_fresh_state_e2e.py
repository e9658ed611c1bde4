"""Fresh state through ``serve``: solving a linked ticket flips its remote link to resolved, and an ARR change in
HubSpot (its ``company.propertyChange`` webhook) updates the linked issue's impact fields, with no command run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from cxbridge.cli import cli
from cxbridge.config import load_config
from cxbridge.demo import DEMO_SETTINGS
from cxbridge.plugins import build_plugins
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import ServedVendors, serve_vendors, write_config
from cxbridge.testing.pipeline import give_webhook_targets, served_pipeline, settled, wait_until
from cxbridge.webhooks.serve import RunningServer
from cxbridge.workflows.escalate import Escalation, EscalationRequest

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SYSTEMS = ("zendesk", "hubspot", "jira")
AGENT = "alex@cxbridge.example"
FIELDS: dict[str, str] = DEMO_SETTINGS["impact"]["fields"]


@pytest.fixture
def vendors() -> Iterator[ServedVendors]:
    served = serve_vendors(SYSTEMS, seed="demo")
    try:
        give_webhook_targets(served)
        yield served
    finally:
        served.stop()


@pytest.fixture
def runtime(vendors: ServedVendors, tmp_path: Path) -> Iterator[Runtime]:
    plugins = build_plugins()
    path = write_config(vendors, tmp_path / "cxbridge.toml", extra={"impact": {"fields": FIELDS}})
    rt = Runtime(load_config(path, plugins=plugins), plugins)
    yield rt
    rt.close()


@pytest.fixture
def server(vendors: ServedVendors, runtime: Runtime) -> Iterator[RunningServer]:
    with served_pipeline(vendors, runtime, workers=2) as running:
        yield running


def issue(vendors: ServedVendors, key: str) -> dict[str, Any]:
    return next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)


def resolved_flags(vendors: ServedVendors, key: str) -> dict[str, bool]:
    return {link["object"]["url"]: link["object"]["status"]["resolved"] for link in issue(vendors, key)["remoteLinks"]}


def as_agent(vendors: ServedVendors, ticket_id: int, ticket: dict[str, Any]) -> None:
    backend = vendors["zendesk"]
    response = requests.put(
        f"{backend.base_url}/api/v2/tickets/{ticket_id}",
        json={"ticket": ticket},
        auth=(f"{AGENT}/token", backend.credentials()["api_token"]),
        timeout=10,
    )
    response.raise_for_status()


def test_solving_a_linked_ticket_flips_its_remote_link(
    vendors: ServedVendors, runtime: Runtime, server: RunningServer
) -> None:
    key = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
    Escalation(runtime).run(EscalationRequest(ticket_id="2", link_key=key, note="Same."))
    url1, url2 = (runtime.helpdesk("zendesk").ticket_url(t) for t in ("1", "2"))
    wait_until("the escalation's own webhooks", lambda: settled(vendors, runtime))
    assert resolved_flags(vendors, key) == {url1: False, url2: False}
    oldest_before = issue(vendors, key)["fields"][FIELDS["oldest"]]

    as_agent(vendors, 1, {"status": "solved"})
    wait_until("the solved ticket's link", lambda: resolved_flags(vendors, key)[url1] and settled(vendors, runtime))
    assert resolved_flags(vendors, key) == {url1: True, url2: False}
    fields = issue(vendors, key)["fields"]
    assert fields[FIELDS["tickets"]] == 2
    assert fields[FIELDS["oldest"]] != oldest_before  # ticket 1 (opened first) is no longer open

    # a duplicate delivery writes nothing
    jira_writes = [c for c in vendors["jira"].calls if c.method != "GET"]
    delivery = vendors["zendesk"].webhooks_sent[-1]
    requests.post(
        server.webhook_url("zendesk"), data=delivery["body"].encode(), headers=delivery["headers"], timeout=10
    ).raise_for_status()
    wait_until("the duplicate", lambda: settled(vendors, runtime))
    assert [c for c in vendors["jira"].calls if c.method != "GET"] == jira_writes

    as_agent(vendors, 1, {"status": "open"})  # reopened: the link is live again
    wait_until(
        "the reopened ticket's link", lambda: not resolved_flags(vendors, key)[url1] and settled(vendors, runtime)
    )


def test_an_arr_change_in_the_crm_refreshes_the_impact_without_a_command(
    vendors: ServedVendors, runtime: Runtime, server: RunningServer
) -> None:
    key = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
    wait_until("the escalation's own webhooks", lambda: settled(vendors, runtime))
    assert issue(vendors, key)["fields"][FIELDS["arr"]] == 480000
    hub: Any = vendors["hubspot"]
    acme = next(c for c in hub.state()["objects"]["companies"] if c["properties"]["name"] == "Acme Corp")
    hub.ui_update("companies", acme["id"], {"annualrevenue": "520000"})
    wait_until("the impact refresh", lambda: issue(vendors, key)["fields"][FIELDS["arr"]] == 520000)
    wait_until("the queue", lambda: settled(vendors, runtime))
    assert issue(vendors, key)["fields"][FIELDS["customers"]] == 1
    assert "520,000 USD" in str(issue(vendors, key)["fields"]["description"])


def test_closing_a_hubspot_ticket_flips_its_remote_link(
    vendors: ServedVendors, runtime: Runtime, server: RunningServer
) -> None:
    hub: Any = vendors["hubspot"]
    [tid] = [t["id"] for t in hub.state()["objects"]["tickets"]]
    key = Escalation(runtime).run(EscalationRequest(ticket_id=tid, helpdesk="hubspot", note="Seen.")).issue_key
    url = runtime.helpdesk("hubspot").ticket_url(tid)
    wait_until("the escalation's own webhooks", lambda: settled(vendors, runtime))
    assert resolved_flags(vendors, key) == {url: False}
    hub.ui_update("tickets", tid, {"hs_pipeline_stage": "4"})  # Closed, in the default support pipeline
    wait_until("the closed ticket's link", lambda: resolved_flags(vendors, key)[url] and settled(vendors, runtime))


def test_an_arr_change_missed_by_the_receiver_is_recovered_by_sync(
    vendors: ServedVendors, runtime: Runtime, tmp_path: Path
) -> None:
    """No receiver runs (HubSpot's webhook goes nowhere): ``cxbridge sync`` finds the changed company through
    the CRM search on ``hs_lastmodifieddate`` and refreshes ENG-1's impact; a second run writes nothing."""
    key = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
    assert issue(vendors, key)["fields"][FIELDS["arr"]] == 480000
    config = str(tmp_path / "cxbridge.toml")

    def sync() -> dict[str, Any]:
        result = CliRunner().invoke(cli, ["--config", config, "sync", "--system", "hubspot", "--json"])
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def jira_writes() -> list[Any]:  # the open-issue search is a POST that reads
        return [c for c in vendors["jira"].calls if c.method != "GET" and not c.path.endswith("/search/jql")]

    def company_searches() -> list[Any]:
        return [c for c in vendors["hubspot"].calls if c.method == "POST" and "companies/search" in c.path]

    before = jira_writes()
    first = sync()  # Acme (seeded now) is in the first run's lookback: re-read, and as the issue shows it already
    assert next(s for s in first["streams"] if s["stream"] == "companies")["enqueued"] == 1
    assert first["jobs"]["done"] >= 1
    assert jira_writes() == before  # the impact workflow compared: nothing to write
    hub: Any = vendors["hubspot"]
    acme = next(c for c in hub.state()["objects"]["companies"] if c["properties"]["name"] == "Acme Corp")
    searches = len(company_searches())
    hub.ui_update("companies", acme["id"], {"annualrevenue": "520000"})
    assert issue(vendors, key)["fields"][FIELDS["arr"]] == 480000  # the webhook was lost

    report = sync()
    companies = next(s for s in report["streams"] if s["stream"] == "companies")
    assert companies["error"] is None
    assert companies["enqueued"] == 1
    assert len(company_searches()) == searches + 1  # one search, restricted to the linked company
    assert issue(vendors, key)["fields"][FIELDS["arr"]] == 520000
    assert "520,000 USD" in str(issue(vendors, key)["fields"]["description"])
    assert len(jira_writes()) > len(before)

    written = jira_writes()
    again = sync()
    assert next(s for s in again["streams"] if s["stream"] == "companies")["enqueued"] == 0
    assert jira_writes() == written  # the same state polled again: no Jira write
