"""The quick path of Markdown -> ADF gives exactly what one plain markdown-it parse of the whole text gives.

The reference below is the conversion without sections, caches or the quick path: ``markdown-it`` over the
whole text, then the same ADF writer. The handoff templates, rendered with ordinary and with hostile values,
must convert identically and (for the templates) through the quick path; Markdown-ish text built from the
shapes the quick path reads, and dense syntax around them, must convert identically whichever path it takes.
"""

from __future__ import annotations

from typing import Any

import pytest
from cxbridge_jira import adf
from cxbridge_jira.adf import markdown_to_adf
from cxbridge_jira.wiki import markdown_to_wiki
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxbridge.connectors import ManagedBlock
from cxbridge.handoff import Handoff
from cxbridge.testing import validate_adf


def reference(markdown: str) -> dict[str, Any]:
    """The ADF of one markdown-it parse of the whole text (no sections, no caches, no quick path)."""
    blocks = adf._parse(adf.clean_text(markdown))
    return {"type": "doc", "version": 1, "content": adf._adf_blocks(blocks, adf._DOC_BLOCKS)}


def sections(markdown: str) -> list[str]:
    return [s for s in adf._SECTION_START.split(adf.clean_text(markdown)) if s]


def ticket(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "system": "Zendesk",
        "id": "1",
        "url": "https://acme.zendesk.com/agent/tickets/1",
        "subject": "Exports fail",
        "status": "open",
        "priority": "urgent",
        "created_at": "2026-11-01 10:00 UTC",
        "age": "3 days old",
        "requester": {"name": "Ada", "email": "ada@acme.example"},
        "organization": "Acme",
    }
    base.update(over)
    return base


def customer(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "known": True,
        "name": "Acme Corp",
        "domain": "acme.example",
        "tier": "strategic",
        "arr": "480000",
        "currency": "USD",
        "owner": "Olivia",
        "owner_email": "olivia@cxbridge.example",
        "match_text": "the requester's email domain (acme.example)",
        "renewal_date": "2027-01-31",
        "deals": [{"name": "Expansion", "stage": "contractsent", "amount": "120000", "currency": "USD"}],
    }
    base.update(over)
    return base


def description_context(**over: Any) -> dict[str, Any]:
    """What ``issue_description.md.j2`` sees (the shape the escalation builds)."""
    base: dict[str, Any] = {
        "ticket": ticket(),
        "customer": customer(),
        "first_comment": "It times out.",
        "agent_summary": "Reproduced.",
        "agent_summary_source": "the ticket's latest internal note",
        "history": [{"public": True}, {"public": False}],
        "priority": {"value": "Highest", "reason": "strategic and urgent"},
        "decisions": [],
        "agent": {"name": "Sam", "email": None},
    }
    base.update(over)
    return base


def impact_context(name: str = "Acme Corp", companies: int = 2, unknown: int = 1) -> dict[str, Any]:
    """What ``impact_block.md.j2`` sees (``impact.template_context``'s shape)."""
    t = {"system": "Zendesk", "id": "7", "url": "https://acme.zendesk.com/agent/tickets/7", "opened": "2026-11-01"}
    return {
        "customers": companies,
        "tickets": companies + unknown,
        "arr": [{"currency": "EUR", "amount": 1000}, {"currency": "USD", "amount": 480000}],
        "arr_unknown": ["Globex"],
        "renewal": "2027-01-31",
        "renewal_company": name,
        "tier": "strategic",
        "tiers": ["strategic", "standard"],
        "oldest_open": t,
        "companies": [
            {
                "name": f"{name} {n}",
                "tier": "strategic" if n else None,
                "arr": 480000,
                "currency": "USD",
                "renewal_date": "2027-01-31",
                "tickets": [t, {**t, "id": "8"}],
                "tickets_more": n,
            }
            for n in range(companies)
        ],
        "companies_more": 3,
        "companies_more_tickets": 4,
        "without_company": [t] * unknown,
        "without_company_count": unknown + 2,
        "without_company_count_more": 2,
    }


