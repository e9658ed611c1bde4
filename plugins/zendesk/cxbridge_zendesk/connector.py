"""The Zendesk Support connector (Helpdesk role): tickets, comments, internal notes and escalation state.

Every call is a documented Ticketing API operation (``shared/specs/zendesk/zendesk-support-oas.yaml``):

- ``GET /api/v2/users/me`` (ShowCurrentUser) for ``check()``;
- ``GET /api/v2/users/{id}`` (ShowUser) for ``agent_person`` (who the sidebar app's signed request names);
- ``GET /api/v2/tickets/{id}?include=users,organizations`` (ShowTicket with sideloads) for ``get_ticket``.
  ``comment_count`` is not requested: the description lists no such ``include`` value;
- ``GET /api/v2/tickets/{id}/comments?page[size]=100&include=users`` (ListTicketComments, cursor pagination:
  follow ``links.next`` while ``meta.has_more``);
- ``PUT /api/v2/tickets/{id}`` (UpdateTicket) for notes and the escalation update, the latter with
  ``safe_update`` + ``updated_stamp`` so that a concurrent change answers 409 instead of losing tags.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

import requests
import requests.auth

from cxbridge.sdk import (
    Attachment,
    AuthError,
    BadReference,
    BasicAuth,
    BearerAuth,
    Comment,
    ConfigError,
    ConfigKey,
    ConfigUpdate,
    Conflict,
    CxbridgeError,
    Event,
    ExistingLink,
    Finding,
    Helpdesk,
    Needs,
    Page,
    Person,
    PlanItem,
    Ref,
    Secret,
    SetupContext,
    Signal,
    SystemConfig,
    Ticket,
    Triggers,
    VendorError,
    json_object,
    parse_datetime,
)

from . import signals
from .setup import ZendeskSetup

log = logging.getLogger(__name__)

ISSUE_KEY_FIELD_TYPES = ("text", "regexp")
"""Ticket field types that can hold an issue key (``ENG-12``): a text field, or a regex-checked text field."""
COMMENTS_PAGE_SIZE = 100
"""Zendesk's maximum page size for List Comments."""
JIRA_LINKS_PAGE = 1000
"""Links per page of the Jira Links API (its documented default)."""
MAX_JIRA_LINK_PAGES = 10_000

MAX_COMMENT_PAGES = 1000
"""A guard against a pagination loop: 100,000 comments is far beyond any real ticket."""

EXPORT_PAGE_SIZE = 1000
"""The incremental export's largest (and default) page: 1,000 tickets a response."""
EXPORT_SIDELOADS = "users,organizations"
"""What the export sideloads: the same as ``get_ticket``'s, so an exported ticket is a complete record."""
EXPORT_MIN_AGE = 60
"""The export's ``start_time`` must lie at least a minute in the past (Zendesk excludes the last minute)."""

ESCALATION_ATTEMPTS = 3
"""How many safe updates ``record_escalation`` tries before giving up with ``Conflict``."""

_MESSAGE_CAP = 500

TICKET_STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
"""The ``status`` values UpdateTicket accepts (spec enum)."""
ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9_]*-[1-9][0-9]*")
AUDIT_MARKER = "cxbridge_marker"
"""The key of the update metadata (the audit's ``metadata.custom``) that carries a public reply's marker."""


