"""What Jira's webhook events mean, as cxbridge's neutral signals (``JiraConnector.interpret``).

Admin-webhook payloads (https://developer.atlassian.com/server/jira/platform/webhooks/, VENDOR-APIS.md):

- ``jira:issue_updated``: ``issue {id, key, fields {status {name, statusCategory {key}}, resolution {name} |
  null, updated, statuscategorychangedate?, summary}}`` and ``user {accountId | name, displayName}``: an
  ``IssueStateObserved`` (no changelog is needed: sync back compares states);
- ``comment_created``: ``issue`` and ``comment {id, body (ADF on Cloud, wiki text on
  Data Center), author, visibility {type, value}}``: an ``IssueCommentPosted`` with the body as plain text;
- ``jira:version_released``: ``version {id, name, releaseDate, released}``: a ``VersionReleased``.

Events queued by earlier versions of cxbridge from polling carry the same shapes and read the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cxbridge.sdk import Event, IssueCommentPosted, IssueStateObserved, Ref, Signal, VersionReleased, parse_datetime

ISSUE_EVENTS = frozenset({"jira:issue_updated"})
COMMENT_EVENTS = frozenset({"comment_created"})
RELEASE_EVENT = "jira:version_released"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def plain_text(body: Any) -> str:
    """A comment body as text: wiki/plain strings as they are, ADF documents by their text nodes."""
    if isinstance(body, str):
        return body
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "text" and isinstance(node.get("text"), str):
                parts.append(node["text"])
            for child in node.get("content") or []:
                walk(child)
            if node.get("type") in {"paragraph", "heading", "listItem", "codeBlock"}:
                parts.append("\n")
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(body)
    return "".join(parts).strip()


def user_id(user: Any) -> str | None:
    """``accountId`` on Cloud, ``name`` (or ``key``) on Data Center."""
    node = _dict(user)
    return next((node[k] for k in ("accountId", "name", "key") if _str(node.get(k))), None)


def user_name(user: Any) -> str | None:
    """A user's display name, else its id."""
    node = _dict(user)
    return next((node[k] for k in ("displayName", "name", "accountId") if _str(node.get(k))), None)


def interpret(system: str, event: Event) -> list[Signal]:
    """The signals of one Jira event (refs name the configured ``system``)."""
    payload = event.payload
    if event.kind == RELEASE_EVENT:
        version = _dict(payload.get("version"))
        if version.get("id") is None:
            return []
        released = version.get("released")
        return [
            VersionReleased(
                tracker=system,
                version_id=str(version["id"]),
                name=_str(version.get("name")),
                release_date=_str(version.get("releaseDate")),
                released=released is not False,
                actor=event.actor,
            )
        ]
    raw = _dict(payload.get("issue"))
    if raw.get("id") is None:
        return []
    fields = _dict(raw.get("fields"))
    issue = Ref(system, "issue", str(raw["id"]))
    key = str(raw.get("key") or "")
    summary = str(fields.get("summary") or "")
    if event.kind in ISSUE_EVENTS:
        status = _dict(fields.get("status"))
        updated: datetime | None = parse_datetime(fields.get("updated")) or event.occurred_at
        return [
            IssueStateObserved(
                issue=issue,
                key=key,
                summary=summary,
                status=_str(status.get("name")),
                category=_str(_dict(status.get("statusCategory")).get("key")),
                updated=updated,
                category_changed=parse_datetime(fields.get("statuscategorychangedate")),
                actor_name=user_name(payload.get("user")),
                resolution=_str(_dict(fields.get("resolution")).get("name")),
                actor=event.actor,
            )
        ]
    if event.kind in COMMENT_EVENTS:
        comment = _dict(payload.get("comment"))
        if comment.get("id") is None:
            return []
        author = comment.get("author")
        visibility = _dict(comment.get("visibility"))
        return [
            IssueCommentPosted(
                issue=issue,
                key=key,
                comment_id=str(comment["id"]),
                text=plain_text(comment.get("body")).strip(),
                summary=summary,
                author_name=user_name(author) or user_name(payload.get("user")),
                visibility_type=_str(visibility.get("type")),
                visibility_value=_str(visibility.get("value")),
                actor=user_id(author) or event.actor,
            )
        ]
    return []
