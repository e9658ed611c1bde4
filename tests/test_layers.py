"""The core's layers import in one direction only, and no module imports itself back through others.

Every import counts: module level, inside functions, under ``if TYPE_CHECKING:``, ``importlib.import_module``
calls and ``"module:attr"`` strings. Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``, so a
module depends on its parent packages too. The layers, lowest first (README "Architecture"):
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

MODULE_ATTR = re.compile(r"cxbridge(\.\w+)*:\w+")
"""An entry-point style reference (``cxbridge.cli.group:main``): an import by string."""
ROOT = Path(__file__).resolve().parent.parent / "cxbridge"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "leaf",
        (
            "cxbridge",
            "cxbridge.errors",
            "cxbridge.models",
            "cxbridge.redact",
            "cxbridge.secrets",
            "cxbridge.settings",
            "cxbridge.signals",
        ),
    ),
    ("adapters", ("cxbridge.http", "cxbridge.store", "cxbridge.sandbox", "cxbridge.handoff")),
    (
        "contract",
        ("cxbridge.connectors", "cxbridge.hookspecs", "cxbridge.webhooks", "cxbridge.webhooks.verify", "cxbridge.sdk"),
    ),
    ("workflows", ("cxbridge.workflows",)),
    (
        "app",
        (
            "cxbridge.config",
            "cxbridge.plugins",
            "cxbridge.provision",
            "cxbridge.runtime",
            "cxbridge.worker",
            "cxbridge.webhooks.receiver",
            "cxbridge.webhooks.agent_api",
            "cxbridge.webhooks.serve",
            "cxbridge.webhooks.metrics",
            "cxbridge.sandbox.modes",
            "cxbridge.demo",
            "cxbridge.doctor",
            "cxbridge.init_template",
        ),
    ),
    ("cli", ("cxbridge.cli", "cxbridge.__main__")),
    ("test kit", ("cxbridge.testing",)),
]
"""Each layer may import its own and lower layers. A module belongs to the layer of its longest listed prefix."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(module: str) -> int:
    best = (-1, -1)
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), rank)
    if best[1] < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py and the README")
    return best[1]


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _known(name: str) -> str | None:
    """The cxbridge module a dotted name refers to (a module, or an attribute of one), or None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> Iterator[str]:
    """Every cxbridge module ``module`` imports, by any means, with the parent packages each import runs."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.append(node.args[0].value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_ATTR.fullmatch(node.value):
            names.append(node.value.partition(":")[0])
    seen: set[str] = set()
    for name in names:
        found = _known(name) if name.startswith("cxbridge") else None
        while found and found not in seen:
            if found != module:
                seen.add(found)
                yield found
            found = found.rpartition(".")[0] or None
            if found and found not in MODULES:
                break


GRAPH = {module: sorted(set(imports_of(module))) for module in MODULES}


def test_every_module_is_in_a_layer() -> None:
    """A new module must be placed in a layer (and the README's architecture section) before it lands."""
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module: str) -> None:
    """A module imports only its own layer and the layers below it."""
    mine = layer_of(module)
    upward = [f"{dep} ({LAYERS[layer_of(dep)][0]})" for dep in GRAPH[module] if layer_of(dep) > mine]
    assert not upward, f"{module} ({LAYERS[mine][0]}) imports a higher layer: {', '.join(upward)}"


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph.get(node, []):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    """No set of modules imports each other around a loop, whatever the kind of import."""
    # a package imports its own submodules to export them; a submodule importing its package back is the cycle
    edges = {m: [d for d in deps if not m.startswith(d + ".")] for m, deps in GRAPH.items()}
    assert cycles(edges) == []


def test_the_checker_sees_every_kind_of_import() -> None:
    """The scan counts TYPE_CHECKING, function-level, importlib and module:attr imports (a broken scan fails)."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .runtime import Runtime\n"
        "def f():\n    from .worker import drain\n"
        "import importlib\nimportlib.import_module('cxbridge.demo')\n"
        "HOOK = 'cxbridge.cli.group:main'\n"
    )
    MODULES["cxbridge.fake_probe"] = ROOT / "fake_probe.py"
    try:
        tree_source = ROOT / "fake_probe.py"
        original = Path.read_text

        def read(path: Path, *args: object, **kwargs: object) -> str:
            return source if path == tree_source else original(path, *args, **kwargs)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Path, "read_text", read)
            found = set(imports_of("cxbridge.fake_probe"))
    finally:
        del MODULES["cxbridge.fake_probe"]
    assert {"cxbridge.runtime", "cxbridge.worker", "cxbridge.demo", "cxbridge.cli.group", "cxbridge.cli"} <= found
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
