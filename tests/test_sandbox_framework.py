"""The vendor-neutral emulator framework (``cxbridge.sandbox``), through a small emulator made for the tests.

Also: every plugin's sandbox is kept apart from its connector (checked on the source, for all plugins).
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import os
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from cxbridge.sandbox import (
    Backend,
    Fault,
    Latency,
    RateLimit,
    SandboxSecret,
    VendorFault,
    WebhookTarget,
)
from cxbridge.sandbox.modes import mock_vendors, serve_vendors, write_config
from cxbridge.testing import Clock, Receiver

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_PACKAGES = {"zendesk": "cxbridge_zendesk", "jira": "cxbridge_jira", "hubspot": "cxbridge_hubspot"}


# -- sandbox and connector stay apart ------------------------------------------------------------------------
def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Absolute names of the modules a source file imports (relative imports resolved, import_module too)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()

    def resolve(name: str, level: int) -> str:
        if level == 0:
            return name
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - (level - 1)])
        return f"{base}.{name}" if name else base

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node.module or "", node.level)
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # "from . import connector"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                text = node.args[0].value
                level = len(text) - len(text.lstrip("."))
                found.add(resolve(text.lstrip("."), level))
    return found


def isolation_problems(package_dir: Path, package: str) -> list[str]:
    """Imports that break the rule: a sandbox imports nothing of its plugin outside ``sandbox``, and no module
    of the plugin (except ``plugin.py``, which registers both) imports the sandbox."""
    problems: list[str] = []
    sandbox = f"{package}.sandbox"
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        module = ".".join(parts)
        names = imported_modules(path.read_text(encoding="utf-8"), module, is_package=is_package)
        inside = module == sandbox or module.startswith(sandbox + ".")
        for name in sorted(names):
            of_plugin = name == package or name.startswith(package + ".")
            of_sandbox = name == sandbox or name.startswith(sandbox + ".")
            if inside and of_plugin and not of_sandbox:
                problems.append(f"{module} (sandbox) imports {name}")
            if not inside and module != f"{package}.plugin" and of_sandbox:
                problems.append(f"{module} imports the sandbox ({name})")
    return problems


@pytest.mark.parametrize("system", sorted(PLUGIN_PACKAGES))
def test_sandbox_and_connector_never_import_each_other(system: str) -> None:
    """A plugin's emulator and its connector share no code, so they cannot share one wrong assumption."""
    package = PLUGIN_PACKAGES[system]
    package_dir = ROOT / "plugins" / system / package
    assert (package_dir / "sandbox").is_dir()
    assert isolation_problems(package_dir, package) == []


def test_the_isolation_check_catches_every_spelling(tmp_path: Path) -> None:
    """The scanner sees absolute, relative, ``from . import`` and ``import_module`` imports both ways."""
    pkg = tmp_path / "cxbridge_demo"
    (pkg / "sandbox").mkdir(parents=True)
    for name in ("__init__.py", "sandbox/__init__.py", "plugin.py", "connector.py"):
        (pkg / name).write_text("", encoding="utf-8")
    (pkg / "plugin.py").write_text("from .sandbox.backend import B\nfrom .connector import C\n", encoding="utf-8")
    (pkg / "sandbox" / "ok.py").write_text("from . import models\nfrom .models import M\n", encoding="utf-8")
    assert isolation_problems(pkg, "cxbridge_demo") == []
    cases = {
        "sandbox/a.py": "from ..connector import Connector\n",
        "sandbox/b.py": "from .. import connector\n",
        "sandbox/c.py": "import cxbridge_demo.connector\n",
        "sandbox/d.py": "import importlib\nimportlib.import_module('cxbridge_demo.webhook')\n",
        "e.py": "from .sandbox import backend\n",
        "f.py": "from cxbridge_demo.sandbox.models import M\n",
    }
    for name, source in cases.items():
        (pkg / name).write_text(source, encoding="utf-8")
        assert isolation_problems(pkg, "cxbridge_demo"), name
        (pkg / name).unlink()


