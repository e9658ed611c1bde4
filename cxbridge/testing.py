"""A public test kit: locate and load the vendors' API descriptions and validate bodies against them.

Plugin authors use this to prove that their connector's requests and their emulator's responses match what
the vendor publishes. The descriptions are test data and are never shipped: they are read from the folder
named by ``CXBRIDGE_SPECS``, else ``../shared/specs`` beside the checkout. ``SandboxRuntimes`` builds
Runtimes on the in-process emulators, the way the end-to-end tests do; ``Receiver`` catches an emulator's webhook
deliveries on a loopback port; ``Clock`` and ``Sleeps`` stand in for time.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    import requests
    import responses
    from werkzeug.datastructures import Headers

    from .config import SystemConfig
    from .connectors import Connector
    from .models import Event
    from .plugins import Plugins
    from .runtime import Runtime
    from .sandbox.modes import Vendors
    from .webhooks.verify import Verifier

SPECS_ENV = "CXBRIDGE_SPECS"

SPEC_FILES = {
    "jira": "jira/jira-cloud-platform-v3.swagger-v3.v3.json",
    "adf": "jira/adf-schema-v1-full.json",
    "zendesk": "zendesk/zendesk-support-oas.yaml",
    "hubspot-contacts": "hubspot/crm-contacts-v3.json",
    "hubspot-companies": "hubspot/crm-companies-v3.json",
    "hubspot-deals": "hubspot/crm-deals-v3.json",
    "hubspot-notes": "hubspot/crm-notes-v3.json",
    "hubspot-tickets": "hubspot/crm-tickets-v3.json",
    "hubspot-objects": "hubspot/crm-objects-v3.json",
    "hubspot-associations": "hubspot/crm-associations-v4.json",
    "hubspot-associations-schema": "hubspot/crm-associations-schema-v4.json",
    "hubspot-webhooks": "hubspot/webhooks-v3.json",
}


class SpecsMissing(RuntimeError):
    """The vendors' API descriptions could not be found."""


def specs_dir() -> Path:
    """The folder holding the vendor specs: ``$CXBRIDGE_SPECS``, else ``shared/specs`` beside the checkout."""
    env = os.environ.get(SPECS_ENV)
    if env:
        path = Path(env)
        if not path.is_dir():
            raise SpecsMissing(f"{SPECS_ENV}={env} is not a folder")
        return path
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    for start in starts:
        for parent in [start, *start.parents]:
            candidate = parent.parent / "shared" / "specs"
            if (parent / "pyproject.toml").exists() and candidate.is_dir():
                return candidate
    raise SpecsMissing(f"vendor specs not found: set {SPECS_ENV} or put them at ../shared/specs")


@functools.cache
def load_spec(name: str) -> dict[str, Any]:
    """One vendor description by short name (see ``SPEC_FILES``), parsed."""
    path = specs_dir() / SPEC_FILES[name]
    if path.suffix == ".json":
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    # The Zendesk description holds a plain "=" scalar, which PyYAML reads as the !!value tag.
    def _scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        assert isinstance(node, yaml.ScalarNode)
        return loader.construct_scalar(node)

    _Loader.add_constructor("tag:yaml.org,2002:value", _scalar)
    loaded: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
    return loaded


class SpecError(AssertionError):
    """A body does not match the vendor's description."""


