"""``SandboxBackendContract``: what every emulator (a ``cxbridge.sandbox.Backend`` subclass) must do.

A plugin's tests subclass it, name the backend, one authenticated ``GET`` route, the vendor's answer to a call
without credentials and its rate-limit header names, and say how to authenticate::

    class TestAcmeSandbox(SandboxBackendContract):
        backend_class = AcmeBackend
        probe_path = "/api/v1/me"
        unauthenticated_body = {"error": "unauthorized"}
        rate_limit_headers = ("X-RateLimit-Limit", "X-RateLimit-Remaining")

        def auth_headers(self, backend: Backend) -> dict[str, str]:
            return {"Authorization": f"Bearer {backend.credentials()['token']}"}

Every property runs in both modes (``emulator`` fixture): in-process through ``responses`` (``mock_vendors``) and
served on a loopback port (127.0.0.1, stopped when the test ends), each on a ``Clock`` that only the test moves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import requests

from ...sandbox.base import Backend, WebhookTarget
from ...sandbox.modes import ServedVendors, mock_vendors
from ..tools import Clock


@dataclass
class Emulator:
    """One running emulator for a contract test: its mode, backend, clock, fresh and seeded states."""

    mode: str
    backend: Backend
    clock: Clock
    fresh_state: Any
    seeded_state: Any
    auth: dict[str, str]

    @property
    def base_url(self) -> str:
        return self.backend.base_url

    def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> requests.Response:
        """A vendor call, with the emulator's credentials unless ``auth=False``."""
        headers = {**(self.auth if auth else {}), **kwargs.pop("headers", {})}
        return requests.request(method, self.base_url + path, headers=headers, timeout=10, **kwargs)

    def admin(self, action: str, body: Any = None, method: str = "POST") -> requests.Response:
        """A call to the framework's admin API, ``/_sandbox/<action>``."""
        return requests.request(method, f"{self.base_url}/_sandbox/{action}", json=body, timeout=10)


def _json_ready(value: Any) -> Any:
    """``value`` as it comes back from a JSON answer."""
    return json.loads(json.dumps(value))


def _matches(actual: Any, expected: Any) -> bool:
    """``actual`` equals ``expected``, except that objects may hold more keys than ``expected`` names."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _matches(actual[k], v) for k, v in expected.items())
    return bool(actual == expected)


def _answer_body(response: requests.Response) -> Any:
    """A JSON answer's value, else its text."""
    if "json" in response.headers.get("Content-Type", ""):
        return response.json()
    return response.text


