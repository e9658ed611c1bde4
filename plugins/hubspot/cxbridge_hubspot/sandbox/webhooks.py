"""HubSpot's webhook deliveries as the emulator sends them: batched event arrays, signed with signature v3.

``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(client secret, method + URI + body + timestamp)) with the
timestamp in milliseconds in ``X-HubSpot-Request-Timestamp`` (HubSpot/hubspot-api-python ``utils/signature.py``).
This is the sender's side, written independently of the plugin's verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .models import CRM_UI, INTEGRATION, Change, Subscription

MAX_EVENTS_PER_DELIVERY = 100


def sign_v3(secret: str, method: str, uri: str, body: bytes | str, timestamp: int | str) -> str:
    """The v3 signature of one request (base64 of the HMAC-SHA256 over method, URI, body and timestamp)."""
    raw = body.decode("utf-8") if isinstance(body, bytes) else body
    source = f"{method}{uri}{raw}{timestamp}".encode()
    digest = hmac.new(secret.encode("utf-8"), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def delivery_headers(secret: str, url: str, body: bytes, timestamp_ms: int) -> dict[str, str]:
    """The headers of one signed POST delivery to ``url``."""
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, timestamp_ms),
        "X-HubSpot-Signature-Version": "v3",
        "X-HubSpot-Request-Timestamp": str(timestamp_ms),
    }


def events_for(
    changes: Iterable[Change],
    subscriptions: Iterable[Subscription],
    *,
    portal_id: int,
    app_id: int,
    first_event_id: int,
    ui_source_id: str,
) -> list[dict[str, Any]]:
    """The events that the active subscriptions report for a list of changes, numbered from ``first_event_id``."""
    subs = list(subscriptions)
    events: list[dict[str, Any]] = []
    for change in changes:
        for sub in subs:
            if not sub.matches(change):
                continue
            event: dict[str, Any] = {
                "eventId": first_event_id + len(events),
                "subscriptionId": sub.id,
                "portalId": portal_id,
                "appId": app_id,
                "occurredAt": int(change.occurred_at * 1000),
                "subscriptionType": sub.event_type,
                "attemptNumber": 0,
                "objectId": int(change.object_id),
                "changeSource": change.source,
                "sourceId": str(app_id) if change.source == INTEGRATION else ui_source_id,
            }
            if sub.generic:  # generic subscriptions name the object type by id
                event["objectTypeId"] = change.object_type.type_id
            if change.kind == "propertyChange":
                event["propertyName"] = change.property_name
                event["propertyValue"] = change.value
            elif change.kind == "creation":
                event["changeFlag"] = "NEW"
            elif change.kind == "deletion":
                event["changeFlag"] = "DELETED"
            events.append(event)
    return events


def batches(events: Sequence[Mapping[str, Any]], size: int = MAX_EVENTS_PER_DELIVERY) -> Iterator[bytes]:
    """Delivery bodies: JSON arrays of at most ``size`` events."""
    for start in range(0, len(events), size):
        yield json.dumps(list(events[start : start + size]), separators=(",", ":")).encode("utf-8")


__all__ = ["CRM_UI", "INTEGRATION", "batches", "delivery_headers", "events_for", "sign_v3"]
