"""Verifies AcmeDesk webhook deliveries and turns them into Events.

AcmeDesk signs the raw body: ``X-Acme-Signature: <lowercase hex HMAC-SHA256(secret as UTF-8, raw body)>`` (several
signatures may be sent comma-separated while the account rotates its secret). ``X-Acme-Delivery`` is a unique id
per delivery that stays the same when AcmeDesk retries it: it is the Event id, so a redelivery is a duplicate.
There is no timestamp; replay protection is that deduplication.

The body::

    {"event": "ticket.tag_added" | "comment.created", "occurred_at": "2026-01-01T10:00:00.000000Z",
     "actor": {"id": 901, "name": "Alex Agent", "email": "alex@acmedesk.example"},
     "ticket": {"id": 1, "subject": ..., "status": ..., "tags": [...], "custom_fields": {"issue_key": ...}, ...},
     "tag": "escalated_to_engineering",                                   # ticket.tag_added
     "comment": {"id": 7, "body": "...", "public": false, "author": {...}}}  # comment.created

Everything that goes wrong raises ``WebhookRejected``: 401 for a missing or wrong signature (or no usable secret),
400 for a malformed delivery.
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
    check_hmac_sha256,
    header_text,
    only_rejections,
    parse_datetime,
    signing_keys,
)

SYSTEM = "acmedesk"
SIGNATURE_HEADER = "X-Acme-Signature"
DELIVERY_HEADER = "X-Acme-Delivery"
EVENTS = ("ticket.tag_added", "comment.created")
"""The event types AcmeDesk sends."""

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_DELIVERY = re.compile(r"[A-Za-z0-9._:-]{1,200}")


def verify_acmedesk(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[Secret],
    now: float,
) -> list[Event]:
    """Check an AcmeDesk delivery's signature against the active secrets and return the one Event it carries."""
    with only_rejections(SYSTEM):
        if not isinstance(body, bytes | bytearray):
            raise WebhookRejected(f"{SYSTEM}: the body is not bytes", status=400)
        raw = bytes(body)
        signature = header_text(headers, SIGNATURE_HEADER, system=SYSTEM, max_bytes=MAX_HEADER_BYTES)
        if signature is None or not signature.strip():
            raise WebhookRejected(f"{SYSTEM}: missing {SIGNATURE_HEADER}", status=401)
        parts = [p.strip() for p in signature.split(",") if p.strip()]
        if len(parts) > MAX_SIGNATURES:
            raise WebhookRejected(f"{SYSTEM}: more than {MAX_SIGNATURES} signatures", status=400)
        candidates = [bytes.fromhex(p) for p in parts if _HEX64.fullmatch(p)]
        if not candidates:
            raise WebhookRejected(f"{SYSTEM}: signature does not match", status=401)
        keys = signing_keys(secrets, system=SYSTEM, missing="no active signing secret is configured")
        check_hmac_sha256(keys, raw, candidates, system=SYSTEM)
        delivery = header_text(headers, DELIVERY_HEADER, system=SYSTEM, max_bytes=MAX_HEADER_BYTES)
        if delivery is None or not _DELIVERY.fullmatch(delivery.strip()):
            raise WebhookRejected(f"{SYSTEM}: missing or unreadable {DELIVERY_HEADER}", status=400)
        return [_event(delivery.strip(), raw, now)]


def _event(delivery: str, body: bytes, now: float) -> Event:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected(f"{SYSTEM}: the body is not JSON", status=400) from None
    if not isinstance(payload, dict):
        raise WebhookRejected(f"{SYSTEM}: the body is not a JSON object", status=400)
    kind = payload.get("event")
    if not isinstance(kind, str) or not re.fullmatch(r"[a-z_]{1,40}\.[a-z_]{1,40}", kind):
        raise WebhookRejected(f"{SYSTEM}: the event type is not readable", status=400)
    ticket = payload.get("ticket")
    ticket_id = ticket.get("id") if isinstance(ticket, dict) else None
    if isinstance(ticket_id, bool) or not isinstance(ticket_id, int | str) or not str(ticket_id).isdigit():
        raise WebhookRejected(f"{SYSTEM}: the body names no ticket", status=400)
    actor = payload.get("actor")
    actor_id: Any = actor.get("id") if isinstance(actor, dict) else None
    occurred = parse_datetime(payload.get("occurred_at"))
    return Event(
        id=delivery,
        system=SYSTEM,
        kind=kind,
        subject=Ref(SYSTEM, "ticket", str(ticket_id)),
        actor=str(actor_id) if isinstance(actor_id, int | str) and not isinstance(actor_id, bool) else None,
        payload=payload,
        received_at=datetime.fromtimestamp(now, tz=UTC),
        occurred_at=occurred,
    )
