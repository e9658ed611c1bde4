"""Verifies Zendesk webhook deliveries and turns them into Events.

Signature (https://developer.zendesk.com/documentation/webhooks/verifying/, VENDOR-APIS.md 4.1):
``X-Zendesk-Webhook-Signature = base64(HMAC-SHA256(key = signing secret as UTF-8 bytes,
msg = X-Zendesk-Webhook-Signature-Timestamp + raw body))``. An older copy of Zendesk's page writes body then
timestamp and its worked example only verifies that way; the current page, and production verifiers, use
timestamp then body, which is what is implemented (the old vector is kept as a documented rejection test).

Choices made here, since Zendesk documents none:

- the timestamp (ISO-8601 with a UTC offset or ``Z``) must lie within ``TOLERANCE_SECONDS`` (300 s) of now,
  in either direction; exactly 300 s is accepted, 301 s is not;
- the header may hold several signatures separated by spaces or commas (at most ``MAX_SIGNATURES``) and
  each header is at most ``MAX_HEADER_BYTES``; every active secret is tried (rotation);
- the Event id (the dedupe key) is, in order: the body's own event id (``id`` of an event-subscription
  envelope, ``event_id`` / ``id`` of a trigger payload); else the ``X-Zendesk-Webhook-Invocation-Id`` header
  (one per invocation, so two identical trigger payloads sent for two real changes are not merged); else
  ``X-Zendesk-Webhook-Id`` joined with the SHA-256 of the body (a retry has the same body).

Everything that goes wrong raises ``WebhookRejected``: 401 for a missing or wrong signature or a timestamp
outside the window, 400 for a malformed delivery (oversized or non-text headers, unreadable timestamp,
too many signatures, a body that is not a JSON object naming a ticket).
"""

from __future__ import annotations

import functools
import hashlib
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

SYSTEM = "zendesk"

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
INVOCATION_HEADER = "X-Zendesk-Webhook-Invocation-Id"
WEBHOOK_ID_HEADER = "X-Zendesk-Webhook-Id"

TOLERANCE_SECONDS = 300
"""Largest accepted distance between the signed timestamp and now, in either direction."""
MAX_ID_LENGTH = 200

