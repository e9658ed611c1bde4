"""The HubSpot emulator: a stateful backend for CRM objects v3, associations v4 and webhooks v3.

Auth is a private app's ``Authorization: Bearer <token>`` (the developer ``?hapikey=`` only on ``/webhooks/v3``);
every answer carries HubSpot's rate-limit headers; property changes that the app's subscriptions cover are
delivered as batched, v3-signed JSON arrays to the framework's webhook targets and to the app's ``targetUrl``.

Besides the framework's admin API, ``POST /_sandbox/hubspot/ui-update`` (``{"objectType", "id", "properties"}``)
changes a record as a person in HubSpot's UI would (``changeSource: CRM_UI``), and
``POST /_sandbox/hubspot/properties`` (``{"objectType", "name", "kind", "options"}``) defines a custom property.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from cxbridge.sdk import ADMIN_PREFIX, SandboxSecret, VendorFault, WebhookTarget

from . import errors, seeds
from .models import CRM_UI, OBJECT_TYPES, Change, CrmObject, Portal, resolve_type
from .routes import ALL_PROPERTIES, HubSpotRoutes, public_object, subscription_body
from .webhooks import batches, delivery_headers, events_for

HUBSPOT_ADMIN_PREFIX = f"{ADMIN_PREFIX}hubspot/"

TEN_SECONDS = 10.0
DAY = 86_400.0


class HubSpotBackend(HubSpotRoutes):
    """The HubSpot emulator (``system = "hubspot"``), in-process or served on a loopback port."""

    system = "hubspot"
    default_base_url = "https://api.hubapi.com"
    spec_files: ClassVar[Mapping[str, str]] = {
        "hubspot-contacts": "hubspot/crm-contacts-v3.json",
        "hubspot-companies": "hubspot/crm-companies-v3.json",
        "hubspot-deals": "hubspot/crm-deals-v3.json",
        "hubspot-notes": "hubspot/crm-notes-v3.json",
        "hubspot-tickets": "hubspot/crm-tickets-v3.json",
        "hubspot-objects": "hubspot/crm-objects-v3.json",
        "hubspot-properties": "hubspot/crm-properties-v3.json",
        "hubspot-associations": "hubspot/crm-associations-v4.json",
        "hubspot-associations-schema": "hubspot/crm-associations-schema-v4.json",
        "hubspot-webhooks": "hubspot/webhooks-v3.json",
        "hubspot-owners": "hubspot/crm-owners-v3.json",
    }
    spec_prefixes: ClassVar[Mapping[str, str]] = {
        "/crm/v3/objects/tickets": "hubspot-tickets",
        "/crm/v3/objects/contacts": "hubspot-contacts",
        "/crm/v3/objects/companies": "hubspot-companies",
        "/crm/v3/objects/deals": "hubspot-objects",  # the deals file spells the type "0-3"
        "/crm/v3/objects/notes": "hubspot-notes",
        "/crm/v4/objects": "hubspot-associations",
        "/crm/v3/properties": "hubspot-properties",
        "/webhooks/v3": "hubspot-webhooks",
        "/crm/v3/owners": "hubspot-owners",
    }
    """The CRM paths the connector calls (as CRM and as helpdesk), by prefix, and the description holding each."""

    portal_id = 62515001
    app_id = 3140001
    interval_limit = 190
    """Calls per ten seconds that the headers report when no limit is enforced (Professional tier)."""
    daily_limit = 625_000
    ui_user_id = "9100001"

    def __init__(self, base_url: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        # Credentials belong to the backend instance: a reset empties the portal but keeps them, so a config
        # written once stays valid across resets between tests.
        self.access_token = f"pat-na1-{uuid.uuid4()}"
        self.developer_api_key = str(uuid.uuid4())
        self.client_secret = secrets.token_hex(16)
        super().__init__(base_url, clock=clock)

    # -- the framework's contract -----------------------------------------------------------------------------
    def reset(self) -> None:
        self.portal = Portal(self.clock)
        self._next_event_id = 1
        self._window_start = 0.0
        self._window_used = 0
        self._day_start = 0.0
        self._day_used = 0

    def seed(self, name: str) -> None:
        seeds.load(self.portal, name)

    def state(self) -> dict[str, Any]:
        portal = self.portal
        objects = {
            name: [
                public_object(portal, o, ALL_PROPERTIES)
                for o in sorted(portal.objects[name].values(), key=lambda o: int(o.id))
            ]
            for name in OBJECT_TYPES
        }
        associations = [
            {
                "fromObjectType": from_type,
                "fromObjectId": from_id,
                "toObjectType": to_type,
                "toObjectId": to_id,
                "typeIds": sorted(tids),
            }
            for (from_type, from_id), targets in sorted(portal.links.items())
            for to_type, ids in sorted(targets.items())
            for to_id, tids in sorted(ids.items())
            if tids
        ]
        return {
            "portalId": self.portal_id,
            "appId": self.app_id,
            "objects": objects,
            "associations": associations,
            "owners": list(portal.owners.values()),
            "subscriptions": [subscription_body(s) for s in portal.subscriptions.values()],
            "settings": portal.settings,
        }

    def credentials(self) -> dict[str, str]:
        return {
            "access_token": self.access_token,
            "developer_api_key": self.developer_api_key,
            "client_secret": self.client_secret,
            "app_id": str(self.app_id),
            "portal_id": str(self.portal_id),
        }

    def webhook_secrets(self) -> list[str]:
        """HubSpot signs its app's deliveries with the app's client secret."""
        return [*super().webhook_secrets(), self.client_secret]

    def config_table(self) -> dict[str, Any]:
        return {
            "access_token": SandboxSecret(self.access_token),
            "tier_property": "tier",
            "arr_property": "annualrevenue",
            "renewal_date_property": "renewal_date",
            "owner_property": "hubspot_owner_id",
            "portal_id": str(self.portal_id),
        }

    def authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        allowed = scheme.lower() == "bearer" and secrets.compare_digest(token.strip(), self.access_token)
        if request.path.startswith("/webhooks/v3/") and not allowed:
            key = request.args.get("hapikey", "")
            allowed = bool(key) and secrets.compare_digest(key, self.developer_api_key)
        if not allowed:
            return self.error_response(401, errors.AUTH_MESSAGE)
        self._count_call()
        return None

    def error_response(self, status: int, message: str, *, retry_after: float | None = None) -> Response:
        headers = errors.retry_after_header(retry_after)
        if status == 429:
            return self.json(errors.rate_limit_body(), 429, headers)
        if status == 401:
            return self.json(errors.error_body("INVALID_AUTHENTICATION", errors.AUTH_MESSAGE), 401, headers)
        return self.json(errors.error_body(errors.category_for(status), message), status, headers)

    def rate_limit_headers(self, limit: int, remaining: int, reset: float) -> dict[str, str]:
        window = self.rate_limit.window if self.rate_limit is not None else TEN_SECONDS
        return self._limit_headers(limit, remaining, window)

    # -- rate-limit bookkeeping -------------------------------------------------------------------------------
    def _count_call(self) -> None:
        now = self.clock()
        if now - self._window_start >= TEN_SECONDS:
            self._window_start, self._window_used = now, 0
        if now - self._day_start >= DAY:
            self._day_start, self._day_used = now, 0
        self._window_used += 1
        self._day_used += 1

    def _limit_headers(self, limit: int, remaining: int, window: float) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Max": str(limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, remaining)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(window * 1000)),
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self._day_used)),
        }

    # -- requests ---------------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        """Answer one request; after a vendor call, add the nominal rate-limit headers and deliver webhooks."""
        if request.path.startswith(HUBSPOT_ADMIN_PREFIX):
            return self._hubspot_admin(request)
        return super().handle(request)

    def handle_call(self, request: Request) -> Response:
        """The framework's handling, then the nominal rate-limit headers and the webhooks of what changed."""
        with self.lock:
            response = super().handle_call(request)
            if self.rate_limit is None and response.status_code != 401:
                nominal = self._limit_headers(self.interval_limit, self.interval_limit - self._window_used, TEN_SECONDS)
                for key, value in nominal.items():
                    response.headers.setdefault(key, value)
            self.deliver(self.portal.take_changes())
        return response

    def _hubspot_admin(self, request: Request) -> Response:
        action = request.path[len(HUBSPOT_ADMIN_PREFIX) :].strip("/")
        try:
            body = self.read_json(request) if request.method == "POST" else None
            if not isinstance(body, Mapping):
                raise errors.invalid("expected a JSON object")
            if action == "ui-update" and request.method == "POST":
                props = body.get("properties")
                if not isinstance(props, Mapping):
                    raise errors.invalid("properties is required")
                obj = self.ui_update(str(body.get("objectType", "")), str(body.get("id", "")), props)
                return self.json(public_object(self.portal, obj, ALL_PROPERTIES))
            if action == "properties" and request.method == "POST":
                with self.lock:
                    self.portal.define_property(
                        str(body.get("objectType", "")),
                        str(body.get("name", "")),
                        str(body.get("kind", "string")),
                        body.get("options") or (),
                    )
                return self.json({"ok": True})
        except VendorFault as fault:
            return self.json(fault.body, fault.status, fault.headers)
        except ValueError as exc:
            return self.json({"error": str(exc)}, 400)
        return self.json({"error": f"unknown admin call {request.method} {request.path}"}, 404)

    # -- what tests and the demo call directly ----------------------------------------------------------------
    def ui_update(self, object_type: str, object_id: str, properties: Mapping[str, Any]) -> CrmObject:
        """Change a record as a person in HubSpot's UI would; subscribed changes go out as ``CRM_UI`` events."""
        with self.lock:
            obj = self.portal.update(resolve_type(object_type), object_id, properties, source=CRM_UI)
            self.deliver(self.portal.take_changes())
            return obj

    def define_property(self, object_type: str, name: str, kind: str = "string", options: Sequence[str] = ()) -> None:
        """Add a custom property to an object type (Settings > Properties in HubSpot)."""
        with self.lock:
            self.portal.define_property(object_type, name, kind, options)

    def subscribe(self, event_type: str, property_name: str | None = None, *, object_type_id: str | None = None) -> int:
        """Add an active webhook subscription (``contact.propertyChange`` + property, ``ticket.creation``, or a
        generic ``object.propertyChange`` with ``object_type_id`` ``0-5``)."""
        with self.lock:
            return self.portal.add_subscription(
                event_type, property_name, active=True, object_type_id=object_type_id
            ).id

    def delivery_targets(self) -> list[WebhookTarget]:
        """Where webhooks go: the framework's targets, then the app's ``targetUrl`` signed with its secret."""
        targets = list(self.webhook_targets)
        settings = self.portal.settings
        if settings and all(t.url != settings["targetUrl"] for t in targets):
            targets.append(WebhookTarget(url=settings["targetUrl"], secret=self.client_secret))
        return targets

    def deliver(self, changes: Sequence[Change]) -> int:
        """Send the events the subscriptions report for ``changes``; returns how many events went out."""
        if not changes:
            return 0
        targets = self.delivery_targets()
        events = events_for(
            changes,
            self.portal.subscriptions.values(),
            portal_id=self.portal_id,
            app_id=self.app_id,
            first_event_id=self._next_event_id,
            ui_source_id=f"userId:{self.ui_user_id}",
        )
        if not events or not targets:
            return 0
        self._next_event_id += len(events)
        stamp = int(self.clock() * 1000)
        for body in batches(events):
            for target in targets:
                self.emit_webhook(body, delivery_headers(target.secret, target.url, body, stamp), target)
        return len(events)

    def sent_events(self) -> list[dict[str, Any]]:
        """Every event sent so far, once each however many targets it went to (for tests and the demo)."""
        events: dict[int, dict[str, Any]] = {}
        for delivery in self.webhooks_sent:
            for event in json.loads(delivery["body"]):
                events.setdefault(event["eventId"], event)
        return [events[k] for k in sorted(events)]
