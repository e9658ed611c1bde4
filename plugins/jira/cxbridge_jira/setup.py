"""What ``cxbridge setup`` provisions on Jira: the customer-impact custom fields and the admin webhook.

Calls (the API user must be a Jira administrator):

- ``GET {api}/field`` lists the fields; ``POST {api}/field`` (createCustomField) creates each impact field with
  a sortable type and a searcher (numbers: ``float`` + ``numberrange``; dates: ``datepicker`` + ``daterange``;
  the tier: ``textfield`` + ``textsearcher``); the ids go to ``[impact.fields]``;
- ``GET {api}/issue/createmeta/{project}/issuetypes`` and ``.../issuetypes/{id}`` tell whether the fields are on
  the create screen of the configured project and issue type. No REST call places a field on a project's
  screens without walking its screen schemes, so a field missing there is a ``manual`` item saying what to click
  (company-managed projects use one screen scheme for create and edit: placing it there covers both);
- the admin webhook goes through ``/rest/webhooks/1.0/webhook`` (list, ``POST``, ``PUT``): the REST v3
  ``/rest/api/3/webhook`` registers dynamic webhooks for Connect and OAuth 2.0 apps only, which expire after
  30 days; an admin's API token cannot use it. Events: ``jira:issue_updated``, ``comment_created`` and
  ``jira:version_released`` (what the plugin interprets), JQL ``project = <project>``, a secret cxbridge makes
  (Jira never shows a secret again: it is written to a 0600 file and ``[webhooks] secrets.<name>``).
"""

from __future__ import annotations

import secrets as pysecrets
from typing import TYPE_CHECKING, Any

from cxbridge.sdk import (
    CREATE,
    MANUAL,
    OK,
    TRACKER,
    UPDATE,
    ConfigUpdate,
    NotFound,
    PlanItem,
    Secret,
    SetupContext,
    VendorError,
)

if TYPE_CHECKING:
    from .connector import JiraConnector

TYPES = "com.atlassian.jira.plugin.system.customfieldtypes:"
NUMBER = (TYPES + "float", TYPES + "numberrange", "number")
DATE = (TYPES + "datepicker", TYPES + "daterange", "date")
TEXT = (TYPES + "textfield", TYPES + "textsearcher", "string")
IMPACT_FIELDS: dict[str, tuple[str, tuple[str, str, str]]] = {
    "arr": ("ARR at stake", NUMBER),
    "customers": ("Customers", NUMBER),
    "tickets": ("Tickets", NUMBER),
    "renewal": ("Soonest renewal", DATE),
    "tier": ("Highest tier", TEXT),
    "oldest": ("Oldest open ticket", DATE),
}
"""Rollup value -> (field name, (type, searcher, schema type)): the fields ``[impact.fields]`` points at."""
EVENTS = ("jira:issue_updated", "comment_created", "jira:version_released")
WEBHOOK_NAME = "cxbridge"
WEBHOOKS = "/rest/webhooks/1.0/webhook"
FIELD = "custom field"
SCREEN = "create and edit screens"
WEBHOOK = "webhook"


