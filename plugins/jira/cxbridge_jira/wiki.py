"""Markdown -> Jira wiki markup, for REST v2 and Jira Data Center, where rich text fields are wiki strings.

The Markdown is parsed once (``adf.parse_blocks``, the same tree the ADF writer uses) and written as wiki
markup: ``h1.`` headings, ``*``/``#`` lists (nested as ``**``, ``#*``...), ``*bold*``, ``_italic_``,
``-strike-``, ``{{code}}``, ``{code}``/``{noformat}`` blocks, ``{quote}``, ``----``, ``||header||`` tables and
``[text|url]`` links (http/https only).

Text is data, never markup. Every character Jira's renderer treats as an escapable wiki character
(``BackslashEscapeRendererComponent``: ``- # * _ + ? ^ ~ | % { } [ ] ( ) ! @``) is written with a backslash
before it, so ``[x|http://evil]``, ``{html}``, ``!image.png!`` and ``----`` stay literal. A literal backslash
is written as the entity ``&#92;`` (two backslashes would be a line break, and a backslash before an escaped
character would undo the escape); in link text and table cells ``[``, ``]`` and ``|`` are entities too, as
those parsers split on them before escapes apply; and ``h1.``..``h6.`` / ``bq.`` at a word start get their
first letter as an entity so a value can never begin a heading or a quote line. Entity-looking text such as
``&lt;`` in a value renders as its character: text still, never markup. Emoticons such as ``:)`` and bare URLs, which
Jira renders as icons and links showing the same text, are left as they are.
"""

from __future__ import annotations

import re
from itertools import groupby
from urllib.parse import quote

from .adf import MARK_ORDER, Block, Span, parse_blocks

__all__ = ["escape_wiki", "markdown_to_wiki"]

# The characters Jira's wiki renderer un-escapes after a backslash (atlassian-renderer
# BackslashEscapeRendererComponent.ESCAPING_PATTERN).
WIKI_SPECIAL = frozenset("-#*_+?^~|%{}[]()!@")
_BLOCK_START = re.compile(r"(?i)(?<!\S)(h[1-6]|bq)\.")
_MARKER = {"strong": "*", "em": "_", "strike": "-"}
# Characters a URL inside [text|url] keeps as they are; everything else (the link syntax [ ] |, braces, ! * ^,
# whitespace, quotes, non-ASCII) is percent-encoded.
_URL_SAFE = "-._~:/?#&=;,$'()@%+"
_CODE_LANGUAGES = frozenset(
    {
        "actionscript", "ada", "applescript", "bash", "c", "c#", "c++", "cpp", "css", "erlang", "go", "groovy",
        "haskell", "html", "java", "javascript", "js", "json", "lua", "none", "nyan", "objc", "perl", "php",
        "python", "r", "rainbow", "ruby", "scala", "sh", "sql", "swift", "visualbasic", "xml", "yaml",
    }
)  # fmt: skip
_LANGUAGE_ALIASES = {"py": "python", "shell": "bash", "zsh": "bash", "yml": "yaml", "ts": "javascript"}
_LINE_BREAK = " \\\\ "  # Jira's forced line break "\\" (used where a newline would end the list item or cell)


def escape_wiki(text: str) -> str:
    """Plain text made safe to place anywhere in Jira wiki markup: it renders as exactly this text."""
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("&#92;")
        elif ch in WIKI_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    escaped = "".join(out)
    return _BLOCK_START.sub(lambda m: f"&#{ord(m.group(1)[0])};{m.group(1)[1:]}.", escaped)


def markdown_to_wiki(markdown: str) -> str:
    """Jira wiki markup for Markdown text (``""`` for empty input)."""
    return _blocks(parse_blocks(markdown)).strip("\n")


def _blocks(blocks: list[Block], *, in_quote: bool = False) -> str:
    parts = [_block(b, in_quote=in_quote) for b in blocks]
    return "\n\n".join(p for p in parts if p)


def _block(block: Block, *, in_quote: bool = False) -> str:
    kind = block.kind
    if kind == "paragraph":
        return _inline(block.spans, breaks="\n")
    if kind == "heading":
        text = _inline(block.spans, breaks=_LINE_BREAK)
        return f"h{block.level}. {text}" if text else ""
    if kind in ("bullet_list", "ordered_list"):
        return "\n".join(_list(block, "", in_quote=in_quote))
    if kind == "code":
        return _code(block, in_quote=in_quote)
    if kind == "quote":
        inner = _blocks(block.children, in_quote=True)
        if in_quote:  # wiki quotes do not nest: the inner quote's blocks join the outer one
            return inner
        return "{quote}\n" + inner + "\n{quote}" if inner else ""
    if kind == "rule":
        return "----"
    if kind == "table":
        return _table(block)
    return ""  # pragma: no cover - every kind is handled above


