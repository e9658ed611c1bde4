"""Contract suites: classes a plugin's tests subclass, each test stating one property the plugin must keep.

- ``VerifierContract``: a webhook verifier (``cxbridge.webhooks.verify.Verifier``); ``TimestampedVerifierContract``
  adds the timestamp window for a scheme that signs one.
- ``SandboxBackendContract``: an emulator (a ``cxbridge.sandbox.Backend`` subclass).

The suites for the connector roles (``cxbridge/connectors.py``) belong here too; they are added once the role
contract being rewritten now has settled.
"""

from __future__ import annotations

from .sandbox import SandboxBackendContract
from .verifier import SignedDelivery, TimestampedVerifierContract, VerifierContract

__all__ = ["SandboxBackendContract", "SignedDelivery", "TimestampedVerifierContract", "VerifierContract"]
