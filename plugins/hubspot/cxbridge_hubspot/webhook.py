"""Verifies HubSpot webhook deliveries (signature v3) and turns each event of the batch into an Event.

Signature (developers.hubspot.com request validation; HubSpot/hubspot-api-python ``utils/signature.py``;
VENDOR-APIS.md 4.2): ``X-HubSpot-Signature-v3 = base64(HMAC-SHA256(client secret, method + uri + body +
timestamp))`` with ``X-HubSpot-Request-Timestamp`` in epoch **milliseconds**. ``uri`` is the full URL HubSpot
called, with the escapes HubSpot's documentation lists decoded (``URI_DECODES``). Deliveries signed only
with the legacy v1/v2 schemes (``X-HubSpot-Signature``: a plain SHA-256 with no timestamp) are rejected.

Choices: the timestamp must be within ``TOLERANCE_SECONDS`` (300 s) of now in the past (HubSpot's rule) and
also in the future; a timestamp in seconds reads as a 1970 time in milliseconds and is rejected. Each
header is at most ``MAX_HEADER_BYTES``; at most ``MAX_SIGNATURES`` signatures (space/comma separated) are
tried against every active secret (rotation). The body is a JSON array of events; each becomes one Event.

Deduplication: HubSpot documents ``eventId`` as "not guaranteed to be unique", so an Event's id (the inbox's
deduplication key) is ``eventId``, ``subscriptionId``, the object's id and ``occurredAt`` joined by ``-``
(``dedupe_id``): a redelivery (same four values, ``attemptNumber`` aside) is a duplicate, two different
events that share an ``eventId`` are not. A repeated event within one batch yields one Event.

Generic subscriptions (``object.creation``, ``object.propertyChange``, ``object.deletion``,
``object.associationChange``, ...) name the object type in ``objectTypeId`` (``0-5`` tickets, ``0-2``
companies; association changes in ``fromObjectTypeId``): the Event's subject is typed like the classic
``ticket.*`` / ``company.*`` event's, and ``classic_kind`` gives the classic name the plugin interprets.

Everything that goes wrong raises ``WebhookRejected``: 401 for a missing, legacy-only or wrong signature or
a timestamp outside the window; 400 for a malformed delivery.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cxbridge.sdk import (
    MAX_HEADER_BYTES,
    MAX_SIGNATURES,
    Event,
    Ref,
    Secret,
    WebhookRejected,
    base64_sha256_signatures,
    check_hmac_sha256,
    header_text,
    only_rejections,
    signing_keys,
)

SYSTEM = "hubspot"

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
LEGACY_SIGNATURE_HEADER = "X-HubSpot-Signature"

TOLERANCE_SECONDS = 300
"""HubSpot's ``MAX_ALLOWED_TIMESTAMP``: older deliveries (and ones this far in the future) are rejected."""
MAX_EVENTS = 1000
MAX_ID_LENGTH = 200

URI_DECODES = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
"""The escapes HubSpot's v3 validation page says to decode in the URI before signing (case-insensitive)."""

OBJECT_TYPE_IDS = {"0-1": "contact", "0-2": "company", "0-3": "deal", "0-5": "ticket"}
"""HubSpot's object type ids for the generic ``object.*`` subscriptions."""

_URI_ESCAPE = re.compile("|".join(re.escape(k) for k in URI_DECODES), re.IGNORECASE)
_WORD = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def classic_kind(event: Event) -> str:
    """The classic subscription type an event stands for: ``object.propertyChange`` about a ticket (``0-5``) is
    ``ticket.propertyChange``; a classic type, or a generic one about an object type without a classic name, is
    returned as sent."""
    family, _, action = event.kind.partition(".")
    if family == "object" and action and event.subject.kind in OBJECT_TYPE_IDS.values():
        return f"{event.subject.kind}.{action}"
    return event.kind


def dedupe_id(item: Mapping[str, Any], object_id: str) -> str:
    """The deduplication key of one delivered event: ``eventId-subscriptionId-objectId-occurredAt``.

    HubSpot: ``eventId`` "is not guaranteed to be unique"; together with the subscription, the object and the
    time the change occurred it names one change. A missing (or null) part is left empty, never guessed.
    """
    event_id = _id_text(item.get("eventId"), "eventId")
    parts = [event_id]
    for key in ("subscriptionId", "objectId", "occurredAt"):
        value = object_id if key == "objectId" else item.get(key)
        if value is None or isinstance(value, bool | dict | list | float):
            parts.append("")
        else:
            parts.append(_id_text(value, key))
    return "-".join(parts)


