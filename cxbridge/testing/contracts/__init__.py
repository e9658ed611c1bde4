"""Contract suites: classes a plugin's tests subclass, each test stating one property the plugin must keep.

- ``VerifierContract``: a webhook verifier (``cxbridge.webhooks.verify.Verifier``); ``TimestampedVerifierContract``
  adds the timestamp window for a scheme that signs one.
- ``SandboxBackendContract``: an emulator (a ``cxbridge.sandbox.Backend`` subclass).
- ``ConnectorContract``: what every connector class declares (system, roles, config keys, ``supports()``) and how
  its ``interpret`` reads events; the role suites ``HelpdeskContract``, ``CRMContract`` and ``TrackerContract``
  extend it with the observable promises of ``cxbridge/connectors.py``, driven on a live connector.
- ``StoreContract``: a store backend (``cxbridge.store.Store``): links, intents, inbox, queue, fencing, entity locks,
  dead letters, audit, snapshots, checkpoints, cross-process locks.
"""

from __future__ import annotations

from .connectors import ConnectorContract, CRMContract, HelpdeskContract, TrackerContract
from .sandbox import SandboxBackendContract
from .store import StoreContract
from .verifier import SignedDelivery, TimestampedVerifierContract, VerifierContract

__all__ = [
    "CRMContract",
    "ConnectorContract",
    "HelpdeskContract",
    "SandboxBackendContract",
    "SignedDelivery",
    "StoreContract",
    "TimestampedVerifierContract",
    "TrackerContract",
    "VerifierContract",
]
