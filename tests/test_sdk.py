"""cxbridge.sdk is the plugin contract: its ``__all__`` is the list in the plugin author's guide, the built-in
plugins import nothing else from the core (their tests add only cxbridge.testing), and the guide's examples run."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cxbridge import sdk

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugin-hooks.md"
PLUGIN_SOURCES = sorted(ROOT.glob("plugins/*/cxbridge_*/**/*.py"))
PLUGIN_TESTS = sorted(ROOT.glob("plugins/*/tests/**/*.py"))
SDK_HEADING = "## The SDK: `cxbridge.sdk`"
MODULE_ATTR = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):[A-Za-z_][\w.]*$")
"""An entry-point style ``"module:attr"`` string."""


# -- what a file imports --------------------------------------------------------------------------------------------


def imported_modules(source: str) -> Iterator[tuple[int, str]]:
    """Every absolute module a file imports, with its line: ``import`` and ``from`` statements wherever they are
    (module level, in functions, under ``if TYPE_CHECKING:``), ``importlib.import_module("...")`` and
    ``__import__("...")`` calls, and ``"module:attr"`` strings. ``from cxbridge import x`` counts as
    ``cxbridge.x`` (a submodule or a name of the package itself: either way, not the SDK unless x is ``sdk``)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "cxbridge":
                for alias in node.names:
                    yield node.lineno, f"cxbridge.{alias.name}"
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
                yield node.lineno, str(first.value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = MODULE_ATTR.match(node.value)
            if match:
                yield node.lineno, match.group(1)


def core_imports(path: Path, allowed: tuple[str, ...]) -> list[str]:
    """The ``cxbridge`` modules a file imports that are neither in ``allowed`` nor submodules of one of them."""
    found = []
    for line, module in imported_modules(path.read_text(encoding="utf-8")):
        if module.split(".")[0] != "cxbridge":
            continue
        if not any(module == ok or module.startswith(ok + ".") for ok in allowed):
            found.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    return found


def test_the_import_scan_sees_every_way_of_importing() -> None:
    """Guards the scan below: each form of import, however nested, is found; cxbridge_x plugins are not cxbridge."""
    source = """
import cxbridge.models
from cxbridge.errors import VendorError
from cxbridge import config
import cxbridge_zendesk.connector
from . import signals
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from cxbridge.http import HttpClient
def f():
    from cxbridge.sandbox.modes import Vendors
    importlib.import_module("cxbridge.store")
    __import__("cxbridge.redact")
ENTRY = "cxbridge.plugins:build_plugins"
NOT_A_MODULE = "cxbridge.impact"
"""
    modules = [m for _, m in imported_modules(source) if m.split(".")[0] == "cxbridge"]
    assert sorted(modules) == sorted(
        [
            "cxbridge.models",
            "cxbridge.errors",
            "cxbridge.config",
            "cxbridge.http",
            "cxbridge.sandbox.modes",
            "cxbridge.store",
            "cxbridge.redact",
            "cxbridge.plugins",
        ]
    )


def test_the_plugin_files_are_found() -> None:
    """Guards the two tests below: the three built-in plugins' packages and tests are where the scan looks."""
    for name in ("zendesk", "jira", "hubspot"):
        assert ROOT / "plugins" / name / f"cxbridge_{name}" / "plugin.py" in PLUGIN_SOURCES
        assert any(p.parent == ROOT / "plugins" / name / "tests" for p in PLUGIN_TESTS)


def test_the_plugins_import_only_the_sdk_from_the_core() -> None:
    """Every module of a built-in plugin imports nothing from cxbridge but cxbridge.sdk."""
    found = [hit for path in PLUGIN_SOURCES for hit in core_imports(path, ("cxbridge.sdk",))]
    assert found == [], "plugins must import from cxbridge.sdk only:\n" + "\n".join(found)


def test_the_plugin_tests_import_only_the_sdk_and_the_test_kit() -> None:
    """Every test module of a built-in plugin imports nothing from cxbridge but cxbridge.sdk and cxbridge.testing."""
    found = [hit for path in PLUGIN_TESTS for hit in core_imports(path, ("cxbridge.sdk", "cxbridge.testing"))]
    assert found == [], "plugin tests must import from cxbridge.sdk and cxbridge.testing only:\n" + "\n".join(found)


# -- __all__ and the guide ------------------------------------------------------------------------------------------


def documented_names() -> list[str]:
    """The names the guide's SDK section lists: its ``- Group: `name`, `name`...`` lines, in order."""
    text = GUIDE.read_text(encoding="utf-8")
    assert SDK_HEADING in text, f"{GUIDE.name} has no '{SDK_HEADING}' section"
    section = text.split(SDK_HEADING, 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        match = re.fullmatch(r"- [^:`*]+: ((?:`\w+`)(?:, `\w+`)*)", line.strip())
        if match:
            names += re.findall(r"`(\w+)`", match.group(1))
    return names


def isort_key(name: str) -> tuple[int, str]:
    """How ``__all__`` is sorted (ruff's RUF022): CONSTANTS, then Classes, then functions, each alphabetically."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_the_list_in_the_guide() -> None:
    """``cxbridge.sdk.__all__`` holds exactly the names the guide's SDK section lists, each once."""
    documented = documented_names()
    assert len(documented) == len(set(documented)), "a name is listed twice in the guide"
    assert sorted(documented) == sorted(sdk.__all__), (
        f"in __all__ only: {sorted(set(sdk.__all__) - set(documented))}; "
        f"in the guide only: {sorted(set(documented) - set(sdk.__all__))}"
    )


def test_every_name_in_all_is_importable_and_all_is_sorted() -> None:
    """Every name of ``__all__`` is an attribute of cxbridge.sdk, and ``__all__`` is sorted, without duplicates."""
    module = importlib.import_module("cxbridge.sdk")
    assert [name for name in sdk.__all__ if not hasattr(module, name)] == []
    assert sdk.__all__ == sorted(set(sdk.__all__), key=isort_key)


# -- the guide's examples run -------------------------------------------------------------------------------------


def guide_examples() -> dict[str, str]:
    """The guide's Python examples that name their file on their first line (``# cxbridge_acmedesk/x.py``)."""
    text = GUIDE.read_text(encoding="utf-8")
    examples = {}
    for block in re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S):
        first = block.partition("\n")[0]
        match = re.fullmatch(r"# ([\w/]+\.py)", first)
        if match:
            examples[match.group(1)] = block
    return examples


def test_the_guide_examples_import_only_the_sdk() -> None:
    """The guide's plugin modules import only cxbridge.sdk from the core; its test adds only cxbridge.testing."""
    examples = guide_examples()
    assert {"cxbridge_acmedesk/plugin.py", "cxbridge_acmedesk/connector.py", "tests/test_acmedesk.py"} <= set(examples)
    for path, code in examples.items():
        allowed = ("cxbridge.sdk", "cxbridge.testing") if path.startswith("tests/") else ("cxbridge.sdk",)
        modules = [m for _, m in imported_modules(code) if m.split(".")[0] == "cxbridge"]
        assert all(any(m == ok or m.startswith(ok + ".") for ok in allowed) for m in modules), (path, modules)


@pytest.fixture
def acmedesk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The guide's example plugin written out as a package (and its test file) in ``tmp_path``."""
    for path, code in guide_examples().items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code, encoding="utf-8")
    (tmp_path / "cxbridge_acmedesk" / "__init__.py").write_text('"""AcmeDesk for cxbridge."""\n', encoding="utf-8")
    # "installed": a distribution's metadata on the path, with the guide's entry point
    info = tmp_path / "cxbridge_acmedesk-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cxbridge-acmedesk\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[cxbridge]\nacmedesk = cxbridge_acmedesk.plugin\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m == "cxbridge_acmedesk" or m.startswith("cxbridge_acmedesk.")]:
        del sys.modules[name]