class Spec:
    """Validates request and response bodies against one OpenAPI description."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.doc = load_spec(name)
        self._registry = None

    def _validator(self, pointer: str) -> Any:
        from openapi_schema_validator import OAS30Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4

        if self._registry is None:
            resource = Resource.from_contents(self.doc, default_specification=DRAFT4)
            self._registry = Registry().with_resource(f"urn:cxbridge:{self.name}", resource)
        return OAS30Validator({"$ref": f"urn:cxbridge:{self.name}#{pointer}"}, registry=self._registry)

    def _operation_pointer(self, method: str, path: str) -> str:
        paths = self.doc.get("paths", {})
        if path not in paths:
            raise SpecError(f"{self.name}: no path {path} in the description")
        if method.lower() not in paths[path]:
            raise SpecError(f"{self.name}: no {method.upper()} {path} in the description")
        return "/paths/" + _escape(path) + "/" + method.lower()

    def match_path(self, method: str, concrete: str) -> str:
        """The templated path (``/api/v2/tickets/{ticket_id}``) that a concrete path matches."""
        concrete = concrete.split("?", 1)[0]
        best: str | None = None
        for template, ops in self.doc.get("paths", {}).items():
            if method.lower() not in ops:
                continue
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, concrete) and (best is None or template.count("{") < best.count("{")):
                best = template
        if best is None:
            raise SpecError(f"{self.name}: no operation for {method.upper()} {concrete}")
        return best

    def validate_response(self, method: str, path: str, status: int, body: Any) -> None:
        """Check a response body against the operation's schema for that status (or ``default``)."""
        pointer = self._operation_pointer(method, path)
        responses = self.doc["paths"][path][method.lower()].get("responses", {})
        key = str(status) if str(status) in responses else ("default" if "default" in responses else None)
        if key is None:
            raise SpecError(f"{self.name}: {method.upper()} {path} documents no {status} answer")
        content = _resolve(self.doc, responses[key]).get("content", {})
        # HubSpot declares its error answers as "*/*"; they are JSON like the rest.
        media = next((m for m in content if "json" in m or m == "*/*"), None)
        if media is None:
            if body not in (None, b"", ""):
                raise SpecError(f"{self.name}: {method.upper()} {path} {status} documents no JSON body")
            return
        self._check(f"{pointer}/responses/{_escape(key)}/content/{_escape(media)}/schema", body, method, path)

    def validate_request(self, method: str, path: str, body: Any) -> None:
        """Check a request body against the operation's request schema."""
        pointer = self._operation_pointer(method, path)
        op = self.doc["paths"][path][method.lower()]
        content = _resolve(self.doc, op.get("requestBody", {})).get("content", {})
        media = next((m for m in content if "json" in m), None)
        if media is None:
            raise SpecError(f"{self.name}: {method.upper()} {path} takes no JSON body")
        self._check(f"{pointer}/requestBody/content/{_escape(media)}/schema", body, method, path)

    def validate_schema(self, schema: str, instance: Any) -> None:
        """Check a value against a named component schema."""
        self._check(f"/components/schemas/{_escape(schema)}", instance, "", schema)

    def _check(self, pointer: str, instance: Any, method: str, path: str) -> None:
        validator = self._validator(pointer)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors[:10]]
            raise SpecError(f"{self.name}: {method.upper()} {path}: body does not match:\n  " + "\n  ".join(lines))


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        target: Any = doc
        for part in ref.lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def validate_adf(document: Any) -> None:
    """Check an Atlassian Document Format document against the published ADF JSON schema."""
    import jsonschema

    schema = load_spec("adf")
    validator = jsonschema.Draft4Validator(schema)
    errors = list(validator.iter_errors(document))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise SpecError(f"ADF document does not match the schema: {best.message[:300]} at {list(best.absolute_path)}")


class CannedVendor:
    """A vendor played by canned answers on a ``responses`` mock, and what the connector sent to it.

    A test module subclasses it with a ``reply`` that checks each canned body against the vendor's
    description before serving it; ``check_sent`` checks every JSON body the connector sent.
    """

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.rsps = rsps

    @property
    def calls(self) -> list[Any]:
        """The calls made so far, in order."""
        return list(self.rsps.calls)

    def sent(self, index: int) -> Any:
        """The JSON body of the n-th request (None when it had none)."""
        body = self.calls[index].request.body
        return json.loads(body) if body else None

    def query(self, index: int) -> dict[str, list[str]]:
        """The query parameters of the n-th request."""
        return parse_qs(urlsplit(self.calls[index].request.url).query)

    def path(self, index: int) -> str:
        """The path of the n-th request."""
        return str(urlsplit(self.calls[index].request.url).path)

    def check_sent(self, spec_for: Callable[[str], Spec], spec_path: Callable[[str], str] = str) -> None:
        """Check every JSON body sent against its operation's request schema.

        ``spec_for(path)`` is the description holding the path; ``spec_path(path)`` the path as it spells it.
        """
        for call in self.rsps.calls:
            request: Any = call.request
            if request.body:
                path = urlsplit(request.url).path
                spec = spec_for(path)
                spec.validate_request(
                    request.method, spec.match_path(request.method, spec_path(path)), json.loads(request.body)
                )


