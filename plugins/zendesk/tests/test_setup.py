"""``cxbridge setup`` on Zendesk, against the in-process emulator: the plan compares the issue-key field, the
webhook and the triggers with the account; apply creates or corrects them and returns the field id and the
webhook's signing secret; a second plan is all ``ok``; a create whose answer was lost is not made twice."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from cxbridge_zendesk.connector import ZendeskConnector
from cxbridge_zendesk.sandbox.backend import ZendeskBackend
from cxbridge_zendesk.sandbox.triggers import render

from cxbridge.sdk import (
    CREATE,
    HELPDESK,
    OK,
    PRUNE,
    UPDATE,
    AmbiguousOutcome,
    ConfigUpdate,
    Fault,
    PlanItem,
    Secret,
    SetupContext,
    SystemConfig,
    Unavailable,
)
from cxbridge.testing import Spec, mock_vendors

URL = "https://hooks.example.com/webhooks/zendesk"
TAG = "escalated_to_engineering"


@pytest.fixture
def zd() -> Iterator[ZendeskBackend]:
    backend = ZendeskBackend()
    with mock_vendors(backends={"zendesk": backend}, seed="empty"):
        yield backend


def connector(zd: ZendeskBackend, **options: object) -> ZendeskConnector:
    creds = zd.credentials()
    config = SystemConfig(
        name="zendesk",
        plugin="zendesk",
        base_url=zd.base_url,
        max_retries=0,
        options={"email": creds["email"], "api_token": Secret(creds["api_token"]), **options},
    )
    return ZendeskConnector.from_config(config)


def context(*secrets: str) -> SetupContext:
    return SetupContext(
        webhook_url=URL,
        webhook_secrets=tuple(Secret(s) for s in secrets),
        roles=frozenset({HELPDESK}),
        escalation_tag=TAG,
    )


def apply_all(conn: ZendeskConnector, items: list[PlanItem], setup: SetupContext) -> list[ConfigUpdate]:
    learned: list[ConfigUpdate] = []
    for item in items:
        if item.action in (CREATE, UPDATE):
            learned += [*item.learned, *conn.apply_setup(item, setup)]
    return learned


def test_plan_apply_and_a_second_plan_that_is_all_ok(zd: ZendeskBackend) -> None:
    conn = connector(zd)
    items = conn.plan_setup(context())
    assert [(i.kind, i.name, i.action) for i in items] == [
        ("ticket field", "Jira issue key", CREATE),
        ("webhook", "cxbridge", CREATE),
        ("trigger", "cxbridge: escalate", CREATE),
        ("trigger", "cxbridge: public comment", CREATE),
        ("trigger", "cxbridge: internal comment", CREATE),
        ("trigger", "cxbridge: status changed", CREATE),
    ]
    assert [c.method for c in zd.calls] == ["GET"] * len(zd.calls)  # planning only reads
    Spec("zendesk").validate_schema("TicketFieldObject", items[0].desired)  # the spec gives the POST no body schema
    for trigger in items[2:]:
        Spec("zendesk").validate_request("POST", "/api/v2/triggers", {"trigger": trigger.desired})
    learned = {u.path: u for u in apply_all(conn, items, context())}
    field_id = learned["systems", "zendesk", "issue_key_field_id"].value
    assert zd.model.ticket_fields[field_id].type == "text"
    secret = learned["webhooks", "secrets", "zendesk"]
    assert secret.secret
    (hook,) = zd.model.webhooks.values()
    assert secret.value.reveal() == hook.secret
    assert [t.actions[0]["value"][0] for t in zd.model.triggers.values()] == [hook.id] * 4
    values = {"ticket.id": 7, "ticket.tags": "a b", "current_user.id": 3, "current_user.name": 'Sam "S"'}
    values["ticket.status"] = "On-hold"
    for trigger in zd.model.triggers.values():  # every body is JSON once Zendesk fills the placeholders
        ticket = json.loads(render(trigger.actions[0]["value"][1], values))["ticket"]
        assert {k: ticket[k] for k in ("id", "tags")} == {"id": 7, "tags": "a b"}
        assert ticket.get("status", "On-hold") == "On-hold"
    again = connector(zd, issue_key_field_id=field_id).plan_setup(context(hook.secret))
    assert [i.action for i in again] == [OK] * 6


def test_an_existing_field_is_reused_and_a_moved_webhook_is_corrected(zd: ZendeskBackend) -> None:
    """A text field titled like the wanted one is used (its id learned), not duplicated; a webhook pointing
    elsewhere is updated in place and keeps its secret."""
    made = zd.model.add_ticket_field("text", "Jira issue key")
    conn = connector(zd, issue_key_field_id=999)
    apply_all(conn, conn.plan_setup(context()), context())
    hook = next(iter(zd.model.webhooks.values()))
    hook.endpoint = "https://old.example.com/hook"
    items = conn.plan_setup(context(hook.secret))
    field = items[0]
    assert (field.action, field.learned) == (
        UPDATE,
        [ConfigUpdate(("systems", "zendesk", "issue_key_field_id"), made.id)],
    )
    assert "issue_key_field_id 999 does not exist" in field.detail
    webhook = items[1]
    assert (webhook.action, webhook.vendor_id) == (UPDATE, hook.id)
    assert "endpoint 'https://old.example.com/hook' -> " in webhook.detail
    apply_all(conn, [webhook], context(hook.secret))
    assert (len(zd.model.webhooks), hook.endpoint) == (1, URL)
    assert len([f for f in zd.model.ticket_fields.values() if f.title == "Jira issue key"]) == 1


def test_a_webhook_create_whose_answer_was_lost_is_not_made_twice(zd: ZendeskBackend) -> None:
    conn = connector(zd)
    items = conn.plan_setup(context())
    webhook = items[1]
    zd.faults.append(Fault(reset=True, path=r"^/api/v2/webhooks$", method="POST"))
    with pytest.raises((AmbiguousOutcome, Unavailable)):
        conn.apply_setup(webhook, context())
    learned = conn.apply_setup(webhook, context())  # the same stale plan item, applied again
    assert len(zd.model.webhooks) == 1
    assert learned[0].value.reveal() == next(iter(zd.model.webhooks.values())).secret


def test_without_a_public_url_the_webhook_is_a_manual_step(zd: ZendeskBackend) -> None:
    items = connector(zd).plan_setup(SetupContext(webhook_url="", roles=frozenset({HELPDESK}), escalation_tag=TAG))
    assert items[1].action == "manual"
    assert "set [webhooks] public_url" in items[1].detail
    not_the_helpdesk = connector(zd).plan_setup(SetupContext(webhook_url=URL, escalation_tag=TAG))
    assert [i.kind for i in not_the_helpdesk] == ["ticket field"]


def test_a_leftover_cxbridge_trigger_is_listed_for_pruning(zd: ZendeskBackend, api: requests.Session) -> None:
    """A trigger titled "cxbridge: ..." that this version does not want is a prune item; pruning deletes it,
    twice without error; an admin's own triggers are never listed."""
    conn = connector(zd)
    apply_all(conn, conn.plan_setup(context()), context())
    hook = next(iter(zd.model.webhooks.values()))
    for title in ("cxbridge: old escalation", "Notify the team lead"):
        trigger = {"title": title, "conditions": {"all": []}, "actions": [{"field": "current_tags", "value": "x"}]}
        assert api.post(f"{zd.base_url}/api/v2/triggers", json={"trigger": trigger}).status_code == 201
    items = conn.plan_setup(context(hook.secret))
    pruned = [i for i in items if i.action == PRUNE]
    assert [i.name for i in pruned] == ["cxbridge: old escalation"]
    conn.apply_setup(pruned[0], context())
    conn.apply_setup(pruned[0], context())
    assert sorted(t.title for t in zd.model.triggers.values()) == [
        "Notify the team lead",
        "cxbridge: escalate",
        "cxbridge: internal comment",
        "cxbridge: public comment",
        "cxbridge: status changed",
    ]


