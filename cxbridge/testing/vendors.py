"""The emulators for a plugin's tests: run its ``Backend`` (and the other plugins') in-process or on loopback.

These are the sandbox's own entry points (``cxbridge.sandbox.modes``), re-exported for plugin authors:

- ``mock_vendors(systems, seed=..., backends=..., passthru=...)``: a context manager that routes every request
  for the emulators' base URLs into them, in-process (through ``responses``); it yields ``Vendors``.
  ``backends={"acmedesk": AcmeBackend(clock=clock)}`` runs instances the test built itself.
- ``serve_vendors(systems, seed=..., host=..., ports=...)``: each emulator as a threaded HTTP server on a loopback
  port (``ServedVendors``; use it in a ``with``), for the vendor's own client library or another process.
- ``Vendors``: the running emulators by system key (``vendors["jira"]``), ``base_url(system)``, ``calls()``,
  ``reset()``, ``seed(name)``; ``ServedVendors`` adds ``stop()``.
- ``write_config(vendors, path, extra=...)``: a ``cxbridge.toml`` whose systems point at the running emulators
  (``SandboxRuntimes`` builds Runtimes on such configs).
"""

from __future__ import annotations

from ..sandbox.modes import ServedVendors, Vendors, mock_vendors, serve_vendors, write_config

__all__ = ["ServedVendors", "Vendors", "mock_vendors", "serve_vendors", "write_config"]
