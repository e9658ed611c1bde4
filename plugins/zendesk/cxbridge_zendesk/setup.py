"""What ``cxbridge setup`` provisions on Zendesk: the issue-key ticket field, the webhook and the triggers.

Calls (Zendesk Support API; the API user must be an admin):

- ``GET /api/v2/ticket_fields`` and ``GET /api/v2/ticket_fields/{id}``; ``POST /api/v2/ticket_fields`` creates the
  text field that holds the tracker's issue key (its id goes to ``issue_key_field_id``);
- ``GET /api/v2/webhooks`` (cursor pages) finds the webhook named ``cxbridge``; ``POST /api/v2/webhooks`` creates
  it, ``PUT /api/v2/webhooks/{id}`` corrects it; ``GET /api/v2/webhooks/{id}/signing_secret`` reads the secret that
  signs its calls, written to a 0600 file and referenced from ``[webhooks] secrets.<name>``;
- ``GET /api/v2/triggers`` (offset pages) finds the triggers by title; ``POST /api/v2/triggers`` creates them and
  ``PUT /api/v2/triggers/{id}`` corrects them (bodies in ``triggers.py``);
- with ``[decisions] macros``: ``GET /api/v2/macros`` (offset pages) finds the example macros by title,
  ``POST /api/v2/macros`` creates one shared macro per granted decision (its only action adds the decision tag),
  ``PUT /api/v2/macros/{macro_id}`` corrects its actions or reactivates it. An admin's ``restriction`` (who may
  use the macro) is left as the admin set it. ``--prune`` deletes (``DELETE /api/v2/macros/{macro_id}``) a
  "cxbridge: ..." macro no longer listed, like a trigger.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from cxbridge.sdk import (
    CREATE,
    HELPDESK,
    MANUAL,
    OK,
    PRUNE,
    UPDATE,
    ConfigUpdate,
    NotFound,
    PlanItem,
    Secret,
    SetupContext,
    VendorError,
)

from .triggers import EARLIER_ESCALATION_BODIES, ESCALATION_BODY, WEBHOOK_NAME, desired_triggers

if TYPE_CHECKING:
    from .connector import ZendeskConnector

FIELD = "ticket field"
WEBHOOK = "webhook"
TRIGGER = "trigger"
MACRO = "macro"
DEFAULT_FIELD_TITLE = "Jira issue key"
MAX_PAGES = 100
TRIGGER_PREFIX = "cxbridge: "
"""The titles of cxbridge's triggers start with this: one that is no longer wanted is listed for pruning."""


def _webhook_body(url: str) -> dict[str, Any]:
    return {
        "name": WEBHOOK_NAME,
        "status": "active",
        "endpoint": url,
        "http_method": "POST",
        "request_format": "json",
        "subscriptions": ["conditional_ticket_events"],
    }


