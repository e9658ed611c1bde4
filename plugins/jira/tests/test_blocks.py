"""The managed "Customer impact" block spliced into Jira descriptions: ADF on Cloud, wiki text on Data Center."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cxbridge_jira.adf import markdown_to_adf
from cxbridge_jira.blocks import replace_adf, replace_wiki
from cxbridge_jira.wiki import markdown_to_wiki

from cxbridge.sdk import ManagedBlock
from cxbridge.testing import validate_adf

TITLE, END = "Customer impact", "Kept current by cxbridge: edits inside this section are replaced."


def block(arr: str = "480,000 USD") -> ManagedBlock:
    body = f"**2 customers, 3 tickets.** ARR at stake: {arr}.\n\n- Acme \\[Corp\\] \\*: strategic"
    return ManagedBlock(title=TITLE, body=body, end=END)


def rich(form: str, markdown: str) -> Any:
    return markdown_to_adf(markdown) if form == "adf" else markdown_to_wiki(markdown)


def replace(form: str, description: Any, managed: ManagedBlock) -> tuple[Any, bool]:
    return replace_adf(description, managed) if form == "adf" else replace_wiki(description, managed)


@pytest.mark.parametrize("form", ["adf", "wiki"])
def test_splicing_replaces_the_block_in_place_and_is_idempotent(form: str) -> None:
    """The block goes between its markers; text before and after it is kept; a second splice changes nothing."""
    before = "## Engineering notes\n\nSomething the engineer wrote."
    after = "## Later\n\nA note added below the block."
    original = rich(form, before + "\n\n" + block().markdown + "\n\n" + after)
    new = block("999 USD")
    spliced, changed = replace(form, original, new)
    assert changed
    assert spliced == rich(form, before + "\n\n" + new.markdown + "\n\n" + after)
    again, changed_again = replace(form, spliced, new)
    assert not changed_again
    assert again == spliced
    if form == "adf":
        validate_adf(spliced)


@pytest.mark.parametrize("form", ["adf", "wiki"])
def test_a_description_without_the_block_gets_it_appended(form: str) -> None:
    """A description without the block (or none at all) gets it at the end."""
    spliced, changed = replace(form, rich(form, "Just the report."), block())
    assert changed
    assert spliced == rich(form, "Just the report.\n\n" + block().markdown)
    empty, _ = replace(form, None, block())
    assert empty == rich(form, block().markdown)


def test_attributes_jira_adds_do_not_count_as_a_change() -> None:
    """``localId`` attributes Jira adds to stored ADF nodes are not a change of the block."""
    doc = copy.deepcopy(markdown_to_adf(block().markdown))
    for node in doc["content"]:
        node.setdefault("attrs", {})["localId"] = "abc"
    _, changed = replace_adf(doc, block())
    assert not changed


def test_wiki_with_windows_line_ends_is_still_found() -> None:
    """Data Center may store CRLF line ends: the block is still found, and unchanged."""
    stored = markdown_to_wiki("intro\n\n" + block().markdown).replace("\n", "\r\n")
    spliced, changed = replace_wiki(stored, block())
    assert not changed
    assert spliced.count("h2. Customer impact") == 1
