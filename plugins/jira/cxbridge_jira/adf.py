"""Markdown -> Atlassian Document Format (ADF), built as JSON nodes in code, never through text templates.

Jira Cloud REST v3 takes rich text (issue descriptions, comment bodies) as ADF documents
(``{"type": "doc", "version": 1, "content": [...]}``). Handoff templates write Markdown; this module parses it
with markdown-it-py (CommonMark, raw HTML off, GFM tables and strikethrough on) into a small block tree that
``wiki.py`` shares, then builds ADF nodes from that tree.

Rules that keep every document valid against the published ADF schema and what Jira accepts:

- text nodes are never empty; C0 control characters (other than tab and newline) and lone surrogates are
  dropped; a ``code`` mark is only combined with a ``link`` mark (the schema allows no other pairing);
- links keep their mark only for ``http``/``https`` hrefs; any other scheme (``javascript:``, ``mailto:``,
  ``file:``, relative paths) leaves just the link text; images become their alt text (linked when http/https);
- soft line breaks become ``hardBreak`` nodes, as they do in Jira's own wiki renderer;
- a block that a container does not allow is degraded, never dropped with its text: a heading inside a list
  item, quote or table cell becomes a paragraph, a nested quote is flattened, a table inside a list item or
  quote becomes one paragraph per row (cells joined by " | "), and a rule there is dropped;
- a list item always starts with a paragraph and is never empty; a quote is never empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt

__all__ = [
    "Block",
    "Span",
    "clean_text",
    "markdown_to_adf",
    "parse_blocks",
    "safe_href",
]

# C0 controls except tab (\x09), newline (\x0a) and carriage return (\x0d, normalised by the parser), DEL,
# the C1 controls, lone surrogates and the two noncharacters U+FFFE/U+FFFF.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_LANGUAGE = re.compile(r"[^A-Za-z0-9_+#.-]")
MAX_LANGUAGE_LENGTH = 40
MAX_HREF_LENGTH = 2048

# Mark order in the output (stable, so equal spans merge and tests can compare documents).
MARK_ORDER = ("strong", "em", "strike", "code")


def clean_text(text: str) -> str:
    """``text`` without control characters, lone surrogates and noncharacters (tab and newline kept)."""
    return _CONTROL.sub("", text)


def safe_href(href: str | None) -> str | None:
    """The href when it is an absolute ``http``/``https`` URL with a host, else None (the link becomes text)."""
    if not href:
        return None
    href = clean_text(href).strip()
    if not href or len(href) > MAX_HREF_LENGTH or any(ch.isspace() for ch in href):
        return None
    try:
        parts = urlsplit(href)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return href


# --- the block tree shared by the ADF and wiki writers -----------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A run of inline text with its marks (``strong``, ``em``, ``strike``, ``code``) and link, or a line break."""

    text: str
    marks: frozenset[str] = frozenset()
    href: str | None = None
    is_break: bool = False


BREAK = Span("\n", is_break=True)


@dataclass
class Block:
    """One block of the parsed document.

    ``kind`` is one of ``paragraph``, ``heading`` (``level``), ``bullet_list`` / ``ordered_list`` (``items``,
    each a list of blocks; ``start`` for ordered lists), ``code`` (``language``, ``text``), ``quote``
    (``children``), ``rule``, ``table`` (``rows``: lists of cells, each a list of spans; ``header_rows``).
    """

    kind: str
    spans: list[Span] = field(default_factory=list)
    level: int = 0
    items: list[list[Block]] = field(default_factory=list)
    start: int = 1
    language: str = ""
    text: str = ""
    children: list[Block] = field(default_factory=list)
    rows: list[list[list[Span]]] = field(default_factory=list)
    header_rows: int = 0


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # CommonMark with raw HTML off (HTML in a value is text, never markup); GFM tables and ~~strike~~ on.
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


# An ATX heading at the start of a line: it ends every open block (paragraph, list, quote, table, indented
# code) except a fenced code block, so the text before it parses the same alone.
_SECTION_START = re.compile(r"(?m)^(?=#{1,6}(?:[ \t]|$))")
SECTION_CACHE_SIZE = 256
"""Sections (text between top-level headings) whose parse is kept: a handoff repeats most of its sections
(the customer, the priority, the footer) from one escalation to the next, and the impact section between joins."""


def parse_blocks(markdown: str) -> list[Block]:
    """Parse Markdown into the block tree that both the ADF and the wiki writer consume.

    The text is parsed section by section (split before each top-level heading), each section's tree kept in a
    bounded cache: the same tree as one parse of the whole text, without parsing again what has not changed. A
    text with a fenced code block (a heading inside it is code) or a link reference definition (it may be used
    in another section) is parsed whole. The trees are shared between callers: read them, never change them.
    """
    text = clean_text(markdown or "")
    if "```" in text or "~~~" in text or "]:" in text:
        return _parse(text)
    blocks: list[Block] = []
    for section in _SECTION_START.split(text):
        if section:
            blocks.extend(_parse_section(section))
    return blocks