CREDIT, REOPEN, PRIORITY = "cxb_decide_credit_50", "cxb_decide_reopen", "cxb_decide_priority_high"
TITLES = {CREDIT: "cxbridge: Credit of 50", REOPEN: "cxbridge: Reopen the done issue"}


def decide_context(*secrets: str, tags: tuple[str, ...], titles: dict[str, str]) -> SetupContext:
    return SetupContext(
        webhook_url=URL,
        webhook_secrets=tuple(Secret(s) for s in secrets),
        roles=frozenset({HELPDESK}),
        escalation_tag=TAG,
        decision_tags=tags,
        decision_macros=titles,
    )


def test_decision_macros_and_the_decide_trigger_are_created_then_all_ok(zd: ZendeskBackend) -> None:
    """With decision tags: the decide trigger (any of the tags), one macro per granted tag that adds it, and a
    manual item for a tag no rule grants; every body matches Zendesk's description; a second plan is all ok."""
    conn = connector(zd)
    ctx = decide_context(tags=(CREDIT, REOPEN, PRIORITY), titles=TITLES)
    items = conn.plan_setup(ctx)
    assert [(i.kind, i.name, i.action) for i in items[2:]] == [
        ("trigger", "cxbridge: escalate", CREATE),
        ("trigger", "cxbridge: public comment", CREATE),
        ("trigger", "cxbridge: internal comment", CREATE),
        ("trigger", "cxbridge: status changed", CREATE),
        ("trigger", "cxbridge: decide", CREATE),
        ("macro", "cxbridge: Credit of 50", CREATE),
        ("macro", "cxbridge: Reopen the done issue", CREATE),
        ("macro", PRIORITY, "manual"),
    ]
    assert "no [[policies.rules]] grant covers" in items[-1].detail
    spec = Spec("zendesk")
    spec.validate_request("POST", "/api/v2/triggers", {"trigger": items[6].desired})
    for macro in items[7:9]:
        spec.validate_request("POST", "/api/v2/macros", {"macro": macro.desired})
    field_id = {u.path: u for u in apply_all(conn, items, ctx)}["systems", "zendesk", "issue_key_field_id"].value
    (hook,) = zd.model.webhooks.values()
    decide = next(t for t in zd.model.triggers.values() if t.title == "cxbridge: decide")
    assert decide.conditions["all"] == [
        {"field": "current_tags", "operator": "includes", "value": f"{CREDIT} {REOPEN} {PRIORITY}"}
    ]
    assert decide.actions[0]["value"][0] == hook.id
    values = {"ticket.id": 7, "ticket.tags": CREDIT, "current_user.id": 3, "current_user.email": "sam@x.example"}
    sent = json.loads(render(decide.actions[0]["value"][1], values))
    assert sent["ticket"] == {"id": 7, "tags": CREDIT}
    assert sent["current_user"]["email"] == "sam@x.example"
    assert sorted((m.title, m.actions[0]["value"], m.restriction) for m in zd.model.macros.values()) == [
        ("cxbridge: Credit of 50", CREDIT, None),
        ("cxbridge: Reopen the done issue", REOPEN, None),
    ]
    again = connector(zd, issue_key_field_id=field_id).plan_setup(decide_context(hook.secret, **_kw(ctx)))
    assert [i.action for i in again] == [OK] * 9 + ["manual"]


