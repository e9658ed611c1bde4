"""What a webhook verifier is: raw delivery in, Events out, one error type for everything else."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from ..errors import WebhookRejected
from ..models import Event
from ..secrets import Secret


class Verifier(Protocol):
    """Checks one raw delivery against the active secrets and returns the Events it carries.

    ``url`` is the full URL the vendor called (HubSpot signs it). Raises only ``WebhookRejected``:
    status 401 for a bad or missing signature, 400 for a malformed delivery.
    """

    def __call__(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        secrets: Sequence[Secret],
        now: float,
    ) -> list[Event]: ...


# Shared pieces of the vendors' verifiers: every one reads headers and base64 HMAC digests the same careful way.
MAX_HEADER_BYTES = 8 * 1024
MAX_SIGNATURES = 10
_SIGNATURE_SPLIT = re.compile(r"[\s,]+")


def header_text(headers: Mapping[str, str], name: str, *, system: str, max_bytes: int = MAX_HEADER_BYTES) -> str | None:
    """A header's value, looked up case-insensitively; oversized or non-text values are malformed."""
    wanted = name.lower()
    found: Any = headers.get(name)
    if found is None:
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == wanted:
                found = value
                break
    if found is None:
        return None
    if isinstance(found, bytes):
        try:
            found = found.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
            raise WebhookRejected(f"{system}: {name} is not text", status=400) from None
    if not isinstance(found, str):
        raise WebhookRejected(f"{system}: {name} is not text", status=400)
    # UTF-8 takes at most 4 bytes a character: only a value that could be over the cap is encoded to measure it
    if len(found) * 4 > max_bytes and len(found.encode("utf-8", "surrogatepass")) > max_bytes:
        raise WebhookRejected(f"{system}: {name} is longer than {max_bytes} bytes", status=400)
    return found


def base64_sha256_signatures(text: str, *, system: str, max_count: int = MAX_SIGNATURES) -> list[bytes]:
    """The decoded signatures of a header; entries that are not base64 of a SHA-256 digest never match."""
    parts = [p for p in _SIGNATURE_SPLIT.split(text.strip()) if p]
    if len(parts) > max_count:
        raise WebhookRejected(f"{system}: more than {max_count} signatures in one header", status=400)
    decoded: list[bytes] = []
    for part in parts:
        if not part.isascii():
            continue
        try:
            raw = base64.b64decode(part, validate=True)
        except (binascii.Error, ValueError):
            continue
        # only the canonical encoding of a SHA-256 digest counts (no stray padding bits or lengths)
        if len(raw) == hashlib.sha256().digest_size and base64.b64encode(raw).decode("ascii") == part:
            decoded.append(raw)
    if not decoded:
        raise WebhookRejected(f"{system}: signature does not match", status=401)
    return decoded


@contextlib.contextmanager
def only_rejections(system: str) -> Iterator[None]:
    """Lets ``WebhookRejected`` out as is and turns any other exception into a 400 (a verifier's last defence).

    Whatever a delivery holds, a verifier run inside this raises nothing but ``WebhookRejected``.
    """
    try:
        yield
    except WebhookRejected:
        raise
    except Exception:  # any surprise in the input is a malformed delivery
        raise WebhookRejected(f"{system}: malformed delivery", status=400) from None


def signing_keys(secrets: Sequence[Secret], *, system: str, missing: str) -> list[bytes]:
    """The HMAC keys of the active secrets (each secret's UTF-8 bytes); 401 ``missing`` when none is usable."""
    keys = [s.reveal().encode("utf-8") for s in secrets if isinstance(s, Secret) and s.reveal()]
    if not keys:
        raise WebhookRejected(f"{system}: {missing}", status=401)
    return keys


def check_hmac_sha256(keys: Sequence[bytes], message: bytes, candidates: Sequence[bytes], *, system: str) -> None:
    """401 unless some key's HMAC-SHA256 of ``message`` equals some candidate digest.

    Every pair is compared (no early exit on a match) so timing does not tell which secret matched.
    """
    matched = False
    for key in keys:
        expected = hmac.digest(key, message, "sha256")  # one-shot, in C: the same digest as hmac.new(...)
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookRejected(f"{system}: signature does not match", status=401)
