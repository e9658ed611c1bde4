"""The vendors' API descriptions: where they are, loading them, and validating bodies against them.

The descriptions are test data and are never shipped: they are read from the folder named by ``CXBRIDGE_SPECS``,
else ``../shared/specs`` beside the checkout, else ``.specs/`` in the checkout (where ``scripts/fetch-specs`` puts
them, verified against pinned SHA-256 sums); ``SpecsMissing`` says so when none holds them. The kit's pytest plugin
then skips the tests that need them, with one summary line.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

SPECS_ENV = "CXBRIDGE_SPECS"


def spec_files() -> dict[str, str]:
    """Every description the installed plugins' emulators declare (``Backend.spec_files``): name -> path under
    the specs folder. A plugin brings the names of its vendor's descriptions; the kit knows none of its own."""
    return dict(_spec_files())


@functools.cache
def _spec_files() -> tuple[tuple[str, str], ...]:
    from ..plugins import build_plugins

    found: dict[str, str] = {}
    for backend in build_plugins(use_env=False).sandbox_backends().values():
        found.update(backend.spec_files)
    return tuple(sorted(found.items()))


class SpecsMissing(RuntimeError):
    """The vendors' API descriptions could not be found."""


FETCHED = ".specs"
"""The folder in the checkout that ``scripts/fetch-specs`` downloads the descriptions into (ignored by git)."""


def specs_dir() -> Path:
    """The folder holding the vendor specs: ``$CXBRIDGE_SPECS``, else ``shared/specs`` beside the checkout, else
    the checkout's ``.specs`` (fetched)."""
    env = os.environ.get(SPECS_ENV)
    if env:
        path = Path(env)
        if not path.is_dir():
            raise SpecsMissing(f"{SPECS_ENV}={env} is not a folder")
        return path
    checkouts = [
        parent
        for start in (Path.cwd(), Path(__file__).resolve().parent)
        for parent in (start, *start.parents)
        if (parent / "pyproject.toml").exists()
    ]
    for checkout in checkouts:
        if (checkout.parent / "shared" / "specs").is_dir():
            return checkout.parent / "shared" / "specs"
    for checkout in checkouts:
        if (checkout / FETCHED).is_dir() and any((checkout / FETCHED).iterdir()):
            return checkout / FETCHED
    raise SpecsMissing(
        f"vendor specs not found: set {SPECS_ENV}, put them at ../shared/specs, or run scripts/fetch-specs"
    )


def specs_missing() -> str | None:
    """Why the descriptions the installed emulators declare cannot be read (None when every file is there)."""
    try:
        folder = specs_dir()
    except SpecsMissing as exc:
        return str(exc)
    absent = sorted(path for path in set(spec_files().values()) if not (folder / path).is_file())
    if absent:
        return f"{len(absent)} of the vendor specs are missing in {folder} ({', '.join(absent[:3])}...)"
    return None


def load_spec(name: str) -> dict[str, Any]:
    """One vendor description by short name (see ``spec_files()``), or by its path under the specs folder, parsed
    (once per file: the specs folder is looked up at every call, so a missing one is always said)."""
    known = spec_files()
    if name not in known and "/" not in name:
        raise SpecsMissing(f"no vendor description named {name!r} (known: {', '.join(sorted(known)) or 'none'})")
    path = specs_dir() / known.get(name, name)
    if not path.is_file():
        raise SpecsMissing(f"{path} is missing ({SPECS_ENV} names the specs folder)")
    return _parsed(path.resolve())


@functools.cache
def _parsed(path: Path) -> dict[str, Any]:
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


def spec_by_prefix(prefixes: Mapping[str, str]) -> Callable[[str], Spec]:
    """A ``spec_for(path)`` for ``CannedVendor.check_sent``: the description (by ``spec_files()`` name) of the first
    prefix that the path starts with (an emulator's ``Backend.spec_prefixes``); a path under none fails the test."""
    specs = {prefix: Spec(name) for prefix, name in prefixes.items()}

    def spec_for(path: str) -> Spec:
        for prefix, spec in specs.items():
            if path.startswith(prefix):
                return spec
        raise AssertionError(f"no spec for {path}")

    return spec_for