class ZendeskConnector(Helpdesk):
    """Reads Zendesk tickets (with requester and organization); writes internal notes and escalation state."""

    system: ClassVar[str] = "zendesk"
    cloud_domains: ClassVar[tuple[str, ...]] = (".zendesk.com",)
    primary_roles: ClassVar[frozenset[str]] = frozenset({"helpdesk"})
    template_aliases: ClassVar[Mapping[str, str]] = {"helpdesk_note.txt.j2": "zendesk_note.txt.j2"}
    default_headers: ClassVar[Mapping[str, str]] = {"Accept": "application/json"}
    config_keys: ClassVar[Mapping[str, ConfigKey]] = {
        "email": ConfigKey(str, help="the agent's email address, for API-token auth"),
        "api_token": ConfigKey(Secret, help="a Zendesk API token (with email); or set oauth_token"),
        "oauth_token": ConfigKey(Secret, help="an OAuth access token, instead of email + api_token"),
        "issue_key_field_id": ConfigKey(
            int, help="id of the custom ticket field (text) that holds the tracker issue key ('cxbridge setup' sets it)"
        ),
        "issue_key_field_title": ConfigKey(
            str, default="Jira issue key", min=1, help="title of that field when 'cxbridge setup' creates it"
        ),
    }

    # -- configuration -----------------------------------------------------------------------------------
    @classmethod
    def make_auth(cls, config: SystemConfig) -> requests.auth.AuthBase:
        """Basic ``{email}/token:{api_token}``, or ``Bearer`` for an OAuth token: exactly one must be set."""
        where = f"systems.{config.name}"
        api_token = config.get("api_token")
        oauth_token = config.get("oauth_token")
        if bool(api_token) == bool(oauth_token):
            raise ConfigError(
                f"{where}: set exactly one of api_token (with email) or oauth_token for the Zendesk system "
                f"{config.name!r}"
            )
        if oauth_token:
            if not isinstance(oauth_token, Secret):
                raise ConfigError(f'{where}.oauth_token: expected a secret ({{ env = "NAME" }})')
            return BearerAuth(oauth_token)
        if not isinstance(api_token, Secret):
            raise ConfigError(f'{where}.api_token: expected a secret ({{ env = "NAME" }})')
        email = config.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise ConfigError(f"{where}.email: the agent's email address is required with api_token")
        return BasicAuth(f"{email}/token", api_token)

    @property
    def issue_key_field_id(self) -> int:
        """The custom ticket field that holds the tracker's issue key."""
        value = self.config.get("issue_key_field_id")
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(
                f"systems.{self.name}.issue_key_field_id: expected the id of a custom ticket field "
                "(run 'cxbridge setup --apply' to create the field and write its id)"
            )
        return value

    @staticmethod
    def error_message(response: requests.Response) -> str | None:
        """Zendesk's own words from an error body, in any of the shapes it uses.

        ``{"error": "RecordNotFound", "description": "Not found"}``; ``{"error": {"title", "message"}}``;
        JSON:API ``{"errors": [{"code", "title", "detail"}]}``; ``RecordInvalid`` with per-field ``details``.
        """
        body = json_object(response)
        if body is None:
            return None
        parts: list[str] = []
        error = body.get("error")
        if isinstance(error, str):
            description = body.get("description")
            parts.append(f"{error}: {description}" if isinstance(description, str) and description else error)
        elif isinstance(error, dict):
            title, message = error.get("title"), error.get("message")
            text = ": ".join(str(x) for x in (title, message) if isinstance(x, str) and x)
            if text:
                parts.append(text)
        elif isinstance(body.get("description"), str) and body["description"]:
            parts.append(str(body["description"]))
        details = body.get("details")
        if isinstance(details, dict):
            for field_name, problems in details.items():
                for problem in problems if isinstance(problems, list) else [problems]:
                    if isinstance(problem, dict):
                        said = problem.get("description") or problem.get("error")
                        if isinstance(said, str) and said:
                            parts.append(f"{field_name}: {said}")
        errors = body.get("errors")
        if isinstance(errors, list):
            for item in errors:
                if not isinstance(item, dict):
                    continue
                head = ": ".join(str(item[k]) for k in ("code", "title") if isinstance(item.get(k), str))
                detail = item.get("detail")
                text = f"{head} ({detail})" if isinstance(detail, str) and detail else head
                if text:
                    parts.append(text)
        if not parts:
            return None
        message = "; ".join(parts)
        return message if len(message) <= _MESSAGE_CAP else message[: _MESSAGE_CAP - 3] + "..."

    # -- Connector -----------------------------------------------------------------------------------------
    def check(self) -> str:
        """``GET /api/v2/users/me``: who the credentials belong to (an anonymous answer means refused)."""
        user = self.http.get("/api/v2/users/me", op="users.me").json().get("user") or {}
        if user.get("id") is None:
            raise AuthError(
                self.name,
                f"{self.name}: Zendesk answered as an anonymous user: the credentials were not accepted",
            )
        return f"authenticated as {user.get('name') or '?'} <{user.get('email') or '?'}>"

    def diagnose(self, needs: Needs) -> list[Finding]:
        """The issue-key ticket field (``GET /api/v2/ticket_fields/{id}``, Show Ticket Field) exists, is active and
        holds text: escalations write the issue key there, and agents type a key there to join an issue."""
        field_id = self.config.get("issue_key_field_id")
        subject = f"ticket field {field_id} (issue_key_field_id)"
        where = f"systems.{self.name}.issue_key_field_id"
        create = (
            f"set {where} to the id of an active text ticket field (Admin Center > Objects and rules > Tickets > "
            "Fields), or run 'cxbridge setup --apply' to create one"
        )
        if not isinstance(field_id, int) or isinstance(field_id, bool) or field_id <= 0:
            return [Finding.failed(subject, "not set (0 is the placeholder 'cxbridge init' writes)", create)]
        try:
            body = self.http.get(f"/api/v2/ticket_fields/{field_id}", op="ticket_fields.show").json()
        except CxbridgeError as exc:
            return [Finding.from_error(subject, exc, create)]
        field = body.get("ticket_field") if isinstance(body, dict) else None
        if not isinstance(field, dict):
            return [Finding.failed(subject, "Zendesk answered without a ticket_field", create)]
        title = field.get("title") or field_id
        if field.get("active") is not True:
            return [
                Finding.failed(
                    subject,
                    f"{title!r} is inactive",
                    "activate it in Admin Center > Objects and rules > Tickets > Fields",
                )
            ]
        if field.get("type") not in ISSUE_KEY_FIELD_TYPES:
            return [Finding.failed(subject, f"{title!r} is a {field.get('type')} field, not a text field", create)]
        return [Finding.ok(subject, f"{title!r} ({field.get('type')}, active)")]

    # -- provisioning ----------------------------------------------------------------------------------------
    def plan_setup(self, setup: SetupContext) -> list[PlanItem]:
        """The issue-key ticket field; as the helpdesk, also the webhook and the triggers (see ``setup.py``)."""
        return ZendeskSetup(self).plan(setup)

    def apply_setup(self, item: PlanItem, setup: SetupContext) -> list[ConfigUpdate]:
        """Create or correct one object; returns its field id or the webhook's signing secret."""
        return ZendeskSetup(self).apply(item, setup)

    # -- Helpdesk ------------------------------------------------------------------------------------------
    def ticket_url(self, ticket_id: str) -> str:
        """The agent-facing URL of the ticket (``{base}/agent/tickets/{id}``)."""
        return f"{self.http.base_url}/agent/tickets/{_ticket_id(ticket_id)}"

    def agent_person(self, user_id: str) -> Person | None:
        """``GET /api/v2/users/{user_id}`` (ShowUser): the user as an agent, or None for an end user, a suspended or
        an inactive (deleted) one. The sidebar app's signed request names the user; this reads who it is."""
        if not str(user_id).isdigit():
            raise BadReference(f"{self.name}: a user id is a number, got {user_id!r}")
        user = self.http.get(f"/api/v2/users/{int(user_id)}", op="users.show").json().get("user") or {}
        if user.get("role") not in ("agent", "admin") or user.get("suspended") or user.get("active") is False:
            return None
        email = user.get("email")
        if not isinstance(email, str) or "@" not in email:
            return None
        return Person(name=user.get("name"), email=email, ref=Ref(self.name, "user", str(user.get("id") or user_id)))

    def get_ticket(self, ticket_id: str) -> Ticket:
        """The ticket with its requester (users sideload) and organization name and domains (organizations sideload)."""
        tid = _ticket_id(ticket_id)
        body = self.http.get(
            f"/api/v2/tickets/{tid}", op="tickets.show", params={"include": "users,organizations"}
        ).json()
        return self._ticket_from(body)

    def _ticket_from(
        self,
        body: dict[str, Any],
        *,
        complete: bool = False,
        users: dict[Any, dict[str, Any]] | None = None,
        organizations: dict[Any, dict[str, Any]] | None = None,
    ) -> Ticket:
        """A Ticket from ``{"ticket": ..., "users": [...], "organizations": [...]}``; a page of tickets passes its
        sideloads already indexed by id (``users``, ``organizations``)."""
        raw = body.get("ticket")
        if not isinstance(raw, dict) or raw.get("id") is None:
            raise VendorError(self.name, f"{self.name}: the ticket response holds no ticket")
        users = _by_id(body.get("users")) if users is None else users
        organizations = _by_id(body.get("organizations")) if organizations is None else organizations
        requester: Person | None = None
        requester_id = raw.get("requester_id")
        if requester_id is not None:
            user = users.get(requester_id, {})
            requester = Person(
                name=user.get("name"), email=user.get("email"), ref=Ref(self.name, "user", str(requester_id))
            )
        org = organizations.get(raw.get("organization_id"), {})
        organization = org.get("name")
        domains = org.get("domain_names")
        custom_fields = {
            str(f["id"]): f.get("value")
            for f in raw.get("custom_fields") or []
            if isinstance(f, dict) and f.get("id") is not None
        }
        tags = raw.get("tags") or []
        return Ticket(
            ref=self.ticket_ref(str(raw["id"])),
            url=self.ticket_url(str(raw["id"])),
            subject=raw.get("subject") or raw.get("raw_subject") or "",
            description=raw.get("description") or "",
            status=raw.get("status"),
            priority=raw.get("priority"),
            tags=[str(t) for t in tags] if isinstance(tags, list) else str(tags).split(),
            requester=requester,
            organization=organization,
            organization_domains=[d for d in domains if isinstance(d, str) and d] if isinstance(domains, list) else [],
            custom_fields=custom_fields,
            created_at=parse_datetime(raw.get("created_at")),
            updated_at=parse_datetime(raw.get("updated_at")),
            raw=raw,
            complete=complete,
        )

    def list_comments(self, ticket_id: str) -> list[Comment]:
        """Every comment, oldest first, following cursor pagination; authors from the users sideload."""
        tid = _ticket_id(ticket_id)
        comments: list[Comment] = []
        url: str = f"/api/v2/tickets/{tid}/comments"
        params: dict[str, Any] | None = {"page[size]": COMMENTS_PAGE_SIZE, "include": "users"}
        seen: set[str] = set()
        for _ in range(MAX_COMMENT_PAGES):
            body = self.http.get(url, op="tickets.comments", params=params).json()
            users = _by_id(body.get("users"))
            for raw in body.get("comments") or []:
                if isinstance(raw, dict):
                    comments.append(self._comment_from(raw, users))
            meta = body.get("meta") or {}
            next_url = (body.get("links") or {}).get("next")
            if not meta.get("has_more") or not isinstance(next_url, str) or not next_url:
                break
            if next_url in seen:
                raise VendorError(self.name, f"{self.name}: the comment pagination repeated a page link")
            seen.add(next_url)
            url, params = next_url, None  # the link carries page[size] and page[after]
        else:
            raise VendorError(self.name, f"{self.name}: more than {MAX_COMMENT_PAGES} pages of comments")
        comments.sort(key=lambda c: (c.created_at is None, c.created_at or datetime.min))
        return comments

    def _comment_from(self, raw: dict[str, Any], users: dict[Any, dict[str, Any]]) -> Comment:
        author: Person | None = None
        author_id = raw.get("author_id")
        if author_id is not None:
            user = users.get(author_id, {})
            author = Person(name=user.get("name"), email=user.get("email"), ref=Ref(self.name, "user", str(author_id)))
        body = raw.get("body")
        if not isinstance(body, str):
            plain = raw.get("plain_body")
            body = plain if isinstance(plain, str) else ""
        return Comment(
            ref=Ref(self.name, "comment", str(raw.get("id"))),
            body=body,
            public=bool(raw.get("public", True)),
            author=author,
            created_at=parse_datetime(raw.get("created_at")),
            attachments=[
                str(a["id"])
                for a in raw.get("attachments") or []
                if isinstance(a, dict) and a.get("id") is not None and not a.get("inline") and not a.get("deleted")
            ],
        )

    def get_attachment(self, attachment_id: str) -> Attachment:
        """``GET /api/v2/attachments/{id}`` (Show Attachment)."""
        if not str(attachment_id).isdigit():
            raise BadReference(f"not a Zendesk attachment id: {attachment_id!r}")
        raw = self.http.get(f"/api/v2/attachments/{attachment_id}", op="attachments.show").json()
        node = raw.get("attachment") if isinstance(raw, dict) else None
        if not isinstance(node, dict):
            raise VendorError(self.name, f"{self.name}: attachment {attachment_id} answered without an attachment")
        size = node.get("size")
        return Attachment(
            ref=Ref(self.name, "attachment", str(attachment_id)),
            filename=str(node.get("file_name") or "attachment"),
            content_type=str(node.get("content_type") or "application/octet-stream"),
            size=size if isinstance(size, int) and not isinstance(size, bool) else 0,
            url=str(node.get("content_url") or ""),
        )

    def download_attachment(self, attachment: Attachment, *, max_bytes: int) -> bytes:
        """The file at its ``content_url`` when that is on the account's own domain (Zendesk warns that it may be
        hosted elsewhere: such a URL, or a redirect, is refused and credentials are never sent there)."""
        if attachment.size > max_bytes:
            raise VendorError(self.name, f"{self.name}: {attachment.filename} is larger than {max_bytes} bytes")
        response = self.http.get(attachment.url, op="attachments.download")
        content = response.content
        if len(content) > max_bytes:
            raise VendorError(self.name, f"{self.name}: {attachment.filename} is larger than {max_bytes} bytes")
        return content

    def changed_tickets(
        self,
        cursor: dict[str, Any] | None,
        *,
        since: float,
        per_page: int = EXPORT_PAGE_SIZE,
        now: float | None = None,
    ) -> Iterator[Page]:
        """Tickets changed since ``since`` (epoch seconds), or after a saved ``cursor``, one Page per response.

        The cursor-based incremental export (IncrementalTicketExportCursor):
        ``GET /api/v2/incremental/tickets/cursor?start_time=<unix>`` on the first call (clamped to a minute
        ago, as Zendesk requires), then ``?cursor=<after_cursor>``, until ``end_of_stream``. Each Page's cursor
        is ``{"cursor": after_cursor}``: saved after the page is handled, it resumes right after it, also on
        the next run (the end of the stream is where later changes will appear). The ``users`` and
        ``organizations`` sideloads are asked for (the export allows the tickets' sideloads), as ``get_ticket``
        asks for them: every ticket is then ``complete``, so a polled escalation does not read it again.
        Only the cursor is taken from the body, never ``after_url``, so no link from a response is followed.
        Pages are yielded as they arrive; nothing accumulates.
        """
        size = max(1, min(int(per_page), EXPORT_PAGE_SIZE))
        params: dict[str, Any]
        after = (cursor or {}).get("cursor")
        if isinstance(after, str) and after:
            params = {"cursor": after}
        else:
            latest = (time.time() if now is None else now) - EXPORT_MIN_AGE
            params = {"start_time": max(0, int(min(since, latest)))}
        params["include"] = EXPORT_SIDELOADS
        if size != EXPORT_PAGE_SIZE:
            params["per_page"] = size
        seen: set[str] = set()
        while True:
            body = self.http.get("/api/v2/incremental/tickets/cursor", op="tickets.export", params=params).json()
            if not isinstance(body, dict):
                raise VendorError(self.name, f"{self.name}: the incremental export answer is not a JSON object")
            users, organizations = _by_id(body.get("users")), _by_id(body.get("organizations"))
            tickets = [
                self._ticket_from({"ticket": raw}, complete=True, users=users, organizations=organizations)
                for raw in body.get("tickets") or []
                if isinstance(raw, dict) and raw.get("id") is not None
            ]
            after = body.get("after_cursor")
            done = body.get("end_of_stream") is True
            if not isinstance(after, str) or not after:
                # no cursor to go on with: resume from where this scan started next time
                yield Page(tickets, dict(cursor or {}) if "cursor" in params else {}, True)
                return
            yield Page(tickets, {"cursor": after}, done)
            if done:
                return
            if after in seen:
                raise VendorError(self.name, f"{self.name}: the incremental export repeated a cursor")
            seen.add(after)
            params = {"cursor": after, "include": EXPORT_SIDELOADS}
            if size != EXPORT_PAGE_SIZE:
                params["per_page"] = size

    def add_internal_note(self, ticket_id: str, body: str) -> None:
        """An internal note (``comment.public = false``) on the ticket.

        Sent with ``creates=True``: a note is a new record, so an unknown outcome (read timeout, 5xx) is
        reported as ``AmbiguousOutcome`` rather than retried into a duplicate note.
        """
        tid = _ticket_id(ticket_id)
        self.http.put(
            f"/api/v2/tickets/{tid}",
            op="tickets.note",
            json={"ticket": {"comment": {"body": body, "public": False}}},
            creates=True,
        )

    def add_public_reply(self, ticket_id: str, body: str, *, marker: str) -> None:
        """A public reply (``comment.public = true``), the customer emailed as for any agent reply.

        The marker goes into the update's write-only ``metadata`` (kept on the ticket audit as
        ``metadata.custom``, never shown to the customer), so ``has_public_reply`` finds the reply again. A create:
        an unknown outcome is ``AmbiguousOutcome``, never retried into a second reply.
        """
        tid = _ticket_id(ticket_id)
        self.http.put(
            f"/api/v2/tickets/{tid}",
            op="tickets.reply",
            json={"ticket": {"comment": {"body": body, "public": True}, "metadata": {AUDIT_MARKER: marker}}},
            creates=True,
        )

    def has_public_reply(self, ticket_id: str, marker: str) -> bool:
        """Whether an audit of the ticket carries ``marker`` in ``metadata.custom`` with a public comment.

        ListAuditsForTicket, cursor pagination (``page[size]=100``, newest first with ``sort=-created_at``).
        """
        tid = _ticket_id(ticket_id)
        url: str = f"/api/v2/tickets/{tid}/audits"
        params: dict[str, Any] | None = {"page[size]": COMMENTS_PAGE_SIZE, "sort": "-created_at"}
        seen: set[str] = set()
        for _ in range(MAX_COMMENT_PAGES):
            body = self.http.get(url, op="tickets.audits", params=params).json()
            for audit in body.get("audits") or []:
                if not isinstance(audit, dict):
                    continue
                custom = (audit.get("metadata") or {}).get("custom") or {}
                if isinstance(custom, dict) and custom.get(AUDIT_MARKER) == marker:
                    events = audit.get("events") or []
                    return any(
                        isinstance(e, dict) and e.get("type") == "Comment" and e.get("public") is True for e in events
                    )
            next_url = (body.get("links") or {}).get("next")
            if not (body.get("meta") or {}).get("has_more") or not isinstance(next_url, str) or next_url in seen:
                return False
            seen.add(next_url)
            url, params = next_url, None
        return False

    def add_note_removing_tag(self, ticket_id: str, body: str, tag: str) -> None:
        """One safe update: an internal note and the ticket's tags without ``tag`` (tags added meanwhile kept).

        Reads the ticket for its tags and ``updated_at``, then ``PUT`` with ``safe_update`` and ``updated_stamp``;
        on a collision (409) reads and tries again, at most ``ESCALATION_ATTEMPTS`` times. A create (the note): an
        unknown outcome is ``AmbiguousOutcome``.
        """
        tid = _ticket_id(ticket_id)
        last_error: Conflict | None = None
        for attempt in range(1, ESCALATION_ATTEMPTS + 1):
            current = self.get_ticket(tid)
            payload = {
                "ticket": {
                    "comment": {"body": body, "public": False},
                    "tags": [t for t in current.tags if t != tag],
                    "safe_update": True,
                    "updated_stamp": current.raw.get("updated_at"),
                }
            }
            try:
                self.http.put(f"/api/v2/tickets/{tid}", op="tickets.note", json=payload, creates=True)
                return
            except Conflict as exc:
                last_error = exc
                log.info("%s.add_note_removing_tag.collision ticket=%s attempt=%d", self.name, tid, attempt)
        raise Conflict(
            self.name,
            f"{self.name}: ticket {tid} kept changing while cxbridge removed the tag {tag!r} "
            f"({ESCALATION_ATTEMPTS} safe updates collided)",
            status=409,
            vendor_message=last_error.vendor_message if last_error else None,
            action="retry",
        )

    def record_escalation(
        self, ticket: Ticket, *, note: str, tag: str, issue_key: str, issue_url: str, first_attempt: bool = False
    ) -> bool:
        """One safe update: internal note, escalation tag and issue key; False when already applied.

        The skip condition (tag present and the issue-key field already equal to ``issue_key``) is what makes
        a crash-and-rerun leave exactly one note; ``first_attempt`` (no earlier attempt can have written) turns
        it off, so a ticket whose agent typed the key and the tag still gets its note. The update carries
        ``safe_update`` and ``updated_stamp``; on a collision (409) the ticket is read again, keeping tags others
        added meanwhile; when it holds the tag, the key and this very note (in its comments) the update was
        applied before and nothing is written, else the update is retried, at most ``ESCALATION_ATTEMPTS`` times in
        all. The update is sent with ``creates=True``: a lost answer (reset, read timeout, 5xx) is
        ``AmbiguousOutcome``, never retried into a second note; the caller reconciles by the note's marker.
        """
        field_id = self.issue_key_field_id
        current = ticket
        last_error: Conflict | None = None
        for attempt in range(1, ESCALATION_ATTEMPTS + 1):
            if not first_attempt and _already_escalated(current, tag, field_id, issue_key):
                self.unchanged("record_escalation", str(current.ref))
                return False
            stamp = current.raw.get("updated_at") if current.raw else None
            if not isinstance(stamp, str) or not stamp:
                current = self.get_ticket(current.ref.id)
                if not first_attempt and _already_escalated(current, tag, field_id, issue_key):
                    self.unchanged("record_escalation", str(current.ref))
                    return False
                stamp = current.raw.get("updated_at")
            tags = list(dict.fromkeys([*current.tags, tag]))
            payload = {
                "ticket": {
                    "comment": {"body": note, "public": False},
                    "tags": tags,
                    "custom_fields": [{"id": field_id, "value": issue_key}],
                    "safe_update": True,
                    "updated_stamp": stamp,
                }
            }
            try:
                # a note is a new record: an unknown outcome is AmbiguousOutcome, never a blind second PUT
                self.http.put(
                    f"/api/v2/tickets/{_ticket_id(current.ref.id)}", op="tickets.escalate", json=payload, creates=True
                )
            except Conflict as exc:
                last_error = exc
                log.info("%s.record_escalation.collision ticket=%s attempt=%d", self.name, current.ref.id, attempt)
                current = self.get_ticket(current.ref.id)
                if (
                    first_attempt  # (otherwise the check at the top of the loop holds)
                    and _already_escalated(current, tag, field_id, issue_key)
                    and self._has_note(current.ref.id, note)
                ):
                    # the collision was with this very update, applied before: nothing more to write
                    self.unchanged("record_escalation", str(current.ref))
                    return False
                continue
            return True
        if _already_escalated(current, tag, field_id, issue_key):
            self.unchanged("record_escalation", str(current.ref))
            return False
        raise Conflict(
            self.name,
            f"{self.name}: ticket {current.ref.id} kept changing during the escalation update "
            f"({ESCALATION_ATTEMPTS} safe updates collided)",
            status=409,
            vendor_message=last_error.vendor_message if last_error else None,
            action="reconcile",
        )

    def _has_note(self, ticket_id: str, note: str) -> bool:
        """Whether an internal comment of the ticket holds ``note`` (read after a collision, before writing again)."""
        text = note.strip()
        return any(not c.public and text in c.body for c in self.list_comments(ticket_id))

    # -- sync back and triggers (issue 5) --------------------------------------------------------------------
    def set_status(self, ticket_id: str, status: str) -> bool:
        """Move the ticket to ``status`` (new/open/pending/hold/solved/closed); False when it is there already.

        Reads the ticket first (compare before write: no audit, no echo for a status it already has); a
        closed ticket cannot be updated on Zendesk and is left alone (False).
        """
        if status not in TICKET_STATUSES:
            raise ConfigError(f"{self.name}: {status!r} is not a Zendesk ticket status ({', '.join(TICKET_STATUSES)})")
        current = self.get_ticket(ticket_id)
        if current.status == status or current.status == "closed":
            self.unchanged("set_status", str(current.ref))
            return False
        self.http.put(
            f"/api/v2/tickets/{_ticket_id(ticket_id)}", op="tickets.status", json={"ticket": {"status": status}}
        )
        return True

    def add_note_with_status(self, ticket_id: str, body: str, status: str) -> None:
        """One update: an internal note and the ticket's ``status`` (a status it has already stays as it is).

        What sync back sends when a transition also moves the ticket: one call instead of a note, a read and a
        status update. Like ``add_internal_note``, an unknown outcome is ``AmbiguousOutcome``, never retried.
        """
        if status not in TICKET_STATUSES:
            raise ConfigError(f"{self.name}: {status!r} is not a Zendesk ticket status ({', '.join(TICKET_STATUSES)})")
        self.http.put(
            f"/api/v2/tickets/{_ticket_id(ticket_id)}",
            op="tickets.note",
            json={"ticket": {"comment": {"body": body, "public": False}, "status": status}},
            creates=True,
        )

    def integration_links(self) -> Iterator[ExistingLink]:
        """The links of Zendesk's own Jira integration: ``GET /api/v2/jira/links`` (Zendesk's "Jira Links" API
        reference, developer.zendesk.com/api-reference/ticketing/jira/links/, which is not part of the Support
        OAS). Listed by id, ``page[size]`` links a page, the next page after the last id (``page[after]``); the
        answer is ``{"links": [...], "total": n}`` with ``ticket_id`` a number or a string, ``issue_id`` a string.
        Admin credentials are needed (403 otherwise)."""
        after: int | None = None
        for _ in range(MAX_JIRA_LINK_PAGES):
            params: dict[str, Any] = {"page[size]": JIRA_LINKS_PAGE}
            if after is not None:
                params["page[after]"] = after
            body = self.http.get("/api/v2/jira/links", op="jira_links.list", params=params).json()
            links = [raw for raw in body.get("links") or [] if isinstance(raw, dict)]
            for raw in links:
                ticket_id, issue_id, issue_key = raw.get("ticket_id"), raw.get("issue_id"), raw.get("issue_key")
                if ticket_id is None or issue_id is None or not isinstance(issue_key, str) or not issue_key:
                    log.warning("%s: a Jira integration link without its ticket or issue was skipped", self.name)
                    continue
                yield ExistingLink(
                    ticket_id=str(ticket_id),
                    issue_id=str(issue_id),
                    issue_key=issue_key,
                    link_id=None if raw.get("id") is None else str(raw["id"]),
                )
            ids = [raw["id"] for raw in links if isinstance(raw.get("id"), int) and not isinstance(raw["id"], bool)]
            if len(links) < JIRA_LINKS_PAGE or not ids or (after is not None and max(ids) <= after):
                return
            after = max(ids)
        raise VendorError(self.name, f"{self.name}: the Jira links list did not end in {MAX_JIRA_LINK_PAGES} pages")

    def requested_issue_key(self, ticket: Ticket) -> str | None:
        """The issue key an agent typed into the ``issue_key_field_id`` field (``ENG-12``), or None."""
        value = ticket.custom_fields.get(str(self.issue_key_field_id))
        if not isinstance(value, str):
            return None
        key = value.strip().upper()
        return key if ISSUE_KEY.fullmatch(key) else None

    def interpret(self, event: Event, triggers: Triggers) -> list[Signal]:
        """Ticket events: the escalation tag asks for an escalation, a comment is a comment (``signals``)."""
        return signals.interpret(self.name, event, triggers)

    def integration_user_id(self) -> str | None:
        """The id of the user the credentials belong to (``GET /api/v2/users/me``), for echo suppression."""
        user = self.http.get("/api/v2/users/me", op="users.me").json().get("user") or {}
        return None if user.get("id") is None else str(user["id"])


def _already_escalated(ticket: Ticket, tag: str, field_id: int, issue_key: str) -> bool:
    value = ticket.custom_fields.get(str(field_id))
    return tag in ticket.tags and value is not None and str(value) == issue_key


def _ticket_id(ticket_id: str | int) -> str:
    """A ticket id as it goes into a path: digits only, so no value can change the path."""
    text = str(ticket_id).strip()
    if not text.isdigit() or not text.isascii():
        raise BadReference(f"not a Zendesk ticket id: {ticket_id!r}")
    return text


def _by_id(items: Any) -> dict[Any, dict[str, Any]]:
    if not isinstance(items, list):
        return {}
    return {item["id"]: item for item in items if isinstance(item, dict) and "id" in item}
