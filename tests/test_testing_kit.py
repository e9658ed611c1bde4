"""The test kit for plugin authors (``cxbridge.testing``): what it ships, its pytest plugin, its contract suites."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests

import cxbridge.testing
from cxbridge.testing import Clock, Receiver, SandboxRuntimes, Sleeps, Spec
from cxbridge.testing import pytest_plugin as kit_plugin

pytest_plugins = ("pytester",)

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def kit_modules() -> list[str]:
    """Every module of the kit, packages included."""
    found = ["cxbridge.testing"]
    for info in pkgutil.walk_packages(cxbridge.testing.__path__, "cxbridge.testing."):
        found.append(info.name)
    return found


# -- packaging -----------------------------------------------------------------------------------------------
def test_every_public_module_of_the_kit_imports() -> None:
    """Each module of the kit imports, and every name ``cxbridge.testing`` exports exists."""
    modules = kit_modules()
    assert {"cxbridge.testing.pytest_plugin", "cxbridge.testing.contracts", "cxbridge.testing.specs"} <= set(modules)
    for name in modules:
        importlib.import_module(name)
    missing = [name for name in cxbridge.testing.__all__ if not hasattr(cxbridge.testing, name)]
    assert missing == []


def test_the_kit_needs_no_dev_only_package() -> None:
    """Importing the whole kit in a new interpreter loads none of the dev extra's own packages."""
    code = (
        "import importlib, sys\n"
        f"for name in {kit_modules()!r}: importlib.import_module(name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = set(run.stdout.split())
    assert "cxbridge" in loaded
    assert loaded.isdisjoint({"zenpy", "jira", "hubspot", "mypy", "ruff"})


def test_the_testing_extra_entry_point_and_packages() -> None:
    """``cxbridge[testing]`` lists what the kit imports, ``dev`` includes it, pytest finds the plugin, and every
    package of the kit is shipped."""
    project = PYPROJECT["project"]
    testing = " ".join(project["optional-dependencies"]["testing"])
    for requirement in ("pytest", "hypothesis", "responses", "jsonschema", "openapi-schema-validator", "pyyaml"):
        assert requirement in testing
    assert "cxbridge[testing]" in project["optional-dependencies"]["dev"]
    assert project["entry-points"]["pytest11"] == {"cxbridge": "cxbridge.testing.pytest_plugin"}
    shipped = set(PYPROJECT["tool"]["setuptools"]["packages"])
    packages = {"cxbridge.testing"} | {
        i.name for i in pkgutil.walk_packages(cxbridge.testing.__path__, "cxbridge.testing.") if i.ispkg
    }
    assert packages <= shipped


def test_the_plugin_is_loaded_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    """Installed with the package, the kit's pytest plugin is active without any conftest naming it."""
    assert pytestconfig.pluginmanager.get_plugin("cxbridge") is kit_plugin


# -- the fixtures --------------------------------------------------------------------------------------------
def test_clock_and_sleeps_fixtures(clock: Clock, sleeps: Sleeps) -> None:
    """``clock`` starts at 2026-01-01T00:00:00Z and moves only when told; ``sleeps`` records waits."""
    assert clock() == 1_767_225_600.0
    clock.advance(90)
    assert clock() == 1_767_225_690.0
    sleeps(1.5)
    assert sleeps == [1.5]


def test_sandbox_runtimes_fixture(sandbox_runtimes: SandboxRuntimes, tmp_path: Path) -> None:
    """``sandbox_runtimes`` writes its configs in the test's ``tmp_path``."""
    assert sandbox_runtimes.folder == tmp_path
    assert sandbox_runtimes.made == []


def test_receiver_fixture_records_and_stops_by_itself(pytester: pytest.Pytester) -> None:
    """``receiver`` records deliveries on 127.0.0.1 and is stopped once the test that used it ends."""
    pytester.makepyfile(
        """
        import pytest
        import requests

        seen = {}

        def test_uses_it(receiver):
            assert receiver.url.startswith("http://127.0.0.1:")
            requests.post(receiver.url, data=b'{"a": 1}', timeout=5)
            assert receiver.payloads() == [{"a": 1}]
            seen["url"] = receiver.url

        def test_it_is_stopped_afterwards():
            with pytest.raises(requests.ConnectionError):
                requests.post(seen["url"], data=b"{}", timeout=2)
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_without_the_specs_the_spec_tests_are_skipped_with_one_summary_line(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Without the vendor descriptions, tests that read them (the ``specs`` fixture, a ``Spec`` in the test, a
    module that loads one at import) are skipped, folded into one skip reason, the header says the specs are
    missing, one line sums it up naming CXBRIDGE_SPECS and fetch-specs; other tests still run and pass."""
    pytester.makepyfile(
        test_fixture="def test_needs_specs(specs):\n    specs('zendesk')\n\ndef test_plain():\n    assert 1 + 1 == 2\n",
        test_inline="from cxbridge.testing import Spec\n\ndef test_inline():\n    Spec('jira')\n",
        test_module="from cxbridge.testing import Spec\nSPEC = Spec('jira')\n\ndef test_never_runs():\n    pass\n",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CXBRIDGE_SPECS", str(tmp_path / "nowhere"))
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["cxbridge vendor specs: MISSING, spec-contract tests will be skipped*"])
    summary = [line for line in result.stdout.lines if line.startswith("cxbridge: ")]
    assert len(summary) == 1
    assert "2 spec-contract tests and 1 test modules skipped" in summary[0]
    assert "CXBRIDGE_SPECS" in summary[0]
    assert "scripts/fetch-specs" in summary[0]
    folded = [line for line in result.stdout.lines if line.startswith("SKIPPED [")]
    assert len(folded) == 1  # the module skip and the test skips fold into one line


def test_specs_fixture_gives_validating_specs(pytester: pytest.Pytester) -> None:
    """With the descriptions present, ``specs(name)`` is a ``Spec`` and an unknown name fails the test."""
    Spec("hubspot-webhooks")  # without the descriptions, this test is skipped like the ones it runs
    pytester.makepyfile(
        """
        from cxbridge.testing import Spec

        def test_known(specs):
            assert isinstance(specs("hubspot-webhooks"), Spec)
            assert "paths" in specs.load("hubspot-webhooks")

        def test_unknown(specs):
            specs("nosuch")
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*no vendor description named 'nosuch'*"])


# -- the verifier suite, on a toy scheme --------------------------------------------------------------------
TOY = """
import base64, hashlib, hmac, json
from datetime import UTC, datetime

from cxbridge.errors import WebhookRejected
from cxbridge.models import Event, Ref
from cxbridge.testing import SignedDelivery, VerifierContract
from cxbridge.webhooks.verify import (
    base64_sha256_signatures, check_hmac_sha256, header_text, only_rejections, signing_keys,
)

SAFE = {safe}


def verify_toy(*, method, url, headers, body, secrets, now):
    if not SAFE:
        return _verify(headers, body, secrets, now)
    with only_rejections("toy"):
        return _verify(headers, body, secrets, now)


def _verify(headers, body, secrets, now):
    text = header_text(headers, "X-Toy-Signature", system="toy")
    if text is None:
        raise WebhookRejected("toy: unsigned", status=401)
    candidates = base64_sha256_signatures(text, system="toy")
    check_hmac_sha256(signing_keys(secrets, system="toy", missing="no secret"), body, candidates, system="toy")
    payload = json.loads(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), str) or not payload["id"].isalnum():
        raise WebhookRejected("toy: no id", status=400)
    thing = Ref("toy", "thing", payload["id"])
    return [Event(payload["id"], "toy", "toy.event", thing, received_at=datetime.fromtimestamp(now, UTC))]


class TestToyVerifier(VerifierContract):
    system = "toy"
    verifier = staticmethod(verify_toy)
    signature_header = "X-Toy-Signature"
    body = b'{{"id": "abc123"}}'

    def signed_delivery(self, *, secret, body, now):
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        headers = {{"X-Toy-Signature": base64.b64encode(digest).decode()}}
        return SignedDelivery("POST", "https://bridge.example/webhooks/toy", headers, body)
"""


def test_a_plugin_author_can_subclass_the_verifier_suite(pytester: pytest.Pytester) -> None:
    """A verifier written from the public helpers passes every property of ``VerifierContract``."""
    pytester.makepyfile(test_toy=TOY.format(safe=True))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    assert outcomes["passed"] > 30


def test_the_verifier_suite_catches_a_verifier_that_lets_other_errors_out(pytester: pytest.Pytester) -> None:
    """Without ``only_rejections`` a body too deep to parse escapes as RecursionError: the suite says so."""
    pytester.makepyfile(test_toy=TOY.format(safe=False))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "too_deep or valid_delivery")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*test_signed_body_too_deep_to_parse_is_400*"])


def test_receiver_used_directly_stops() -> None:
    """``Receiver`` as a context manager stops its server on the way out (what the fixture relies on)."""
    with Receiver() as running:
        url = running.url
    with pytest.raises(requests.ConnectionError):
        requests.post(url, data=b"{}", timeout=2)
