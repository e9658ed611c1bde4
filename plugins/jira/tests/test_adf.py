"""Markdown -> ADF: every document validates against the published ADF schema, whatever the input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cxbridge_jira import adf
from cxbridge_jira.adf import markdown_to_adf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxbridge.testing import validate_adf


def doc(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "doc", "version": 1, "content": list(content)}


def para(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(nodes)}


def text(value: str, *marks: str, href: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    mark_list: list[dict[str, Any]] = [{"type": m} for m in marks]
    if href:
        mark_list.append({"type": "link", "attrs": {"href": href}})
    if mark_list:
        node["marks"] = mark_list
    return node


def texts(node: Any) -> str:
    """All text of a node tree, concatenated."""
    if isinstance(node, dict):
        own = node.get("text", "") if node.get("type") == "text" else ""
        return own + "".join(texts(c) for c in node.get("content", []))
    return ""


def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = [node]
    for child in node.get("content", []):
        out.extend(walk(child))
    return out


def check_structure(document: dict[str, Any]) -> None:
    """What Jira's editor schema demands beyond the JSON schema: list items start with a paragraph."""
    validate_adf(document)
    for node in walk(document):
        if node["type"] == "listItem":
            assert node["content"], "an empty list item"
            assert node["content"][0]["type"] == "paragraph"
        if node["type"] == "text":
            assert node["text"]
        if node["type"] == "blockquote":
            assert node["content"]


@pytest.mark.parametrize("empty", ["", "   ", "\n\n", "\t"])
def test_empty_input_is_a_valid_empty_document(empty: str) -> None:
    """Nothing to say is still a valid document."""
    result = markdown_to_adf(empty)
    assert result == doc()
    validate_adf(result)


def test_paragraphs_headings_and_marks() -> None:
    """Headings 1-6, bold, italic, code, strike and links map to ADF nodes and marks."""
    result = markdown_to_adf("# One\n\n###### Six\n\nA **bold** _it_ `code` ~~gone~~ [site](https://example.com/a?b=1)")
    check_structure(result)
    assert result == doc(
        {"type": "heading", "attrs": {"level": 1}, "content": [text("One")]},
        {"type": "heading", "attrs": {"level": 6}, "content": [text("Six")]},
        para(
            text("A "),
            text("bold", "strong"),
            text(" "),
            text("it", "em"),
            text(" "),
            text("code", "code"),
            text(" "),
            text("gone", "strike"),
            text(" "),
            text("site", href="https://example.com/a?b=1"),
        ),
    )


def test_nested_marks_and_code_with_a_link() -> None:
    """Overlapping marks combine; a code mark keeps only a link beside it (the schema allows no other pair)."""
    result = markdown_to_adf("**a _b_** [**`x`**](http://h.example)")
    check_structure(result)
    assert result == doc(
        para(text("a ", "strong"), text("b", "strong", "em"), text(" "), text("x", "code", href="http://h.example"))
    )


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "mailto:a@example.com",
        "file:///etc/passwd",
        "/relative/path",
        "ftp://x.example/",
        "data:text/html,<script>",
        "//evil.example/x",
    ],
)
def test_only_http_links_keep_their_mark(href: str) -> None:
    """Links to anything but http/https lose the link and keep their text."""
    result = markdown_to_adf(f"[click me]({href})")
    check_structure(result)
    assert "link" not in json.dumps(result)
    assert "click me" in texts(result)


def test_images_become_linked_alt_text() -> None:
    """An image has no media to point at: its alt text, linked when the source is http(s)."""
    result = markdown_to_adf("![diagram](https://img.example/d.png) ![x](ftp://h.example/x.png)")
    check_structure(result)
    assert result == doc(para(text("diagram", href="https://img.example/d.png"), text(" x")))


def test_lists_nested_and_ordered() -> None:
    """Bullet and ordered lists nest; an ordered list keeps its start number."""
    result = markdown_to_adf("- a\n  1. b\n  2. c\n- d\n\n3. three\n4. four")
    check_structure(result)
    bullet, ordered = result["content"]
    assert bullet["type"] == "bulletList"
    assert [texts(i) for i in bullet["content"]] == ["abc", "d"]
    nested = bullet["content"][0]["content"][1]
    assert nested["type"] == "orderedList"
    assert "attrs" not in nested
    assert ordered == {
        "type": "orderedList",
        "attrs": {"order": 3},
        "content": [
            {"type": "listItem", "content": [para(text("three"))]},
            {"type": "listItem", "content": [para(text("four"))]},
        ],
    }


def test_list_item_starting_with_a_list_gets_an_empty_paragraph_first() -> None:
    """``- - x`` and an empty ``-`` item stay valid for Jira's editor."""
    result = markdown_to_adf("- - x\n-\n")
    check_structure(result)
    first, second = result["content"][0]["content"]
    assert first["content"][0] == para()
    assert second["content"] == [para()]


def test_code_block_blockquote_rule_and_breaks() -> None:
    """Fenced code keeps its language; quotes, rules and hard breaks map directly."""
    result = markdown_to_adf("```python extra\nprint(1)\n```\n\n> quoted  \n> line\n\n---\n\n```\n```")
    check_structure(result)
    assert result == doc(
        {"type": "codeBlock", "attrs": {"language": "python"}, "content": [text("print(1)")]},
        {"type": "blockquote", "content": [para(text("quoted"), {"type": "hardBreak"}, text("line"))]},
        {"type": "rule"},
        {"type": "codeBlock", "content": []},
    )


