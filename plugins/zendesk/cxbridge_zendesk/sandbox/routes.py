"""Routes of the Zendesk emulator: parse the request, call the models, answer in Zendesk's shapes.

Every path also answers with a ``.json`` suffix (zenpy always adds one). Absolute URLs in bodies (``url``,
``next_page``, ``links.next``, ``after_url``) are built from the host and path of the request being answered, so
a client that follows them verbatim (zenpy does) comes back to the same emulator, with the same suffix.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from cxbridge.sdk import VendorFault, WebhookTarget

from . import errors, macros, triggers
from .models import (
    Attachment,
    Audit,
    Change,
    Comment,
    IdempotentAnswer,
    Organization,
    Ticket,
    TicketField,
    User,
    Webhook,
    ZendeskModel,
    iso,
)

if TYPE_CHECKING:
    from cxbridge.sdk import Backend

    _Base = Backend
else:
    _Base = object

T = TypeVar("T")

ACTOR_KEY = "cxbridge.zendesk.actor_id"
ACCOUNT_ID = 9_000_001

# (path, endpoint, methods); each path also answers with ".json" appended.
RULES: list[tuple[str, str, tuple[str, ...]]] = [
    ("/api/v2/tickets", "tickets", ("GET", "POST")),
    ("/api/v2/tickets/show_many", "tickets_show_many", ("GET",)),
    ("/api/v2/tickets/<int:ticket_id>", "ticket", ("GET", "PUT")),
    ("/api/v2/tickets/<int:ticket_id>/comments", "ticket_comments", ("GET",)),
    ("/api/v2/tickets/<int:ticket_id>/audits", "ticket_audits", ("GET",)),
    ("/api/v2/tickets/<int:ticket_id>/comments/<int:comment_id>/redact", "comment_redact", ("PUT",)),
    ("/api/v2/tickets/<int:ticket_id>/tags", "ticket_tags", ("GET", "POST", "PUT", "DELETE")),
    ("/api/v2/users/me", "users_me", ("GET",)),
    ("/api/v2/users/show_many", "users_show_many", ("GET",)),
    ("/api/v2/users/search", "users_search", ("GET",)),
    ("/api/v2/users/<int:user_id>", "user", ("GET",)),
    ("/api/v2/organizations/show_many", "organizations_show_many", ("GET",)),
    ("/api/v2/organizations/<int:organization_id>", "organization", ("GET",)),
    ("/api/v2/search", "search", ("GET",)),
    ("/api/v2/search/count", "search_count", ("GET",)),
    ("/api/v2/incremental/tickets/cursor", "incremental_tickets", ("GET",)),
    ("/api/v2/ticket_fields", "ticket_fields", ("GET", "POST")),
    ("/api/v2/ticket_fields/<int:ticket_field_id>", "ticket_field", ("GET",)),
    ("/api/v2/uploads", "uploads", ("POST",)),
    ("/api/v2/attachments/<int:attachment_id>", "attachment", ("GET",)),
    ("/attachments/token/<token>", "attachment_content", ("GET",)),
    ("/api/v2/jira/links", "jira_links", ("GET", "POST")),
    ("/api/v2/jira/links/<int:link_id>", "jira_link", ("DELETE",)),
    ("/api/v2/webhooks", "webhooks", ("GET", "POST")),
    ("/api/v2/webhooks/<webhook_id>", "webhook", ("GET", "PUT", "DELETE")),
    ("/api/v2/webhooks/<webhook_id>/signing_secret", "webhook_secret", ("GET", "POST")),
    ("/api/v2/triggers", "triggers", ("GET", "POST")),
    ("/api/v2/triggers/<int:trigger_id>", "trigger", ("GET", "PUT", "DELETE")),
    ("/api/v2/macros", "macros", ("GET", "POST")),
    ("/api/v2/macros/<int:macro_id>", "macro", ("GET", "PUT", "DELETE")),
]

# Ticket list endpoints carry the extra ``ratelimit-*`` headers.
TICKET_LIST_ENDPOINTS = frozenset({"tickets", "tickets_show_many"})


JIRA_LINKS_PAGE = 1000
"""Links per page of ``GET /api/v2/jira/links`` when ``page[size]`` is not given (and the most it takes)."""


def jira_link_json(link: Any, base: str) -> dict[str, Any]:
    """A Jira integration link as the Jira Links API shows it."""
    return {
        "id": link.id,
        "ticket_id": link.ticket_id,
        "issue_id": link.issue_id,
        "issue_key": link.issue_key,
        "url": f"{base}/api/v2/jira/links/{link.id}.json",
        "created_at": iso(link.created_at),
        "updated_at": iso(link.updated_at),
    }


def build_url_map() -> Map:
    """The werkzeug routes, each with and without ``.json``, and a catch-all for unknown paths."""
    rules: list[Rule] = []
    for path, endpoint, methods in RULES:
        rules.append(Rule(path, endpoint=endpoint, methods=list(methods)))
        rules.append(Rule(path + ".json", endpoint=endpoint, methods=list(methods)))
    rules.append(Rule("/<path:rest>", endpoint="unknown"))
    rules.append(Rule("/", endpoint="unknown", defaults={"rest": ""}))
    return Map(rules, strict_slashes=False)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Zendesk's webhook signature: base64(HMAC-SHA256(secret as UTF-8, timestamp + body))."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("utf-8") + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def encode_cursor(value: Any) -> str:
    """An opaque cursor (URL-safe base64 of JSON)."""
    raw = json.dumps(value, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: str) -> Any:
    """The value inside a cursor, or the vendor's 400."""
    try:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        raise errors.bad_request("The cursor is invalid", "InvalidPaginationParameter") from None