def decode_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the documented %-escapes decoded, everything else left as sent."""
    return _URI_ESCAPE.sub(lambda m: URI_DECODES[m.group(0).upper()], uri)


def verify_hubspot(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[Secret],
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> list[Event]:
    """Check a HubSpot delivery's v3 signature against the active secrets and return one Event per event.

    Raises only ``WebhookRejected`` (401 bad, missing or legacy-only signature, or stale timestamp; 400
    malformed).
    """
    with only_rejections(SYSTEM):
        _check_signature(
            method=method, url=url, headers=headers, body=body, secrets=secrets, now=now, tolerance=tolerance
        )
        return _events(bytes(body), now)


def verify_hubspot_signature(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[Secret],
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> None:
    """Only the signature and timestamp checks of ``verify_hubspot`` (for any body, JSON or not)."""
    with only_rejections(SYSTEM):
        _check_signature(
            method=method, url=url, headers=headers, body=body, secrets=secrets, now=now, tolerance=tolerance
        )


def _check_signature(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[Secret],
    now: float,
    tolerance: float,
) -> None:
    if not isinstance(body, bytes | bytearray):
        raise WebhookRejected("hubspot: the body is not bytes", status=400)
    body = bytes(body)
    if not isinstance(method, str) or not _WORD.match(method) or not isinstance(url, str) or len(url) > 8192:
        raise WebhookRejected("hubspot: unusable method or URL", status=400)
    signature_text = _header(headers, SIGNATURE_HEADER)
    if not signature_text or not signature_text.strip():
        legacy = _header(headers, LEGACY_SIGNATURE_HEADER)
        why = "only a legacy v1/v2 signature was sent" if legacy else f"missing {SIGNATURE_HEADER}"
        raise WebhookRejected(f"hubspot: {why}; v3 signatures are required", status=401)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    if timestamp is None or not timestamp.strip():
        raise WebhookRejected(f"hubspot: missing {TIMESTAMP_HEADER}", status=401)
    timestamp = timestamp.strip()
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 16:
        raise WebhookRejected(f"hubspot: {TIMESTAMP_HEADER} is not a number of milliseconds", status=400)
    candidates = base64_sha256_signatures(signature_text, system=SYSTEM, max_count=MAX_SIGNATURES)
    keys = signing_keys(secrets, system=SYSTEM, missing="no active client secret is configured")
    message = method.upper().encode("ascii") + decode_uri(url).encode("utf-8") + body + timestamp.encode("ascii")
    check_hmac_sha256(keys, message, candidates, system=SYSTEM)
    if abs(now - int(timestamp) / 1000) > tolerance:
        raise WebhookRejected("hubspot: the request timestamp is outside the accepted window", status=401)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return header_text(headers, name, system=SYSTEM, max_bytes=MAX_HEADER_BYTES)


def _events(body: bytes, now: float) -> list[Event]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected("hubspot: the body is not JSON", status=400) from None
    if not isinstance(payload, list) or not payload:
        raise WebhookRejected("hubspot: the body is not a JSON array of events", status=400)
    if len(payload) > MAX_EVENTS:
        raise WebhookRejected(f"hubspot: more than {MAX_EVENTS} events in one delivery", status=400)
    received = datetime.fromtimestamp(now, tz=UTC)
    events: list[Event] = []
    seen: set[str] = set()
    for item in payload:
        event = _event(item, received)
        if event.id in seen:
            continue
        seen.add(event.id)
        events.append(event)
    return events


def _event(item: Any, received: datetime) -> Event:
    if not isinstance(item, dict):
        raise WebhookRejected("hubspot: an event is not a JSON object", status=400)
    kind = item.get("subscriptionType")
    if not isinstance(kind, str) or not _WORD.match(kind):
        raise WebhookRejected("hubspot: an event has no readable subscriptionType", status=400)
    prefix = kind.split(".", 1)[0]
    object_id = item.get("objectId")
    if prefix == "object":
        type_id = item.get("objectTypeId") or item.get("fromObjectTypeId")
        object_type = OBJECT_TYPE_IDS.get(str(type_id), str(type_id)) if type_id is not None else "object"
    else:
        object_type = prefix
    if object_id is None:
        object_id = item.get("fromObjectId")
    subject = Ref(SYSTEM, _id_text(object_type, "object type"), _id_text(object_id, "objectId"))
    event_id = dedupe_id(item, subject.id)
    source = item.get("sourceId")
    actor = source if isinstance(source, str | int) and not isinstance(source, bool) else None
    occurred = item.get("occurredAt")
    occurred_at: datetime | None = None
    if isinstance(occurred, int) and not isinstance(occurred, bool) and 0 <= occurred < 10**14:
        occurred_at = datetime.fromtimestamp(occurred / 1000, tz=UTC)
    return Event(
        id=event_id,
        system=SYSTEM,
        kind=kind,
        subject=subject,
        actor=None if actor is None else str(actor),
        payload=item,
        received_at=received,
        occurred_at=occurred_at,
    )


def _id_text(value: Any, what: str) -> str:
    if value is None or isinstance(value, bool | dict | list | float):
        raise WebhookRejected(f"hubspot: an event has no usable {what}", status=400)
    text = str(value).strip()
    if not text or len(text) > MAX_ID_LENGTH or not text.isprintable() or ":" in text:
        raise WebhookRejected(f"hubspot: an event has no usable {what}", status=400)
    return text