class SandboxBackendContract:
    """The framework behaviour every emulator keeps; subclass it in a plugin's tests (name it ``Test...``).

    Set ``backend_class``, ``probe_path`` (a ``GET`` answered 200 with credentials, after ``seed_name``),
    ``unauthenticated_body`` (the vendor's body for a call without credentials: a JSON value, or text; an object
    may leave out keys whose values vary, such as a correlation id) and
    ``rate_limit_headers`` (the headers the vendor sends on every answer under an enforced limit), and implement
    ``auth_headers``. Override ``make_backend`` when the backend needs more than a clock.
    """

    backend_class: ClassVar[type[Backend]]
    probe_path: ClassVar[str]
    unauthenticated_body: ClassVar[Any]
    rate_limit_headers: ClassVar[tuple[str, ...]]
    seed_name: ClassVar[str] = "demo"
    write_request: ClassVar[tuple[str, str, Any] | None] = None
    """A write the vendor applies after ``seed_name`` (method, path, JSON body): its effect shows in
    ``backend.state()``. Set it to check faults after the fact (the write applied, the answer lost)."""

    def auth_headers(self, backend: Backend) -> dict[str, str]:
        """Headers carrying credentials the backend accepts (from ``backend.credentials()``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement auth_headers")

    def make_backend(self, clock: Clock) -> Backend:
        """A new backend on the test's clock."""
        return self.backend_class(clock=clock)

    @pytest.fixture(params=["in-process", "loopback"])
    def emulator(self, request: pytest.FixtureRequest) -> Iterator[Emulator]:
        """The backend, seeded, in each mode in turn; everything stops when the test ends."""
        from werkzeug.serving import make_server

        clock = Clock()
        backend = self.make_backend(clock)
        system = backend.system
        if request.param == "in-process":
            with mock_vendors(backends={system: backend}):
                yield self._emulator("in-process", backend, clock)
            return
        served = ServedVendors({system: backend}, {system: make_server("127.0.0.1", 0, backend, threaded=True)})
        with served:
            backend.base_url = f"http://127.0.0.1:{served.servers[system].server_port}"
            served.start()
            yield self._emulator("loopback", backend, clock)

    def _emulator(self, mode: str, backend: Backend, clock: Clock) -> Emulator:
        fresh = _json_ready(backend.state())  # states show URLs: taken once the base URL is final
        backend.seed(self.seed_name)
        return Emulator(mode, backend, clock, fresh, _json_ready(backend.state()), self.auth_headers(backend))

    # -- the vendor API ---------------------------------------------------------------------------------------
    def test_authenticated_probe_answers_and_is_logged(self, emulator: Emulator) -> None:
        """With credentials the probe route answers 200, and ``GET /_sandbox/calls`` lists the call."""
        assert emulator.call("GET", self.probe_path).status_code == 200
        calls = emulator.admin("calls", method="GET").json()
        assert [(c["method"], c["path"].split("?")[0], c["status"]) for c in calls] == [
            ("GET", self.probe_path.split("?")[0], 200)
        ]
        assert calls[0]["at"] == emulator.clock.now

    def test_a_call_without_credentials_gets_the_vendors_401(self, emulator: Emulator) -> None:
        """No credentials: 401 with the vendor's own body; altered credentials: 401 too."""
        answer = emulator.call("GET", self.probe_path, auth=False)
        assert answer.status_code == 401
        assert _matches(_answer_body(answer), self.unauthenticated_body), _answer_body(answer)
        altered = {name: value + "x" for name, value in emulator.auth.items()}
        assert emulator.call("GET", self.probe_path, auth=False, headers=altered).status_code == 401

    def test_an_unknown_route_is_the_vendors_404(self, emulator: Emulator) -> None:
        """An authenticated call to a route the vendor does not have is answered 404, not a crash."""
        assert emulator.call("GET", "/no/such/route/for/the/contract").status_code == 404

    def test_an_enforced_rate_limit_sends_the_vendors_headers(self, emulator: Emulator) -> None:
        """Under ``/_sandbox/rate-limit`` every answer has the vendor's headers; past the limit: 429, Retry-After."""
        assert emulator.admin("rate-limit", {"limit": "2/h"}).json() == {"ok": True}
        answers = [emulator.call("GET", self.probe_path) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        for answer in answers:
            missing = [h for h in self.rate_limit_headers if h not in answer.headers]
            assert not missing, f"{answer.status_code} answer lacks {missing}"
        assert int(answers[2].headers["Retry-After"]) > 0
        emulator.admin("rate-limit", {"limit": None})
        assert emulator.call("GET", self.probe_path).status_code == 200

    # -- the admin API ------------------------------------------------------------------------------------------
    def test_fail_next_answers_faults_before_auth(self, emulator: Emulator) -> None:
        """``/_sandbox/fail-next`` fails the next ``count`` calls (before auth) with Retry-After, then stops."""
        body = {"status": 503, "count": 2, "retry_after": 3}
        assert emulator.admin("fail-next", body).json() == {"ok": True, "pending": 2}
        first = emulator.call("GET", self.probe_path, auth=False)
        assert (first.status_code, first.headers.get("Retry-After")) == (503, "3")
        assert emulator.call("GET", self.probe_path).status_code == 503
        assert emulator.call("GET", self.probe_path).status_code == 200

    def test_fail_next_matches_only_its_method_and_path(self, emulator: Emulator) -> None:
        """A fault for another path or method leaves the probe alone and stays pending."""
        emulator.admin("fail-next", {"status": 500, "path": "^/no-such-prefix/"})
        assert emulator.admin("fail-next", {"status": 500, "method": "DELETE"}).json()["pending"] == 2
        assert emulator.call("GET", self.probe_path).status_code == 200
        assert len(emulator.backend.faults) == 2

    def _after_fault_write(self, emulator: Emulator, fault: dict[str, Any], **kwargs: Any) -> requests.Response:
        """The ``write_request`` (else the probe) under an after-fault."""
        method, path, body = self.write_request or ("GET", self.probe_path, None)
        emulator.admin("fail-next", {**fault, "method": method, "path": "^" + path.split("?")[0] + "$"})
        return emulator.call(method, path, json=body, **kwargs)

    def _assert_applied(self, emulator: Emulator) -> None:
        """The write shows in the state (without a ``write_request``: the vendor answered the probe, logged)."""
        if self.write_request is not None:
            assert _json_ready(emulator.backend.state()) != emulator.seeded_state
        else:
            assert len(emulator.backend.calls) == 1

    def test_an_after_fault_applies_the_write_and_answers_the_error(self, emulator: Emulator) -> None:
        """``after: true``: the write shows in the state, the client gets the fault's status, once."""
        answer = self._after_fault_write(emulator, {"status": 500, "after": True})
        assert answer.status_code == 500
        self._assert_applied(emulator)
        assert emulator.backend.faults == []

    def test_a_reset_after_the_write_loses_the_answer(self, emulator: Emulator) -> None:
        """``reset: true``: the write shows in the state and the client sees the connection drop."""
        with pytest.raises(requests.exceptions.ConnectionError):
            self._after_fault_write(emulator, {"reset": True})
        self._assert_applied(emulator)

    def test_reset_restores_a_fresh_account(self, emulator: Emulator) -> None:
        """``/_sandbox/reset`` gives the state of a new backend and drops calls, faults and the rate limit."""
        assert emulator.seeded_state != emulator.fresh_state, f"the {self.seed_name!r} seed changes nothing"
        emulator.call("GET", self.probe_path)
        emulator.admin("fail-next", {"status": 500, "count": 5})
        emulator.admin("rate-limit", {"limit": "1/h"})
        assert emulator.admin("reset").json() == {"ok": True}
        assert emulator.admin("state", method="GET").json() == emulator.fresh_state
        assert emulator.admin("calls", method="GET").json() == []
        assert (emulator.backend.faults, emulator.backend.rate_limit) == ([], None)

    def test_reset_then_seed_restores_the_seed_state(self, emulator: Emulator) -> None:
        """After a reset, ``/_sandbox/seed`` rebuilds exactly the state the seed gave the first time."""
        emulator.admin("reset")
        assert emulator.admin("seed", {"name": self.seed_name}).json()["ok"] is True
        assert emulator.admin("state", method="GET").json() == emulator.seeded_state

    def test_state_shows_what_the_backend_holds(self, emulator: Emulator) -> None:
        """``GET /_sandbox/state`` is the backend's ``state()`` as JSON."""
        assert emulator.admin("state", method="GET").json() == _json_ready(emulator.backend.state())

    def test_an_unknown_seed_or_admin_call_is_refused(self, emulator: Emulator) -> None:
        """An unknown seed name is a 400 and an unknown admin call a 404, both with a JSON ``error``."""
        seed = emulator.admin("seed", {"name": "no-such-seed"})
        assert seed.status_code == 400
        assert "error" in seed.json()
        unknown = emulator.admin("no-such-admin-call")
        assert unknown.status_code == 404
        assert "error" in unknown.json()

    def test_webhook_targets_are_set_through_the_admin_api(self, emulator: Emulator) -> None:
        """``/_sandbox/webhooks`` replaces the targets; their secrets are among ``webhook_secrets()``."""
        target = {"url": "http://127.0.0.1:9/hook", "secret": "contract-secret"}
        assert emulator.admin("webhooks", {"targets": [target]}).json() == {"ok": True}
        assert emulator.backend.webhook_targets == [WebhookTarget(url=target["url"], secret=target["secret"])]
        assert "contract-secret" in emulator.backend.webhook_secrets()

    # -- the modes ----------------------------------------------------------------------------------------------
    def test_in_process_other_urls_fail_loudly(self) -> None:
        """In-process, a URL outside the emulator raises instead of reaching the network."""
        backend = self.make_backend(Clock())
        with (
            mock_vendors(backends={backend.system: backend}),
            pytest.raises(requests.ConnectionError, match="Connection refused by Responses"),
        ):
            requests.get("https://no-such-vendor.invalid/contract", timeout=5)

    def test_registered_through_the_plugin_hook(self) -> None:
        """The installed plugins register this backend for its system, so ``cxbridge sandbox`` serves it."""
        from ...plugins import build_plugins

        assert build_plugins().sandbox_backends().get(self.backend_class.system) is self.backend_class