class ZendeskSetup:
    """Plans and applies the Zendesk objects for one connector (reads first, writes only in ``apply``)."""

    def __init__(self, connector: ZendeskConnector) -> None:
        self.zd = connector
        self.name = connector.name

    # -- reading -----------------------------------------------------------------------------------------
    def webhooks(self) -> list[dict[str, Any]]:
        """Every webhook of the account, following the cursor pages."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] | None = {"page[size]": 100}
        path = "/api/v2/webhooks"
        for _ in range(MAX_PAGES):
            body = self.zd.http.get(path, op="setup.webhooks", params=params).json()
            found += [w for w in body.get("webhooks") or [] if isinstance(w, dict)]
            if not (body.get("meta") or {}).get("has_more"):
                break
            path, params = str((body.get("links") or {}).get("next")), None
        return found

    def webhook(self) -> dict[str, Any] | None:
        """cxbridge's webhook (by name), or None."""
        return next((w for w in self.webhooks() if w.get("name") == WEBHOOK_NAME), None)

    def triggers(self) -> list[dict[str, Any]]:
        """Every trigger of the account, following ``next_page``."""
        found: list[dict[str, Any]] = []
        path: str | None = "/api/v2/triggers"
        params: dict[str, Any] | None = {"per_page": 100}
        for _ in range(MAX_PAGES):
            if path is None:
                break
            body = self.zd.http.get(path, op="setup.triggers", params=params).json()
            found += [t for t in body.get("triggers") or [] if isinstance(t, dict)]
            path, params = body.get("next_page"), None
        return found

    def macros(self) -> list[dict[str, Any]]:
        """Every macro the API user sees (an admin: all shared ones), following ``next_page``."""
        found: list[dict[str, Any]] = []
        path: str | None = "/api/v2/macros"
        params: dict[str, Any] | None = {"per_page": 100}
        for _ in range(MAX_PAGES):
            if path is None:
                break
            body = self.zd.http.get(path, op="setup.macros", params=params).json()
            found += [m for m in body.get("macros") or [] if isinstance(m, dict)]
            path, params = body.get("next_page"), None
        return found

    def field_title(self) -> str:
        value = self.zd.config.get("issue_key_field_title")
        return value if isinstance(value, str) and value else DEFAULT_FIELD_TITLE

    # -- planning ----------------------------------------------------------------------------------------
    def plan(self, setup: SetupContext) -> list[PlanItem]:
        """The field, the webhook and the triggers, compared with what the account holds."""
        items = [self.plan_field()]
        if HELPDESK not in setup.roles:
            return items
        hook = self.webhook()
        items.append(self.plan_webhook(hook, setup))
        items += self.plan_triggers(hook, setup)
        items += self.plan_macros(setup)
        return items

    def plan_field(self) -> PlanItem:
        title = self.field_title()
        configured = self.zd.config.get("issue_key_field_id")
        key = ("systems", self.name, "issue_key_field_id")
        if isinstance(configured, int) and configured > 0:
            try:
                found = self.zd.http.get(f"/api/v2/ticket_fields/{configured}", op="setup.field").json()
                field = found.get("ticket_field") or {}
            except NotFound:
                field = {}
            if field.get("type") == "text" and field.get("active", True):
                return PlanItem(self.name, FIELD, str(field.get("title") or title), OK, vendor_id=str(configured))
            problem = (
                f"issue_key_field_id {configured} does not exist"
                if not field
                else f"field {configured} is a {field.get('type')} field, not an active text field"
            )
        else:
            problem = "issue_key_field_id is not set"
        fields = self.zd.http.get("/api/v2/ticket_fields", op="setup.fields").json().get("ticket_fields") or []
        same = next(
            (f for f in fields if f.get("title") == title and f.get("type") == "text" and f.get("active")), None
        )
        if same is not None:
            return PlanItem(
                self.name,
                FIELD,
                title,
                UPDATE,
                f"{problem}: use the existing text field {same['id']}",
                vendor_id=str(same["id"]),
                learned=[ConfigUpdate(key, int(same["id"]))],
            )
        body = {"type": "text", "title": title, "description": "The engineering issue this ticket is escalated to."}
        return PlanItem(self.name, FIELD, title, CREATE, f"{problem}: create a text field", desired=body)

    def plan_webhook(self, hook: dict[str, Any] | None, setup: SetupContext) -> PlanItem:
        if not setup.webhook_url:
            return PlanItem(
                self.name,
                WEBHOOK,
                WEBHOOK_NAME,
                MANUAL,
                "set [webhooks] public_url (the https address Zendesk reaches 'cxbridge serve' at), then run "
                "'cxbridge setup --apply' again",
            )
        wanted = _webhook_body(setup.webhook_url)
        if hook is None:
            return PlanItem(self.name, WEBHOOK, WEBHOOK_NAME, CREATE, f"POST to {setup.webhook_url}", desired=wanted)
        wrong = [k for k, v in wanted.items() if hook.get(k) != v]
        hid = str(hook["id"])
        if wrong:
            said = ", ".join(f"{k} {hook.get(k)!r} -> {wanted[k]!r}" for k in wrong)
            return PlanItem(self.name, WEBHOOK, WEBHOOK_NAME, UPDATE, said, vendor_id=hid, desired=wanted)
        secret = self.signing_secret(hid)
        if not any(s.reveal() == secret for s in setup.webhook_secrets):
            detail = f"the signing secret is not in [webhooks] secrets.{self.name}: write it"
            return PlanItem(self.name, WEBHOOK, WEBHOOK_NAME, UPDATE, detail, vendor_id=hid)
        return PlanItem(self.name, WEBHOOK, WEBHOOK_NAME, OK, vendor_id=hid)

    def plan_triggers(self, hook: dict[str, Any] | None, setup: SetupContext) -> list[PlanItem]:
        tag = setup.escalation_tag
        if not tag:
            return [PlanItem(self.name, TRIGGER, "cxbridge", MANUAL, "set [escalation] tag: the triggers need it")]
        existing = {str(t.get("title")): t for t in self.triggers()}
        items = []
        hook_id = str(hook["id"]) if hook else "<cxbridge webhook>"
        for wanted in desired_triggers(tag, hook_id, setup.decision_tags):
            title = wanted["title"]
            found = existing.get(title)
            if found is None:
                items.append(PlanItem(self.name, TRIGGER, title, CREATE, wanted["description"], desired=wanted))
                continue
            wrong = [k for k in ("active", "conditions", "actions") if _normal(found.get(k)) != _normal(wanted[k])]
            action, detail = (UPDATE, f"{', '.join(wrong)} differ") if hook is None or wrong else (OK, "")
            optional = hook is not None and wrong == ["actions"] and _earlier_body(found, wanted)
            if optional:
                detail = (
                    "its webhook body lacks the requester's email ({{ticket.requester.email}}): escalations work, "
                    "but the customer lookup waits for the ticket read"
                )
            items.append(
                PlanItem(
                    self.name,
                    TRIGGER,
                    title,
                    action,
                    detail,
                    vendor_id=str(found["id"]),
                    desired=wanted,
                    optional=optional,
                )
            )
        wanted_titles = {i.name for i in items}
        for title, found in existing.items():
            if title.startswith(TRIGGER_PREFIX) and title not in wanted_titles:
                detail = "a cxbridge trigger this version no longer uses"
                items.append(PlanItem(self.name, TRIGGER, title, PRUNE, detail, vendor_id=str(found["id"])))
        return items

    def plan_macros(self, setup: SetupContext) -> list[PlanItem]:
        """One shared macro per granted decision tag; a listed tag no rule grants is a manual item (no macro is
        offered for a decision every agent would be refused); a "cxbridge: ..." macro no longer wanted is pruned."""
        by_title: dict[str, dict[str, Any]] = {}
        for macro in self.macros():
            by_title.setdefault(str(macro.get("title")), macro)
        items: list[PlanItem] = []
        for tag in setup.decision_tags:
            title = setup.decision_macros.get(tag)
            if title is None:
                detail = (
                    f"no [[policies.rules]] grant covers the decision {tag} asks for, so no macro is offered: "
                    "grant it in a rule, or take it out of [decisions] macros"
                )
                items.append(PlanItem(self.name, MACRO, tag, MANUAL, detail))
                continue
            wanted = macro_body(title, tag)
            found = by_title.get(title)
            if found is None:
                items.append(PlanItem(self.name, MACRO, title, CREATE, f"adds the tag {tag}", desired=wanted))
                continue
            wrong = [k for k in ("active", "actions") if _normal(found.get(k)) != _normal(wanted[k])]
            action, detail = (UPDATE, f"{', '.join(wrong)} differ") if wrong else (OK, "")
            items.append(PlanItem(self.name, MACRO, title, action, detail, vendor_id=str(found["id"]), desired=wanted))
        wanted_titles = {i.name for i in items}
        for title, found in by_title.items():
            if title.startswith(TRIGGER_PREFIX) and title not in wanted_titles:
                detail = "a cxbridge macro no longer listed in [decisions] macros (or no longer granted)"
                items.append(PlanItem(self.name, MACRO, title, PRUNE, detail, vendor_id=str(found["id"])))
        return items

    def signing_secret(self, webhook_id: str) -> str:
        body = self.zd.http.get(f"/api/v2/webhooks/{webhook_id}/signing_secret", op="setup.secret").json()
        secret = (body.get("signing_secret") or {}).get("secret")
        if not isinstance(secret, str) or not secret:
            raise VendorError(self.name, f"{self.name}: the webhook {webhook_id} has no signing secret")
        return secret

    # -- applying ----------------------------------------------------------------------------------------
    def apply(self, item: PlanItem, setup: SetupContext) -> list[ConfigUpdate]:
        if item.kind == FIELD:
            if item.action == CREATE:
                made = self.zd.http.post(
                    "/api/v2/ticket_fields", op="setup.field.create", json={"ticket_field": item.desired}
                ).json()["ticket_field"]
                return [ConfigUpdate(("systems", self.name, "issue_key_field_id"), int(made["id"]))]
            return []
        if item.kind == WEBHOOK:
            hook_id = item.vendor_id
            if item.action == CREATE:
                existing = self.webhook()  # a second apply after a lost answer finds the first one
                if existing is None:
                    made = self.zd.http.post(
                        "/api/v2/webhooks", op="setup.webhook.create", json={"webhook": item.desired}
                    ).json()
                    hook_id = str(made["webhook"]["id"])
                else:
                    hook_id = str(existing["id"])
            elif item.desired:
                self.zd.http.put(
                    f"/api/v2/webhooks/{hook_id}", op="setup.webhook.update", json={"webhook": item.desired}
                )
            assert hook_id is not None
            secret = Secret(self.signing_secret(hook_id), source="vendor")
            return [ConfigUpdate(("webhooks", "secrets", self.name), secret, secret=True)]
        if item.kind == TRIGGER and item.action == PRUNE:
            with contextlib.suppress(NotFound):  # gone already: a second prune after a lost answer
                self.zd.http.delete(f"/api/v2/triggers/{item.vendor_id}", op="setup.trigger.delete")
            return []
        if item.kind == TRIGGER:
            hook = self.webhook()
            if hook is None:
                raise VendorError(self.name, f"{self.name}: the {WEBHOOK_NAME} webhook does not exist yet")
            wanted = next(
                t
                for t in desired_triggers(setup.escalation_tag, str(hook["id"]), setup.decision_tags)
                if t["title"] == item.name
            )
            found = next((t for t in self.triggers() if t.get("title") == item.name), None)
            if found is None:
                self.zd.http.post("/api/v2/triggers", op="setup.trigger.create", json={"trigger": wanted})
            else:
                self.zd.http.put(f"/api/v2/triggers/{found['id']}", op="setup.trigger.update", json={"trigger": wanted})
            return []
        if item.kind == MACRO:
            return self.apply_macro(item)
        raise VendorError(self.name, f"{self.name}: nothing to apply for a {item.kind}")

    def apply_macro(self, item: PlanItem) -> list[ConfigUpdate]:
        """Create, correct or (pruning) delete one example macro, found again by title first: a second apply
        after a lost answer corrects the macro the first one made instead of making another."""
        if item.action == PRUNE:
            with contextlib.suppress(NotFound):
                self.zd.http.delete(f"/api/v2/macros/{item.vendor_id}", op="setup.macro.delete")
            return []
        found = next((m for m in self.macros() if m.get("title") == item.name), None)
        if found is None:
            self.zd.http.post("/api/v2/macros", op="setup.macro.create", json={"macro": item.desired})
        else:
            self.zd.http.put(f"/api/v2/macros/{found['id']}", op="setup.macro.update", json={"macro": item.desired})
        return []