# -- a small emulator for the framework's tests ---------------------------------------------------------------
class ToyBackend(Backend):
    """An emulator of a made-up vendor: items, token auth, a webhook per created item."""

    system: ClassVar[str] = "toy"
    default_base_url: ClassVar[str] = "https://api.toy.example"
    TOKEN = "t0ken"

    def reset(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}

    def seed(self, name: str) -> None:
        if name not in ("empty", "demo"):
            raise ValueError(f"unknown seed {name!r}")
        if name == "demo":
            self.items[len(self.items) + 1] = {"id": len(self.items) + 1, "name": "demo item"}

    def state(self) -> dict[str, Any]:
        return {"items": [self.items[k] for k in sorted(self.items)]}

    def credentials(self) -> dict[str, str]:
        return {"token": self.TOKEN}

    def config_table(self) -> dict[str, Any]:
        return {"user": "toy-bot", "token": SandboxSecret(self.TOKEN)}

    def url_map(self) -> Map:
        return Map(
            [
                Rule("/items", endpoint="items", methods=["GET", "POST"]),
                Rule("/items/<int:item_id>", endpoint="item", methods=["GET"]),
            ]
        )

    def authenticate(self, request: Request) -> Response | None:
        if request.headers.get("X-Token") == self.TOKEN:
            return None
        return self.json({"message": "who are you?"}, 401)

    def error_response(self, status: int, message: str, *, retry_after: float | None = None) -> Response:
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        return self.json({"message": message}, status, headers)

    def rate_limit_headers(self, limit: int, remaining: int, reset: float) -> dict[str, str]:
        return {"X-Limit": str(limit), "X-Remaining": str(remaining)}

    def route_items(self, request: Request) -> Response:
        if request.method == "GET":
            return self.json(self.state())
        body = self.read_json(request)
        if not isinstance(body, dict) or not body.get("name"):
            raise VendorFault(422, {"message": "name is required"})
        item = {"id": len(self.items) + 1, "name": body["name"]}
        self.items[item["id"]] = item
        raw = json.dumps(item).encode()
        for target in self.webhook_targets:
            signature = hmac.new(target.secret.encode(), raw, hashlib.sha256).hexdigest()
            self.emit_webhook(raw, {"Content-Type": "application/json", "X-Sig": signature}, target)
        return self.json(item, 201)

    def route_item(self, request: Request, item_id: int) -> Response:
        if item_id not in self.items:
            raise VendorFault(404, {"message": "no such item"})
        return self.json(self.items[item_id])


@pytest.fixture
def toy() -> Iterator[ToyBackend]:
    backend = ToyBackend(clock=Clock(1000.0))
    with mock_vendors(backends={"toy": backend}, seed="demo"):
        yield backend


def call(method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"X-Token": ToyBackend.TOKEN, **kwargs.pop("headers", {})}
    return requests.request(method, ToyBackend.default_base_url + path, headers=headers, timeout=5, **kwargs)


