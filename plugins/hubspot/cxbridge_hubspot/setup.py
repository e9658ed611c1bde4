"""What ``cxbridge setup`` provisions on HubSpot: the properties cxbridge reads or writes, and the app's webhooks.

Calls:

- ``GET /crm/v3/properties/{objectType}/{propertyName}`` reads each property; ``POST /crm/v3/properties/{objectType}``
  creates the custom ones in the property group ``cxbridge`` (``GET``/``POST .../groups``). As the CRM: the
  company's ``tier_property`` (text) and ``renewal_date_property`` (date) are created when missing; its
  ``arr_property`` and ``owner_property`` are HubSpot's own (``annualrevenue``, ``hubspot_owner_id``): a missing
  one is a misspelled name, a ``manual`` item. As the helpdesk: the ticket's ``escalate_property`` (a checkbox)
  and ``issue_key_property`` (text). Scopes: ``crm.schemas.companies.write``, ``crm.schemas.tickets.write``
  (``.read`` for the plan).
- the app's webhooks (helpdesk role only): ``/webhooks/v3/{appId}/settings`` (the target URL) and
  ``/webhooks/v3/{appId}/subscriptions`` (``ticket.propertyChange`` of ``escalate_property``), authenticated
  with the developer account's API key (``?hapikey=``, config ``developer_api_key`` and ``app_id``). Without
  them (a private app, whose webhooks exist only in HubSpot's UI) it is a ``manual`` item saying what to click.
  HubSpot signs the app's calls with the app's client secret: set ``client_secret`` or ``[webhooks] secrets``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cxbridge.sdk import (
    CREATE,
    CRM_ROLE,
    HELPDESK,
    MANUAL,
    OK,
    UPDATE,
    ConfigUpdate,
    NotFound,
    PlanItem,
    Secret,
    SetupContext,
    VendorError,
)

if TYPE_CHECKING:
    from .connector import HubSpotConnector

GROUP = "cxbridge"
PROPERTY = "property"
SUBSCRIPTION = "webhook subscription"
TARGET = "webhook target URL"
TEXT = ("string", "text")
DATE = ("date", "date")
CHECKBOX = ("bool", "booleancheckbox")


class HubSpotSetup:
    """Plans and applies the HubSpot objects for one connector (reads first, writes only in ``apply``)."""

    def __init__(self, connector: HubSpotConnector) -> None:
        self.hs = connector
        self.name = connector.name

    def wanted(self, setup: SetupContext) -> list[tuple[str, str, str, tuple[str, str] | None]]:
        """(object type, config key, label, (type, fieldType) to create it with, or None: HubSpot's own)."""
        out: list[tuple[str, str, str, tuple[str, str] | None]] = []
        if CRM_ROLE in setup.roles:
            out += [
                ("companies", "tier_property", "Customer tier", TEXT),
                ("companies", "renewal_date_property", "Renewal date", DATE),
                ("companies", "arr_property", "Annual revenue", None),
                ("companies", "owner_property", "Company owner", None),
            ]
        if HELPDESK in setup.roles:
            out += [
                ("tickets", "escalate_property", "Escalate to engineering", CHECKBOX),
                ("tickets", "issue_key_property", "Engineering issue key", TEXT),
            ]
        return out

    # -- planning ----------------------------------------------------------------------------------------
    def plan(self, setup: SetupContext) -> list[PlanItem]:
        items = [self.plan_property(*w) for w in self.wanted(setup)]
        if HELPDESK in setup.roles:
            items += self.plan_webhooks(setup)
        return items

    def plan_property(self, object_type: str, key: str, label: str, kind: tuple[str, str] | None) -> PlanItem:
        name = str(self.hs.option(key))
        shown = f"{object_type}.{name}"
        try:
            found = self.hs.http.get(f"/crm/v3/properties/{object_type}/{name}", op="setup.property").json()
        except NotFound:
            if kind is None:
                detail = f"HubSpot has no {object_type} property {name!r}: check {key} in [systems.{self.name}]"
                return PlanItem(self.name, PROPERTY, shown, MANUAL, detail)
            body: dict[str, Any] = {
                "name": name,
                "label": label,
                "type": kind[0],
                "fieldType": kind[1],
                "groupName": GROUP,
                "description": f"Used by cxbridge ({key}).",
            }
            if kind == CHECKBOX:
                body["options"] = [
                    {"label": "Yes", "value": "true", "hidden": False, "displayOrder": 0},
                    {"label": "No", "value": "false", "hidden": False, "displayOrder": 1},
                ]
            return PlanItem(self.name, PROPERTY, shown, CREATE, f"a {kind[0]} property", desired=body)
        if kind is not None and found.get("type") != kind[0]:
            detail = (
                f"it is a {found.get('type')} property, cxbridge needs {kind[0]}: name another property in {key}, "
                f"or change its type in Settings > Properties"
            )
            return PlanItem(self.name, PROPERTY, shown, MANUAL, detail)
        return PlanItem(self.name, PROPERTY, shown, OK)

    def developer_key(self) -> tuple[str, Secret] | None:
        app_id, key = self.hs.config.get("app_id"), self.hs.config.get("developer_api_key")
        return (str(app_id), key) if app_id and isinstance(key, Secret) and key else None

    def plan_webhooks(self, setup: SetupContext) -> list[PlanItem]:
        prop = str(self.hs.option("escalate_property"))
        sub_name = f"ticket.propertyChange {prop}"
        if not setup.webhook_url:
            detail = "set [webhooks] public_url (the https address HubSpot reaches 'cxbridge serve' at)"
            return [PlanItem(self.name, TARGET, "app", MANUAL, detail)]
        app = self.developer_key()
        if app is None:
            detail = (
                f"set app_id and developer_api_key in [systems.{self.name}], or in HubSpot: your app > Webhooks: "
                f"target URL {setup.webhook_url}, subscribe to Ticket > Property changed > {prop}, activate it"
            )
            return [PlanItem(self.name, TARGET, "app", MANUAL, detail)]
        app_id, key = app
        base = f"/webhooks/v3/{app_id}"
        params = {"hapikey": key.reveal()}
        items = []
        try:
            settings = self.hs.http.get(f"{base}/settings", op="setup.webhook.settings", params=params).json()
        except NotFound:
            settings = {}
        target_body = {"targetUrl": setup.webhook_url, "throttling": {"maxConcurrentRequests": 10}}
        if settings.get("targetUrl") == setup.webhook_url:
            items.append(PlanItem(self.name, TARGET, "app", OK, vendor_id=app_id))
        else:
            was = settings.get("targetUrl") or "none"
            detail = f"{was} -> {setup.webhook_url}"
            items.append(PlanItem(self.name, TARGET, "app", UPDATE, detail, vendor_id=app_id, desired=target_body))
        listed = self.hs.http.get(f"{base}/subscriptions", op="setup.webhook.subscriptions", params=params).json()
        found = next(
            (
                s
                for s in listed.get("results") or []
                if s.get("eventType") == "ticket.propertyChange" and s.get("propertyName") == prop
            ),
            None,
        )
        if found is None:
            body = {"eventType": "ticket.propertyChange", "propertyName": prop, "active": True}
            items.append(PlanItem(self.name, SUBSCRIPTION, sub_name, CREATE, desired=body))
        elif not found.get("active"):
            sub_id = str(found["id"])
            body = {"active": True}
            items.append(
                PlanItem(self.name, SUBSCRIPTION, sub_name, UPDATE, "inactive", vendor_id=sub_id, desired=body)
            )
        else:
            items.append(PlanItem(self.name, SUBSCRIPTION, sub_name, OK, vendor_id=str(found["id"])))
        if not setup.webhook_secrets:
            detail = f"HubSpot signs with the app's client secret: set client_secret in [systems.{self.name}]"
            items.append(PlanItem(self.name, "webhook secret", "client secret", MANUAL, detail))
        return items

    # -- applying ----------------------------------------------------------------------------------------
    def apply(self, item: PlanItem, setup: SetupContext) -> list[ConfigUpdate]:
        if item.kind == PROPERTY:
            object_type = item.name.split(".", 1)[0]
            self.ensure_group(object_type)
            self.hs.http.post(f"/crm/v3/properties/{object_type}", op="setup.property.create", json=item.desired)
            return []
        app = self.developer_key()
        if app is None:
            raise VendorError(self.name, f"{self.name}: app_id and developer_api_key are needed for the app's webhooks")
        app_id, key = app
        base, params = f"/webhooks/v3/{app_id}", {"hapikey": key.reveal()}
        if item.kind == TARGET:
            self.hs.http.put(f"{base}/settings", op="setup.webhook.settings", params=params, json=item.desired)
        elif item.kind == SUBSCRIPTION and item.action == CREATE:
            self.hs.http.post(f"{base}/subscriptions", op="setup.webhook.subscribe", params=params, json=item.desired)
        elif item.kind == SUBSCRIPTION:
            path = f"{base}/subscriptions/{item.vendor_id}"
            self.hs.http.request("PATCH", path, op="setup.webhook.subscribe", params=params, json=item.desired)
        return []

    def ensure_group(self, object_type: str) -> None:
        """The property group ``cxbridge`` on the object type, created when missing."""
        try:
            self.hs.http.get(f"/crm/v3/properties/{object_type}/groups/{GROUP}", op="setup.group")
        except NotFound:
            body: dict[str, Any] = {"name": GROUP, "label": "cxbridge"}
            self.hs.http.post(f"/crm/v3/properties/{object_type}/groups", op="setup.group.create", json=body)
