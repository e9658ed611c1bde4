"""The quick path of Markdown -> ADF gives exactly what one plain markdown-it parse of the whole text gives.

The reference below is the conversion without sections, caches or the quick path: ``markdown-it`` over the
whole text, then the same ADF writer. The handoff templates, rendered with ordinary and with hostile values
(``data/handoffs.json``), must convert identically and through the quick path; Markdown-ish text built from the
shapes the quick path reads, and dense syntax around them, must convert identically whichever path it takes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cxbridge_jira import adf
from cxbridge_jira.adf import markdown_to_adf
from cxbridge_jira.wiki import markdown_to_wiki
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxbridge.testing import validate_adf


def reference(markdown: str) -> dict[str, Any]:
    """The ADF of one markdown-it parse of the whole text (no sections, no caches, no quick path)."""
    blocks = adf._parse(adf.clean_text(markdown))
    return {"type": "doc", "version": 1, "content": adf._adf_blocks(blocks, adf._DOC_BLOCKS)}


def sections(markdown: str) -> list[str]:
    return [s for s in adf._SECTION_START.split(adf.clean_text(markdown)) if s]


# Every Markdown handoff template (issue description, impact block, relay comment) rendered with ordinary and
# hostile values (markup of every kind, Unicode, trailing spaces, multi-line comments with backslashes and list
# or quote markers), and descriptions captured from a bench_pipeline run. Rendered by the core's Handoff (plugin
# tests import only the SDK and the test kit, so the renders are kept here as data).
HANDOFFS = json.loads((Path(__file__).parent / "data" / "handoffs.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("markdown", HANDOFFS)
def test_handoff_templates_convert_as_markdown_it_does_through_the_quick_path(markdown: str) -> None:
    """Every rendered handoff converts to the reference ADF, and every section of it is read by the quick path
    (the point of it: a handoff never needs markdown-it's block parser)."""
    assert markdown_to_adf(markdown) == reference(markdown)
    for section in sections(markdown):
        assert adf._quick_blocks(section) is not None, section


# Inline pieces: plain words, escapes, strong runs, links of every kind, and the characters of other constructs.
INLINE = [
    "word",
    " ",
    "  ",
    "x y",
    "\\.",
    "\\*",
    "\\\\",
    "\\a",
    "\\",
    "**",
    "***",
    "*",
    "_",
    "__",
    "`",
    "~~",
    "[a](https://x.example/p?q=1)",
    "[a \\# b](http\\://h\\.example/x)",
    "[a](javascript:alert(1))",
    "[a](/relative)",
    "[a](<https://x.example>)",
    '[a](https://x.example "t")',
    "[a]( https://x.example)",
    "[](https://x.example)",
    "[a](https://x.example/(p))",
    "[a]",
    "[",
    "]",
    "](",
    "!",
    "![a](https://x.example/i.png)",
    "&",
    "&amp;",
    "&#35;",
    "<",
    "<https://x.example>",
    ":",
    "(",
    ")",
    "é",
    "🎉",
    "\u00a0",
    "\u3000",
    "!",
    ".",
]


def markdown_lines(text: st.SearchStrategy[str], shapes: list[str], *fixed: list[str]) -> st.SearchStrategy[str]:
    """Texts of lines: ``text`` in each of ``shapes`` ("{}" stands for it) or one of the ``fixed`` lines."""
    line = st.one_of(*(text.map(shape.format) for shape in shapes), *(st.sampled_from(lines) for lines in fixed))
    return st.lists(line, max_size=14).map("\n".join)


markdownish = markdown_lines(
    st.lists(st.sampled_from(INLINE), max_size=12).map("".join),
    ["{}", "- {}", "  - {}", "    - {}", "> {}", ">{}", "## {}", "# {} #"],
    ["", " ", ">", "> ", "---", "***", "___", "===", "- - -", "-", "1. one", "2) two", "#", "##x"],
    ["| a | b |", "|---|---|", "| :-- | --: |", "|---|", "| 1 | 2 | 3 |", "| x |", "|", "||"],
    ["a | b", "--- | ---", ":-:", "| a \\| b |", "| `a|b` |", "\tx", "    code", "x  ", "a\\"],
)
# The same, from only the pieces and lines the quick path reads, so that most examples take it.
QUICK_INLINE = ["word", " ", "x y", "\\.", "\\*", "\\\\", "**", "[a](https://x.example/p?q=1)", "[a \\# b](http\\://h\\.example/x)",
                "]", "!", "&", "(", ")", ":", ".", "é", "🎉", "\u00a0", "*", "1."]  # fmt: skip
quickish = markdown_lines(
    st.lists(st.sampled_from(QUICK_INLINE), min_size=1, max_size=10).map("".join),
    ["{}", "- {}", "  - {}", "> {}", "## {}"],
    ["", ">", "---", "| a | b |", "|---|--:|", "| 1 | **2** |", "| x |", "| a \\| b | c |"],
)


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(markdownish, quickish))
def test_quick_blocks_are_markdown_its_blocks_or_none(markdown: str) -> None:
    """Lines in the shapes the quick path reads, mixed with every shape it must leave to markdown-it: the quick
    tree, when there is one, is markdown-it's tree, and the whole conversion is the reference's."""
    text = adf.clean_text(markdown)
    quick = adf._quick_blocks(text)
    if quick is not None:
        assert quick == adf._parse(text)
    assert adf.parse_blocks(markdown) == adf._parse(text)
    assert markdown_to_adf(markdown) == reference(markdown)


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.lists(st.sampled_from([*INLINE, "\n", "a\n", "\nb", " \n"]), max_size=16).map("".join),
        st.lists(st.sampled_from([*QUICK_INLINE, "\n"]), max_size=16).map("".join),
    )
)
def test_quick_spans_are_markdown_its_spans_or_none(text: str) -> None:
    """Inline text: the quick spans, when there are some, are the spans of markdown-it's inline parse."""
    text = adf.clean_text(text).strip()
    quick = adf._quick_spans(text)
    if quick is not None:
        assert quick == adf._spans(adf._parser().parseInline(text)[0])