def _parse(text: str) -> list[Block]:
    blocks, _ = _blocks(_parser().parse(text), 0, None)
    return blocks


@lru_cache(maxsize=SECTION_CACHE_SIZE)
def _parse_section(text: str) -> tuple[Block, ...]:
    return tuple(_parse(text))


def _blocks(tokens: list[Any], i: int, until: str | None) -> tuple[list[Block], int]:
    """Blocks from ``tokens[i:]`` up to the closing token ``until`` (exclusive); returns the index after it."""
    out: list[Block] = []
    while i < len(tokens):
        tok = tokens[i]
        kind = tok.type
        if until is not None and kind == until:
            return out, i + 1
        if kind == "paragraph_open":
            out.append(Block("paragraph", spans=_spans(tokens[i + 1])))
            i += 3
        elif kind == "heading_open":
            level = int(tok.tag[1]) if tok.tag[1:].isdigit() else 1
            out.append(Block("heading", spans=_spans(tokens[i + 1]), level=min(max(level, 1), 6)))
            i += 3
        elif kind in ("bullet_list_open", "ordered_list_open"):
            items: list[list[Block]] = []
            close = kind.replace("_open", "_close")
            start = _start(tok.attrs.get("start")) if kind == "ordered_list_open" else 1
            i += 1
            while i < len(tokens) and tokens[i].type != close:
                if tokens[i].type == "list_item_open":
                    item, i = _blocks(tokens, i + 1, "list_item_close")
                    items.append(item)
                else:  # pragma: no cover - markdown-it only nests list items in lists
                    i += 1
            i += 1
            out.append(Block(kind.removesuffix("_open"), items=items, start=start))
        elif kind in ("fence", "code_block"):
            language = ""
            if kind == "fence" and tok.info:
                language = _LANGUAGE.sub("", tok.info.strip().split()[0])[:MAX_LANGUAGE_LENGTH]
            text = tok.content[:-1] if tok.content.endswith("\n") else tok.content
            out.append(Block("code", language=language, text=text))
            i += 1
        elif kind == "blockquote_open":
            children, i = _blocks(tokens, i + 1, "blockquote_close")
            out.append(Block("quote", children=children))
        elif kind == "hr":
            out.append(Block("rule"))
            i += 1
        elif kind == "table_open":
            block, i = _table(tokens, i + 1)
            out.append(block)
        elif kind == "inline":  # pragma: no cover - inline tokens are consumed with their block
            out.append(Block("paragraph", spans=_spans(tok)))
            i += 1
        elif kind == "html_block":  # pragma: no cover - html is off; kept so raw HTML can only ever be text
            out.append(Block("paragraph", spans=[Span(tok.content.rstrip("\n"))]))
            i += 1
        else:  # closing tokens of containers we skip, or anything unknown
            i += 1
    return out, i


