"""docs/plugin-hooks.md documents every hook of cxbridge.hookspecs with every argument, and no other hook.

The hooks are its ``## hook_name(args)`` sections; its other ``## `` sections (the SDK, roles, signals...) are
the rest of the plugin author's guide."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from cxbridge import hookspecs

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugin-hooks.md"


def hook_signatures() -> dict[str, list[str]]:
    """Every hook the spec module declares (functions marked by the hookspec marker), with its arguments."""
    marker = f"{hookspecs.PROJECT}_spec"
    return {
        name: list(inspect.signature(fn).parameters)
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, marker)
    }


def doc_sections() -> dict[str, str]:
    """The doc's ``## hook_name(args)`` sections (a heading shaped like a call), by hook name, with their text."""
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^## +", text, flags=re.M)[1:]
    sections: dict[str, str] = {}
    for part in parts:
        heading, _, body = part.partition("\n")
        match = re.match(r"`?(\w+)\(", heading)
        if match:
            sections[match.group(1)] = heading + "\n" + body
    return sections


def test_the_doc_has_guide_sections_besides_the_hooks() -> None:
    """Guards the parser: the guide's other sections are there and are not taken for hooks."""
    headings = re.findall(r"^## +(.*)$", DOC.read_text(encoding="utf-8"), flags=re.M)
    assert "The SDK: `cxbridge.sdk`" in headings
    assert "Roles" in headings
    assert len(doc_sections()) < len(headings)


def test_the_hookspec_module_declares_hooks() -> None:
    """Guards the parser below: the spec module is found to declare the hooks the design names."""
    assert {"register_connectors", "register_commands", "handoff_context"} <= set(hook_signatures())


@pytest.mark.parametrize("hook", sorted(hook_signatures()))
def test_every_hook_and_argument_is_documented(hook: str) -> None:
    """Each hook has a section whose heading shows its signature and whose text explains every argument."""
    sections = doc_sections()
    assert hook in sections, f"docs/plugin-hooks.md has no '## {hook}(...)' section"
    args = hook_signatures()[hook]
    heading = sections[hook].partition("\n")[0]
    assert heading.replace("`", "") == f"{hook}({', '.join(args)})", f"heading {heading!r} misstates the arguments"
    for arg in args:
        assert re.search(rf"^- `{arg}`:", sections[hook], flags=re.M), f"{hook}: argument `{arg}` is not explained"


def test_every_hook_has_a_docstring() -> None:
    """The hookspec docstrings are the reference the doc follows."""
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(fn, f"{hookspecs.PROJECT}_spec"):
            assert inspect.getdoc(fn), f"hook {name} has no docstring"


def test_the_doc_documents_no_hook_that_does_not_exist() -> None:
    """A renamed or removed hook does not linger in the doc."""
    assert set(doc_sections()) == set(hook_signatures())