def _key(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _export_key(row: tuple[float, int, Ticket]) -> tuple[float, int]:
    return row[0], row[1]


# -- vendor-shaped records ---------------------------------------------------------------------------------
def ticket_json(t: Ticket, base: str) -> dict[str, Any]:
    """A ticket as the Tickets API returns it (custom fields without a value are left out)."""
    fields = [{"id": fid, "value": value} for fid, value in sorted(t.custom_fields.items()) if value is not None]
    body: dict[str, Any] = {
        "url": f"{base}/api/v2/tickets/{t.id}.json",
        "id": t.id,
        "external_id": t.external_id,
        "via": {"channel": t.channel, "source": {"from": {}, "to": {}, "rel": None}},
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_ts),
        "generated_timestamp": int(t.updated_ts),
        "type": t.type,
        "subject": t.subject,
        "raw_subject": t.subject,
        "description": t.description,
        "priority": t.priority,
        "status": t.status,
        "requester_id": t.requester_id,
        "submitter_id": t.submitter_id,
        "assignee_id": t.assignee_id,
        "organization_id": t.organization_id,
        "group_id": t.group_id,
        "collaborator_ids": [],
        "follower_ids": [],
        "email_cc_ids": [],
        "problem_id": None,
        "has_incidents": False,
        "is_public": any(c.public for c in t.comments),
        "due_at": None,
        "tags": list(t.tags),
        "custom_fields": fields,
        "fields": [dict(f) for f in fields],
        "sharing_agreement_ids": [],
        "custom_status_id": None,
        "followup_ids": [],
        "ticket_form_id": None,
        "brand_id": None,
        "allow_channelback": False,
        "allow_attachments": True,
        "from_messaging_channel": False,
    }
    # Zendesk sends null for an unset type or priority, but the spec's enums (OAS 3.0.3: nullable needs null
    # in the enum) refuse it; leaving the key out reads the same to clients (zenpy gives None).
    for name in ("type", "priority"):
        if body[name] is None:
            del body[name]
    return body


def attachment_json(a: Attachment, base: str) -> dict[str, Any]:
    """An ``Attachment`` as Show Attachment and a comment's ``attachments`` return it.

    ``content_url`` is on the account's own domain (``/attachments/token/<token>/?name=<file>``), as Zendesk's are.
    """
    content_url = f"{base}/attachments/token/{a.token}/?name={quote(a.file_name)}"
    return {
        "id": a.id,
        "url": f"{base}/api/v2/attachments/{a.id}.json",
        "file_name": a.file_name,
        "content_url": content_url,
        "mapped_content_url": content_url,
        "content_type": a.content_type,
        "size": a.size,
        "inline": False,
        "deleted": False,
        "malware_access_override": False,
        "malware_scan_result": "malware_not_found",
        "thumbnails": [],
    }


def comment_json(c: Comment, base: str = "", attachments: Mapping[int, Attachment] | None = None) -> dict[str, Any]:
    """A ticket comment as List Comments returns it (with its attachments when ``attachments`` is given)."""
    found = [attachments[i] for i in c.attachment_ids if i in attachments] if attachments is not None else []
    return {
        "id": c.id,
        "type": "Comment",
        "author_id": c.author_id,
        "body": c.body,
        "html_body": c.html_body,
        "plain_body": c.body,
        "public": c.public,
        "attachments": [attachment_json(a, base) for a in found],
        "audit_id": c.audit_id,
        "via": {"channel": c.channel, "source": {"from": {}, "to": {}, "rel": None}},
        "metadata": {"system": {}, "custom": {}},
        "created_at": iso(c.created_at),
    }


def audit_json(a: Audit) -> dict[str, Any]:
    """The audit of a create or update."""
    return {
        "id": a.id,
        "ticket_id": a.ticket_id,
        "created_at": iso(a.created_at),
        "author_id": a.author_id,
        "metadata": {"system": {}, "custom": dict(a.custom)},
        "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
        "events": a.events,
    }


def user_json(u: User, base: str) -> dict[str, Any]:
    """A user as the Users API returns it."""
    return {
        "id": u.id,
        "url": f"{base}/api/v2/users/{u.id}.json",
        "name": u.name,
        "email": u.email,
        "created_at": iso(u.created_at),
        "updated_at": iso(u.updated_at),
        "time_zone": u.time_zone,
        "iana_time_zone": "Etc/UTC" if u.time_zone == "UTC" else u.time_zone,
        "phone": u.phone,
        "shared_phone_number": None,
        "photo": None,
        "locale_id": 1,
        "locale": "en-US",
        "organization_id": u.organization_id,
        "role": u.role,
        "verified": u.verified,
        "external_id": u.external_id,
        "tags": list(u.tags),
        "alias": "",
        "active": u.active,
        "shared": False,
        "shared_agent": False,
        "two_factor_auth_enabled": None,
        "signature": "",
        "details": "",
        "notes": u.notes,
        "role_type": None,
        "custom_role_id": None,
        "moderator": u.role == "admin",
        "ticket_restriction": None if u.is_agent else "requested",
        "only_private_comments": False,
        "restricted_agent": not u.is_agent,
        "suspended": False,
        "report_csv": u.role == "admin",
        "user_fields": dict(u.user_fields),
    }