def _list(block: Block, prefix: str, *, in_quote: bool) -> list[str]:
    marker = prefix + ("*" if block.kind == "bullet_list" else "#")
    lines: list[str] = []
    for item in block.items:
        text_parts: list[str] = []
        after: list[str] = []  # nested lists and blocks that cannot live on the item's line
        for child in item:
            if child.kind in ("bullet_list", "ordered_list"):
                after.extend(_list(child, marker, in_quote=in_quote))
            elif child.kind in ("paragraph", "heading"):
                text = _inline(child.spans, breaks=_LINE_BREAK)
                if text and after:  # text after a nested list cannot rejoin the item: it gets a line of its own
                    after.append(f"{marker} {text}")
                elif text:
                    text_parts.append(text)
            elif child.kind == "table":
                for row in child.rows:
                    text = " \\| ".join(_inline(cell, breaks=_LINE_BREAK) for cell in row)
                    if text:
                        text_parts.append(text)
            elif child.kind == "quote":
                text = _inline_blocks(child.children)
                if text:
                    text_parts.append(text)
            elif child.kind == "code":
                after.append(_code(child, in_quote=in_quote))
        if text_parts:  # an item with no text of its own is left out (Jira accepts deeper markers alone)
            lines.append(f"{marker} {_LINE_BREAK.join(text_parts)}")
        lines.extend(after)
    return lines


def _inline_blocks(blocks: list[Block]) -> str:
    """The text of blocks run together on one line (a quote inside a list item)."""
    parts: list[str] = []
    for b in blocks:
        if b.kind in ("paragraph", "heading"):
            parts.append(_inline(b.spans, breaks=_LINE_BREAK))
        elif b.kind == "quote":
            parts.append(_inline_blocks(b.children))
        elif b.kind == "code":
            parts.append("{{" + escape_wiki(b.text.replace("\n", " ")) + "}}" if b.text.strip() else "")
    return _LINE_BREAK.join(p for p in parts if p)


def _code(block: Block, *, in_quote: bool = False) -> str:
    """A ``{code}`` block, or ``{noformat}`` when the text holds ``{code``; text that could close both (or,
    inside a quote, the quote) is written as escaped monospace lines instead."""
    text = block.text
    lowered = text.lower()
    language = block.language.lower()
    language = _LANGUAGE_ALIASES.get(language, language)
    macro_safe = not (in_quote and "{quote" in lowered)
    if macro_safe and "{code" not in lowered:
        head = f"{{code:{language}}}" if language in _CODE_LANGUAGES else "{code}"
        return f"{head}\n{text}\n{{code}}"
    if macro_safe and "{noformat" not in lowered:
        return f"{{noformat}}\n{text}\n{{noformat}}"
    # Text that could close either macro: escaped lines, so it still cannot become markup.
    return "\n".join("{{" + escape_wiki(line) + "}}" if line.strip() else "" for line in text.split("\n"))


def _table(block: Block) -> str:
    lines = []
    for r, row in enumerate(block.rows):
        sep = "||" if r < block.header_rows else "|"
        cells = [_structural(_inline(cell, breaks=_LINE_BREAK)) or " " for cell in row] or [" "]
        lines.append(sep + sep.join(cells) + sep)
    return "\n".join(lines)


def _inline(spans: list[Span], *, breaks: str) -> str:
    """Spans as wiki text: each run of equal marks wrapped on its own, links grouped, text escaped."""
    out: list[str] = []
    for href, group in groupby(spans, key=lambda s: None if s.is_break else s.href):
        run = list(group)
        inner = _runs(run, breaks)
        if href and inner.strip():
            out.append(f"[{_structural(inner)}|{_url(href)}]")
        else:
            out.append(inner)
    return "".join(out).strip(" ")


def _runs(spans: list[Span], breaks: str) -> str:
    out: list[str] = []
    for (is_break, marks), group in groupby(spans, key=lambda s: (s.is_break, s.marks)):
        if is_break:
            out.extend(breaks for _ in group)
            continue
        text = "".join(s.text for s in group)
        out.append(_marked(text, marks))
    return "".join(out)


def _marked(text: str, marks: frozenset[str]) -> str:
    """Text wrapped in its marks; leading and trailing spaces stay outside (Jira needs the marker on a word)."""
    core = text.strip(" \t")
    if not core:
        return text
    lead = text[: len(text) - len(text.lstrip(" \t"))]
    trail = text[len(text.rstrip(" \t")) :]
    if "code" in marks:
        wrapped = "{{" + escape_wiki(core) + "}}"
    else:
        wrapped = escape_wiki(core)
        for name in reversed(MARK_ORDER):
            if name in marks and name in _MARKER:
                wrapped = _MARKER[name] + wrapped + _MARKER[name]
    return lead + wrapped + trail


def _structural(wiki: str) -> str:
    """Escaped ``[``, ``]`` and ``|`` as entities, for link text and table cells, whose parsers split on them
    before backslash escapes are applied."""
    return wiki.replace("\\[", "&#91;").replace("\\]", "&#93;").replace("\\|", "&#124;")


def _url(href: str) -> str:
    """An http(s) URL percent-encoded so that it cannot end the ``[text|url]`` link or start an effect."""
    return quote(href, safe=_URL_SAFE)