def macro_body(title: str, tag: str) -> dict[str, Any]:
    """The ``macro`` object of ``POST``/``PUT /api/v2/macros``: one action, "Add tags" (``current_tags``) with the
    decision tag; no ``restriction`` (a new macro is shared with every agent; an admin's restriction is kept)."""
    return {
        "title": title,
        "description": f"Asks cxbridge for this decision (adds the tag {tag}); cxbridge decides under its policies, "
        "removes the tag and writes the outcome as an internal note.",
        "active": True,
        "actions": [{"field": "current_tags", "value": tag}],
    }


def _earlier_body(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a trigger's actions are the wanted ones but for an escalation webhook body an earlier version
    provisioned (``EARLIER_ESCALATION_BODIES``: it still works)."""
    for body in EARLIER_ESCALATION_BODIES:
        earlier = [
            {**a, "value": [a["value"][0], body]}
            if a.get("field") == "notification_webhook" and a["value"][1] == ESCALATION_BODY
            else a
            for a in wanted["actions"]
        ]
        if earlier != wanted["actions"] and _normal(found.get("actions")) == _normal(earlier):
            return True
    return False


def _normal(value: Any) -> Any:
    """A trigger's conditions or actions compared as Zendesk returns them (``any`` may be absent or empty;
    values as strings)."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v not in (None, [])}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value