def admin(path: str, body: Any = None, method: str = "POST") -> requests.Response:
    return requests.request(method, f"{ToyBackend.default_base_url}/_sandbox/{path}", json=body, timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(status=200) as r:
        yield r


# -- framework behaviour ------------------------------------------------------------------------------------
def test_routes_auth_vendor_errors_and_call_log(toy: ToyBackend) -> None:
    """Requests reach the routes in-process; auth runs first; VendorFault is the vendor's answer."""
    assert call("GET", "/items").json() == {"items": [{"id": 1, "name": "demo item"}]}
    assert call("POST", "/items", json={"name": "second"}).status_code == 201
    assert call("GET", "/items/2").json() == {"id": 2, "name": "second"}
    assert call("GET", "/items/9").json() == {"message": "no such item"}
    assert call("POST", "/items", json={}).status_code == 422
    assert call("GET", "/items", headers={"X-Token": "bad"}).status_code == 401
    assert call("GET", "/nope").status_code == 404
    assert call("DELETE", "/items").status_code == 405
    bad_json = call("POST", "/items", data=b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    calls = admin("calls", method="GET").json()
    assert [(c["method"], c["path"], c["status"]) for c in calls[:3]] == [
        ("GET", "/items", 200),
        ("POST", "/items", 201),
        ("GET", "/items/2", 200),
    ]
    assert calls[0]["at"] == 1000.0


def test_unmatched_urls_fail_loudly(toy: ToyBackend) -> None:
    """In-process, a URL outside every emulator raises instead of reaching the network."""
    with pytest.raises(requests.ConnectionError, match="Connection refused by Responses"):
        requests.get("https://api.other-vendor.example/items", timeout=5)


def test_admin_api_reset_seed_state(toy: ToyBackend) -> None:
    """``/_sandbox/`` resets, seeds and shows state; unknown seeds and calls are refused."""
    assert admin("state", method="GET").json() == {"items": [{"id": 1, "name": "demo item"}]}
    assert admin("reset").json() == {"ok": True}
    assert admin("state", method="GET").json() == {"items": []}
    assert admin("calls", method="GET").json() == []
    assert admin("seed", {"name": "demo"}).json() == {"ok": True}
    assert len(toy.state()["items"]) == 1
    assert admin("seed", {"name": "nope"}).status_code == 400
    assert admin("nothing").status_code == 404


def test_fail_next_matches_method_and_path(toy: ToyBackend) -> None:
    """Injected faults hit only matching calls, ``count`` times, before auth, with Retry-After."""
    assert admin(
        "fail-next", {"status": 503, "count": 2, "path": "^/items/", "method": "GET", "retry_after": 3}
    ).json() == {"ok": True, "pending": 2}
    assert call("GET", "/items").status_code == 200
    assert call("POST", "/items/1").status_code in (404, 405)  # not a GET: no fault
    first = call("GET", "/items/1", headers={"X-Token": "bad"})
    assert (first.status_code, first.headers["Retry-After"]) == (503, "3")
    assert call("GET", "/items/1").status_code == 503
    assert call("GET", "/items/1").status_code == 200
    fault = Fault(status=500, path="/x", method="post")
    assert fault.matches(Request.from_values("/a/x", method="POST"))
    assert not fault.matches(Request.from_values("/a/x", method="GET"))
    assert not fault.matches(Request.from_values("/a/y", method="POST"))


def test_rate_limit_enforced_on_the_backend_clock(toy: ToyBackend) -> None:
    """A set limit answers 429 with Retry-After past the limit, and frees up when the window turns."""
    clock = toy.clock
    assert isinstance(clock, Clock)
    admin("rate-limit", {"limit": "2/10s"})
    answers = [call("GET", "/items") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["X-Remaining"] for a in answers] == ["1", "0", "0"]
    assert answers[2].headers["Retry-After"] == "10"
    clock.now += 4
    assert call("GET", "/items").headers.get("Retry-After") == "6"
    clock.now += 6
    assert call("GET", "/items").status_code == 200
    admin("rate-limit", {"limit": None})
    assert "X-Limit" not in call("GET", "/items").headers


def test_rate_limit_parsing() -> None:
    """Limits are written like ``700/min``; windows are fixed on the backend's clock."""
    assert (RateLimit.parse("700/min").limit, RateLimit.parse("700/min").window) == (700, 60.0)
    assert RateLimit.parse("100/10s").window == 10.0
    assert RateLimit.parse(" 5 / s ").window == 1.0
    assert RateLimit.parse("3/2h").window == 7200.0
    for bad in ("", "many", "10/fortnight", "-1/min"):
        with pytest.raises(ValueError, match="not a rate limit"):
            RateLimit.parse(bad)
    limit = RateLimit(limit=1, window=60)
    assert limit.take(100.0) == (True, 0, 60.0)
    assert limit.take(130.0) == (False, 0, 30.0)
    assert limit.take(165.0)[0] is True  # the next window started at 160


def test_webhook_targets_added_while_mocked_are_delivered(toy: ToyBackend, receiver: Receiver) -> None:
    """Deliveries to targets set through the admin API leave the process even though responses is active."""
    assert admin("webhooks", {"targets": [{"url": receiver.url, "secret": "shh"}]}).json() == {"ok": True}
    assert toy.webhook_targets == [WebhookTarget(url=receiver.url, secret="shh")]
    call("POST", "/items", json={"name": "hooked"})
    assert toy.wait_for_webhooks(timeout=10)
    assert len(receiver.deliveries) == 1
    first = receiver.deliveries[0]
    headers, body = first.headers, first.body
    assert json.loads(body) == {"id": 2, "name": "hooked"}
    assert headers["x-sig"] == hmac.new(b"shh", body, hashlib.sha256).hexdigest()
    assert toy.webhooks_sent[0]["url"] == receiver.url


def test_serve_vendors_and_write_config(tmp_path: Path) -> None:
    """Registered emulators serve on loopback ports; the written config points at them, secrets in files."""
    with serve_vendors(["zendesk"], seed="demo") as vendors:
        base = vendors.base_url("zendesk")
        assert base.startswith("http://127.0.0.1:")
        creds = vendors["zendesk"].credentials()
        r = requests.get(
            f"{base}/api/v2/tickets/1.json", auth=(f"{creds['email']}/token", creds["api_token"]), timeout=5
        )
        assert r.status_code == 200
        assert vendors.calls() == {"zendesk": 1}
        path = write_config(vendors, tmp_path / "conf" / "cxbridge.toml")
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        table = doc["systems"]["zendesk"]
        assert table["base_url"] == base
        assert table["sandbox"] is True
        assert table["email"] == "agent@cxbridge.example"
        secret_file = path.parent / table["api_token"]["file"]
        assert secret_file.read_text(encoding="utf-8") == creds["api_token"]
        assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
        assert creds["api_token"] not in path.read_text(encoding="utf-8")
        vendors.reset()
        assert vendors["zendesk"].state()["tickets"] == []
        assert vendors.calls() == {"zendesk": 0}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/api/v2/tickets/1.json", timeout=2)


def test_unknown_systems_are_named() -> None:
    """Asking for an emulator nobody registered fails with the known names."""
    with pytest.raises(KeyError, match="no sandbox backend for nosuch"), mock_vendors(["nosuch"]):
        pass


# -- faults after the vendor acted ----------------------------------------------------------------------------
@pytest.fixture(params=["in-process", "loopback"])
def toy_any(request: pytest.FixtureRequest) -> Iterator[ToyBackend]:
    """The toy emulator in each mode; its ``base_url`` is where calls go."""
    from werkzeug.serving import make_server

    from cxbridge.sandbox.modes import KeepAliveHandler, ServedVendors

    backend = ToyBackend(clock=Clock(1000.0))
    if request.param == "in-process":
        with mock_vendors(backends={"toy": backend}, seed="demo"):
            yield backend
        return
    backend.seed("demo")
    server = make_server("127.0.0.1", 0, backend, threaded=True, request_handler=KeepAliveHandler)
    served = ServedVendors({"toy": backend}, {"toy": server})
    with served:
        backend.base_url = f"http://127.0.0.1:{served.servers['toy'].server_port}"
        served.start()
        yield backend


def toy_call(backend: ToyBackend, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"X-Token": ToyBackend.TOKEN}
    return requests.request(method, backend.base_url + path, headers=headers, **{"timeout": 5, **kwargs})


def toy_admin(backend: ToyBackend, action: str, body: Any) -> requests.Response:
    return requests.post(f"{backend.base_url}/_sandbox/{action}", json=body, timeout=5)


@pytest.mark.parametrize("status", [500, 504])
def test_an_after_fault_applies_the_write_then_answers_the_error(toy_any: ToyBackend, status: int) -> None:
    """``after: true``: the item is created, yet the client gets the vendor's error answer; once only."""
    assert toy_admin(toy_any, "fail-next", {"status": status, "after": True, "method": "POST"}).json() == {
        "ok": True,
        "pending": 1,
    }
    answer = toy_call(toy_any, "POST", "/items", json={"name": "applied"})
    assert (answer.status_code, answer.json()) == (status, {"message": "injected fault"})
    assert [i["name"] for i in toy_any.state()["items"]] == ["demo item", "applied"]
    assert toy_call(toy_any, "POST", "/items", json={"name": "next"}).status_code == 201
    assert len(toy_any.state()["items"]) == 3


def test_a_reset_after_the_write_drops_the_connection(toy_any: ToyBackend) -> None:
    """``reset: true``: the item is created and the client sees the connection drop, ``count`` times."""
    toy_admin(toy_any, "fail-next", {"reset": True, "count": 2, "path": "^/items$", "method": "POST"})
    for name in ("one", "two"):
        with pytest.raises(requests.exceptions.ConnectionError):
            toy_call(toy_any, "POST", "/items", json={"name": name})
    assert toy_call(toy_any, "GET", "/items").status_code == 200  # a GET does not match
    assert [i["name"] for i in toy_any.state()["items"]] == ["demo item", "one", "two"]
    assert toy_any.faults == []


def test_a_delay_after_the_write_is_a_read_timeout(toy_any: ToyBackend) -> None:
    """``delay`` past the client's timeout: the item is created and the client's read times out."""
    toy_admin(toy_any, "fail-next", {"delay": 0.5, "method": "POST"})
    with pytest.raises(requests.exceptions.ReadTimeout):
        toy_call(toy_any, "POST", "/items", json={"name": "late"}, timeout=(5, 0.2))
    assert [i["name"] for i in toy_any.state()["items"]] == ["demo item", "late"]


def test_after_faults_through_the_python_api(toy: ToyBackend) -> None:
    """``Fault(after=True)`` on ``backend.faults``; reset and delay imply ``after``; a bad body is refused."""
    assert [Fault(reset=True).after, Fault(delay=1).after, Fault(status=500).after] == [True, True, False]
    toy.faults.append(Fault(status=500, after=True, method="POST"))
    assert call("POST", "/items", json={"name": "kept"}).status_code == 500
    assert toy.state()["items"][-1]["name"] == "kept"
    toy.faults.append(Fault(status=500, method="POST"))  # before the vendor acts: nothing is applied
    assert call("POST", "/items", json={"name": "dropped"}).status_code == 500
    assert [i["name"] for i in toy.state()["items"]] == ["demo item", "kept"]
    assert admin("fail-next", {"delay": "soon"}).status_code == 400


# -- transport: kept-alive connections, latency ---------------------------------------------------------------
@pytest.fixture
def toy_served() -> Iterator[ToyBackend]:
    """The toy emulator on a loopback port with the served transport (keep-alive)."""
    from werkzeug.serving import make_server

    from cxbridge.sandbox.modes import KeepAliveHandler, ServedVendors

    backend = ToyBackend(clock=Clock(1000.0))
    backend.seed("demo")
    server = make_server("127.0.0.1", 0, backend, threaded=True, request_handler=KeepAliveHandler)
    with ServedVendors({"toy": backend}, {"toy": server}) as served:
        backend.base_url = f"http://127.0.0.1:{server.server_port}"
        served.start()
        yield backend


def test_served_emulators_keep_connections_alive(toy_served: ToyBackend) -> None:
    """One session's calls share one connection, whatever the answers (errors, unread bodies, 404s)."""
    with requests.Session() as session:
        session.headers["X-Token"] = ToyBackend.TOKEN
        url = toy_served.base_url
        first = session.get(f"{url}/items", timeout=5)
        assert first.status_code == 200
        assert "Connection" not in first.headers
        assert session.post(f"{url}/items", json={"name": "kept"}, timeout=5).status_code == 201
        # a 401 the route answers without reading the request's body: the next request still parses
        denied = session.post(f"{url}/items", json={"name": "x" * 5000}, headers={"X-Token": "bad"}, timeout=5)
        assert denied.status_code == 401
        assert session.get(f"{url}/items/9", timeout=5).status_code == 404
        assert session.get(f"{url}/items/2", timeout=5).json() == {"id": 2, "name": "kept"}
        assert session.get(f"{url}/_sandbox/connections", timeout=5).json() == {"opened": 1}
    # a client that asks to close gets ``Connection: close`` and a new connection next time
    closing = requests.get(f"{url}/items", headers={"X-Token": ToyBackend.TOKEN, "Connection": "close"}, timeout=5)
    assert closing.headers["Connection"] == "close"
    assert toy_served.connections_opened == 2
    assert admin_at(url, "reset").json() == {"ok": True}
    assert toy_served.connections_opened == 0


def admin_at(base_url: str, action: str, body: Any = None, method: str = "POST") -> requests.Response:
    return requests.request(method, f"{base_url}/_sandbox/{action}", json=body, timeout=5)


def test_stopping_served_emulators_closes_kept_connections() -> None:
    """After ``stop()`` a kept-alive connection is not answered any more: the client sees the server gone."""
    with serve_vendors(["zendesk"], seed="demo") as vendors, requests.Session() as session:
        url = vendors.base_url("zendesk")
        assert session.get(f"{url}/_sandbox/connections", timeout=5).json() == {"opened": 1}
        vendors.stop()
        with pytest.raises(requests.exceptions.ConnectionError):
            session.get(f"{url}/_sandbox/connections", timeout=5)


def test_latency_parsing_and_sampling() -> None:
    """Latency is written in milliseconds, ``fixed[+jitter]``; each call waits fixed plus up to jitter."""
    import random

    assert Latency.parse("150") == Latency(fixed=0.15, jitter=0.0)
    assert Latency.parse(" 150ms + 50ms ") == Latency(fixed=0.15, jitter=0.05)
    assert Latency.parse("0.5+1") == Latency(fixed=0.0005, jitter=0.001)
    for bad in ("", "fast", "-5", "150+", "150-50"):
        with pytest.raises(ValueError, match="not a latency"):
            Latency.parse(bad)
    with pytest.raises(ValueError, match="negative"):
        Latency(fixed=-1.0)
    rng = random.Random(7)
    waits = [Latency(fixed=0.1, jitter=0.05).sample(rng) for _ in range(200)]
    assert all(0.1 <= w <= 0.15 for w in waits)
    assert len(set(waits)) > 100  # jittered, not one value
    assert Latency(fixed=0.2).sample(rng) == 0.2
    assert Latency.from_json({"fixed_ms": 150, "jitter_ms": 50}) == Latency(fixed=0.15, jitter=0.05)
    with pytest.raises(ValueError, match="unknown keys"):
        Latency.from_json({"fixed": 150})


def test_latency_set_through_the_admin_api_delays_vendor_calls_only(
    toy: ToyBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``POST /_sandbox/latency`` makes every vendor call wait (outside the lock); admin calls never wait."""
    import cxbridge.sandbox.base as base

    waited: list[float] = []
    monkeypatch.setattr(base.time, "sleep", waited.append)
    assert admin("latency", method="GET").json() == {"fixed_ms": 0.0, "jitter_ms": 0.0}
    assert admin("latency", {"fixed_ms": 150, "jitter_ms": 20}).json() == {
        "ok": True,
        "fixed_ms": 150.0,
        "jitter_ms": 20.0,
    }
    assert admin("latency", method="GET").json() == {"fixed_ms": 150.0, "jitter_ms": 20.0}
    assert call("GET", "/items").status_code == 200
    assert call("GET", "/items", headers={"X-Token": "bad"}).status_code == 401  # refused calls wait too
    assert len(waited) == 2
    assert all(0.15 <= w <= 0.17 for w in waited)
    assert admin("latency", {"fixed_ms": "slow"}).status_code == 400
    assert admin("latency", {"fixed_ms": -3}).status_code == 400
    assert admin("latency", {"fixed_ms": 0}).json()["fixed_ms"] == 0.0
    assert toy.latency is None
    toy.latency = Latency(fixed=0.3)
    admin("reset")
    assert toy.latency is None
    call("GET", "/items")
    assert len(waited) == 2


@pytest.mark.parametrize("system", ["zendesk", "hubspot", "jira"])
def test_each_emulators_calls_wait_out_their_latency_side_by_side(system: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two calls to one emulator with latency are in their wait at the same time (a barrier of two would break if
    the emulator's lock were held through the wait, as the Zendesk and HubSpot emulators once did): concurrent
    calls to a vendor take one latency, not one each."""
    import threading

    import cxbridge.sandbox.base as base

    barrier = threading.Barrier(2, timeout=10)
    monkeypatch.setattr(base.time, "sleep", lambda seconds: barrier.wait())
    with mock_vendors([system], seed="demo") as vendors:
        backend = vendors[system]
        backend.latency = Latency(fixed=0.15)
        answers: list[int] = []

        def call() -> None:
            answers.append(requests.get(f"{backend.base_url}/anything", timeout=10).status_code)

        threads = [threading.Thread(target=call) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
    assert not barrier.broken
    assert len(answers) == 2  # answered (refused: no credentials), each after its wait


def test_sandbox_serve_refuses_a_bad_latency() -> None:
    """``sandbox serve --latency`` names the unknown system or the unreadable value, and stops the emulators."""
    from click.testing import CliRunner

    from cxbridge.cli import CliContext, cli

    runner = CliRunner()
    unknown = runner.invoke(cli, ["sandbox", "serve", "--latency", "nosuch=150"], obj=CliContext())
    assert unknown.exit_code != 0
    assert "unknown system 'nosuch'" in unknown.output
    bad = runner.invoke(cli, ["sandbox", "serve", "--latency", "jira=soon"], obj=CliContext())
    assert bad.exit_code != 0
    assert "not a latency" in bad.output