EVENT_TYPE_PREFIX = "zen:event-type:"
TICKET_SUBJECT_PREFIX = "zen:ticket:"

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})$", re.ASCII)
_KIND_WORD = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def verify_zendesk(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[Secret],
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> list[Event]:
    """Check a Zendesk delivery's signature against the active secrets and return the one Event it carries.

    Raises only ``WebhookRejected`` (401 bad or missing signature or stale timestamp; 400 malformed).
    """
    with only_rejections(SYSTEM):
        _check_signature(headers=headers, body=body, secrets=secrets, now=now, tolerance=tolerance)
        return [_event(headers, bytes(body), now)]


def verify_zendesk_signature(
    *,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[Secret],
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> None:
    """Only the signature and timestamp checks of ``verify_zendesk`` (for any body, JSON or not)."""
    with only_rejections(SYSTEM):
        _check_signature(headers=headers, body=body, secrets=secrets, now=now, tolerance=tolerance)


def _check_signature(
    *, headers: Mapping[str, str], body: bytes, secrets: Sequence[Secret], now: float, tolerance: float
) -> None:
    if not isinstance(body, bytes | bytearray):
        raise WebhookRejected("zendesk: the body is not bytes", status=400)
    body = bytes(body)
    signature_text = _header(headers, SIGNATURE_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    if not signature_text or not signature_text.strip():
        raise WebhookRejected(f"zendesk: missing {SIGNATURE_HEADER}", status=401)
    if timestamp is None or not timestamp.strip():
        raise WebhookRejected(f"zendesk: missing {TIMESTAMP_HEADER}", status=401)
    signed_at = _parse_timestamp(timestamp)
    candidates = base64_sha256_signatures(signature_text, system=SYSTEM, max_count=MAX_SIGNATURES)
    keys = signing_keys(secrets, system=SYSTEM, missing="no active signing secret is configured")
    check_hmac_sha256(keys, timestamp.encode("utf-8") + body, candidates, system=SYSTEM)
    if abs(now - signed_at) > tolerance:
        raise WebhookRejected("zendesk: the signature timestamp is outside the accepted window", status=401)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return header_text(headers, name, system=SYSTEM, max_bytes=MAX_HEADER_BYTES)


def _parse_timestamp(text: str) -> float:
    return _timestamp_seconds(text.strip())


@functools.lru_cache(maxsize=256)
def _timestamp_seconds(value: str) -> float:
    """The signed timestamp in epoch seconds (cached: deliveries signed in the same second share it)."""
    if len(value) > 64 or not _TIMESTAMP.match(value):
        raise WebhookRejected(f"zendesk: {TIMESTAMP_HEADER} is not an ISO-8601 time", status=400)
    if "." in value:  # Python 3.11 reads at most 6 fractional digits: trim any beyond.
        value = re.sub(r"(\.\d{6})\d+", r"\1", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise WebhookRejected(f"zendesk: {TIMESTAMP_HEADER} is not an ISO-8601 time", status=400) from None
    return parsed.timestamp()


def _event(headers: Mapping[str, str], body: bytes, now: float) -> Event:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected("zendesk: the body is not JSON", status=400) from None
    if not isinstance(payload, dict):
        raise WebhookRejected("zendesk: the body is not a JSON object", status=400)
    received = datetime.fromtimestamp(now, tz=UTC)
    if isinstance(payload.get("type"), str) and payload["type"].startswith(EVENT_TYPE_PREFIX):
        return _envelope_event(payload, headers, body, received)
    return _trigger_event(payload, headers, body, received)


def _envelope_event(payload: dict[str, Any], headers: Mapping[str, str], body: bytes, received: datetime) -> Event:
    """An event-subscription delivery.

    The envelope: ``{type: "zen:event-type:…", id, time, subject: "zen:ticket:<id>", detail, event}``.
    """
    kind = payload["type"][len(EVENT_TYPE_PREFIX) :]
    if not _KIND_WORD.match(kind):
        raise WebhookRejected("zendesk: the event type is not readable", status=400)
    subject = payload.get("subject")
    raw_detail = payload.get("detail")
    detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
    ticket_id: Any = None
    if isinstance(subject, str) and subject.startswith(TICKET_SUBJECT_PREFIX):
        ticket_id = subject[len(TICKET_SUBJECT_PREFIX) :]
    elif kind.startswith("ticket."):
        ticket_id = detail.get("id")
    if ticket_id is not None:
        ref = Ref(SYSTEM, "ticket", _id_text(ticket_id, "ticket id"))
    elif isinstance(subject, str) and subject.startswith("zen:") and subject.count(":") == 2:
        _, object_kind, object_id = subject.split(":")
        ref = Ref(SYSTEM, _id_text(object_kind, "subject kind"), _id_text(object_id, "subject id"))
    else:
        raise WebhookRejected("zendesk: the event names no subject", status=400)
    actor = detail.get("actor_id")
    return Event(
        id=_event_id(payload.get("id"), headers, body),
        system=SYSTEM,
        kind=kind,
        subject=ref,
        actor=None if actor is None else str(actor),
        payload=payload,
        received_at=received,
        occurred_at=_time(payload.get("time")),
    )


def _trigger_event(payload: dict[str, Any], headers: Mapping[str, str], body: bytes, received: datetime) -> Event:
    """A trigger/automation delivery: a JSON template the admin wrote.

    For example ``{"ticket": {"id", "tags"}, "event": "tag_added"}``.
    """
    ticket = payload.get("ticket")
    ticket_id: Any = None
    if isinstance(ticket, dict):
        ticket_id = ticket.get("id")
    elif "ticket_id" in payload:
        ticket_id = payload.get("ticket_id")
    if ticket_id is None or isinstance(ticket_id, bool | dict | list):
        raise WebhookRejected("zendesk: the body names no ticket", status=400)
    raw_kind = payload.get("event") or payload.get("type") or "updated"
    if not isinstance(raw_kind, str) or not _KIND_WORD.match(raw_kind):
        raise WebhookRejected("zendesk: the event kind is not readable", status=400)
    kind = raw_kind if "." in raw_kind else f"ticket.{raw_kind}"
    ticket_map = ticket if isinstance(ticket, dict) else {}
    actor: Any = None
    for source, key in (
        (payload, "actor_id"),
        (payload, "updater_id"),
        (ticket_map, "updater_id"),
        (ticket_map, "actor_id"),
    ):
        if source.get(key) is not None:
            actor = source[key]
            break
    current_user = payload.get("current_user")
    if actor is None and isinstance(current_user, dict) and current_user.get("id") is not None:
        actor = current_user["id"]
    body_id = payload.get("event_id", payload.get("id"))
    return Event(
        id=_event_id(body_id, headers, body),
        system=SYSTEM,
        kind=kind,
        subject=Ref(SYSTEM, "ticket", _id_text(ticket_id, "ticket id")),
        actor=None if actor is None or isinstance(actor, dict | list) else str(actor),
        payload=payload,
        received_at=received,
        occurred_at=_time(payload.get("time") or payload.get("occurred_at") or ticket_map.get("updated_at")),
    )


def _event_id(body_id: Any, headers: Mapping[str, str], body: bytes) -> str:
    if body_id is not None and not isinstance(body_id, bool | dict | list) and str(body_id).strip():
        return _id_text(body_id, "event id")
    invocation = _header(headers, INVOCATION_HEADER)
    if invocation and invocation.strip():
        return "invocation:" + _id_text(invocation.strip(), INVOCATION_HEADER)
    webhook = _header(headers, WEBHOOK_ID_HEADER)
    digest = hashlib.sha256(body).hexdigest()
    if webhook and webhook.strip():
        return f"webhook:{_id_text(webhook.strip(), WEBHOOK_ID_HEADER)}:{digest}"
    return f"sha256:{digest}"


def _id_text(value: Any, what: str) -> str:
    """An identifier from the delivery as text: printable, bounded, and (for ticket ids) digits only."""
    if isinstance(value, bool | dict | list | float):
        raise WebhookRejected(f"zendesk: the {what} is not usable", status=400)
    text = str(value).strip()
    if not text or len(text) > MAX_ID_LENGTH or not text.isprintable():
        raise WebhookRejected(f"zendesk: the {what} is not usable", status=400)
    if what == "ticket id" and not (text.isascii() and text.isdigit()):
        raise WebhookRejected("zendesk: the ticket id is not a number", status=400)
    return text


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