def organization_json(o: Organization, base: str) -> dict[str, Any]:
    """An organization as the Organizations API returns it."""
    return {
        "url": f"{base}/api/v2/organizations/{o.id}.json",
        "id": o.id,
        "name": o.name,
        "shared_tickets": False,
        "shared_comments": False,
        "external_id": o.external_id,
        "created_at": iso(o.created_at),
        "updated_at": iso(o.updated_at),
        "domain_names": list(o.domain_names),
        "details": o.details,
        "notes": o.notes,
        "group_id": None,
        "tags": list(o.tags),
        "organization_fields": dict(o.organization_fields),
    }


def ticket_field_json(f: TicketField, base: str) -> dict[str, Any]:
    """A ticket field as the Ticket Fields API returns it."""
    return {
        "url": f"{base}/api/v2/ticket_fields/{f.id}.json",
        "id": f.id,
        "type": f.type,
        "title": f.title,
        "raw_title": f.title,
        "description": f.description,
        "raw_description": f.description,
        "agent_description": "",
        "position": f.position,
        "active": f.active,
        "required": f.required,
        "collapsed_for_agents": False,
        "regexp_for_validation": None,
        "title_in_portal": f.title,
        "raw_title_in_portal": f.title,
        "visible_in_portal": not f.removable,
        "editable_in_portal": not f.removable,
        "required_in_portal": False,
        "agent_can_edit": True,
        "tag": f.tag,
        "created_at": iso(f.created_at),
        "updated_at": iso(f.created_at),
        "removable": f.removable,
    }


def webhook_json(w: Webhook) -> dict[str, Any]:
    """A webhook as the Webhooks API returns it (its secret only through ``signing_secret``)."""
    return {
        "id": w.id,
        "name": w.name,
        "description": w.description,
        "status": w.status,
        "subscriptions": list(w.subscriptions),
        "endpoint": w.endpoint,
        "http_method": w.http_method,
        "request_format": w.request_format,
        "created_at": iso(w.created_at),
        "created_by": str(w.created_by),
        "updated_at": iso(w.updated_at),
        "updated_by": str(w.created_by),
    }