def test_the_guide_plugin_registers_its_connector_verifier_and_emulator(acmedesk: Path) -> None:
    """The guide's plugin module's hooks register the connector, the verifier and the emulator it shows."""
    plugin = importlib.import_module("cxbridge_acmedesk.plugin")
    connectors: list[object] = []
    verifiers: list[tuple[str, object]] = []
    backends: list[object] = []
    plugin.register_connectors(connectors.append)
    plugin.register_webhook_verifiers(lambda system, verifier: verifiers.append((system, verifier)))
    plugin.register_sandbox_backends(backends.append)
    assert [c.__name__ for c in connectors] == ["AcmeConnector"]  # type: ignore[attr-defined]
    assert [(s, v.__name__) for s, v in verifiers] == [("acmedesk", "verify_acmedesk")]  # type: ignore[attr-defined]
    assert [b.__name__ for b in backends] == ["AcmeBackend"]  # type: ignore[attr-defined]
    connector = importlib.import_module("cxbridge_acmedesk.connector").AcmeConnector
    assert issubclass(connector, sdk.Helpdesk)
    assert not connector.__abstractmethods__


def test_the_guide_test_file_passes_with_its_contract_suites(acmedesk: Path) -> None:
    """The guide's test file (both contract suites and two connector tests) passes against the guide's plugin."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "tests/test_acmedesk.py"],
        cwd=acmedesk,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}, "PYTHONPATH": str(acmedesk)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", done.stdout), done.stdout[-2000:]
    assert "skipped" not in done.stdout, done.stdout[-2000:]
