"""Markdown -> Atlassian Document Format (ADF), built as JSON nodes in code, never through text templates.

Jira Cloud REST v3 takes rich text (issue descriptions, comment bodies) as ADF documents
(``{"type": "doc", "version": 1, "content": [...]}``). Handoff templates write Markdown; this module parses it
with markdown-it-py (CommonMark, raw HTML off, GFM tables and strikethrough on) into a small block tree that
``wiki.py`` shares, then builds ADF nodes from that tree. The plain shapes the handoff templates write (headings,
one-line list items, quoted text, escaped values, ``**labels**``, links, tables) are read by a quick path into
the very tree markdown-it would give; anything else goes through markdown-it.

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
from markdown_it.common.utils import isMdAsciiPunct, isPunctChar, isWhiteSpace

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
    in another section) is parsed whole. A section made only of the plain shapes a handoff template writes
    (see ``_quick_blocks``) is read without markdown-it's block parser, into the tree markdown-it gives. The
    trees are shared between callers: read them, never change them.
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
    quick = _quick_blocks(text)
    return tuple(quick if quick is not None else _parse(text))


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


# --- the quick path: the plain shapes a handoff writes, read without markdown-it -------------------------------
#
# A handoff is a few headings, one-line list items (``- **Tier:** gold``, nested two spaces in), quoted customer
# text, paragraphs, a rule and a table; every value in it is backslash-escaped. markdown-it spends most of its time
# on that escaping (one token per escape) and on trying every block rule on every line. The functions below read
# exactly those shapes into the tree ``_blocks`` builds from markdown-it's tokens, and give up (None) on anything
# else, which markdown-it then parses: a line that could open any other block (an ordered list, a setext
# underline, indented code, a table after a paragraph, a lazy continuation line...), and inline text with any
# construct but escapes, ``**strong**`` and ``[text](http...)`` links. The tests compare both paths.

# The first characters of a line that can only be paragraph text: not a block marker (# > - + * = _ | ` ~ <),
# not a digit before "." or ")" (an ordered list), "**" or "_" before a non-space (emphasis, not a list or rule).
_PLAIN_LINE = re.compile(r"(?:[^\s#>+\-=*_|`~<\d\ufeff]|\*\*[^\s*]|_[^\s_]|\d(?!\d*[.)]))")
_QUICK_HEADING = re.compile(r"(#{1,6}) (\S(?:.*\S)?) *")
_PIPE = re.compile(r"\|")
_DELIMITER_ROW = re.compile(r"\|(?: *:?-+:? *\|)+")
# Characters an inline rule of markdown-it acts on (the rest is text, whatever it is).
_INLINE_SPECIAL = re.compile(r"[\\*_\[\]!`<&~\n]")
_ESCAPABLE = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_LABEL_STOP = frozenset("[\\*_`!<&~\n")
MAX_PADDED_CELLS = 10_000  # markdown-it stops filling short table rows at 65,536 empty cells: leave it those
INLINE_CACHE_SIZE = 1024
"""Inline texts whose spans are kept (list items such as ``**Tier:** gold`` recur from one handoff to the next)."""


def _plain(line: str) -> bool:
    """Whether a line (already without its container's marker) can only be paragraph text."""
    if not _PLAIN_LINE.match(line) or line.rstrip(" ")[-1].isspace():
        return False
    return line[0] != ":" or bool(line.strip(":|- "))  # ":--" may be a table's delimiter row


def _heading(line: str) -> bool:
    heading = _QUICK_HEADING.fullmatch(line)
    return heading is not None and not heading[2].endswith("#")


def _blank(line: str) -> bool:
    return not line.strip(" ")


def _quick_blocks(text: str) -> list[Block] | None:
    """The block tree of ``text`` (a section, without fences or reference definitions), or None when the text
    holds anything but headings, paragraphs, one-line ``-`` list items (one nested level), quoted paragraphs,
    rules and tables (see the comment above)."""
    if "\t" in text or "\r" in text or "```" in text or "~~~" in text or "]:" in text:
        return None
    lines = text.split("\n")
    out: list[Block] = []
    i, n = 0, len(lines)
    after_break = True  # at the start, after a blank line, a heading or a rule: a table or rule may start here
    while i < n:
        line = lines[i]
        if _blank(line):
            after_break = True
            i += 1
            continue
        first = line[0]
        if first == "#":
            heading = _QUICK_HEADING.fullmatch(line)
            if heading is None or heading[2].endswith("#"):
                return None
            out.append(Block("heading", spans=_quick_inline(heading[2]), level=len(heading[1])))
            i += 1
            after_break = True
            continue
        if line.startswith("- "):
            block, i = _quick_list(lines, i)
        elif first == ">":
            block, i = _quick_quote(lines, i)
        elif first == "|" and after_break:
            block, i = _quick_table(lines, i)
        elif line in ("---", "***", "___") and after_break:
            out.append(Block("rule"))
            i += 1
            continue
        elif _plain(line):
            start = i
            i += 1
            while i < n and lines[i] and _plain(lines[i]):
                i += 1
            block = _quick_paragraph("\n".join(lines[start:i]))
        else:
            return None
        if block is None:
            return None
        out.append(block)
        after_break = False
    return out


def _quick_paragraph(content: str) -> Block:
    return Block("paragraph", spans=_quick_inline(content.rstrip(" ")))


def _quick_list(lines: list[str], i: int) -> tuple[Block | None, int]:
    """A ``-`` list of one-line items from ``lines[i]``, each with an optional list of one-line items nested two
    spaces in; the list ends before a blank line not followed by another item, or before a heading."""
    items: list[list[Block]] = []
    n = len(lines)
    while i < n:
        line = lines[i]
        if line.startswith("- ") and _plain(line[2:]):
            item = _quick_paragraph(line[2:])
            i += 1
            nested: list[list[Block]] = []
            while i < n and lines[i].startswith("  - ") and _plain(lines[i][4:]):
                nested.append([_quick_paragraph(lines[i][4:])])
                i += 1
            items.append([item, Block("bullet_list", items=nested)] if nested else [item])
            continue
        if _blank(line):
            j = i
            while j < n and _blank(lines[j]):
                j += 1
            if j < n and lines[j].startswith("- "):
                i = j
                continue
            break
        if _heading(line):
            break
        return None, i
    return Block("bullet_list", items=items), i


def _quick_quote(lines: list[str], i: int) -> tuple[Block | None, int]:
    """A quote of ``> `` lines holding paragraphs (split by empty ``>`` lines), ended by a blank line or a
    heading (a line without ``>`` after a quoted line would continue it lazily: not handled here)."""
    children: list[Block] = []
    paragraph: list[str] = []
    n = len(lines)
    while i < n and lines[i].startswith(">"):
        content = lines[i][1:]
        if _blank(content):
            if paragraph:
                children.append(_quick_paragraph("\n".join(paragraph)))
                paragraph = []
        elif content.startswith(" ") and _plain(content[1:]):
            paragraph.append(content[1:])
        else:
            return None, i
        i += 1
    if i < n and not _blank(lines[i]) and not _heading(lines[i]):
        return None, i
    if paragraph:
        children.append(_quick_paragraph("\n".join(paragraph)))
    return Block("quote", children=children), i


def _quick_cells(line: str) -> list[str] | None:
    """The cells of a table row ``| a | b |`` as markdown-it splits it (on pipes not after a backslash, an escaped
    pipe staying a pipe), or None when a cell's edge holds other whitespace than spaces."""
    line = line.rstrip(" ")
    if line[-1].isspace():
        return None
    cells: list[str] = []
    current: list[str] = []
    last = 0
    for pipe in _PIPE.finditer(line):
        at = pipe.start()
        if at and line[at - 1] == "\\":
            current.append(line[last : at - 1])
            last = at
        else:
            current.append(line[last:at])
            cells.append("".join(current))
            current = []
            last = at + 1
    cells.append("".join(current) + line[last:])
    if cells and cells[0] == "":
        cells.pop(0)
    if cells and cells[-1] == "":
        cells.pop()
    cells = [cell.strip(" ") for cell in cells]
    if any(cell and (cell[0].isspace() or cell[-1].isspace()) for cell in cells):
        return None
    return cells


def _quick_table(lines: list[str], i: int) -> tuple[Block | None, int]:
    """A GFM table: a ``| ... |`` header, a delimiter row, ``| ... |`` rows up to a blank line or the end."""
    n = len(lines)
    header = _quick_cells(lines[i])
    if header is None or i + 1 >= n or not _DELIMITER_ROW.fullmatch(lines[i + 1]):
        return None, i
    columns = lines[i + 1].count("|") - 1
    if len(header) != columns:
        return None, i
    rows = [[_quick_inline(cell) for cell in header]]
    padded = 0
    i += 2
    while i < n and not _blank(lines[i]):
        cells = _quick_cells(lines[i]) if lines[i].startswith("|") else None
        padded += columns - len(cells or ())
        if cells is None or padded > MAX_PADDED_CELLS:
            return None, i
        rows.append([_quick_inline(cell) for cell in (cells + [""] * columns)[:columns]])
        i += 1
    return Block("table", rows=rows, header_rows=1), i


def _quick_inline(content: str) -> list[Span]:
    """The spans of an inline text: from ``_quick_spans`` when it can read them, else from markdown-it."""
    return list(_inline_spans(content))


@lru_cache(maxsize=INLINE_CACHE_SIZE)
def _inline_spans(content: str) -> tuple[Span, ...]:
    quick = _quick_spans(content)
    if quick is None:
        quick = _spans(_parser().parseInline(content)[0])
    return tuple(quick)


def _quick_spans(s: str) -> list[Span] | None:
    """The spans markdown-it gives for ``s`` when it holds only text, backslash escapes, ``**strong**`` (each
    ``**`` either only opening or only closing, alternating) and ``[label](destination)`` links outside strong
    text with an http(s) destination and a plain label; None for anything else."""
    if not _INLINE_SPECIAL.search(s):
        return [Span(s)] if s else []
    out: list[Span] = []
    buf: list[str] = []
    strong = False
    i, n = 0, len(s)

    def flush() -> None:
        text = "".join(buf)
        if text:
            out.append(Span(text, _STRONG if strong else frozenset()))
        buf.clear()

    while i < n:
        found = _INLINE_SPECIAL.search(s, i)
        if found is None:
            buf.append(s[i:])
            break
        j = found.start()
        if j > i:
            buf.append(s[i:j])
        ch = s[j]
        nxt = s[j + 1] if j + 1 < n else ""
        if ch == "\\":
            if nxt not in _ESCAPABLE or not nxt:
                return None
            buf.append(nxt)
            i = j + 2
        elif ch == "*":
            if nxt != "*" or s[j + 2 : j + 3] == "*":
                return None
            opens, closes = _flanks(s, j, j + 2)
            if opens in (closes, strong):
                return None
            flush()
            strong = opens
            i = j + 2
        elif ch == "[":
            if strong:
                return None
            link = _quick_link(s, j)
            if link is None:
                return None
            flush()
            out.append(link[0])
            i = link[1]
        elif ch == "]" or (ch == "!" and nxt != "[") or (ch == "&" and nxt != "#" and not nxt.isalnum()):
            buf.append(ch)
            i = j + 1
        elif ch == "\n":
            if j == 0 or s[j - 1] == " " or nxt == " ":
                return None
            flush()
            out.append(BREAK)
            i = j + 1
        else:
            return None
    if strong:
        return None
    flush()
    return out


_STRONG = frozenset({"strong"})


def _flanks(s: str, start: int, end: int) -> tuple[bool, bool]:
    """Whether the ``*`` run ``s[start:end]`` can open and can close emphasis (markdown-it's ``scanDelims``)."""
    last = s[start - 1] if start > 0 else " "
    nxt = s[end] if end < len(s) else " "
    last_punct = isMdAsciiPunct(ord(last)) or isPunctChar(last)
    next_punct = isMdAsciiPunct(ord(nxt)) or isPunctChar(nxt)
    last_space = isWhiteSpace(ord(last))
    next_space = isWhiteSpace(ord(nxt))
    left = not (next_space or (next_punct and not (last_space or last_punct)))
    right = not (last_space or (last_punct and not (next_space or next_punct)))
    return left, right


def _quick_link(s: str, start: int) -> tuple[Span, int] | None:
    """``[label](destination)`` at ``s[start]``: its span and the index after it, or None (not a plain link)."""
    n = len(s)
    label: list[str] = []
    i = start + 1
    while i < n and s[i] != "]":
        ch = s[i]
        if ch == "\\":
            if i + 1 >= n or s[i + 1] not in _ESCAPABLE:
                return None
            label.append(s[i + 1])
            i += 2
        elif ch in _LABEL_STOP:
            return None
        else:
            label.append(ch)
            i += 1
    text = "".join(label)
    end = s.find(")", i + 2)
    if not text or i + 2 >= n or s[i + 1] != "(" or end < 0:
        return None
    destination = s[i + 2 : end]
    if not _PLAIN_DESTINATION.fullmatch(destination):
        return None
    href = _link_href(destination)
    if href is None:
        return None
    return Span(text, frozenset(), href or None), end + 1


# A destination markdown-it's parseLinkDestination ends at the next ")": no "<" first, no space, control
# character or "(" in it, and no backslash last (it would escape the ")").
_PLAIN_DESTINATION = re.compile(r"[^<\s\x00-\x1f\x7f(][^\s\x00-\x1f\x7f(]*(?<!\\)")
LINK_CACHE_SIZE = 256
"""Link destinations whose href is kept (a handoff links the ticket in its description and its impact block)."""


@lru_cache(maxsize=LINK_CACHE_SIZE)
def _link_href(destination: str) -> str | None:
    """The link's href as the ADF writer keeps it (``safe_href`` of markdown-it's normalised destination; "" when
    that drops it), or None when markdown-it would not make a link of it."""
    md = _parser()
    dest = md.helpers.parseLinkDestination(destination, 0, len(destination))
    if not dest.ok or dest.pos != len(destination):
        return None
    href = md.normalizeLink(dest.str)
    if not md.validateLink(href):
        return None
    return safe_href(href) or ""


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
    last: tuple[tuple[str, ...], str | None] | None = None  # the marks of nodes[-1] while it is a text node
    for span in spans:
        if span.is_break:
            nodes.append({"type": "hardBreak"})
            last = None
            continue
        if not span.text:
            continue
        key = (_mark_names(span.marks), span.href or None)
        if key == last:  # same marks as the text before: one node
            nodes[-1]["text"] += span.text
            continue
        node: dict[str, Any] = {"type": "text", "text": span.text}
        if key[0] or key[1]:
            node["marks"] = _marks(*key)
        nodes.append(node)
        last = key
    return nodes


@lru_cache(maxsize=64)
def _mark_names(marks: frozenset[str]) -> tuple[str, ...]:
    return ("code",) if "code" in marks else tuple(m for m in MARK_ORDER if m in marks)


def _marks(names: tuple[str, ...], href: str | None) -> list[dict[str, Any]]:
    marks: list[dict[str, Any]] = [{"type": name} for name in names]
    if href:
        marks.append({"type": "link", "attrs": {"href": href}})
    return marks
