"""Verifies Jira admin-webhook deliveries and turns them into Events.

Jira (Cloud admin webhooks with a secret, and Data Center) signs the raw body WebSub-style:
``X-Hub-Signature: sha256=<lowercase hex HMAC-SHA256(secret, raw body)>``. The method prefix is parsed and
only ``sha256`` is accepted. There is no timestamp, so replay protection is deduplication on
``X-Atlassian-Webhook-Identifier``, which stays the same across Jira's retries; it is the Event id.

Whatever the headers or the body hold, ``verify_jira`` raises only ``WebhookRejected``: status 401 for a
missing or wrong signature (or no usable secret: it fails closed), 400 for a malformed delivery. Header
count and lengths are capped, and signatures are compared in constant time against every active secret
(a list, so a secret can be rotated without downtime).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cxbridge.sdk import Event, Ref, Secret, WebhookRejected, check_hmac_sha256, only_rejections, signing_keys

__all__ = ["ID_HEADER", "SIGNATURE_HEADER", "sign", "verify_jira"]

SYSTEM = "jira"
SIGNATURE_HEADER = "X-Hub-Signature"
ID_HEADER = "X-Atlassian-Webhook-Identifier"

MAX_HEADERS = 100
"""More headers than this is not a Jira delivery."""
MAX_HEADER_LENGTH = 8192
"""No header value, and no header name, may be longer (characters)."""
MAX_SIGNATURE_LENGTH = 200
"""``sha256=`` and 64 hex digits is 71 characters; anything this long is malformed."""
MAX_ID_LENGTH = 200
MAX_BODY = 1024 * 1024
"""The receiver reads at most 1 MiB; the verifier refuses anything larger on its own too."""

_SINGLE = frozenset({SIGNATURE_HEADER.lower(), ID_HEADER.lower()})
_METHOD = re.compile(r"[A-Za-z0-9-]{1,20}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_ID = re.compile(r"[\x21-\x7e]+")


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Jira sends for ``body`` signed with ``secret`` (``sha256=<hex>``)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_jira(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[Secret],
    now: float,
) -> list[Event]:
    """Check one Jira delivery against the active secrets and return its Event.

    Raises ``WebhookRejected`` only: 401 for a missing or bad signature, 400 for a malformed delivery.
    """
    with only_rejections(SYSTEM):
        return _verify(headers=headers, body=body, secrets=secrets, now=now)


def _verify(*, headers: Mapping[str, str], body: bytes, secrets: Sequence[Secret], now: float) -> list[Event]:
    lowered = _headers(headers)
    if not isinstance(body, bytes | bytearray) or len(body) > MAX_BODY:
        raise WebhookRejected("jira: body missing or larger than 1 MiB", status=400)
    body = bytes(body)

    header = lowered.get(SIGNATURE_HEADER.lower())
    if header is None or not header.strip():
        raise WebhookRejected(f"jira: no {SIGNATURE_HEADER} header", status=401)
    digest = _parse_signature(header)
    keys = signing_keys(
        secrets, system=SYSTEM, missing="no webhook secret is configured; unsigned deliveries are refused"
    )
    check_hmac_sha256(keys, body, [digest], system=SYSTEM)

    delivery_id = lowered.get(ID_HEADER.lower())
    if not delivery_id or len(delivery_id) > MAX_ID_LENGTH or not _ID.fullmatch(delivery_id):
        raise WebhookRejected(f"jira: missing or malformed {ID_HEADER} header", status=400)
    try:
        payload = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise WebhookRejected("jira: the body is not JSON", status=400) from None
    if not isinstance(payload, dict):
        raise WebhookRejected("jira: the body is not a JSON object", status=400)
    kind = payload.get("webhookEvent")
    if not isinstance(kind, str) or not kind or len(kind) > 200:
        raise WebhookRejected("jira: the payload has no webhookEvent", status=400)

    return [
        Event(
            id=delivery_id,
            system=SYSTEM,
            kind=kind,
            subject=_subject(payload, delivery_id),
            actor=_actor(payload.get("user")),
            payload=payload,
            received_at=datetime.fromtimestamp(now, UTC),
            occurred_at=_occurred_at(payload.get("timestamp")),
        )
    ]


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lowercased, with the count and the lengths capped; 400 when anything is off.

    ``headers`` may repeat a name (a multi-dict's ``items()``); the signature and the id must not repeat.
    """
    items = list(headers.items())
    if len(items) > MAX_HEADERS:
        raise WebhookRejected("jira: too many headers", status=400)
    out: dict[str, str] = {}
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            raise WebhookRejected("jira: malformed header", status=400)
        if len(name) > MAX_HEADER_LENGTH or len(value) > MAX_HEADER_LENGTH:
            raise WebhookRejected("jira: header too long", status=400)
        key = name.lower()
        if key in out and key in _SINGLE:  # a signature or id twice: ambiguous, never guess which one counts
            raise WebhookRejected(f"jira: duplicate {name} header", status=400)
        out.setdefault(key, value)
    return out


def _parse_signature(header: str) -> bytes:
    """The digest of a ``sha256=<hex>`` header; 400 when malformed, 401 for another method."""
    if len(header) > MAX_SIGNATURE_LENGTH or not header.isascii():
        raise WebhookRejected(f"jira: malformed {SIGNATURE_HEADER} header", status=400)
    method, sep, value = header.strip().partition("=")
    if not sep or not _METHOD.fullmatch(method):
        raise WebhookRejected(f"jira: malformed {SIGNATURE_HEADER} header", status=400)
    if method.lower() != "sha256":
        raise WebhookRejected(f"jira: unsupported signature method {method!r} (only sha256)", status=401)
    if not _HEX64.fullmatch(value):
        raise WebhookRejected(f"jira: malformed {SIGNATURE_HEADER} header", status=400)
    return bytes.fromhex(value)


def _subject(payload: dict[str, Any], delivery_id: str) -> Ref:
    """The issue the event is about; a released version or, for other events, the delivery itself."""
    for kind in ("issue", "version", "project"):
        node = payload.get(kind)
        if isinstance(node, dict):
            ident = node.get("id")
            if isinstance(ident, str | int) and not isinstance(ident, bool) and str(ident):
                return Ref(SYSTEM, kind, str(ident))
    return Ref(SYSTEM, "delivery", delivery_id)


def _actor(user: Any) -> str | None:
    """``accountId`` on Cloud, ``name`` (or ``key``) on Data Center."""
    if not isinstance(user, dict):
        return None
    for key in ("accountId", "name", "key"):
        value = user.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _occurred_at(timestamp: Any) -> datetime | None:
    """The payload's ``timestamp`` (epoch milliseconds) as an aware datetime, or None when absent or odd."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        return None
    try:
        return datetime.fromtimestamp(timestamp / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