def spec_by_prefix(prefixes: Mapping[str, str]) -> Callable[[str], Spec]:
    """A ``spec_for(path)`` for ``CannedVendor.check_sent``: the description (by ``SPEC_FILES`` name) of the first
    prefix that the path starts with; a path under none fails the test."""
    specs = {prefix: Spec(name) for prefix, name in prefixes.items()}

    def spec_for(path: str) -> Spec:
        for prefix, spec in specs.items():
            if path.startswith(prefix):
                return spec
        raise AssertionError(f"no spec for {path}")

    return spec_for


HUBSPOT_CRM_PREFIXES = {
    "/crm/v3/objects/tickets": "hubspot-tickets",
    "/crm/v3/objects/contacts": "hubspot-contacts",
    "/crm/v3/objects/companies": "hubspot-companies",
    "/crm/v3/objects/deals": "hubspot-objects",  # the deals file spells the type "0-3"
    "/crm/v3/objects/notes": "hubspot-notes",
    "/crm/v4/objects": "hubspot-associations",
}
"""The HubSpot CRM paths the connector calls (as CRM and as helpdesk), by prefix, and the description holding
each: ``spec_by_prefix(HUBSPOT_CRM_PREFIXES)``."""


class Sleeps(list[float]):
    """A ``sleep=`` for an HTTP client that records the seconds it was asked to wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Clock:
    """A clock the test sets (``clock.now = ...``) and moves (``advance``) by hand, for emulators and stores."""

    def __init__(self, now: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``."""
        self.now += seconds


C = TypeVar("C", bound="Connector")


def build_connector(cls: type[C], config: SystemConfig, **http_options: Any) -> C:
    """A connector on an HTTP client for canned answers: the vendor's auth, error parser and cloud domains.

    It never sleeps and counts into its own ``CallCounter`` unless ``sleep=`` or ``counter=`` say otherwise, and
    accepts any https host exactly when the connector's ``allows_any_https_host(config)`` does (a self-hosted
    deployment); other ``HttpClient`` options (``session=``...) are passed on.
    """
    from .http import CallCounter, HttpClient

    options: dict[str, Any] = {
        "counter": CallCounter(),
        "sleep": lambda seconds: None,
        "allow_any_https_host": cls.allows_any_https_host(config),
        **http_options,
    }
    http = HttpClient(
        config,
        auth=cls.make_auth(config),
        error_message=cls.error_message,
        cloud_domains=cls.cloud_domains,
        **options,
    )
    return cls(config, http)


@dataclass(frozen=True)
class Delivery:
    """One request a ``Receiver`` got: its method, full URL, path, headers (names case-insensitive) and raw body."""

    method: str
    url: str
    path: str
    headers: Headers
    body: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8")


class Receiver:
    """A loopback webhook receiver: an HTTP server on 127.0.0.1 (a free port) that records every request it gets.

    ``url`` is its address ending in ``path``; each request is answered ``status`` with an empty body and appended
    to ``deliveries``. Use it as a context manager (or call ``stop()``), so the server always stops.
    """

    def __init__(self, path: str = "/hook", *, status: int = 204) -> None:
        from werkzeug.serving import make_server

        self.status = status
        self.deliveries: list[Delivery] = []
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        from werkzeug.datastructures import Headers
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        self.deliveries.append(
            Delivery(request.method, request.url, request.path, Headers(request.headers), request.get_data())
        )
        return Response(status=self.status)(environ, start_response)

    def payloads(self) -> list[Any]:
        """The JSON bodies of the deliveries that had a body, in order."""
        return [json.loads(d.body) for d in self.deliveries if d.body]

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def verify_deliveries(verify: Verifier, deliveries: Iterable[Mapping[str, Any]], secret: str) -> list[Event]:
    """Webhook deliveries an emulator sent (``Backend.webhooks_sent`` items), verified as the receiver would.

    ``verify`` is the plugin's verifier (``verify_zendesk``...), ``secret`` the signing secret; a delivery that
    does not verify raises as the verifier does.
    """
    from .secrets import Secret

    events: list[Event] = []
    for sent in deliveries:
        events += verify(
            method="POST",
            url=sent["url"],
            headers=sent["headers"],
            body=sent["body"].encode("utf-8"),
            secrets=[Secret(secret)],
            now=time.time(),
        )
    return events