class JiraSetup:
    """Plans and applies the Jira objects for one connector (reads first, writes only in ``apply``)."""

    def __init__(self, connector: JiraConnector) -> None:
        self.jira = connector
        self.name = connector.name
        self.api = connector.api

    def fields(self) -> dict[str, dict[str, Any]]:
        """Every field of the site, by id."""
        listed = self.jira.http.get(f"{self.api}/field", op="setup.fields").json()
        return {str(f["id"]): f for f in listed if isinstance(f, dict) and "id" in f}

    # -- planning ----------------------------------------------------------------------------------------
    def plan(self, setup: SetupContext) -> list[PlanItem]:
        if TRACKER not in setup.roles:
            return []
        fields = self.fields()
        items = [self.plan_field(value, fields, setup) for value in IMPACT_FIELDS]
        items.append(self.plan_screens(items))
        items.append(self.plan_webhook(setup))
        return items

    def plan_field(self, value: str, fields: dict[str, dict[str, Any]], setup: SetupContext) -> PlanItem:
        name, (type_key, searcher, kind) = IMPACT_FIELDS[value]
        key = ("impact", "fields", value)
        configured = setup.impact_fields.get(value)
        if configured:
            found = fields.get(configured)
            if found is not None and (found.get("schema") or {}).get("type") == kind:
                return PlanItem(self.name, FIELD, str(found.get("name") or name), OK, vendor_id=configured)
            problem = (
                f"[impact.fields] {value} = {configured!r} does not exist"
                if found is None
                else f"[impact.fields] {value} = {configured!r} holds {(found.get('schema') or {}).get('type')}, "
                f"not {kind}"
            )
        else:
            problem = f"[impact.fields] {value} is not set"
        same = next(
            (f for f in fields.values() if f.get("custom") and f.get("name") == name and _kind(f) == kind), None
        )
        if same is not None:
            fid = str(same["id"])
            detail = f"{problem}: use the existing field {fid}"
            return PlanItem(self.name, FIELD, name, UPDATE, detail, vendor_id=fid, learned=[ConfigUpdate(key, fid)])
        body = {"name": name, "description": "Customer impact, written by cxbridge.", "type": type_key}
        body["searcherKey"] = searcher
        return PlanItem(self.name, FIELD, name, CREATE, f"{problem}: create a {kind} field", desired=body)

    def plan_screens(self, field_items: list[PlanItem]) -> PlanItem:
        """Whether the impact fields are on the create screen of the configured project and issue type."""
        project, type_name = self.jira.default_project or "", self.jira.default_issue_type
        where = f"project {project}, issue type {type_name}"
        try:
            types = self.jira.http.get(
                f"{self.api}/issue/createmeta/{project}/issuetypes", op="setup.createmeta"
            ).json()
        except NotFound:
            return PlanItem(self.name, SCREEN, where, MANUAL, f"project {project} does not exist or is not visible")
        found = next((t for t in types.get("issueTypes") or [] if t.get("name") == type_name), None)
        if found is None:
            return PlanItem(self.name, SCREEN, where, MANUAL, f"project {project} has no issue type {type_name}")
        meta = self.jira.http.get(
            f"{self.api}/issue/createmeta/{project}/issuetypes/{found['id']}", op="setup.createmeta"
        ).json()
        on_screen = {str(f.get("fieldId")) for f in meta.get("fields") or []}
        missing = [i.name for i in field_items if i.vendor_id is None or i.vendor_id not in on_screen]
        if not missing:
            return PlanItem(self.name, SCREEN, where, OK)
        names = ", ".join(repr(n) for n in missing)
        steps = (
            f"Jira cannot place fields on a project's screens through this API: in Jira, open Project settings > "
            f"Issue types > {type_name} in project {project}, drag {names} from 'Fields' onto the layout and save "
            f"(company-managed: Jira settings > Issues > Screens > the project's create/edit screen > Configure, "
            f"add each field)"
        )
        return PlanItem(self.name, SCREEN, where, MANUAL, steps)

    def webhooks(self) -> list[dict[str, Any]]:
        listed = self.jira.http.get(WEBHOOKS, op="setup.webhooks").json()
        return [h for h in listed if isinstance(h, dict)]

    def webhook_body(self, setup: SetupContext) -> dict[str, Any]:
        project = self.jira.default_project or ""
        return {
            "name": WEBHOOK_NAME,
            "url": setup.webhook_url,
            "events": list(EVENTS),
            "filters": {"issue-related-events-section": f"project = {project}"},
            "excludeBody": False,
            "enabled": True,
        }

    def plan_webhook(self, setup: SetupContext) -> PlanItem:
        if not setup.webhook_url:
            detail = "set [webhooks] public_url (the https address Jira reaches 'cxbridge serve' at), then apply again"
            return PlanItem(self.name, WEBHOOK, WEBHOOK_NAME, MANUAL, detail)
        wanted = self.webhook_body(setup)
        hook = next((h for h in self.webhooks() if h.get("name") == WEBHOOK_NAME), None)
        if hook is None:
            return PlanItem(self.name, WEBHOOK, WEBHOOK_NAME, CREATE, f"POST to {setup.webhook_url}", desired=wanted)
        hook_id = str(hook.get("self", "")).rstrip("/").rsplit("/", 1)[-1]
        wrong = [k for k in ("url", "filters", "excludeBody", "enabled") if hook.get(k) != wanted[k]]
        if sorted(hook.get("events") or []) != sorted(EVENTS):
            wrong.append("events")
        if not setup.webhook_secrets:
            wrong.append(f"secret (none in [webhooks] secrets.{self.name}: a new one is set)")
        if wrong:
            return PlanItem(
                self.name, WEBHOOK, WEBHOOK_NAME, UPDATE, ", ".join(wrong), vendor_id=hook_id, desired=wanted
            )
        return PlanItem(self.name, WEBHOOK, WEBHOOK_NAME, OK, vendor_id=hook_id)

    # -- applying ----------------------------------------------------------------------------------------
    def apply(self, item: PlanItem, setup: SetupContext) -> list[ConfigUpdate]:
        if item.kind == FIELD:
            value = next(v for v, (name, _) in IMPACT_FIELDS.items() if name == item.name)
            if item.action != CREATE:
                return []
            again = next(  # an earlier apply whose answer was lost made it already
                (f for f in self.fields().values() if f.get("custom") and f.get("name") == item.name), None
            )
            made = again or self.jira.http.post(f"{self.api}/field", op="setup.field.create", json=item.desired).json()
            return [ConfigUpdate(("impact", "fields", value), str(made["id"]))]
        if item.kind == WEBHOOK:
            secret = pysecrets.token_urlsafe(32)
            body = {**item.desired, "secret": secret}
            if item.action == CREATE:
                self.jira.http.post(WEBHOOKS, op="setup.webhook.create", json=body)
            else:
                self.jira.http.put(f"{WEBHOOKS}/{item.vendor_id}", op="setup.webhook.update", json=body)
            return [ConfigUpdate(("webhooks", "secrets", self.name), Secret(secret, source="setup"), secret=True)]
        raise VendorError(self.name, f"{self.name}: nothing to apply for the {item.kind} {item.name!r}")


def _kind(field: dict[str, Any]) -> str | None:
    schema = field.get("schema")
    return str(schema.get("type")) if isinstance(schema, dict) else None