def relay_context(comment: str, public: bool = False, attachments: int = 1) -> dict[str, Any]:
    """What ``relay_comment.md.j2`` sees (``relay._context``'s shape, with attachments)."""
    files = [
        {"name": "log.txt", "uploaded": True},
        {"name": "big.zip", "uploaded": False, "url": "https://acme.zendesk.com/a/1", "reason": "too large"},
    ]
    return {
        "comment": comment,
        "public": public,
        "author": {"name": "Ada", "email": "ada@acme.example"},
        "ticket": {"system": "Zendesk", "id": "1", "url": "https://acme.zendesk.com/agent/tickets/1", "subject": "x"},
        "customer": {"requester": {"name": "Ada", "email": "ada@acme.example"}, "organization": "Acme"},
        "attachments": files[:attachments],
        "more": attachments,
    }


HANDOFF = Handoff()
NO_DEAL = {"name": "", "stage": None, "amount": None, "currency": None}


def rendered(value: str = "", comment: str = "It times out.") -> list[str]:
    """Every Markdown handoff template rendered with ``value`` in its free-text fields (and a description with
    the impact block after it, as an escalation's issue has)."""
    words = comment or value
    variants = [
        description_context(),
        description_context(
            ticket=ticket(subject=value or "Exports fail", requester={"name": value or None, "email": None}),
            customer=customer(name=value or "Acme", match_text=None, deals=[{**NO_DEAL, "name": value}]),
            first_comment=words,
            agent_summary=value,
            decisions=[{"summary": value or "refund", "agent": "Sam", "rule": "r1"}],
        ),
        description_context(customer=customer(known=False), history=None, first_comment=words, agent_summary=None),
    ]
    out = [HANDOFF.render("issue_description", context) for context in variants]
    block = ManagedBlock(
        title="Customer impact",
        body=HANDOFF.render("impact_block.md.j2", {"impact": impact_context(value or "Acme")}),
        end="Kept current by cxbridge: edits inside this section are replaced.",
    )
    out.append(block.markdown)
    out.append(out[0] + "\n\n" + block.markdown)
    out.append(HANDOFF.render("relay_comment.md.j2", relay_context(words)))
    out.append(HANDOFF.render("relay_comment.md.j2", relay_context(words, public=True, attachments=2)))
    return out


VALUES = [
    "",
    "Plain words only",
    "**not bold** _not em_ [not](https://a.link) `code` ~~x~~ <b>x</b> &amp; \\ back\\slash",
    "# heading? - item? > quote? 1. list? | a | b | --- ===",
    "Ünïcödé, emoji 🎉, \u2018quotes\u2019, CJK 漢字, nbsp\u00a0here",
    "trailing spaces   ",
    "a*b*c __d__ e_f_g **h** 2*3",
]
COMMENTS = [
    "It times out.",
    "line one\nline two\n\nnew paragraph\n- not a list\n> not a quote\n    not code\n1. not a list",
    "ends with a backslash \\\nand two spaces  \nthen more",
    "",
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("comment", COMMENTS)
def test_handoff_templates_convert_as_markdown_it_does_through_the_quick_path(value: str, comment: str) -> None:
    """Every handoff template, with ordinary and hostile values, converts to the reference ADF, and every section
    of it is read by the quick path (the point of it: a handoff never needs markdown-it's block parser)."""
    for markdown in rendered(value, comment):
        assert markdown_to_adf(markdown) == reference(markdown)
        for section in sections(markdown):
            assert adf._quick_blocks(section) is not None, section


SPECIAL_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from([*"\\`*_{}[]()#+-.!|<>~=&:\"' \n\t;/@?$%^", "\u00a0", "\u3000", "é", "🎉", "\ufeff"]),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(SPECIAL_TEXT, SPECIAL_TEXT)
def test_any_value_in_the_handoff_converts_as_markdown_it_does(value: str, comment: str) -> None:
    """Whatever a customer or an agent typed, the rendered handoff converts to the reference ADF."""
    for markdown in rendered(value, comment):
        assert markdown_to_adf(markdown) == reference(markdown)


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
