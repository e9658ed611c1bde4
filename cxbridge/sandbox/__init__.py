"""Stateful emulators of the vendor APIs, in-process (through ``responses``) or as loopback servers.

with cxbridge.sandbox.mock_vendors(seed="demo") as vendors:
    ...  # requests to vendors.base_url("zendesk") reach the Zendesk emulator
"""

from __future__ import annotations

from .base import Backend, Fault, RateLimit, SandboxSecret, VendorFault, WebhookTarget
from .modes import Vendors, mock_vendors, serve_vendors, write_config

__all__ = [
    "Backend",
    "Fault",
    "RateLimit",
    "SandboxSecret",
    "VendorFault",
    "Vendors",
    "WebhookTarget",
    "mock_vendors",
    "serve_vendors",
    "write_config",
]