def test_the_common_shapes_take_the_quick_path() -> None:
    """Escapes, strong labels, http links, nested items, quotes and tables are read without markdown-it."""
    markdown = (
        "## Ticket\n- **Ticket:** [Zendesk #9](http\\://127\\.0\\.0\\.1\\:8/t/9)\n  - nested \\- item\n\n"
        "> quoted\n> lines\n>\n> again\n\n---\nDone.\n\n| A | B |\n|---|--:|\n| [#9](https://x.example/9) |\n"
    )
    assert adf._quick_blocks(adf.clean_text(markdown)) is not None
    result = markdown_to_adf(markdown)
    assert result == reference(markdown)
    validate_adf(result)
    for inline in ("**Ticket:** [Zendesk #9](http\\://127\\.0\\.0\\.1\\:8/t/9)", "nested \\- item", "a & b!"):
        assert adf._quick_spans(inline) is not None


def test_a_changed_value_is_never_served_from_the_caches() -> None:
    """Sections and inline texts are cached by their exact text: one changed character gives a new document,
    and converting the first text again gives its own document (not the last one's)."""
    first = "## Customer\n- **Tier:** gold\n\n## Ticket\n- **Subject:** Exports fail\n"
    second = first.replace("gold", "gole")
    one, two = markdown_to_adf(first), markdown_to_adf(second)
    assert one != two
    assert "gole" in str(two)
    assert "gole" not in str(one)
    assert markdown_to_adf(first) == one == reference(first)
    assert markdown_to_adf(second) == two == reference(second)
    assert markdown_to_wiki(second) != markdown_to_wiki(first)


def test_converted_documents_do_not_share_mutable_nodes() -> None:
    """A caller changing a returned document (the connector splices blocks into descriptions) cannot change the
    next conversion of the same text."""
    markdown = "## Customer\n- **Tier:** gold\n"
    doc = markdown_to_adf(markdown)
    doc["content"][1]["content"][0]["content"][0]["content"][0]["text"] = "changed"
    doc["content"].append({"type": "rule"})
    assert markdown_to_adf(markdown) == reference(markdown)


def reference_inline(spans: list[adf.Span]) -> list[dict[str, Any]]:
    """ADF inline nodes as the writer made them before its marks were cached: marks built for every span,
    a text node merged into the one before when their marks are equal."""
    nodes: list[dict[str, Any]] = []
    for span in spans:
        if span.is_break:
            nodes.append({"type": "hardBreak"})
            continue
        if not span.text:
            continue
        names = ("code",) if "code" in span.marks else tuple(m for m in adf.MARK_ORDER if m in span.marks)
        marks: list[dict[str, Any]] = [{"type": name} for name in names]
        if span.href:
            marks.append({"type": "link", "attrs": {"href": span.href}})
        if nodes and nodes[-1]["type"] == "text" and nodes[-1].get("marks", []) == marks:
            nodes[-1]["text"] += span.text
            continue
        node: dict[str, Any] = {"type": "text", "text": span.text}
        if marks:
            node["marks"] = marks
        nodes.append(node)
    return nodes


span = st.one_of(
    st.just(adf.BREAK),
    st.builds(
        adf.Span,
        st.sampled_from(["", "a", "b c"]),
        st.frozensets(st.sampled_from(["strong", "em", "strike", "code"])),
        st.sampled_from([None, "", "https://x.example/", "https://y.example/"]),
    ),
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(span, max_size=10))
def test_inline_nodes_merge_equal_marks_as_before(spans: list[adf.Span]) -> None:
    """Adjacent spans whose marks come out equal (``code`` drops the other marks) share one text node; a break
    or different marks start a new one; an empty href is no link."""
    assert adf._inline(spans) == reference_inline(spans)