def _kw(ctx: SetupContext) -> dict[str, object]:
    return {"tags": ctx.decision_tags, "titles": dict(ctx.decision_macros)}


def test_a_changed_list_updates_the_trigger_and_prunes_old_macros_only_when_asked(
    zd: ZendeskBackend, api: requests.Session
) -> None:
    conn = connector(zd)
    first = decide_context(tags=(CREDIT, REOPEN), titles=TITLES)
    apply_all(conn, conn.plan_setup(first), first)
    hook = next(iter(zd.model.webhooks.values()))
    mine = {"title": "Ask for a refund", "actions": [{"field": "current_tags", "value": "refund"}]}
    assert api.post(f"{zd.base_url}/api/v2/macros", json={"macro": mine}).status_code == 200
    reopen_macro = next(m for m in zd.model.macros.values() if m.title == TITLES[REOPEN])
    reopen_macro.active = False  # an admin deactivated it
    reopen_macro.restriction = {"type": "Group", "id": 5, "ids": [5]}  # and kept it for one group
    second = decide_context(
        hook.secret, tags=(REOPEN, PRIORITY), titles={REOPEN: TITLES[REOPEN], PRIORITY: "cxbridge: Priority High"}
    )
    items = {(i.kind, i.name): i for i in conn.plan_setup(second)}
    assert items["trigger", "cxbridge: decide"].action == UPDATE
    assert items["macro", TITLES[REOPEN]].action == UPDATE
    assert items["macro", TITLES[REOPEN]].detail == "active differ"
    assert items["macro", "cxbridge: Priority High"].action == CREATE
    assert items["macro", TITLES[CREDIT]].action == PRUNE
    assert ("macro", "Ask for a refund") not in items  # an admin's own macro is never listed
    apply_all(conn, list(items.values()), second)  # creates and updates; no prune
    assert sorted(m.title for m in zd.model.macros.values()) == sorted(
        ["Ask for a refund", TITLES[CREDIT], TITLES[REOPEN], "cxbridge: Priority High"]
    )
    assert reopen_macro.active
    assert reopen_macro.restriction == {"type": "Group", "id": 5, "ids": [5]}
    decide = next(t for t in zd.model.triggers.values() if t.title == "cxbridge: decide")
    assert decide.conditions["all"][0]["value"] == f"{REOPEN} {PRIORITY}"
    prune = items["macro", TITLES[CREDIT]]
    conn.apply_setup(prune, second)
    conn.apply_setup(prune, second)  # gone already: no error
    assert sorted(m.title for m in zd.model.macros.values()) == sorted(
        ["Ask for a refund", TITLES[REOPEN], "cxbridge: Priority High"]
    )
    # no decisions listed any more: the decide trigger and the macros are listed for pruning
    none = conn.plan_setup(decide_context(hook.secret, tags=(), titles={}))
    assert sorted(i.name for i in none if i.action == PRUNE) == [
        "cxbridge: Priority High",
        "cxbridge: Reopen the done issue",
        "cxbridge: decide",
    ]


