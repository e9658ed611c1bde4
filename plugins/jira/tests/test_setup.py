"""``cxbridge setup`` on Jira, against the in-process emulator: the impact custom fields (created with sortable
types and searchers, their ids learned), the create-screen check (a manual item until the admin places them),
and the admin webhook (events, JQL on the project, a secret that signs what Jira then sends)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from cxbridge_jira.connector import JiraConnector
from cxbridge_jira.sandbox.backend import JiraBackend
from cxbridge_jira.webhook import verify_jira

from cxbridge.sdk import (
    CREATE,
    MANUAL,
    OK,
    TRACKER,
    UPDATE,
    ConfigUpdate,
    PlanItem,
    Secret,
    SetupContext,
    SystemConfig,
)
from cxbridge.testing import Receiver, Spec, mock_vendors

NAMES = ["ARR at stake", "Customers", "Tickets", "Soonest renewal", "Highest tier", "Oldest open ticket"]


@pytest.fixture
def jira() -> Iterator[JiraBackend]:
    backend = JiraBackend()
    with mock_vendors(backends={"jira": backend}, seed="empty"):
        yield backend


def connector(jira: JiraBackend) -> JiraConnector:
    creds = jira.credentials()
    options = {"email": creds["email"], "api_token": Secret(creds["api_token"]), "project": "ENG"}
    return JiraConnector.from_config(
        SystemConfig(name="jira", plugin="jira", base_url=jira.base_url, max_retries=0, options=options)
    )


def context(url: str, fields: dict[str, str] | None = None, *secrets: str) -> SetupContext:
    return SetupContext(
        webhook_url=url,
        webhook_secrets=tuple(Secret(s) for s in secrets),
        roles=frozenset({TRACKER}),
        impact_fields=fields or {},
    )


def apply_all(conn: JiraConnector, items: list[PlanItem], setup: SetupContext) -> list[ConfigUpdate]:
    learned: list[ConfigUpdate] = []
    for item in items:
        if item.action in (CREATE, UPDATE):
            learned += [*item.learned, *conn.apply_setup(item, setup)]
    return learned


def test_fields_screens_and_webhook(jira: JiraBackend) -> None:
    conn = connector(jira)
    with Receiver("/webhooks/jira", status=200) as receiver:
        setup = context(receiver.url)
        items = conn.plan_setup(setup)
        assert [(i.kind, i.name, i.action) for i in items] == [
            *[("custom field", name, CREATE) for name in NAMES],
            ("create and edit screens", "project ENG, issue type Bug", MANUAL),
            ("webhook", "cxbridge", CREATE),
        ]
        for item in items[:6]:
            Spec("jira").validate_request("POST", "/rest/api/3/field", item.desired)
        learned = apply_all(conn, items, setup)
        fields = {u.path[-1]: u.value for u in learned if u.path[:2] == ("impact", "fields")}
        assert list(fields) == ["arr", "customers", "tickets", "renewal", "tier", "oldest"]
        kinds = {f.id: (f.kind, f.searchable) for f in jira.model.fields.values() if f.custom}
        assert [kinds[fields[v]] for v in ("arr", "renewal", "tier")] == [
            ("number", True),
            ("date", True),
            ("string", True),
        ]
        (secret,) = [u.value for u in learned if u.secret]
        (hook,) = jira.model.webhooks.values()
        assert (hook.url, hook.jql, sorted(hook.events)) == (
            receiver.url,
            "project = ENG",
            ["comment_created", "jira:issue_updated", "jira:version_released"],
        )
        # the screens stay a manual step until the admin places the fields
        again = conn.plan_setup(context(receiver.url, fields, secret.reveal()))
        assert [i.action for i in again] == [OK] * 6 + [MANUAL, OK]
        assert "drag 'ARR at stake', 'Customers'" in again[6].detail
        jira.model.projects["10000"].off_create_screen.difference_update(fields.values())
        jira.model.projects["10000"].off_edit_screen.difference_update(fields.values())
        assert [i.action for i in conn.plan_setup(context(receiver.url, fields, secret.reveal()))] == [OK] * 8
        # what Jira sends is signed with the secret setup wrote
        creds = jira.credentials()
        auth = (creds["email"], creds["api_token"])
        made = requests.post(
            f"{jira.base_url}/rest/api/2/issue",
            json={"fields": {"project": {"key": "ENG"}, "issuetype": {"name": "Bug"}, "summary": "x"}},
            auth=auth,
            timeout=5,
        ).json()
        requests.put(
            f"{jira.base_url}/rest/api/2/issue/{made['key']}",
            json={"fields": {fields["arr"]: 1000.0}},
            auth=auth,
            timeout=5,
        )
        assert jira.wait_for_webhooks(timeout=10)
        (delivery,) = receiver.deliveries
        events = verify_jira(
            method="POST", url=receiver.url, headers=dict(delivery.headers), body=delivery.body, secrets=[secret],
            now=time.time(),
        )  # fmt: skip
        assert events[0].kind == "jira:issue_updated"


def test_a_configured_field_of_the_wrong_kind_and_a_webhook_without_secret(jira: JiraBackend) -> None:
    """``[impact.fields] arr`` naming a date field: the number field is created; a webhook registered with no
    secret in the config is updated with a new one (Jira never shows the old one)."""
    conn = connector(jira)
    setup = context("https://hooks.example.com/webhooks/jira")
    apply_all(conn, [i for i in conn.plan_setup(setup) if i.kind == "webhook"], setup)
    renewal = next(i for i in apply_all(conn, conn.plan_setup(setup)[3:4], setup))
    items = conn.plan_setup(context(setup.webhook_url, {"arr": str(renewal.value)}))
    assert (items[0].action, items[0].detail) == (
        CREATE,
        f"[impact.fields] arr = {renewal.value!r} holds date, not number: create a number field",
    )
    webhook = items[-1]
    assert (webhook.action, webhook.vendor_id) == (UPDATE, "1")
    assert "secret (none in [webhooks] secrets.jira" in webhook.detail
    (learned,) = conn.apply_setup(webhook, setup)
    assert jira.model.webhooks[1].secret == learned.value.reveal()
