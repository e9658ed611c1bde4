"""The emulator framework: the ``Backend`` base each plugin's stateful emulator subclasses, faults, rate limits
and webhook targets. Running the installed plugins' emulators, in-process (through ``responses``) or as loopback
servers, is ``cxbridge.sandbox.modes``:

with cxbridge.sandbox.modes.mock_vendors(seed="demo") as vendors:
    ...  # requests to vendors.base_url("zendesk") reach the Zendesk emulator
"""

from __future__ import annotations

from .base import Backend, Fault, Latency, RateLimit, SandboxSecret, VendorFault, WebhookTarget

__all__ = [
    "Backend",
    "Fault",
    "Latency",
    "RateLimit",
    "SandboxSecret",
    "VendorFault",
    "WebhookTarget",
]