def test_a_macro_create_whose_answer_was_lost_is_not_made_twice(zd: ZendeskBackend) -> None:
    conn = connector(zd)
    ctx = decide_context(tags=(CREDIT,), titles=TITLES)
    macro = next(i for i in conn.plan_setup(ctx) if i.kind == "macro")
    zd.faults.append(Fault(reset=True, path=r"^/api/v2/macros$", method="POST"))
    with pytest.raises((AmbiguousOutcome, Unavailable)):
        conn.apply_setup(macro, ctx)
    conn.apply_setup(macro, ctx)  # the same stale plan item, applied again
    assert [m.title for m in zd.model.macros.values()] == [TITLES[CREDIT]]


def test_macros_are_found_across_pages(zd: ZendeskBackend, api: requests.Session) -> None:
    """More than a page of the admin's own macros: the cxbridge macro on the last page is found, not remade."""
    for n in range(101):
        body = {"macro": {"title": f"Team macro {n}", "actions": [{"field": "status", "value": "open"}]}}
        assert api.post(f"{zd.base_url}/api/v2/macros", json=body).status_code == 200
    conn = connector(zd)
    ctx = decide_context(tags=(CREDIT,), titles=TITLES)
    macro = next(i for i in conn.plan_setup(ctx) if i.kind == "macro")
    conn.apply_setup(macro, ctx)
    listed = [c for c in zd.calls if c.method == "GET" and c.path.startswith("/api/v2/macros")]
    again = next(i for i in conn.plan_setup(ctx) if i.kind == "macro")
    assert (again.action, len(zd.model.macros)) == (OK, 102)
    assert len([c for c in zd.calls if c.method == "GET" and c.path.startswith("/api/v2/macros")]) - len(listed) == 2


def test_an_escalation_trigger_from_an_earlier_version_works_and_its_update_is_offered(zd: ZendeskBackend) -> None:
    """An install whose escalation trigger sends the earlier body (no requester email): the plan offers the update
    (optional: the trigger works, the customer lookup just waits for the ticket read), apply makes it, and the next
    plan is all ok. A trigger whose actions differ otherwise is an ordinary update."""
    from cxbridge_zendesk.triggers import EARLIER_ESCALATION_BODIES, ESCALATION_BODY

    conn = connector(zd)
    learned = {u.path: u for u in apply_all(conn, conn.plan_setup(context()), context())}
    field_id = learned["systems", "zendesk", "issue_key_field_id"].value
    (hook,) = zd.model.webhooks.values()
    escalate = next(t for t in zd.model.triggers.values() if t.title == "cxbridge: escalate")
    assert escalate.actions[0]["value"] == [hook.id, ESCALATION_BODY]
    escalate.actions[0]["value"] = [hook.id, EARLIER_ESCALATION_BODIES[0]]
    conn = connector(zd, issue_key_field_id=field_id)
    items = {i.name: i for i in conn.plan_setup(context(hook.secret))}
    item = items["cxbridge: escalate"]
    assert (item.action, item.optional) == (UPDATE, True)
    assert "{{ticket.requester.email}}" in item.detail
    assert all(i.action == OK for name, i in items.items() if name != "cxbridge: escalate")
    apply_all(conn, [item], context(hook.secret))
    assert escalate.actions[0]["value"] == [hook.id, ESCALATION_BODY]
    assert [i.action for i in conn.plan_setup(context(hook.secret))] == [OK] * 6
    # a body that is neither the current one nor an earlier one is wrong, not an improvement
    escalate.actions[0]["value"] = [hook.id, '{"event": "tag_added"}']
    item = next(i for i in conn.plan_setup(context(hook.secret)) if i.name == "cxbridge: escalate")
    assert (item.action, item.optional, item.detail) == (UPDATE, False, "actions differ")
