"""The managed block of an issue description (cxbridge's "Customer impact" section), spliced in place.

On Cloud the description is an ADF document: the block is the top-level nodes from a heading whose text is the
block's title to the paragraph whose text is its closing line. On Data Center it is wiki text: the lines from
``h2. <title>`` to ``_<end>_``. A block found is replaced where it stands; a description without one gets it
appended. Nodes Jira adds on its own (``localId`` attributes) are ignored when comparing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cxbridge.sdk import ManagedBlock, splice_lines

from .adf import markdown_to_adf
from .wiki import markdown_to_wiki


def _plain(node: Any) -> str:
    if isinstance(node, dict):
        if node.get("type") == "text":
            return str(node.get("text") or "")
        return "".join(_plain(child) for child in node.get("content") or [])
    return ""


def _adf_span(content: Sequence[Any], title: str, end: str) -> tuple[int, int] | None:
    """The top-level node range [start, end) of the managed block in an ADF document's content."""
    for i, node in enumerate(content):
        if isinstance(node, dict) and node.get("type") == "heading" and _plain(node).strip() == title:
            for j in range(i + 1, len(content)):
                nxt = content[j]
                if isinstance(nxt, dict) and nxt.get("type") == "paragraph" and _plain(nxt).strip() == end:
                    return i, j + 1
            return None
    return None


def _normal(node: Any) -> Any:
    """An ADF node without the attributes Jira adds on its own (``localId``), for comparisons."""
    if isinstance(node, dict):
        out = {k: _normal(v) for k, v in node.items() if k != "localId"}
        if out.get("attrs") == {}:
            out.pop("attrs")
        return out
    if isinstance(node, list):
        return [_normal(v) for v in node]
    return node


def splice_adf(doc: Any, block: Mapping[str, Any], *, title: str, end: str) -> dict[str, Any]:
    """The ADF document with its managed block replaced by ``block``'s nodes (appended when it has none)."""
    content = list(doc.get("content") or []) if isinstance(doc, dict) else []
    nodes = list(block.get("content") or [])
    span = _adf_span(content, title, end)
    if span is None:
        content.extend(nodes)
    else:
        content[span[0] : span[1]] = nodes
    version = doc.get("version", 1) if isinstance(doc, dict) else 1
    return {"type": "doc", "version": version, "content": content}


def adf_block(doc: Any, *, title: str, end: str) -> list[Any] | None:
    """The managed block's nodes in an ADF document, or None."""
    content = list(doc.get("content") or []) if isinstance(doc, dict) else []
    span = _adf_span(content, title, end)
    return None if span is None else content[span[0] : span[1]]


def replace_adf(description: Any, block: ManagedBlock) -> tuple[dict[str, Any], bool]:
    """Cloud: the ADF description with the block spliced in, and whether the block changed."""
    rendered = markdown_to_adf(block.markdown)
    current = adf_block(description, title=block.title, end=block.end)
    changed = current is None or _normal(current) != _normal(list(rendered.get("content") or []))
    return splice_adf(description, rendered, title=block.title, end=block.end), changed


def replace_wiki(description: Any, block: ManagedBlock) -> tuple[str, bool]:
    """Data Center: the wiki-text description with the block spliced in, and whether the block changed."""
    start = markdown_to_wiki(f"## {block.title}").strip()
    end = markdown_to_wiki(f"_{block.end}_").strip()
    return splice_lines(description, markdown_to_wiki(block.markdown), start=start, end=end)