class ZendeskRoutes(_Base):
    """The route handlers (``route_<endpoint>``); mixed into ``ZendeskBackend``."""

    model: ZendeskModel
    trigger_tags: set[str]
    incremental_delay: float

    # -- request helpers ----------------------------------------------------------------------------------
    @staticmethod
    def base(request: Request) -> str:
        """Scheme and host of the request, the root of every absolute URL in the answer."""
        return request.host_url.rstrip("/")

    def actor(self, request: Request) -> User:
        """The authenticated user (``authenticate`` recorded who it is)."""
        return self.model.user(int(request.environ[ACTOR_KEY]))

    def require_admin(self, request: Request) -> User:
        """The authenticated user when an admin, else Zendesk's 403."""
        user = self.actor(request)
        if user.role != "admin":
            raise VendorFault(403, errors.for_status(403, "admin only"))
        return user

    @staticmethod
    def url_with(request: Request, drop: Sequence[str] = (), **params: Any) -> str:
        """The request's own URL (same path, same ``.json``) with query parameters replaced."""
        args = [(k, v) for k, v in request.args.items(multi=True) if k not in params and k not in drop]
        args += [(k, str(v)) for k, v in params.items() if v is not None]
        query = urlencode(args)
        return request.base_url + (f"?{query}" if query else "")

    @staticmethod
    def int_arg(request: Request, name: str, default: int, *, low: int = 1, high: int | None = None) -> int:
        """An integer query parameter, clamped; a 400 when it is not a number."""
        raw = request.args.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(str(raw))
        except ValueError:
            raise errors.bad_request(f"{name} must be an integer", "InvalidPaginationParameter") from None
        value = max(low, value)
        return min(high, value) if high is not None else value

    @staticmethod
    def includes(request: Request) -> set[str]:
        return {part.strip() for part in request.args.get("include", "").split(",") if part.strip()}

    @staticmethod
    def uses_cursor(request: Request) -> bool:
        return any(k.startswith("page[") for k in request.args)

    def cursor_page(
        self, request: Request, items: list[T], key: Callable[[T], Any], *, max_size: int = 100
    ) -> tuple[list[T], dict[str, Any]]:
        """One page of cursor pagination (``page[size]``, ``page[after]``, ``page[before]``).

        ``items`` are in answer order and ``key`` increases along it. Returns the page and the ``meta`` and
        ``links`` members of the answer.
        """
        size = self.int_arg(request, "page[size]", max_size, high=max_size)
        after, before = request.args.get("page[after]"), request.args.get("page[before]")
        if after:
            mark = _key(decode_cursor(after))
            rest = [i for i in items if _key(key(i)) > mark]
            page, has_more = rest[:size], len(rest) > size
        elif before:
            mark = _key(decode_cursor(before))
            rest = [i for i in items if _key(key(i)) < mark]
            page, has_more = rest[-size:], len(rest) > size
        else:
            page, has_more = items[:size], len(items) > size
        after_cursor = encode_cursor(list(_key(key(page[-1])))) if page else None
        before_cursor = encode_cursor(list(_key(key(page[0])))) if page else None
        drop = ("page[after]", "page[before]")
        extra = {
            "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
            "links": {
                "next": self.url_with(request, drop, **{"page[after]": after_cursor, "page[size]": size})
                if after_cursor
                else None,
                "prev": self.url_with(request, drop, **{"page[before]": before_cursor, "page[size]": size})
                if before_cursor
                else None,
            },
        }
        return page, extra

    def offset_page(
        self, request: Request, items: list[T], *, max_size: int = 100, limit: int | None = None
    ) -> tuple[list[T], dict[str, Any]]:
        """One page of offset pagination (``page``, ``per_page``) with absolute ``next_page``."""
        per_page = self.int_arg(request, "per_page", max_size, high=max_size)
        page = self.int_arg(request, "page", 1)
        start = (page - 1) * per_page
        reachable = len(items) if limit is None else min(len(items), limit)
        chunk = items[start : start + per_page]
        extra = {
            "next_page": self.url_with(request, page=page + 1) if start + per_page < reachable else None,
            "previous_page": self.url_with(request, page=page - 1) if page > 1 else None,
            "count": len(items),
        }
        return chunk, extra

    def sideloads(self, request: Request, tickets: list[Ticket], wanted: set[str]) -> dict[str, Any]:
        """``users``, ``organizations`` and ``groups`` sideloads for a set of tickets."""
        base = self.base(request)
        out: dict[str, Any] = {}
        if "users" in wanted:
            ids: list[int] = []
            for t in tickets:
                for uid in (t.requester_id, t.submitter_id, t.assignee_id):
                    if uid is not None and uid not in ids:
                        ids.append(uid)
            out["users"] = [user_json(self.model.users[u], base) for u in ids if u in self.model.users]
        if "organizations" in wanted:
            org_ids = sorted({t.organization_id for t in tickets if t.organization_id is not None})
            out["organizations"] = [
                organization_json(self.model.organizations[o], base) for o in org_ids if o in self.model.organizations
            ]
        if "groups" in wanted:
            out["groups"] = []
        return out

    # -- tickets ------------------------------------------------------------------------------------------
    def route_tickets(self, request: Request) -> Response:
        if request.method == "POST":
            return self._create_ticket(request)
        base = self.base(request)
        tickets = sorted(self.model.tickets.values(), key=lambda t: t.id)
        external_id = request.args.get("external_id")
        if external_id is not None:
            tickets = [t for t in tickets if t.external_id == external_id]
        wanted = self.includes(request)
        if self.uses_cursor(request):
            descending = request.args.get("sort", "id").startswith("-")
            ordered = list(reversed(tickets)) if descending else tickets
            page, extra = self.cursor_page(request, ordered, (lambda t: -t.id) if descending else (lambda t: t.id))
        else:
            if request.args.get("sort_order", "asc") == "desc":
                tickets.reverse()
            page, extra = self.offset_page(request, tickets)
        body = {"tickets": [ticket_json(t, base) for t in page], **self.sideloads(request, page, wanted), **extra}
        return self.json(body)

    def _create_ticket(self, request: Request) -> Response:
        body = self.read_json(request)
        key = request.headers.get("Idempotency-Key")
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()
        if key:
            stored = self.model.idempotent_lookup(key, fingerprint)
            if stored is not None:
                return self.json(stored.body, stored.status, {**stored.headers, "x-idempotency-lookup": "hit"})
        actor = self.actor(request)
        ticket, audit, changes = self.model.create_ticket(body, actor)
        base = self.base(request)
        answer = {
            "ticket": ticket_json(ticket, base),
            "audit": audit_json(audit),
            **self.sideloads(request, [ticket], self.includes(request)),
        }
        headers = {"Location": f"{base}/api/v2/tickets/{ticket.id}.json"}
        if key:
            self.model.idempotency[key] = IdempotentAnswer(fingerprint, self.model.now(), 201, answer, headers)
            headers = {**headers, "x-idempotency-lookup": "miss"}
        self.emit_changes(ticket, actor, changes, base, created=True)
        return self.json(answer, 201, headers)

    def route_tickets_show_many(self, request: Request) -> Response:
        ids = _id_list(request.args.get("ids", ""))
        found = [self.model.tickets[i] for i in ids if i in self.model.tickets]
        base = self.base(request)
        return self.json(
            {"tickets": [ticket_json(t, base) for t in found], **self.sideloads(request, found, self.includes(request))}
        )

    def route_ticket(self, request: Request, ticket_id: int) -> Response:
        base = self.base(request)
        if request.method == "PUT":
            actor = self.actor(request)
            ticket, audit, changes = self.model.update_ticket(ticket_id, self.read_json(request), actor)
            self.emit_changes(ticket, actor, changes, base, created=False)
            return self.json({"ticket": ticket_json(ticket, base), "audit": audit_json(audit)})
        ticket = self.model.ticket(ticket_id)
        return self.json(
            {"ticket": ticket_json(ticket, base), **self.sideloads(request, [ticket], self.includes(request))}
        )

    def route_ticket_comments(self, request: Request, ticket_id: int) -> Response:
        ticket = self.model.ticket(ticket_id)
        comments = list(ticket.comments)
        if self.uses_cursor(request):
            descending = request.args.get("sort", "created_at") == "-created_at"
            if descending:
                comments.reverse()
            sign_ = -1 if descending else 1
            page, extra = self.cursor_page(request, comments, lambda c: [sign_ * c.created_at, sign_ * c.id])
        else:
            if request.args.get("sort_order", "asc") == "desc":
                comments.reverse()
            page, extra = self.offset_page(request, comments)
        base = self.base(request)
        body: dict[str, Any] = {
            "comments": [comment_json(c, base, self.model.attachments) for c in page],
            **extra,
        }
        if "users" in self.includes(request):
            authors = list(dict.fromkeys(c.author_id for c in page))
            body["users"] = [
                user_json(self.model.users[a], self.base(request)) for a in authors if a in self.model.users
            ]
        return self.json(body)

    def route_ticket_audits(self, request: Request, ticket_id: int) -> Response:
        """List Audits for a Ticket: cursor (``page[size]``/``page[after]``) or offset paging, 100 at most a page;
        ``sort_order=desc`` (offset) or ``sort=-created_at`` (cursor) lists the newest first."""
        self.model.ticket(ticket_id)
        audits = list(self.model.audits.get(ticket_id, []))
        if self.uses_cursor(request):
            descending = request.args.get("sort", "created_at") == "-created_at"
            if descending:
                audits.reverse()
            sign_ = -1 if descending else 1
            page, extra = self.cursor_page(request, audits, lambda a: [sign_ * a.created_at, sign_ * a.id])
        else:
            if request.args.get("sort_order", "asc") == "desc":
                audits.reverse()
            page, extra = self.offset_page(request, audits)
        return self.json({"audits": [audit_json(a) for a in page], **extra})

    def route_comment_redact(self, request: Request, ticket_id: int, comment_id: int) -> Response:
        """Redact String in Comment (``{"text": ...}``): the comment as it reads now."""
        self.actor(request)
        body = self.read_json(request) or {}
        text = body.get("text") if isinstance(body, dict) else None
        comment = self.model.redact(ticket_id, comment_id, text)
        return self.json({"comment": comment_json(comment, self.base(request), self.model.attachments)})

    # -- attachments --------------------------------------------------------------------------------------
    def route_uploads(self, request: Request) -> Response:
        """Upload Files: the raw body under ``filename``; 201 with the token and the attachment."""
        self.actor(request)
        attachment = self.model.upload(
            request.args.get("filename", ""),
            request.get_data(),
            request.mimetype or "application/octet-stream",
            request.args.get("token") or None,
        )
        base = self.base(request)
        shown = [attachment_json(self.model.attachments[i], base) for i in self.model.uploads[attachment.token]]
        body = {
            "upload": {"token": attachment.token, "attachment": attachment_json(attachment, base), "attachments": shown}
        }
        return self.json(body, 201)

    def route_attachment(self, request: Request, attachment_id: int) -> Response:
        """Show Attachment."""
        return self.json({"attachment": attachment_json(self.model.attachment(attachment_id), self.base(request))})

    def route_attachment_content(self, request: Request, token: str) -> Response:
        """An attachment's ``content_url``: the file itself (``name`` picks it among the upload's files)."""
        ids = [a.id for a in self.model.attachments.values() if a.token == token]
        name = request.args.get("name")
        chosen = [self.model.attachments[i] for i in ids if name is None or self.model.attachments[i].file_name == name]
        if not chosen:
            raise errors.not_found()
        found = chosen[0]
        return Response(found.content, 200, content_type=found.content_type)

    def route_ticket_tags(self, request: Request, ticket_id: int) -> Response:
        if request.method == "GET":
            return self.json({"tags": list(self.model.ticket(ticket_id).tags)})
        body = self.read_json(request) or {}
        if not isinstance(body, dict):
            raise errors.bad_request("Parameter tags is required")
        tags: Any = body.get("tags")
        if tags is None and request.method == "DELETE":
            tags = request.args.get("tags", "")
        if tags is None:
            raise errors.bad_request("Parameter tags is required")
        op = {"POST": "set", "PUT": "add", "DELETE": "remove"}[request.method]
        actor = self.actor(request)
        ticket, changes = self.model.change_tags(ticket_id, op, tags, actor, body)
        self.emit_changes(ticket, actor, changes, self.base(request), created=False)
        return self.json({"tags": list(ticket.tags)}, 201 if op == "set" else 200)

    # -- users and organizations --------------------------------------------------------------------------
    def route_users_me(self, request: Request) -> Response:
        return self.json({"user": user_json(self.actor(request), self.base(request))})

    def route_user(self, request: Request, user_id: int) -> Response:
        return self.json({"user": user_json(self.model.user(user_id), self.base(request))})

    def route_users_show_many(self, request: Request) -> Response:
        base = self.base(request)
        if request.args.get("external_ids"):
            wanted = [x.strip() for x in request.args["external_ids"].split(",") if x.strip()]
            found = [u for u in self.model.users.values() if u.external_id in wanted]
        else:
            ids = _id_list(request.args.get("ids", ""))
            found = [self.model.users[i] for i in ids if i in self.model.users]
        if len(found) > 100:
            raise errors.bad_request("Too many ids (the maximum is 100)", "TooManyValues")
        return self.json({"users": [user_json(u, base) for u in found]})

    def route_users_search(self, request: Request) -> Response:
        base = self.base(request)
        if request.args.get("external_id"):
            users = [u for u in self.model.users.values() if u.external_id == request.args["external_id"]]
        else:
            query = request.args.get("query", "")
            users = [record for _, record in self.model.search(f"type:user {query}")]
        page, extra = self.offset_page(request, sorted(users, key=lambda u: u.id), limit=10_000)
        return self.json({"users": [user_json(u, base) for u in page], **extra})

    def route_organization(self, request: Request, organization_id: int) -> Response:
        org = self.model.organization(organization_id)
        return self.json({"organization": organization_json(org, self.base(request))})

    def route_organizations_show_many(self, request: Request) -> Response:
        base = self.base(request)
        if request.args.get("external_ids"):
            wanted = [x.strip() for x in request.args["external_ids"].split(",") if x.strip()]
            found = [o for o in self.model.organizations.values() if o.external_id in wanted]
        else:
            ids = _id_list(request.args.get("ids", ""))
            found = [self.model.organizations[i] for i in ids if i in self.model.organizations]
        return self.json({"organizations": [organization_json(o, base) for o in found]})

    # -- search -------------------------------------------------------------------------------------------
    def _search_results(self, request: Request) -> list[tuple[str, Any]]:
        query = request.args.get("query")
        if not query or not query.strip():
            raise errors.search_invalid("The query parameter is required")
        results = self.model.search(query)
        sort_by = request.args.get("sort_by")
        if sort_by:
            keys: dict[str, Callable[[tuple[str, Any]], Any]] = {
                "updated_at": lambda r: getattr(r[1], "updated_ts", getattr(r[1], "updated_at", 0.0)),
                "created_at": lambda r: r[1].created_at,
                "priority": lambda r: _order(("low", "normal", "high", "urgent"), getattr(r[1], "priority", None)),
                "status": lambda r: _order(
                    ("new", "open", "pending", "hold", "solved", "closed"), getattr(r[1], "status", None)
                ),
                "ticket_type": lambda r: getattr(r[1], "type", None) or "",
            }
            if sort_by not in keys:
                raise errors.search_invalid(f"Invalid sort_by: {sort_by}")
            descending = request.args.get("sort_order", "desc") != "asc"
            results.sort(key=lambda r: (keys[sort_by](r), r[1].id), reverse=descending)
        return results

    def route_search(self, request: Request) -> Response:
        results = self._search_results(request)
        per_page = self.int_arg(request, "per_page", 100, high=100)
        page = self.int_arg(request, "page", 1)
        if (page - 1) * per_page >= 1000:
            raise errors.search_invalid("Search results are limited to 1000; use the search export for more")
        chunk, extra = self.offset_page(request, results, limit=1000)
        base = self.base(request)
        serialize: dict[str, Callable[[Any], dict[str, Any]]] = {
            "ticket": lambda r: ticket_json(r, base),
            "user": lambda r: user_json(r, base),
            "organization": lambda r: organization_json(r, base),
        }
        body = {
            "results": [{**serialize[kind](record), "result_type": kind} for kind, record in chunk],
            "facets": None,
            **extra,
        }
        return self.json(body)

    def route_search_count(self, request: Request) -> Response:
        return self.json({"count": len(self._search_results(request))})

    # -- incremental export -------------------------------------------------------------------------------
    def route_incremental_tickets(self, request: Request) -> Response:
        self.require_admin(request)
        per_page = self.int_arg(request, "per_page", 1000, high=1000)
        rows = self.model.export_keys(self.incremental_delay)
        cursor_arg, start_arg = request.args.get("cursor"), request.args.get("start_time")
        if cursor_arg:
            state = decode_cursor(cursor_arg)
            if not isinstance(state, dict) or not ({"a", "b"} & set(state)):
                raise errors.bad_request("The cursor is invalid", "InvalidPaginationParameter")
            forward = "a" in state
            mark = _key(state["a"] if forward else state["b"])
        elif start_arg not in (None, ""):
            try:
                mark, forward = (float(int(str(start_arg))), -1), True
            except ValueError:
                raise errors.bad_request("start_time must be an integer") from None
        else:
            raise errors.bad_request("start_time or cursor is required")
        if forward:
            start = bisect.bisect_right(rows, mark, key=_export_key)
            page, more = rows[start : start + per_page], len(rows) - start > per_page
        else:
            end = bisect.bisect_left(rows, mark, key=_export_key)
            page, more = rows[max(0, end - per_page) : end], end > per_page
        after_cursor = encode_cursor({"a": [page[-1][0], page[-1][1]] if page else list(mark)})
        before_cursor = encode_cursor({"b": [page[0][0], page[0][1]]}) if page else None
        keep = {"per_page": request.args["per_page"]} if request.args.get("per_page") else {}
        if request.args.get("include"):
            keep["include"] = request.args["include"]

        def page_url(cursor: str) -> str:
            query = urlencode({"cursor": cursor, **keep})
            return f"{request.base_url}?{query}"

        tickets = [r[2] for r in page]
        base = self.base(request)
        body = {
            "tickets": [ticket_json(t, base) for t in tickets],
            "after_cursor": after_cursor,
            "after_url": page_url(after_cursor),
            "before_cursor": before_cursor,
            "before_url": page_url(before_cursor) if before_cursor else None,
            "end_of_stream": not more,
            **self.sideloads(request, tickets, self.includes(request)),
        }
        return self.json(body)

    # -- ticket fields ------------------------------------------------------------------------------------
    def route_ticket_fields(self, request: Request) -> Response:
        base = self.base(request)
        if request.method == "POST":
            self.require_admin(request)
            made = self.model.create_ticket_field(self.read_json(request))
            return self.json({"ticket_field": ticket_field_json(made, base)}, 201)
        fields = sorted(self.model.ticket_fields.values(), key=lambda f: f.id)
        if self.uses_cursor(request):
            page, extra = self.cursor_page(request, fields, lambda f: f.id)
            return self.json({"ticket_fields": [ticket_field_json(f, base) for f in page], **extra})
        fields.sort(key=lambda f: f.position)
        return self.json({"ticket_fields": [ticket_field_json(f, base) for f in fields]})

    def route_ticket_field(self, request: Request, ticket_field_id: int) -> Response:
        found = self.model.ticket_fields.get(ticket_field_id)
        if found is None:
            raise errors.not_found()
        return self.json({"ticket_field": ticket_field_json(found, self.base(request))})

    # -- webhooks -----------------------------------------------------------------------------------------
    def route_webhooks(self, request: Request) -> Response:
        actor = self.require_admin(request)
        if request.method == "POST":
            hook = self.model.create_webhook(self.read_json(request), actor)
            return self.json(
                {"webhook": webhook_json(hook)}, 201, {"Location": f"{self.base(request)}/api/v2/webhooks/{hook.id}"}
            )
        hooks = sorted(self.model.webhooks.values(), key=lambda w: w.id)
        page, extra = self.cursor_page(request, hooks, lambda w: w.id)
        return self.json({"webhooks": [webhook_json(w) for w in page], **extra})

    def route_webhook(self, request: Request, webhook_id: str) -> Response:
        self.require_admin(request)
        hook = self.model.webhook(webhook_id.removesuffix(".json"))
        if request.method == "DELETE":
            del self.model.webhooks[hook.id]
            return Response(status=204)
        if request.method == "PUT":
            self.model.update_webhook(hook, self.read_json(request))
            return Response(status=204)
        return self.json({"webhook": webhook_json(hook)})

    # -- triggers -----------------------------------------------------------------------------------------
    def route_triggers(self, request: Request) -> Response:
        self.require_admin(request)
        base = self.base(request)
        if request.method == "POST":
            made = triggers.create(self.model, self.model.triggers, self.read_json(request))
            return self.json({"trigger": triggers.trigger_json(made, base)}, 201)
        listed = sorted(self.model.triggers.values(), key=lambda t: (t.position, t.id))
        if "active" in request.args:
            listed = [t for t in listed if t.active == (request.args["active"] == "true")]
        page, extra = self.offset_page(request, listed)
        return self.json({"triggers": [triggers.trigger_json(t, base) for t in page], **extra})

    def route_trigger(self, request: Request, trigger_id: int) -> Response:
        self.require_admin(request)
        found = self.model.triggers.get(trigger_id)
        if found is None:
            raise errors.not_found()
        if request.method == "DELETE":
            del self.model.triggers[trigger_id]
            return Response(status=204)
        if request.method == "PUT":
            triggers.update(self.model, found, self.read_json(request))
        return self.json({"trigger": triggers.trigger_json(found, self.base(request))})

    # -- macros -------------------------------------------------------------------------------------------
    def route_macros(self, request: Request) -> Response:
        """List Macros (offset pages, ``active`` filter) and Create Macro (answered 200, as the description says).
        Admins see and write every macro; an agent sees the shared ones and their own, and what an agent creates
        is a personal macro (restricted to them)."""
        user = self.actor(request)
        base = self.base(request)
        if request.method == "POST":
            made = macros.create(self.model, self.model.macros, self.read_json(request), user)
            return self.json({"macro": macros.macro_json(made, base)})
        ordered = sorted(self.model.macros.values(), key=lambda m: (m.position, m.id))
        listed = [m for m in ordered if macros.visible(m, user)]
        if "active" in request.args:
            listed = [m for m in listed if m.active == (request.args["active"] == "true")]
        page, extra = self.offset_page(request, listed)
        return self.json({"macros": [macros.macro_json(m, base) for m in page], **extra})

    def route_macro(self, request: Request, macro_id: int) -> Response:
        """Show, Update and Delete Macro (an agent: a shared macro to read, their own personal one to change)."""
        user = self.actor(request)
        found = self.model.macros.get(macro_id)
        if found is None or not macros.visible(found, user):
            raise errors.not_found()
        if request.method != "GET" and not macros.editable(found, user):
            raise VendorFault(403, errors.for_status(403, "You do not have access to this page."))
        if request.method == "DELETE":
            del self.model.macros[macro_id]
            return Response(status=204)
        if request.method == "PUT":
            macros.update(self.model, found, self.read_json(request), user)
        return self.json({"macro": macros.macro_json(found, self.base(request))})

    def route_webhook_secret(self, request: Request, webhook_id: str) -> Response:
        self.require_admin(request)
        hook = self.model.webhook(webhook_id.removesuffix(".json"))
        if request.method == "POST":  # reset
            hook.secret = self.model.new_secret()
            hook.updated_at = self.model.now()
            return self.json({"signing_secret": {"algorithm": "sha256", "secret": hook.secret}}, 201)
        return self.json({"signing_secret": {"algorithm": "sha256", "secret": hook.secret}})

    # -- the Jira integration's links ------------------------------------------------------------------------
    # Zendesk's "Jira Links" API reference (developer.zendesk.com/api-reference/ticketing/jira/links/); it is not
    # part of the Support OAS. Admins only; listed by id, ``filter[ticket_id]`` / ``filter[issue_id]``,
    # ``page[after]`` (a link id) and ``page[size]`` (default 1,000); the answer is ``{"links": [...], "total"}``.
    def route_jira_links(self, request: Request) -> Response:
        self.require_admin(request)
        if request.method == "POST":
            spec = (self.read_json(request) or {}).get("link")
            if not isinstance(spec, dict):
                raise errors.bad_request("link: expected an object with ticket_id, issue_id and issue_key")
            link = self.model.add_jira_link(spec.get("ticket_id"), spec.get("issue_id"), spec.get("issue_key"))
            return self.json({"link": jira_link_json(link, self.base(request))}, 201)
        links = sorted(self.model.jira_links.values(), key=lambda link: link.id)
        ticket_filter, issue_filter = request.args.get("filter[ticket_id]"), request.args.get("filter[issue_id]")
        if ticket_filter:
            links = [link for link in links if str(link.ticket_id) == ticket_filter.strip()]
        if issue_filter:
            links = [link for link in links if link.issue_id == issue_filter.strip()]
        total = len(links)
        after = self.int_arg(request, "page[after]", 0, low=0)
        size = self.int_arg(request, "page[size]", JIRA_LINKS_PAGE, high=JIRA_LINKS_PAGE)
        page = [link for link in links if link.id > after][:size]
        return self.json({"links": [jira_link_json(link, self.base(request)) for link in page], "total": total})

    def route_jira_link(self, request: Request, link_id: int) -> Response:
        self.require_admin(request)
        if self.model.jira_links.pop(link_id, None) is None:
            raise errors.not_found()
        return Response(status=204)

    def route_unknown(self, request: Request, rest: str) -> Response:
        raise errors.invalid_endpoint()

    # -- webhooks the emulator sends ----------------------------------------------------------------------
    def emit_changes(self, ticket: Ticket, actor: User, changes: list[Change], base: str, *, created: bool) -> None:
        """After a ticket create or update: run the triggers (each ``notification_webhook`` action calls its API
        webhook with the rendered body), then call the admin targets (``/_sandbox/webhooks``) with the bodies
        cxbridge's provisioned triggers would send: on a gained trigger tag, on every added comment, and on a status
        change (the body carries the status)."""
        comment = next((c.comment for c in changes if c.comment is not None), None)
        moved = any(c.kind == "status_changed" for c in changes)
        update = triggers.Update(
            ticket, actor, created, comment, status_changed=moved, requester=self.model.users.get(ticket.requester_id)
        )
        for firing in triggers.run(self.model, self.model.triggers, update, base):
            hook = self.model.webhooks.get(firing.webhook_id)
            if hook is not None and hook.status == "active":
                self.send(firing.body, hook.id, WebhookTarget(url=hook.endpoint, secret=hook.secret))
        if not self.webhook_targets:
            return
        for change in changes:
            if change.kind == "tag_added" and not any(t in self.trigger_tags for t in change.tags_added):
                continue
            body = self.webhook_body(change, base)
            for target in self.webhook_targets:
                self.send(body, str(target.extra.get("webhook_id", "sandbox")), target)

    def webhook_body(self, change: Change, base: str) -> str:
        """The body cxbridge's provisioned trigger sends for a change (``triggers.admin_target_body``), rendered
        from the ticket as it is now: the escalation body for gained tags, the comment body for a comment."""
        ticket = self.model.ticket(change.ticket_id)
        update = triggers.Update(
            ticket,
            self.model.users.get(change.actor_id),
            False,
            change.comment,
            requester=self.model.users.get(ticket.requester_id),
        )
        values = triggers.placeholders(update, base)
        if change.comment is not None:
            return triggers.render(triggers.admin_target_body("comment_added", change.comment.public), values)
        if change.kind == "status_changed":
            return triggers.render(triggers.admin_target_body("status_changed"), values)
        return triggers.render(triggers.admin_target_body("tag_added"), values)

    def send(self, body: str, webhook_id: str, target: WebhookTarget) -> None:
        """One webhook call as Zendesk makes it: signed over timestamp + body with the target's secret."""
        raw = body.encode("utf-8")
        timestamp = iso(self.model.now())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Zendesk Webhook",
            "X-Zendesk-Account-Id": str(ACCOUNT_ID),
            "X-Zendesk-Webhook-Id": webhook_id,
            "X-Zendesk-Webhook-Invocation-Id": str(self.model.next_id("invocation")),
            "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
            "X-Zendesk-Webhook-Signature": sign(target.secret, timestamp, raw),
        }
        self.emit_webhook(raw, headers, target)


def _id_list(text: str) -> list[int]:
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            ids.append(int(part))
        except ValueError:
            raise errors.bad_request(f"Invalid id: {part}") from None
    if len(ids) > 100:
        raise VendorFault(400, {"error": "TooManyValues", "description": "Too many ids (the maximum is 100)"})
    return ids


def _order(order: tuple[str, ...], value: str | None) -> int:
    return order.index(value) if value in order else -1
