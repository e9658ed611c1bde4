"""Helpers for webhook verifiers: verifying an emulator's deliveries, malformed headers and single mutations."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..models import Event
    from ..webhooks.verify import Verifier


def verify_deliveries(verify: Verifier, deliveries: Iterable[Mapping[str, Any]], secret: str) -> list[Event]:
    """Webhook deliveries an emulator sent (``Backend.webhooks_sent`` items), verified as the receiver would.

    ``verify`` is the plugin's verifier (``verify_zendesk``...), ``secret`` the signing secret; a delivery that
    does not verify raises as the verifier does.
    """
    from ..secrets import Secret

    events: list[Event] = []
    for sent in deliveries:
        events += verify(
            method="POST",
            url=sent["url"],
            headers=sent["headers"],
            body=sent["body"].encode("utf-8"),
            secrets=[Secret(secret)],
            now=time.time(),
        )
    return events


MALFORMED_SIGNATURE_HEADERS = ("v1abc", "v1,a,b", "v1,abc", "v1,é", " ", "", "t=abc,v1=x", "t=1,v1=é")
"""RELIABILITY.md section 7's malformed signature headers: a verifier answers each with ``WebhookRejected`` only."""


def byte_flips(data: bytes) -> Iterator[bytes]:
    """``data`` with the lowest bit of one byte flipped, for each byte in turn (a signature must reject each)."""
    for i in range(len(data)):
        yield data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def character_changes(text: str) -> Iterator[str]:
    """``text`` with one character replaced by ``1`` (``2`` where it is ``1``), for each character in turn."""
    for i in range(len(text)):
        yield text[:i] + ("1" if text[i] != "1" else "2") + text[i + 1 :]
