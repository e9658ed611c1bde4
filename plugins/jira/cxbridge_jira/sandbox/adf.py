"""The emulator's own Atlassian Document Format helpers: a structural check and the v2 <-> v3 renderings.

Jira keeps rich text (description, comment bodies) as ADF and answers REST v2 with wiki markup. The emulator
stores each value in the form it was written and converts only when the other API version reads it:
``adf_to_wiki`` renders the common nodes and marks as wiki markup; ``text_to_adf`` wraps wiki text in
paragraphs of plain text (the emulator does not interpret wiki markup: ``*bold*`` stays literal in v3).

This module is deliberately independent of the connector's Markdown -> ADF conversion.
"""

from __future__ import annotations

from typing import Any

ADF_HINT = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"


def adf_problem(value: Any) -> str | None:
    """Why ``value`` is not a structurally valid ADF document, or None when it is."""
    if not isinstance(value, dict):
        return "not an object"
    if value.get("type") != "doc":
        return "the root node must have type 'doc'"
    if value.get("version") != 1:
        return "the root node must have version 1"
    if not isinstance(value.get("content"), list):
        return "the root node must have a content array"
    return _node_problem(value, depth=0)


def _node_problem(node: Any, depth: int) -> str | None:
    if depth > 64:
        return "nesting too deep"
    if not isinstance(node, dict):
        return "a node must be an object"
    kind = node.get("type")
    if not isinstance(kind, str) or not kind:
        return "a node must have a string type"
    if kind == "text":
        text = node.get("text")
        if not isinstance(text, str) or not text:
            return "a text node must have non-empty text"
        marks = node.get("marks", [])
        if not isinstance(marks, list) or not all(
            isinstance(m, dict) and isinstance(m.get("type"), str) for m in marks
        ):
            return "marks must be an array of objects with a type"
    content = node.get("content")
    if content is None:
        return None
    if not isinstance(content, list):
        return f"the content of a {kind} node must be an array"
    for child in content:
        problem = _node_problem(child, depth + 1)
        if problem:
            return problem
    return None


def text_to_adf(text: str) -> dict[str, Any]:
    """Wrap plain or wiki text in an ADF document: a paragraph per blank-line block, hard breaks for newlines."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip("\n")]
    content: list[dict[str, Any]] = []
    for block in blocks:
        inline: list[dict[str, Any]] = []
        for i, line in enumerate(block.strip("\n").split("\n")):
            if i:
                inline.append({"type": "hardBreak"})
            if line:
                inline.append({"type": "text", "text": line})
        content.append({"type": "paragraph", "content": inline})
    return {"type": "doc", "version": 1, "content": content}


def adf_to_wiki(doc: Any) -> str:
    """Render an ADF document as Jira wiki markup (what REST v2 returns for a rich-text field)."""
    if not isinstance(doc, dict):
        return ""
    blocks = [_block(child, 1) for child in doc.get("content", []) if isinstance(child, dict)]
    return "\n\n".join(b for b in blocks if b)


def adf_to_text(doc: Any) -> str:
    """The plain text of an ADF document (for text comparisons and search)."""
    if not isinstance(doc, dict):
        return ""
    parts: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("type") == "text":
            parts.append(str(node.get("text", "")))
        elif node.get("type") == "hardBreak":
            parts.append("\n")
        for child in node.get("content", []) or []:
            if isinstance(child, dict):
                walk(child)
        if node.get("type") in {"paragraph", "heading", "listItem", "codeBlock"}:
            parts.append("\n")

    walk(doc)
    return "".join(parts).strip()


def _inline(nodes: Any) -> str:
    out: list[str] = []
    for node in nodes or []:
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "text":
            out.append(_marked(str(node.get("text", "")), node.get("marks") or []))
        elif kind == "hardBreak":
            out.append("\n")
        elif kind == "mention":
            attrs = node.get("attrs") or {}
            out.append(f"[~accountid:{attrs.get('id', '')}]")
        elif kind in {"inlineCard", "blockCard"}:
            url = (node.get("attrs") or {}).get("url", "")
            out.append(f"[{url}]")
        elif kind == "emoji":
            out.append(str((node.get("attrs") or {}).get("text") or (node.get("attrs") or {}).get("shortName", "")))
        else:
            out.append(_inline(node.get("content")))
    return "".join(out)


def _marked(text: str, marks: list[Any]) -> str:
    for mark in marks:
        if not isinstance(mark, dict):
            continue
        kind = mark.get("type")
        if kind == "strong":
            text = f"*{text}*"
        elif kind == "em":
            text = f"_{text}_"
        elif kind == "code":
            text = "{{" + text + "}}"
        elif kind == "strike":
            text = f"-{text}-"
        elif kind == "underline":
            text = f"+{text}+"
        elif kind == "link":
            href = (mark.get("attrs") or {}).get("href", "")
            text = f"[{text}|{href}]"
    return text


def _block(node: dict[str, Any], depth: int) -> str:
    kind = node.get("type")
    content = node.get("content") or []
    if kind == "paragraph":
        return _inline(content)
    if kind == "heading":
        level = (node.get("attrs") or {}).get("level", 1)
        return f"h{level}. {_inline(content)}"
    if kind in {"bulletList", "orderedList"}:
        bullet = ("*" if kind == "bulletList" else "#") * depth
        lines: list[str] = []
        for item in content:
            if not isinstance(item, dict):
                continue
            for child in item.get("content") or []:
                if not isinstance(child, dict):
                    continue
                if child.get("type") in {"bulletList", "orderedList"}:
                    lines.append(_block(child, depth + 1))
                else:
                    lines.append(f"{bullet} {_block(child, depth)}")
        return "\n".join(lines)
    if kind == "codeBlock":
        language = (node.get("attrs") or {}).get("language")
        opener = "{code:" + language + "}" if language else "{code}"
        return f"{opener}\n{_inline(content)}\n" + "{code}"
    if kind == "blockquote":
        inner = "\n\n".join(_block(c, depth) for c in content if isinstance(c, dict))
        return "{quote}\n" + inner + "\n{quote}"
    if kind == "panel":
        inner = "\n\n".join(_block(c, depth) for c in content if isinstance(c, dict))
        return "{panel}\n" + inner + "\n{panel}"
    if kind == "rule":
        return "----"
    if kind == "table":
        rows: list[str] = []
        for row in content:
            if not isinstance(row, dict):
                continue
            cells: list[str] = []
            header = False
            for cell in row.get("content") or []:
                if not isinstance(cell, dict):
                    continue
                header = cell.get("type") == "tableHeader"
                text = " ".join(_block(c, depth) for c in cell.get("content") or [] if isinstance(c, dict))
                cells.append(text)
            sep = "||" if header else "|"
            rows.append(sep + sep.join(cells) + sep)
        return "\n".join(rows)
    if kind in {"mediaSingle", "mediaGroup"}:
        return ""
    return "\n\n".join(_block(c, depth) for c in content if isinstance(c, dict)) or _inline(content)