MALFORMED_SIGNATURE_HEADERS = ("v1abc", "v1,a,b", "v1,abc", "v1,é", " ", "", "t=abc,v1=x", "t=1,v1=é")
"""RELIABILITY.md section 7's malformed signature headers: a verifier answers each with ``WebhookRejected`` only."""


def byte_flips(data: bytes) -> Iterator[bytes]:
    """``data`` with the lowest bit of one byte flipped, for each byte in turn (a signature must reject each)."""
    for i in range(len(data)):
        yield data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def character_changes(text: str) -> Iterator[str]:
    """``text`` with one character replaced by ``1`` (``2`` where it is ``1``), for each character in turn."""
    for i in range(len(text)):
        yield text[:i] + ("1" if text[i] != "1" else "2") + text[i + 1 :]


def record_requests(connector: Connector) -> list[requests.PreparedRequest]:
    """Every request the connector's HTTP session sends from now on, in order (as its answers arrive)."""
    seen: list[requests.PreparedRequest] = []
    connector.http.session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request))
    return seen


class SandboxRuntimes:
    """Writes sandbox configs into a folder and builds Runtimes on them; ``close()`` closes every one built.

    ``runtimes(vendors, extra={"sync": {...}})`` is a Runtime on a fresh ``cxbridge.toml`` for the running
    emulators; ``systems={"zendesk": {"max_retries": 0}}`` sets keys of ``[systems.<name>]`` tables; ``clock``
    opens the store on that clock. ``config()`` only writes the file; ``load(path)`` builds a Runtime on one.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.made: list[Runtime] = []

    def config(
        self,
        vendors: Vendors,
        *,
        extra: Mapping[str, Any] | None = None,
        systems: Mapping[str, Mapping[str, Any]] | None = None,
        name: str = "cxbridge.toml",
    ) -> Path:
        """A config at ``folder / name`` for the running emulators, with ``extra`` sections and system keys."""
        import tomlkit

        from .sandbox.modes import write_config

        path = write_config(vendors, self.folder / name, extra=extra)
        if systems:
            doc = tomlkit.parse(path.read_text(encoding="utf-8"))
            tables: Any = doc["systems"]
            for system, values in systems.items():
                for key, value in values.items():
                    tables[system][key] = value
            path.write_text(tomlkit.dumps(doc), encoding="utf-8")
        return path

    def load(self, path: Path, *, plugins: Plugins | None = None, clock: Callable[[], float] | None = None) -> Runtime:
        """A Runtime on the config at ``path``, with the given plugins (else the installed ones)."""
        from .config import load_config
        from .plugins import build_plugins
        from .runtime import Runtime
        from .store import SQLiteStore

        plugins = plugins if plugins is not None else build_plugins()
        config = load_config(path, plugins=plugins)
        store = SQLiteStore(config.store_path(), clock=clock) if clock is not None else None
        runtime = Runtime(config, plugins, store=store)
        self.made.append(runtime)
        return runtime

    def __call__(
        self,
        vendors: Vendors,
        *,
        extra: Mapping[str, Any] | None = None,
        systems: Mapping[str, Mapping[str, Any]] | None = None,
        clock: Callable[[], float] | None = None,
        name: str = "cxbridge.toml",
    ) -> Runtime:
        """A Runtime on a config written by ``config()`` (``clock``: the store's clock)."""
        return self.load(self.config(vendors, extra=extra, systems=systems, name=name), clock=clock)

    def close(self) -> None:
        """Close every Runtime built here (a Runtime closed already is closed again harmlessly)."""
        for runtime in self.made:
            runtime.close()
