"""The AcmeDesk connector (Helpdesk role). AcmeDesk is an invented helpdesk; its REST API (JSON, bearer token):

- ``GET /api/me``: the user the token belongs to, ``{"user": {"id", "name", "email"}}``;
- ``GET /api/tickets/{id}``: ``{"ticket": {id, subject, description, status (open|pending|solved), tags,
  requester {name, email}, custom_fields {issue_key}, created_at, updated_at}}``;
- ``GET /api/tickets/{id}/comments?cursor=``: ``{"comments": [{id, body, public, author, created_at}],
  "next_cursor": str | null}``, oldest first;
- ``POST /api/tickets/{id}/comments`` ``{"body", "public"}``: 201 ``{"comment": {...}}``;
- ``PATCH /api/tickets/{id}`` ``{"status"?, "tags"?, "add_tags"?, "custom_fields"?, "comment"?}``: one update
  (``add_tags`` adds to the tags the ticket has at that moment, so a concurrent tag is never lost);
- ``GET /api/tickets?updated_since=<ISO-8601>&cursor=&limit=``: tickets by ``(updated_at, id)``,
  ``{"tickets", "next_cursor", "has_more"}``; ``next_cursor`` resumes right after the last ticket returned.

Errors are ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests
import requests.auth

from cxbridge.sdk import (
    HELPDESK,
    AuthError,
    BearerAuth,
    Comment,
    ConfigError,
    ConfigKey,
    EscalationRequested,
    Event,
    Helpdesk,
    Page,
    Person,
    Ref,
    Secret,
    Signal,
    SystemConfig,
    Ticket,
    TicketCommentAdded,
    Triggers,
    VendorError,
    json_object,
    parse_datetime,
)

STATUSES = ("open", "pending", "solved")
"""The ticket statuses AcmeDesk knows."""
ISSUE_KEY_FIELD = "issue_key"
PAGE_SIZE = 100
MAX_PAGES = 1000
"""A guard against a pagination loop."""
ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9_]*-[1-9][0-9]*")


class AcmeDeskConnector(Helpdesk):
    """Reads AcmeDesk tickets and comments; writes internal notes, tags, the issue key and the status."""

    system: ClassVar[str] = "acmedesk"
    primary_roles: ClassVar[frozenset[str]] = frozenset({HELPDESK})
    cloud_domains: ClassVar[tuple[str, ...]] = (".acmedesk.example",)
    default_headers: ClassVar[Mapping[str, str]] = {"Accept": "application/json"}
    config_keys: ClassVar[Mapping[str, ConfigKey]] = {
        "api_token": ConfigKey(Secret, required=True, help="an AcmeDesk API token (sent as a bearer token)"),
    }

    @classmethod
    def make_auth(cls, config: SystemConfig) -> requests.auth.AuthBase:
        """``Authorization: Bearer <api_token>``."""
        token = config.get("api_token")
        if not isinstance(token, Secret) or not token:
            raise ConfigError(f'systems.{config.name}.api_token: expected a secret ({{ env = "NAME" }})')
        return BearerAuth(token)

    @staticmethod
    def error_message(response: requests.Response) -> str | None:
        """AcmeDesk's ``{"error": {"code", "message"}}``."""
        body = json_object(response)
        error = body.get("error") if body else None
        if not isinstance(error, dict):
            return None
        text = ": ".join(str(error[k]) for k in ("code", "message") if isinstance(error.get(k), str))
        return text or None

    # -- Connector -------------------------------------------------------------------------------------------
    def _me(self) -> dict[str, Any]:
        user = self.http.get("/api/me", op="me").json().get("user")
        if not isinstance(user, dict) or user.get("id") is None:
            raise AuthError(self.name, f"{self.name}: AcmeDesk did not say who the token belongs to")
        return user

    def check(self) -> str:
        """``GET /api/me``."""
        user = self._me()
        return f"authenticated as {user.get('name') or '?'} <{user.get('email') or '?'}>"

    def integration_user_id(self) -> str | None:
        """The id of the token's user (``GET /api/me``): its changes are cxbridge's own (echoes)."""
        return str(self._me()["id"])

    def interpret(self, event: Event, triggers: Triggers) -> list[Signal]:
        """``ticket.tag_added`` with the escalation tag asks for an escalation; ``comment.created`` is a comment."""
        payload = event.payload
        ticket = Ref(self.name, "ticket", event.subject.id)
        actor = _dict(payload.get("actor"))
        agent = _person(self.name, actor) if actor else None
        if event.kind == "ticket.tag_added":
            if not triggers.escalation_tag or payload.get("tag") != triggers.escalation_tag:
                return []
            typed = _issue_key(_dict(_dict(payload.get("ticket")).get("custom_fields")).get(ISSUE_KEY_FIELD))
            return [EscalationRequested(ticket=ticket, agent=agent, issue_key=typed, actor=event.actor)]
        if event.kind == "comment.created":
            comment = _dict(payload.get("comment"))
            text = comment.get("body")
            if not isinstance(text, str):
                return []
            author = _dict(comment.get("author"))
            return [
                TicketCommentAdded(
                    ticket=ticket,
                    text=text,
                    public=comment.get("public") is True,
                    author=_person(self.name, author) if author else None,
                    actor=event.actor,
                )
            ]
        return []

    # -- Helpdesk --------------------------------------------------------------------------------------------
    def ticket_url(self, ticket_id: str) -> str:
        """The agent's view of the ticket: ``{base}/tickets/{id}``."""
        return f"{self.http.base_url}/tickets/{_ticket_id(ticket_id)}"

    def get_ticket(self, ticket_id: str) -> Ticket:
        """``GET /api/tickets/{id}``: the requester is inline."""
        body = self.http.get(f"/api/tickets/{_ticket_id(ticket_id)}", op="tickets.show").json()
        return self._ticket_from(body.get("ticket") if isinstance(body, dict) else None)

    def _ticket_from(self, raw: Any) -> Ticket:
        if not isinstance(raw, dict) or raw.get("id") is None:
            raise VendorError(self.name, f"{self.name}: the answer holds no ticket")
        tid = str(raw["id"])
        requester = _dict(raw.get("requester"))
        tags = raw.get("tags")
        fields = raw.get("custom_fields")
        return Ticket(
            ref=self.ticket_ref(tid),
            url=self.ticket_url(tid),
            subject=str(raw.get("subject") or ""),
            description=str(raw.get("description") or ""),
            status=raw.get("status") if isinstance(raw.get("status"), str) else None,
            tags=[str(t) for t in tags] if isinstance(tags, list) else [],
            requester=Person(name=requester.get("name"), email=requester.get("email")) if requester else None,
            custom_fields=dict(fields) if isinstance(fields, dict) else {},
            created_at=parse_datetime(raw.get("created_at")),
            updated_at=parse_datetime(raw.get("updated_at")),
            raw=raw,
        )

    def list_comments(self, ticket_id: str) -> list[Comment]:
        """``GET /api/tickets/{id}/comments``, following ``next_cursor``."""
        tid = _ticket_id(ticket_id)
        comments: list[Comment] = []
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            body = self.http.get(f"/api/tickets/{tid}/comments", op="tickets.comments", params=params).json()
            for raw in body.get("comments") or []:
                if isinstance(raw, dict):
                    author = _dict(raw.get("author"))
                    comments.append(
                        Comment(
                            ref=Ref(self.name, "comment", str(raw.get("id"))),
                            body=str(raw.get("body") or ""),
                            public=raw.get("public") is not False,
                            author=_person(self.name, author) if author else None,
                            created_at=parse_datetime(raw.get("created_at")),
                        )
                    )
            after = body.get("next_cursor")
            if not isinstance(after, str) or not after:
                return comments
            if after in seen:
                raise VendorError(self.name, f"{self.name}: the comment pagination repeated a cursor")
            seen.add(after)
            params = {"limit": PAGE_SIZE, "cursor": after}
        raise VendorError(self.name, f"{self.name}: more than {MAX_PAGES} pages of comments")

    def add_internal_note(self, ticket_id: str, body: str) -> None:
        """``POST /api/tickets/{id}/comments`` with ``public: false``; an unknown outcome is never retried."""
        self.http.post(
            f"/api/tickets/{_ticket_id(ticket_id)}/comments",
            op="tickets.note",
            json={"body": body, "public": False},
            creates=True,
        )

    def record_escalation(
        self, ticket: Ticket, *, note: str, tag: str, issue_key: str, issue_url: str, first_attempt: bool = False
    ) -> bool:
        """One ``PATCH``: the note, ``add_tags`` (keeps tags others added) and the ``issue_key`` field.

        False (nothing written) when the ticket already carries the tag and this key, unless ``first_attempt``.
        """
        if not first_attempt and tag in ticket.tags and ticket.custom_fields.get(ISSUE_KEY_FIELD) == issue_key:
            self.unchanged("record_escalation", str(ticket.ref))
            return False
        self.http.patch(
            f"/api/tickets/{_ticket_id(ticket.ref.id)}",
            op="tickets.escalate",
            json={
                "comment": {"body": note, "public": False},
                "add_tags": [tag],
                "custom_fields": {ISSUE_KEY_FIELD: issue_key},
            },
            creates=True,
        )
        return True

    def set_status(self, ticket_id: str, status: str) -> bool:
        """Read, then ``PATCH {"status"}`` unless the ticket is there already (False)."""
        if status not in STATUSES:
            raise ConfigError(f"{self.name}: {status!r} is not an AcmeDesk status ({', '.join(STATUSES)})")
        current = self.get_ticket(ticket_id)
        if current.status == status:
            self.unchanged("set_status", str(current.ref))
            return False
        self.http.patch(f"/api/tickets/{_ticket_id(ticket_id)}", op="tickets.status", json={"status": status})
        return True

    def requested_issue_key(self, ticket: Ticket) -> str | None:
        """The key an agent typed into the ``issue_key`` custom field (``ENG-12``), or None."""
        return _issue_key(ticket.custom_fields.get(ISSUE_KEY_FIELD))

    def changed_tickets(self, cursor: dict[str, Any] | None, *, since: float) -> Iterator[Page]:
        """``GET /api/tickets?updated_since=`` (first run) or ``?cursor=`` (resume), one Page per answer.

        Each Page's cursor is ``{"cursor": next_cursor}``; saved after the page, it resumes right after it.
        """
        after = (cursor or {}).get("cursor")
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if isinstance(after, str) and after:
            params["cursor"] = after
        else:
            params["updated_since"] = datetime.fromtimestamp(max(0.0, since), tz=UTC).isoformat()
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            body = self.http.get("/api/tickets", op="tickets.changed", params=params).json()
            tickets = [self._ticket_from(raw) for raw in body.get("tickets") or [] if isinstance(raw, dict)]
            following = body.get("next_cursor")
            more = body.get("has_more") is True
            if not isinstance(following, str) or not following:
                yield Page(tickets, dict(cursor or {}), True)
                return
            yield Page(tickets, {"cursor": following}, not more)
            if not more:
                return
            if following in seen:
                raise VendorError(self.name, f"{self.name}: the ticket list repeated a cursor")
            seen.add(following)
            params = {"limit": PAGE_SIZE, "cursor": following}
        raise VendorError(self.name, f"{self.name}: more than {MAX_PAGES} pages of changed tickets")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _person(system: str, raw: dict[str, Any]) -> Person:
    name, email, uid = raw.get("name"), raw.get("email"), raw.get("id")
    return Person(
        name=name if isinstance(name, str) else None,
        email=email if isinstance(email, str) else None,
        ref=Ref(system, "user", str(uid)) if isinstance(uid, int | str) and not isinstance(uid, bool) else None,
    )


def _issue_key(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    key = value.strip().upper()
    return key if ISSUE_KEY.fullmatch(key) else None


def _ticket_id(ticket_id: str | int) -> str:
    """A ticket id as it goes into a path: digits only."""
    text = str(ticket_id).strip()
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"not an AcmeDesk ticket id: {ticket_id!r}")
    return text