def test_tables() -> None:
    """GFM tables become ADF tables with header cells; empty cells hold an empty paragraph."""
    result = markdown_to_adf("| Customer | ARR |\n|---|--:|\n| **Acme** | |\n")
    check_structure(result)
    table = result["content"][0]
    assert table["type"] == "table"
    header, row = table["content"]
    assert [c["type"] for c in header["content"]] == ["tableHeader", "tableHeader"]
    assert row["content"] == [
        {"type": "tableCell", "content": [para(text("Acme", "strong"))]},
        {"type": "tableCell", "content": [para()]},
    ]


def test_blocks_a_container_does_not_allow_are_degraded_not_lost() -> None:
    """Headings, quotes, tables and rules inside list items and quotes keep their text in allowed nodes."""
    md = (
        "- # heading in item\n  > quote in item\n  ---\n\n"
        "> # heading in quote\n> > nested quote\n\n"
        "- | a | b |\n  |---|---|\n  | 1 | 2 |\n"
    )
    result = markdown_to_adf(md)
    check_structure(result)
    body = json.dumps(result)
    for words in ("heading in item", "quote in item", "heading in quote", "nested quote", "a | b", "1 | 2"):
        assert words in body
    types = {n["type"] for n in walk(result)}
    assert "heading" not in types
    assert "table" not in types


def test_html_is_text() -> None:
    """Raw HTML in a value is text, never markup."""
    result = markdown_to_adf("<script>alert(1)</script>\n\n<b>x</b> <img src=x onerror=y>")
    check_structure(result)
    assert texts(result) == "<script>alert(1)</script><b>x</b> <img src=x onerror=y>"


def test_control_characters_are_dropped() -> None:
    """C0/C1 controls, lone surrogates and noncharacters never reach a text node; tabs survive in code."""
    result = markdown_to_adf("a\x00b\x07c\x1bd\x7f\x85e\ud800f\uffff\n\n```\nx\ty\x08\n```")
    check_structure(result)
    assert texts(result["content"][0]) == "abcdef"
    assert result["content"][1]["content"] == [text("x\ty")]


TOKENS = [
    *"#*_-+>`~[]()!|:\\/. \n\tax1<>{}&;=\"'",
    "http://",
    "https://x.y/",
    "```",
    "\x00",
    "\x0b",
    "1. ",
    "- ",
    "|---|",
]
markdownish = st.lists(st.sampled_from(TOKENS), max_size=120).map("".join)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_gives_a_valid_document(value: str) -> None:
    """Arbitrary text, including control characters, always converts to schema-valid ADF."""
    check_structure(markdown_to_adf(value))


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(markdownish)
def test_markup_looking_text_gives_a_valid_document(value: str) -> None:
    """Dense Markdown syntax (lists, quotes, tables, fences, links) always converts to schema-valid ADF."""
    check_structure(markdown_to_adf(value))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.text(max_size=40), max_size=4))
def test_values_in_a_template_stay_text(values: list[str]) -> None:
    """A value placed in a handoff paragraph keeps its letters (no value text is lost or becomes a link)."""
    md = "\n\n".join(f"Value: {v}" for v in values)
    result = markdown_to_adf(md)
    check_structure(result)
    for node in walk(result):
        for mark in node.get("marks", []):
            if mark["type"] == "link":
                assert mark["attrs"]["href"].startswith(("http://", "https://"))


def whole_parse(markdown: str) -> list[adf.Block]:
    """The block tree of one markdown-it parse of the whole text (what ``parse_blocks`` gives section by section)."""
    return adf._parse(adf.clean_text(markdown))


SECTIONED = [
    "## Customer\n- **Tier:** gold\n## Ticket\n- a\n\n## Words\n> quoted\n## Next\ntext",
    "para\n# Heading\nlazy?\n> quote\ncontinued\n## After the quote\n1. one\n2. two\n\n   indented\n## End",
    "| a | b |\n|---|---|\n| 1 | 2 |\n## After a table\n- item\n\n- loose item\n#not a heading\n####### seven",
    "    indented code\n## heading after code\n\tcode again\n#\n##\tTabbed heading\ntext",
    "- item\n  ```\n  fenced in a list\n## a heading inside the fence?\n  ```\n",
    "[ref]\n## Section\n[ref]: https://example.com/\n",
    "text ~~strike~~\n## x\n~~~\ncode\n## not a heading\n~~~\n",
]


@pytest.mark.parametrize("markdown", SECTIONED)
def test_sections_parse_as_the_whole_text_does(markdown: str) -> None:
    """Parsed section by section (split before top-level headings, each section's tree cached), the tree is the
    one a single parse of the whole text gives: also for headings after lazy lines, tables, loose lists, code, a
    fence spanning a heading and a link reference defined in another section (those two are parsed whole)."""
    assert adf.parse_blocks(markdown) == whole_parse(markdown)
    assert adf.parse_blocks(markdown) == whole_parse(markdown)  # from the cache this time


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([*TOKENS, "\n## ", "\n# ", "\n###### ", "\n    ", "]: http://a.b/"]), max_size=80))
def test_any_markup_parses_by_sections_as_a_whole(tokens: list[str]) -> None:
    """Dense Markdown syntax with headings anywhere: the sectioned parse never differs from the whole parse."""
    markdown = "".join(tokens)
    assert adf.parse_blocks(markdown) == whole_parse(markdown)