def _start(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 1


def _table(tokens: list[Any], i: int) -> tuple[Block, int]:
    rows: list[list[list[Span]]] = []
    header_rows = 0
    in_head = False
    while i < len(tokens) and tokens[i].type != "table_close":
        kind = tokens[i].type
        if kind == "thead_open":
            in_head = True
        elif kind == "thead_close":
            in_head = False
        elif kind == "tr_open":
            rows.append([])
            if in_head:
                header_rows += 1
        elif kind in ("th_open", "td_open") and rows:
            inline = tokens[i + 1]
            rows[-1].append(_spans(inline) if inline.type == "inline" else [])
        i += 1
    return Block("table", rows=rows, header_rows=header_rows), i + 1


def _spans(inline: Any) -> list[Span]:
    """Flatten an inline token's children into spans carrying their marks and link."""
    out: list[Span] = []
    marks: list[str] = []
    hrefs: list[str | None] = []

    def add(text: str, extra: frozenset[str] = frozenset(), href: str | None = None) -> None:
        text = clean_text(text)
        if not text:
            return
        link = href if href is not None else next((h for h in reversed(hrefs) if h), None)
        out.append(Span(text, frozenset(marks) | extra, link))

    for tok in inline.children or []:
        kind = tok.type
        if kind == "text":
            add(tok.content)
        elif kind == "code_inline":
            add(tok.content, frozenset({"code"}))
        elif kind in ("softbreak", "hardbreak"):
            out.append(BREAK)
        elif kind == "strong_open":
            marks.append("strong")
        elif kind == "em_open":
            marks.append("em")
        elif kind == "s_open":
            marks.append("strike")
        elif kind in ("strong_close", "em_close", "s_close"):
            name = {"strong_close": "strong", "em_close": "em", "s_close": "strike"}[kind]
            if name in marks:
                del marks[len(marks) - 1 - marks[::-1].index(name)]
        elif kind == "link_open":
            hrefs.append(safe_href(tok.attrs.get("href")))
        elif kind == "link_close":
            if hrefs:
                hrefs.pop()
        elif kind == "image":
            src = safe_href(tok.attrs.get("src"))
            alt = "".join(c.content for c in (tok.children or []) if c.type in ("text", "code_inline"))
            add(alt or (src or ""), href=src)
        elif tok.content:  # html_inline (html is off, so never markup) and anything unknown: text
            add(tok.content)
    return out


# --- ADF ----------------------------------------------------------------------------------------------------

_DOC_BLOCKS = frozenset(
    {"paragraph", "heading", "bulletList", "orderedList", "codeBlock", "blockquote", "rule", "table"}
)
_ITEM_BLOCKS = frozenset({"paragraph", "bulletList", "orderedList", "codeBlock"})
_QUOTE_BLOCKS = frozenset({"paragraph", "bulletList", "orderedList", "codeBlock"})


def markdown_to_adf(markdown: str) -> dict[str, Any]:
    """An ADF document (``{"type": "doc", "version": 1, "content": [...]}``) for Markdown text.

    Empty or blank input gives a document with no content, which is valid ADF.
    """
    return {"type": "doc", "version": 1, "content": _adf_blocks(parse_blocks(markdown), _DOC_BLOCKS)}


_ADF_TYPE = {
    "paragraph": "paragraph",
    "heading": "heading",
    "bullet_list": "bulletList",
    "ordered_list": "orderedList",
    "code": "codeBlock",
    "quote": "blockquote",
    "rule": "rule",
    "table": "table",
}


def _adf_blocks(blocks: list[Block], allowed: frozenset[str]) -> list[dict[str, Any]]:
    """ADF nodes for blocks inside a container that allows the node types ``allowed``.

    A block the container does not allow is degraded (see the module docstring), never silently dropped
    with its text.
    """
    out: list[dict[str, Any]] = []
    for block in blocks:
        if _ADF_TYPE[block.kind] in allowed:
            out.append(_adf_block(block))
        elif block.kind == "heading":
            out.append(_paragraph(block.spans))
        elif block.kind == "quote":
            out.extend(_adf_blocks(block.children, allowed))
        elif block.kind == "table":
            out.extend(_paragraph(_row_spans(row)) for row in block.rows)
        # a rule where none is allowed is dropped: it carries no text
    return out


def _adf_block(block: Block) -> dict[str, Any]:
    kind = block.kind
    if kind == "heading":
        return {"type": "heading", "attrs": {"level": block.level}, "content": _inline(block.spans)}
    if kind in ("bullet_list", "ordered_list"):
        items = [_list_item(item) for item in block.items] or [_list_item([])]
        node: dict[str, Any] = {"type": _ADF_TYPE[kind], "content": items}
        if kind == "ordered_list" and block.start != 1:
            node["attrs"] = {"order": block.start}
        return node
    if kind == "code":
        code: dict[str, Any] = {"type": "codeBlock"}
        if block.language:
            code["attrs"] = {"language": block.language}
        code["content"] = [{"type": "text", "text": block.text}] if block.text else []
        return code
    if kind == "quote":
        return {"type": "blockquote", "content": _adf_blocks(block.children, _QUOTE_BLOCKS) or [_paragraph([])]}
    if kind == "rule":
        return {"type": "rule"}
    if kind == "table" and block.rows:
        rows = []
        for r, row in enumerate(block.rows):
            cell_type = "tableHeader" if r < block.header_rows else "tableCell"
            cells = [{"type": cell_type, "content": [_paragraph(spans)]} for spans in row or [[]]]
            rows.append({"type": "tableRow", "content": cells})
        return {"type": "table", "content": rows}
    return _paragraph(block.spans)


def _list_item(blocks: list[Block]) -> dict[str, Any]:
    content = _adf_blocks(blocks, _ITEM_BLOCKS)
    if not content or content[0]["type"] != "paragraph":
        content.insert(0, _paragraph([]))
    return {"type": "listItem", "content": content}


def _paragraph(spans: list[Span]) -> dict[str, Any]:
    return {"type": "paragraph", "content": _inline(spans)}


def _row_spans(row: list[list[Span]]) -> list[Span]:
    """One table row as a line of text, cells joined by " | " (for containers that allow no table)."""
    spans: list[Span] = []
    for n, cell in enumerate(row):
        if n:
            spans.append(Span(" | "))
        spans.extend(cell)
    return spans


def _inline(spans: list[Span]) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for span in spans:
        if span.is_break:
            nodes.append({"type": "hardBreak"})
            continue
        if not span.text:
            continue
        marks = _marks(span)
        if nodes and nodes[-1]["type"] == "text" and nodes[-1].get("marks", []) == marks:
            nodes[-1]["text"] += span.text
            continue
        node: dict[str, Any] = {"type": "text", "text": span.text}
        if marks:
            node["marks"] = marks
        nodes.append(node)
    return nodes


def _marks(span: Span) -> list[dict[str, Any]]:
    names = ("code",) if "code" in span.marks else tuple(m for m in MARK_ORDER if m in span.marks)
    marks: list[dict[str, Any]] = [{"type": name} for name in names]
    if span.href:
        marks.append({"type": "link", "attrs": {"href": span.href}})
    return marks
