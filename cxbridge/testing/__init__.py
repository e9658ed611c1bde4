"""The public test kit for cxbridge and its plugins: ``pip install "cxbridge[testing]"``.

- ``specs``: locate and load the vendors' API descriptions and validate bodies against them (``Spec``,
  ``validate_adf``...). The descriptions are test data, never shipped: they are read from the folder named by
  ``CXBRIDGE_SPECS``, else ``../shared/specs`` beside the checkout.
- ``tools``: ``Clock`` and ``Sleeps`` stand in for time; ``Receiver`` catches webhook deliveries on a loopback
  port; ``SandboxRuntimes`` builds Runtimes on the emulators, the way the end-to-end tests do.
- ``canned``: ``CannedVendor``, ``build_connector`` and ``record_requests`` for connector tests on canned answers.
- ``webhooks``: ``verify_deliveries`` and the mutations a webhook verifier must reject.
- ``pipeline``: ``give_webhook_targets``, ``served_pipeline``, ``settled``, ``wait_until``: emulators whose signed
  webhooks reach a running ``serve``, for end-to-end tests of the whole loop.
- ``vendors``: ``mock_vendors`` and ``serve_vendors`` run the emulators in-process or on loopback ports
  (``Vendors``, ``ServedVendors``); ``write_config`` points a config at them.
- ``contracts``: suites a plugin's tests subclass (``VerifierContract``, ``SandboxBackendContract``, and for
  connectors ``ConnectorContract``, ``HelpdeskContract``, ``CRMContract``, ``TrackerContract``).
- ``fakes``: in-memory ``FakeHelpdesk``, ``FakeCRM`` and ``FakeTracker`` (no HTTP) over one ``FakeWorld`` per test
  (records, call log, ``fail_next`` fault injection); ``world.plugin()`` registers them through the real plugin
  mechanism and ``fake_runtime(tmp_path, world)`` builds a Runtime on them.
- ``pytest_plugin``: the fixtures (``clock``, ``sleeps``, ``receiver``, ``sandbox_runtimes``, ``specs``,
  ``fake_world``, ``fake_runtimes``), loaded
  by pytest through the ``pytest11`` entry point.
"""

from __future__ import annotations

import pytest

# The suites' asserts get pytest's explanations; registered before the module is first imported.
pytest.register_assert_rewrite("cxbridge.testing.contracts")

from .canned import CannedVendor, build_connector, record_requests  # noqa: E402
from .contracts import (  # noqa: E402
    ConnectorContract,
    CRMContract,
    HelpdeskContract,
    SandboxBackendContract,
    SignedDelivery,
    TimestampedVerifierContract,
    TrackerContract,
    VerifierContract,
)
from .fakes import (  # noqa: E402
    FAKE_CRM,
    FAKE_HELPDESK,
    FAKE_TRACKER,
    Call,
    FakeCRM,
    FakeHelpdesk,
    FakePlugin,
    FakeTracker,
    FakeWorld,
    fake_runtime,
)
from .pipeline import give_webhook_targets, served_pipeline, settled, wait_until  # noqa: E402
from .specs import (  # noqa: E402
    SPECS_ENV,
    Spec,
    SpecError,
    SpecsMissing,
    load_spec,
    spec_by_prefix,
    spec_files,
    specs_dir,
    validate_adf,
)
from .tools import Clock, Delivery, Receiver, SandboxRuntimes, Sleeps  # noqa: E402
from .vendors import ServedVendors, Vendors, mock_vendors, serve_vendors, write_config  # noqa: E402
from .webhooks import MALFORMED_SIGNATURE_HEADERS, byte_flips, character_changes, verify_deliveries  # noqa: E402

__all__ = [
    "FAKE_CRM",
    "FAKE_HELPDESK",
    "FAKE_TRACKER",
    "MALFORMED_SIGNATURE_HEADERS",
    "SPECS_ENV",
    "CRMContract",
    "Call",
    "CannedVendor",
    "Clock",
    "ConnectorContract",
    "Delivery",
    "FakeCRM",
    "FakeHelpdesk",
    "FakePlugin",
    "FakeTracker",
    "FakeWorld",
    "HelpdeskContract",
    "Receiver",
    "SandboxBackendContract",
    "SandboxRuntimes",
    "ServedVendors",
    "SignedDelivery",
    "Sleeps",
    "Spec",
    "SpecError",
    "SpecsMissing",
    "TimestampedVerifierContract",
    "TrackerContract",
    "Vendors",
    "VerifierContract",
    "build_connector",
    "byte_flips",
    "character_changes",
    "fake_runtime",
    "give_webhook_targets",
    "load_spec",
    "mock_vendors",
    "record_requests",
    "serve_vendors",
    "served_pipeline",
    "settled",
    "spec_by_prefix",
    "spec_files",
    "specs_dir",
    "validate_adf",
    "verify_deliveries",
    "wait_until",
    "write_config",
]
