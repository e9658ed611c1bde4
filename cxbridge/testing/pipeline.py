"""The served pipeline for end-to-end tests: emulators whose signed webhooks reach a running ``cxbridge serve``.

The way cxbridge's own end-to-end tests run the whole loop over loopback HTTP (emulator → signed webhook →
receiver → queue → workers → the emulators' state), for a plugin's tests to do the same:

- ``give_webhook_targets(vendors)``: one webhook target with a fresh signing secret on each emulator, before
  ``write_config`` (which writes those secrets into the config); the target's URL is a placeholder until the
  receiver listens.
- ``served_pipeline(vendors, runtime, workers=2)``: ``serve`` for the Runtime (a context manager), each emulator's
  first target pointed at its webhook URL; ``workers=0`` when the test drains the queue itself.
- ``settled(vendors, runtime)``: every queued webhook was sent and no job is ready or running.
- ``wait_until(what, done)``: poll a condition, failing the test with ``what`` when it does not come true.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ..runtime import Runtime
from ..sandbox.base import WebhookTarget
from ..sandbox.modes import Vendors
from ..webhooks.serve import RunningServer, serving

# The discard port: nothing listens there, so a delivery sent before the receiver is up fails instead of landing.
PLACEHOLDER_URL = "http://127.0.0.1:9/"


def give_webhook_targets(vendors: Vendors, systems: Iterable[str] | None = None) -> None:
    """One webhook target with a fresh secret on each emulator (all, or ``systems``), its URL a placeholder."""
    for name in systems if systems is not None else vendors:
        vendors[name].webhook_targets = [WebhookTarget(url=PLACEHOLDER_URL, secret=secrets.token_urlsafe(24))]


@contextmanager
def served_pipeline(vendors: Vendors, runtime: Runtime, *, workers: int = 2, **kwargs: Any) -> Iterator[RunningServer]:
    """``serve`` for ``runtime`` with ``workers`` worker threads, each emulator's first webhook target pointed at
    its system's webhook URL; stopped on leaving. Other keywords go to ``cxbridge.webhooks.serve.serving``."""
    with serving(runtime, workers=workers, **kwargs) as running:
        for name in vendors:
            if vendors[name].webhook_targets:
                vendors[name].webhook_targets[0].url = running.webhook_url(name)
        yield running


def settled(vendors: Vendors, runtime: Runtime) -> bool:
    """Every webhook the emulators queued was sent, and no job of ``runtime``'s store is ready or running."""
    if not all(vendors[name].wait_for_webhooks(timeout=0.01) for name in vendors):
        return False
    depth = runtime.store.queue_depth()
    return depth["ready"] == 0 and depth["leased"] == 0


def wait_until(what: str, done: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> None:
    """Poll ``done`` until it is true; an ``AssertionError`` naming ``what`` when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(interval)
