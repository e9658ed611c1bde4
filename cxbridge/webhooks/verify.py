"""What a webhook verifier is: raw delivery in, Events out, one error type for everything else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

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
