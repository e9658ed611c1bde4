"""The core knows no vendor: outside the demo, the init template and the sandbox's serve defaults, no code under
``cxbridge/`` names Zendesk, Jira or HubSpot; they are plugins like any other. Documentation may use them as
examples (docstrings, attribute docstrings and comments are not code)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "cxbridge"
VENDORS = re.compile(r"zendesk|jira|hubspot|atlassian|hubapi", re.IGNORECASE)
ALLOWED = {
    "demo.py": "the demo plays the built-in plugins' story",
    "init_template.py": "the starting configuration names the built-in plugins",
    "cli/sandbox.py": "`cxbridge sandbox serve` defaults to the built-in emulators",
}


def code_words(source: str) -> list[tuple[int, str]]:
    """Every identifier and every string that is not documentation, with its line."""
    tree = ast.parse(source)
    docs = {
        id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    words: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            words.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            words.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            words.append((node.lineno, node.attr))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            words.append((node.lineno, node.name))
        elif isinstance(node, ast.arg):
            words.append((node.lineno, node.arg))
        elif isinstance(node, ast.alias):
            words.append((getattr(node, "lineno", 0), node.name))
    return words


def files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if str(p.relative_to(ROOT)) not in ALLOWED)


@pytest.mark.parametrize("path", files(), ids=str)
def test_core_code_names_no_vendor(path: Path) -> None:
    """Routing, roles, settings, HTTP, store, templates, webhooks, CLI, test kit: no vendor name outside
    documentation (the kit learns the vendors' spec files from the installed emulators)."""
    found = [
        f"line {line}: {word!r}" for line, word in code_words(path.read_text(encoding="utf-8")) if VENDORS.search(word)
    ]
    assert not found, f"{path.relative_to(ROOT)} names a vendor in code: " + "; ".join(found)


def test_the_checker_tells_code_from_documentation() -> None:
    """A docstring or a comment may name a vendor; a string, a name or an attribute in code may not."""
    source = '"""For Zendesk."""\n# Jira\nx = 1\n"""HubSpot attr doc."""\ndef f(jira_key):\n    return "zendesk"\n'
    assert [w for _, w in code_words(source) if VENDORS.search(w)] == ["jira_key", "zendesk"]
