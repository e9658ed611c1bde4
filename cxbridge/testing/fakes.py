"""In-memory fakes of the three connector roles: ``FakeHelpdesk``, ``FakeCRM``, ``FakeTracker``. No HTTP at all.

They are real role subclasses (``isinstance`` and ``Connector.supports`` work) and implement every role method,
the optional ones included, on plain records: tickets with comments, tags and custom fields; contacts, companies,
deals and notes; issues with a status and its category, labels, fields, a description, remote links by ticket,
comments and fix versions.

Shared state: every record lives in a ``FakeWorld`` (one per test). ``world.plugin()`` is a plugin object
(``register_connectors``) that registers subclasses of the three fakes BOUND to that world (class attribute
``bound_world``), so every connector a Runtime builds from its config, and the test holding ``world``, see the
same records; two worlds never share anything (no module-level state). ``fake_runtime(tmp_path, world)`` writes a
config with the three systems (``sandbox = true``, loopback base URLs) and builds a Runtime whose plugins are
``build_plugins(extra=[("fakes", world.plugin())], use_env=False)``: the fakes enter through the real plugin
mechanism. ``FakeHelpdesk.build(world)`` makes one connector without a Runtime. ``Connector.from_config`` builds
an ``HttpClient`` as for any connector; the fakes never use it.

Every call is logged (``world.calls``, ``world.calls_to("create_issue")``) and ``world.fail_next(method, error,
after_write=...)`` makes the next call of a method raise a ``VendorError`` subclass: before it changes anything,
or after (``AmbiguousOutcome`` after the write: the vendor applied it but the answer was lost).

Each fake interprets a small event vocabulary of its own (``Event.kind``):

- helpdesk: ``ticket.tagged`` (payload ``tags``: the escalation tag asks for an escalation), ``ticket.comment``
  (``text``, ``public``);
- tracker: ``issue.status`` (``key``, ``status``, ``category``, ``summary``), ``issue.comment`` (``key``,
  ``comment_id``, ``text``), ``version.released`` (subject ``<system>:version:<id>``, ``name``);
- CRM: nothing (an empty list for every event).

The event's ``actor`` becomes the signal's actor; ``integration_user_id()`` is ``world.integration_user``.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import requests
import requests.auth

from ..connectors import (
    CRM,
    CRM_ROLE,
    HELPDESK,
    TRACKER,
    ChangedCompany,
    ConfigKey,
    Connector,
    Helpdesk,
    IssueSpec,
    ManagedBlock,
    Page,
    TicketLink,
    Tracker,
    splice_lines,
)
from ..errors import NotFound, VendorError
from ..hookspecs import hookimpl
from ..models import Comment, Customer, Deal, Event, Issue, Person, Ref, Ticket
from ..settings import SystemConfig
from ..signals import (
    CATEGORY_NAMES,
    DONE,
    IN_PROGRESS,
    NEW,
    EscalationRequested,
    IssueCommentPosted,
    IssueStateObserved,
    Signal,
    TicketCommentAdded,
    Triggers,
    VersionReleased,
)

if TYPE_CHECKING:
    from ..runtime import Runtime

FAKE_HELPDESK = "fake-helpdesk"
FAKE_CRM = "fake-crm"
FAKE_TRACKER = "fake-tracker"
FAKE_SYSTEMS = (FAKE_HELPDESK, FAKE_CRM, FAKE_TRACKER)
"""The system keys (and the ``[systems.*]`` table names ``fake_runtime`` writes)."""
FAKE_BASE_URLS = {name: f"http://127.0.0.1:9/{name}" for name in FAKE_SYSTEMS}
"""Loopback base URLs (port 9, discard): the fakes never call them."""

ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9_]*-[1-9][0-9]*")
PAGE_SIZE = 50
"""Records per page of ``changed_tickets`` / ``changed_issues``."""

C = TypeVar("C", bound="FakeConnector")


# -- the shared state ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call a fake answered: the configured system's name, the method and its arguments."""

    system: str
    method: str
    args: tuple[Any, ...] = ()


@dataclass
class _Fault:
    method: str
    error: type[VendorError] | VendorError
    after_write: bool
    system: str | None


@dataclass
class FakeTicket:
    """A ticket as the fake helpdesk holds it."""

    id: str
    subject: str
    description: str = ""
    status: str = "open"
    priority: str | None = None
    tags: list[str] = field(default_factory=list)
    requester: Person | None = None
    organization: str | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    seq: int = 0
    reply_markers: set[str] = field(default_factory=set)
    """The markers of the public replies cxbridge posted (kept where the customer does not see them)."""


@dataclass
class FakeContact:
    """A contact of the fake CRM (by email), with its company's id."""

    id: str
    email: str
    name: str | None = None
    company_id: str | None = None


@dataclass
class FakeNote:
    """A note on the fake CRM's timelines: the records it is on, its body and marker."""

    id: str
    body: str
    marker: str
    on: tuple[Ref, ...]


@dataclass
class FakeRemoteLink:
    """A remote link from a fake issue to a ticket, keyed by the helpdesk origin and the ticket id."""

    id: str
    ticket: Ref
    url: str
    title: str
    summary: str | None = None


@dataclass
class FakeIssue:
    """An issue as the fake tracker holds it."""

    id: str
    key: str
    project: str
    issue_type: str
    summary: str
    description: str = ""
    status: str = "To Do"
    category: str = NEW
    priority: str | None = None
    labels: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    fix_versions: list[str] = field(default_factory=list)
    links: dict[str, FakeRemoteLink] = field(default_factory=dict)
    comments: list[tuple[str, str]] = field(default_factory=list)
    updated_at: datetime | None = None
    category_changed_at: datetime | None = None
    seq: int = 0


class FakeWorld:
    """The records behind the fakes, the call log and the faults to inject; one per test.

    Seed with ``add_ticket``, ``add_customer``, ``add_issue``, ``move_issue``, ``add_version``; read the records
    (``tickets``, ``contacts``, ``companies``, ``notes``, ``issues``) to assert what the workflows wrote.
    """

    def __init__(self, *, integration_user: str = "fake-bot") -> None:
        self.lock = threading.RLock()
        self.integration_user = integration_user
        self.calls: list[Call] = []
        self.tickets: dict[str, FakeTicket] = {}
        self.contacts: dict[str, FakeContact] = {}
        self.companies: dict[str, Customer] = {}
        self.company_changes: dict[str, tuple[int, datetime]] = {}
        """When each company last changed: (sequence number, time), for ``changed_companies``."""
        self.notes: dict[str, FakeNote] = {}
        self.issues: dict[str, FakeIssue] = {}
        self.versions: dict[str, str] = {}
        """Fix versions: id -> name."""
        self._faults: list[_Fault] = []
        self._ids = itertools.count(1001)
        self._seq = itertools.count(1)
        self._bound: dict[type[FakeConnector], type[FakeConnector]] = {}

    # -- ids, time, calls, faults --------------------------------------------------------------------------
    def new_id(self) -> str:
        return str(next(self._ids))

    def change_company(self, company_id: str, **values: Any) -> None:
        """Change a company's fields (``arr=...``, ``tier=...``) as a person in the CRM would; it counts as changed."""
        with self.lock:
            company = self.companies[company_id]
            for name, value in values.items():
                setattr(company, name, Decimal(str(value)) if name == "arr" and value is not None else value)
            self.company_changes[company_id] = self.touch()

    def touch(self) -> tuple[int, datetime]:
        """A new change: its sequence number (orders changes) and the time."""
        return next(self._seq), datetime.now(UTC)

    def fail_next(
        self,
        method: str,
        error: type[VendorError] | VendorError,
        *,
        after_write: bool = False,
        system: str | None = None,
    ) -> None:
        """Make the next call of ``method`` (on ``system``, else any fake) raise ``error`` (a class is built with
        the system's name and a message): before it changes anything, or after the write when ``after_write``."""
        with self.lock:
            self._faults.append(_Fault(method, error, after_write, system))

    def _take_fault(self, system: str, method: str) -> _Fault | None:
        for fault in self._faults:
            if fault.method == method and fault.system in (None, system):
                self._faults.remove(fault)
                return fault
        return None

    def calls_to(self, method: str, system: str | None = None) -> list[Call]:
        """The logged calls of one method (on one system)."""
        return [c for c in self.calls if c.method == method and system in (None, c.system)]

    # -- seeding ----------------------------------------------------------------------------------------------
    def add_ticket(
        self,
        subject: str,
        *,
        description: str = "",
        requester_email: str | None = None,
        requester_name: str | None = None,
        status: str = "open",
        priority: str | None = None,
        tags: Iterable[str] = (),
        organization: str | None = None,
        custom_fields: Mapping[str, Any] | None = None,
    ) -> str:
        """A ticket (its description is its first, public comment); returns its id."""
        with self.lock:
            tid = self.new_id()
            seq, now = self.touch()
            requester = (
                Person(name=requester_name, email=requester_email, ref=Ref(FAKE_HELPDESK, "user", requester_email))
                if requester_email
                else None
            )
            ticket = FakeTicket(
                id=tid,
                subject=subject,
                description=description,
                status=status,
                priority=priority,
                tags=list(tags),
                requester=requester,
                organization=organization,
                custom_fields=dict(custom_fields or {}),
                created_at=now,
                updated_at=now,
                seq=seq,
            )
            if description:
                ticket.comments.append(
                    Comment(Ref(FAKE_HELPDESK, "comment", self.new_id()), description, True, requester, now)
                )
            self.tickets[tid] = ticket
            return tid

    def add_customer(
        self,
        email: str,
        *,
        company: str | None = None,
        contact_name: str | None = None,
        domain: str | None = None,
        tier: str | None = None,
        arr: Decimal | int | str | None = None,
        currency: str | None = "USD",
        renewal_date: str | None = None,
        owner: str | None = None,
        deals: Iterable[Deal] = (),
    ) -> str:
        """A contact (with a company when ``company`` is given); returns the contact's id."""
        with self.lock:
            company_id = None
            if company is not None:
                company_id = next((cid for cid, c in self.companies.items() if c.name == company), None)
                if company_id is None:
                    company_id = self.new_id()
                    self.companies[company_id] = Customer(
                        company_ref=Ref(FAKE_CRM, "company", company_id),
                        contact_ref=None,
                        name=company,
                        domain=domain,
                        tier=tier,
                        arr=Decimal(str(arr)) if arr is not None else None,
                        currency=currency if arr is not None else None,
                        owner=owner,
                        renewal_date=renewal_date,
                        deals=list(deals),
                    )
                    self.company_changes[company_id] = self.touch()
            cid = self.new_id()
            self.contacts[cid] = FakeContact(cid, email, contact_name, company_id)
            return cid

    def add_issue(self, summary: str, *, project: str = "FAKE", labels: Iterable[str] = ()) -> str:
        """An issue (status To Do); returns its key."""
        with self.lock:
            return self._create_issue(
                IssueSpec(project=project, issue_type="Bug", summary=summary, description="", labels=list(labels))
            ).key

    def _create_issue(self, spec: IssueSpec) -> FakeIssue:
        number = 1 + sum(1 for i in self.issues.values() if i.project == spec.project)
        seq, now = self.touch()
        issue = FakeIssue(
            id=str(10000 + len(self.issues) + 1),
            key=f"{spec.project}-{number}",
            project=spec.project,
            issue_type=spec.issue_type,
            summary=spec.summary,
            description=spec.description,
            priority=spec.priority,
            labels=list(dict.fromkeys(spec.labels)),
            fields=copy.deepcopy(spec.fields),
            properties=copy.deepcopy(spec.properties),
            updated_at=now,
            category_changed_at=now,
            seq=seq,
        )
        self.issues[issue.id] = issue
        return issue

    def issue(self, key_or_id: str) -> FakeIssue:
        """The issue by key or id (``NotFound``)."""
        found = self.issues.get(str(key_or_id)) or next(
            (i for i in self.issues.values() if i.key == str(key_or_id)), None
        )
        if found is None:
            raise NotFound(FAKE_TRACKER, f"{FAKE_TRACKER}: no issue {key_or_id}", status=404)
        return found

    def move_issue(self, key: str, status: str, category: str | None = None) -> None:
        """Move an issue to ``status`` (its category: ``category``, else by the name: To Do, In Progress, Done)."""
        with self.lock:
            issue = self.issue(key)
            names = {v: k for k, v in CATEGORY_NAMES.items()}
            new_category = category or names.get(status, IN_PROGRESS)
            seq, now = self.touch()
            if new_category != issue.category:
                issue.category_changed_at = now
            issue.status, issue.category, issue.seq, issue.updated_at = status, new_category, seq, now

    def add_version(self, name: str, *, issues: Iterable[str] = ()) -> str:
        """A fix version holding the issues (keys); returns its id."""
        with self.lock:
            vid = self.new_id()
            self.versions[vid] = name
            for key in issues:
                self.issue(key).fix_versions.append(vid)
            return vid

    # -- the plugin -------------------------------------------------------------------------------------------
    def bind(self, cls: type[C]) -> type[C]:
        """A subclass of a fake bound to this world (what the plugin registers); one per class and world."""
        with self.lock:
            if cls not in self._bound:
                self._bound[cls] = type(
                    cls.__name__, (cls,), {"bound_world": self, "__module__": cls.__module__, "__doc__": cls.__doc__}
                )
            bound: type[C] = self._bound[cls]  # type: ignore[assignment]
            return bound

    def plugin(self) -> FakePlugin:
        """A plugin object registering the three fakes bound to this world (``build_plugins(extra=...)``)."""
        return FakePlugin(self)


class FakePlugin:
    """A module-like plugin object: ``register_connectors`` registers the fakes bound to its world."""

    __name__ = "cxbridge.testing.fakes"

    def __init__(self, world: FakeWorld) -> None:
        self.world = world

    @hookimpl
    def register_connectors(self, register: Callable[[type[Connector]], None]) -> None:
        """Registers ``FakeHelpdesk``, ``FakeCRM`` and ``FakeTracker``, bound to the plugin's world."""
        for cls in (FakeHelpdesk, FakeCRM, FakeTracker):
            register(self.world.bind(cls))


# -- the connectors --------------------------------------------------------------------------------------------


class FakeConnector(Connector):
    """What the three fakes share: the world, the call log and fault injection, no HTTP."""

    bound_world: ClassVar[FakeWorld | None] = None

    def __init__(self, config: SystemConfig, http: Any, *, world: FakeWorld | None = None) -> None:
        super().__init__(config, http)
        found = world or type(self).bound_world
        if found is None:
            raise TypeError(f"{type(self).__name__} needs a FakeWorld: register world.plugin(), or pass world=")
        self.world: FakeWorld = found

    @classmethod
    def build(cls, world: FakeWorld, *, name: str | None = None, **options: Any) -> Self:
        """A fake on ``world`` without a Runtime (``name`` defaults to the system key)."""
        config = SystemConfig(
            name=name or cls.system,
            plugin=cls.system,
            base_url=FAKE_BASE_URLS.get(cls.system, "http://127.0.0.1:9"),
            sandbox=True,
            options={k: v.default for k, v in cls.config_keys.items() if v.default is not None} | options,
        )
        return world.bind(cls).from_config(config)

    @classmethod
    def make_auth(cls, config: SystemConfig) -> requests.auth.AuthBase:
        """Never used: the fakes make no HTTP calls."""
        return requests.auth.HTTPBasicAuth("fake", "fake")

    @contextmanager
    def _call(self, method: str, *args: Any) -> Iterator[None]:
        """Log the call and apply an injected fault: raised before the body runs, or after it (``after_write``)."""
        with self.world.lock:
            self.world.calls.append(Call(self.name, method, args))
            fault = self.world._take_fault(self.name, method)
            if fault is not None and not fault.after_write:
                raise self._error(fault)
            yield
            if fault is not None:
                raise self._error(fault)

    def _error(self, fault: _Fault) -> VendorError:
        if isinstance(fault.error, VendorError):
            return fault.error
        return fault.error(self.name, f"{self.name}: injected {fault.error.__name__} on {fault.method}")

    def _not_found(self, what: str) -> NotFound:
        return NotFound(self.name, f"{self.name}: no {what}", status=404)

    def check(self) -> str:
        """Always fine."""
        with self._call("check"):
            return f"authenticated as {self.world.integration_user} (in memory)"

    def integration_user_id(self) -> str | None:
        """``world.integration_user``."""
        with self._call("integration_user_id"):
            return self.world.integration_user


class FakeHelpdesk(FakeConnector, Helpdesk):
    """An in-memory helpdesk: tickets with comments, tags, custom fields and a status; the issue key goes into
    the custom field ``issue_key_field`` (default ``issue_key``)."""

    system: ClassVar[str] = FAKE_HELPDESK
    primary_roles: ClassVar[frozenset[str]] = frozenset({HELPDESK})
    config_keys: ClassVar[Mapping[str, ConfigKey]] = {
        "issue_key_field": ConfigKey(str, default="issue_key", help="custom field holding the tracker issue key"),
    }

    @property
    def issue_key_field(self) -> str:
        return str(self.config.get("issue_key_field") or "issue_key")

    def _ticket(self, ticket_id: str) -> FakeTicket:
        found = self.world.tickets.get(str(ticket_id))
        if found is None:
            raise self._not_found(f"ticket {ticket_id}")
        return found

    def _as_ticket(self, t: FakeTicket) -> Ticket:
        return Ticket(
            ref=self.ticket_ref(t.id),
            url=self.ticket_url(t.id),
            subject=t.subject,
            description=t.description,
            status=t.status,
            priority=t.priority,
            tags=list(t.tags),
            requester=copy.deepcopy(t.requester),
            organization=t.organization,
            custom_fields=dict(t.custom_fields),
            created_at=t.created_at,
            updated_at=t.updated_at,
            raw={"seq": t.seq},
        )

    def _add_comment(self, t: FakeTicket, body: str, *, public: bool = False) -> None:
        seq, now = self.world.touch()
        author = Person(name="cxbridge", ref=Ref(self.name, "user", self.world.integration_user))
        t.comments.append(Comment(Ref(self.name, "comment", self.world.new_id()), body, public, author, now))
        t.seq, t.updated_at = seq, now

    def ticket_url(self, ticket_id: str) -> str:
        return f"{self.config.base_url}/tickets/{ticket_id}"

    def get_ticket(self, ticket_id: str) -> Ticket:
        with self._call("get_ticket", ticket_id):
            return self._as_ticket(self._ticket(ticket_id))

    def list_comments(self, ticket_id: str) -> list[Comment]:
        with self._call("list_comments", ticket_id):
            return copy.deepcopy(self._ticket(ticket_id).comments)

    def record_escalation(
        self, ticket: Ticket, *, note: str, tag: str, issue_key: str, issue_url: str, first_attempt: bool = False
    ) -> bool:
        """Note, tag and key in one update, against the ticket as stored now; False when tag and key are there."""
        with self._call("record_escalation", ticket.ref.id, issue_key):
            t = self._ticket(ticket.ref.id)
            if not first_attempt and tag in t.tags and t.custom_fields.get(self.issue_key_field) == issue_key:
                self.unchanged("record_escalation", str(ticket.ref))
                return False
            self._add_comment(t, note)
            t.tags = list(dict.fromkeys([*t.tags, tag]))
            t.custom_fields[self.issue_key_field] = issue_key
            return True

    def add_internal_note(self, ticket_id: str, body: str) -> None:
        with self._call("add_internal_note", ticket_id, body):
            self._add_comment(self._ticket(ticket_id), body)

    def add_public_reply(self, ticket_id: str, body: str, *, marker: str) -> None:
        """A public comment; the marker is kept beside it (``FakeTicket.reply_markers``), not in its text."""
        with self._call("add_public_reply", ticket_id, body):
            t = self._ticket(ticket_id)
            self._add_comment(t, body, public=True)
            t.reply_markers.add(marker)

    def has_public_reply(self, ticket_id: str, marker: str) -> bool:
        with self._call("has_public_reply", ticket_id, marker):
            return marker in self._ticket(ticket_id).reply_markers

    def add_note_removing_tag(self, ticket_id: str, body: str, tag: str) -> None:
        """An internal note and the tag's removal in one update."""
        with self._call("add_note_removing_tag", ticket_id, body, tag):
            t = self._ticket(ticket_id)
            self._add_comment(t, body)
            t.tags = [x for x in t.tags if x != tag]

    def changed_tickets(self, cursor: dict[str, Any] | None, *, since: float) -> Iterator[Page]:
        """Tickets by change order after the cursor's ``seq`` (else changed at or after ``since``)."""
        with self._call("changed_tickets", cursor, since):
            tickets = sorted(self.world.tickets.values(), key=lambda t: t.seq)
            after = (cursor or {}).get("seq")
            if isinstance(after, int):
                chosen = [t for t in tickets if t.seq > after]
            else:
                chosen = [t for t in tickets if t.updated_at is None or t.updated_at.timestamp() >= since]
            pages = [self._page_of(chosen[i : i + PAGE_SIZE]) for i in range(0, len(chosen), PAGE_SIZE)]
        if not pages:
            yield Page([], {"seq": after if isinstance(after, int) else 0}, True)
            return
        for n, (items, last_seq) in enumerate(pages):
            yield Page(items, {"seq": last_seq}, n == len(pages) - 1)

    def _page_of(self, tickets: list[FakeTicket]) -> tuple[list[Any], int]:
        return [self._as_ticket(t) for t in tickets], tickets[-1].seq

    def set_status(self, ticket_id: str, status: str) -> bool:
        with self._call("set_status", ticket_id, status):
            t = self._ticket(ticket_id)
            if t.status == status:
                self.unchanged("set_status", str(self.ticket_ref(ticket_id)))
                return False
            t.status = status
            t.seq, t.updated_at = self.world.touch()
            return True

    def add_note_with_status(self, ticket_id: str, body: str, status: str) -> None:
        with self._call("add_note_with_status", ticket_id, body, status):
            t = self._ticket(ticket_id)
            self._add_comment(t, body)
            t.status = status

    def wants_escalation(self, ticket: Ticket, triggers: Triggers) -> bool:
        """The default: the ticket carries the escalation tag."""
        return bool(triggers.escalation_tag) and triggers.escalation_tag in ticket.tags

    def requested_issue_key(self, ticket: Ticket) -> str | None:
        """An issue key typed into the issue-key field (``ENG-12``), else None."""
        value = ticket.custom_fields.get(self.issue_key_field)
        key = str(value).strip().upper() if value is not None else ""
        return key if ISSUE_KEY.fullmatch(key) else None

    def interpret(self, event: Event, triggers: Triggers) -> list[Signal]:
        """``ticket.tagged`` with the escalation tag, and ``ticket.comment``; nothing else."""
        if event.subject.kind != "ticket":
            return []
        ticket = Ref(self.name, "ticket", event.subject.id)
        if event.kind == "ticket.tagged":
            tags = event.payload.get("tags")
            if triggers.escalation_tag and isinstance(tags, list) and triggers.escalation_tag in tags:
                return [EscalationRequested(ticket=ticket, actor=event.actor)]
        elif event.kind == "ticket.comment":
            text = event.payload.get("text")
            public = bool(event.payload.get("public", False))
            return [TicketCommentAdded(ticket=ticket, text=str(text or ""), public=public, actor=event.actor)]
        return []


class FakeCRM(FakeConnector, CRM):
    """An in-memory CRM: contacts by email, their company (tier, ARR, renewal, open deals) and notes by marker."""

    system: ClassVar[str] = FAKE_CRM
    primary_roles: ClassVar[frozenset[str]] = frozenset({CRM_ROLE})

    def _company(self, company_id: str | None, contact: FakeContact | None = None) -> Customer:
        company = self.world.companies.get(company_id) if company_id else None
        contact_ref = Ref(self.name, "contact", contact.id) if contact is not None else None
        if company is None:
            return Customer(company_ref=None, contact_ref=contact_ref)
        customer = copy.deepcopy(company)
        customer.company_ref = Ref(self.name, "company", str(company_id))
        customer.contact_ref = contact_ref
        return customer

    def find_customer(self, email: str) -> Customer:
        with self._call("find_customer", email):
            wanted = str(email or "").strip().lower()
            contact = next((c for c in self.world.contacts.values() if c.email.lower() == wanted), None)
            if not wanted or contact is None:
                return Customer.unknown()
            return self._company(contact.company_id, contact)

    def add_note(self, customer: Customer, body_html: str, *, marker: str, ticket: Ref | None = None) -> Ref:
        with self._call("add_note", marker):
            on = tuple(r for r in (customer.contact_ref, customer.company_ref, ticket) if r is not None)
            if customer.contact_ref is None and customer.company_ref is None:
                raise ValueError("the customer is unknown to the CRM: there is no timeline to put a note on")
            note = FakeNote(self.world.new_id(), body_html, marker, on)
            self.world.notes[note.id] = note
            return Ref(self.name, "note", note.id)

    def find_note(self, customer: Customer, marker: str) -> Ref | None:
        with self._call("find_note", marker):
            where = {r for r in (customer.contact_ref, customer.company_ref) if r is not None}
            for note in self.world.notes.values():
                if note.marker == marker and where & set(note.on):
                    return Ref(self.name, "note", note.id)
            return None

    def get_customer(self, company_ref: Ref) -> Customer:
        """The company now; one the CRM no longer has is ``known=False`` with its ``company_ref`` kept."""
        with self._call("get_customer", str(company_ref)):
            if company_ref.id not in self.world.companies:
                return Customer(company_ref=company_ref, contact_ref=None, known=False)
            return self._company(company_ref.id)

    def changed_companies(
        self, cursor: dict[str, Any] | None, *, since: float, company_ids: Collection[str] | None = None
    ) -> Iterator[Page]:
        """Companies by change order after the cursor's ``seq`` (else changed at or after ``since``), one page of
        ``PAGE_SIZE`` at a time, restricted to ``company_ids`` when given."""
        with self._call("changed_companies", cursor, since):
            after = (cursor or {}).get("seq")
            changes = sorted(self.world.company_changes.items(), key=lambda kv: kv[1][0])
            if isinstance(after, int):
                chosen = [(cid, c) for cid, c in changes if c[0] > after]
            else:
                chosen = [(cid, c) for cid, c in changes if c[1].timestamp() >= since]
            wanted = None if company_ids is None else set(company_ids)
            start = after if isinstance(after, int) else 0
            pages = [chosen[i : i + PAGE_SIZE] for i in range(0, len(chosen), PAGE_SIZE)]
        if not pages:
            yield Page([], {"seq": start}, True)
            return
        for n, rows in enumerate(pages):
            items = [
                ChangedCompany(ref=Ref(self.name, "company", cid), updated_at=at)
                for cid, (_, at) in rows
                if wanted is None or cid in wanted
            ]
            yield Page(items, {"seq": rows[-1][1][0]}, n == len(pages) - 1)


class FakeTracker(FakeConnector, Tracker):
    """An in-memory tracker: issues (status and category To Do/new, In Progress/indeterminate, Done/done),
    labels, fields, a Markdown description, remote links by ticket, comments and fix versions."""

    system: ClassVar[str] = FAKE_TRACKER
    primary_roles: ClassVar[frozenset[str]] = frozenset({TRACKER})
    config_keys: ClassVar[Mapping[str, ConfigKey]] = {
        "project": ConfigKey(str, default="FAKE", help="key of the project escalations create issues in"),
        "issue_type": ConfigKey(str, default="Bug", help="issue type escalations create"),
    }

    def __init__(self, config: SystemConfig, http: Any, *, world: FakeWorld | None = None) -> None:
        super().__init__(config, http, world=world)
        self.wanted: tuple[str, ...] = ()

    def _issue(self, key_or_id: str) -> FakeIssue:
        try:
            return self.world.issue(key_or_id)
        except NotFound:
            raise self._not_found(f"issue {key_or_id}") from None

    def _as_issue(self, i: FakeIssue) -> Issue:
        return Issue(
            ref=Ref(self.name, "issue", i.id),
            key=i.key,
            url=self.issue_url(i.key),
            summary=i.summary,
            status=i.status,
            status_category=i.category,
            priority=i.priority,
            labels=list(i.labels),
            fix_versions=[self.world.versions.get(v, v) for v in i.fix_versions],
            updated_at=i.updated_at,
            status_category_changed_at=i.category_changed_at,
            description=i.description,
            fields={**copy.deepcopy(i.fields), "description": i.description},
        )

    def _changed(self, i: FakeIssue) -> None:
        i.seq, i.updated_at = self.world.touch()

    def issue_url(self, key: str) -> str:
        return f"{self.config.base_url}/browse/{key}"

    def create_issue(self, spec: IssueSpec) -> Issue:
        with self._call("create_issue", spec.summary, tuple(spec.labels)):
            return self._as_issue(self.world._create_issue(spec))

    def get_issue(self, key_or_id: str) -> Issue:
        with self._call("get_issue", key_or_id):
            return self._as_issue(self._issue(key_or_id))

    def search_by_label(self, label: str) -> list[Issue]:
        with self._call("search_by_label", label):
            return [self._as_issue(i) for i in self.world.issues.values() if label in i.labels]

    @staticmethod
    def link_id_of(link: TicketLink) -> str:
        """What makes a link unique on an issue: the helpdesk's base URL and the ticket id."""
        return f"{link.origin}|{link.ticket.id}"

    def link_ticket(self, issue_key: str, link: TicketLink) -> str:
        """A remote link to the ticket; linking the same ticket again updates it (same id)."""
        with self._call("link_ticket", issue_key, str(link.ticket)):
            issue = self._issue(issue_key)
            gid = self.link_id_of(link)
            existing = issue.links.get(gid)
            link_id = existing.id if existing is not None else self.world.new_id()
            issue.links[gid] = FakeRemoteLink(link_id, link.ticket, link.url, link.title, link.summary)
            self._changed(issue)
            return link_id

    def unlink_ticket(self, issue_key: str, link: TicketLink) -> bool:
        with self._call("unlink_ticket", issue_key, str(link.ticket)):
            issue = self._issue(issue_key)
            removed = issue.links.pop(self.link_id_of(link), None) is not None
            if removed:
                self._changed(issue)
            return removed

    def add_comment(self, issue_key: str, body: str, *, internal: bool = False) -> str:
        with self._call("add_comment", issue_key, body):
            issue = self._issue(issue_key)
            cid = self.world.new_id()
            issue.comments.append((cid, body))
            self._changed(issue)
            return cid

    def update_comment(self, issue_key: str, comment_id: str, body: str, *, internal: bool = False) -> None:
        with self._call("update_comment", issue_key, comment_id):
            issue = self._issue(issue_key)
            at = next((n for n, (cid, _) in enumerate(issue.comments) if cid == comment_id), None)
            if at is None:
                raise self._not_found(f"comment {comment_id}")
            issue.comments[at] = (comment_id, body)
            self._changed(issue)

    def find_comment(self, issue_key: str, marker: str) -> str | None:
        with self._call("find_comment", issue_key, marker):
            return next((cid for cid, body in self._issue(issue_key).comments if marker in body), None)

    def reopen(self, issue_key: str) -> str:
        """To In Progress (from any status)."""
        with self._call("reopen", issue_key):
            issue = self._issue(issue_key)
            self.world.move_issue(issue.key, CATEGORY_NAMES[IN_PROGRESS], IN_PROGRESS)
            return issue.status

    def set_priority(self, issue_key: str, priority: str) -> bool:
        """The priority by name; False when the issue has it already."""
        with self._call("set_priority", issue_key, priority):
            issue = self._issue(issue_key)
            if issue.priority == priority:
                self.unchanged("set_priority", issue_key)
                return False
            issue.priority = priority
            self._changed(issue)
            return True

    def changed_issues(self, cursor: dict[str, Any] | None, *, since: float) -> Iterator[Page]:
        """Issues by change order after the cursor's ``seq`` (else updated at or after ``since``)."""
        with self._call("changed_issues", cursor, since):
            issues = sorted(self.world.issues.values(), key=lambda i: i.seq)
            after = (cursor or {}).get("seq")
            if isinstance(after, int):
                chosen = [i for i in issues if i.seq > after]
            else:
                chosen = [i for i in issues if i.updated_at is None or i.updated_at.timestamp() >= since]
            pages = [chosen[n : n + PAGE_SIZE] for n in range(0, len(chosen), PAGE_SIZE)]
            converted = [([self._as_issue(i) for i in page], page[-1].seq) for page in pages]
        if not converted:
            yield Page([], {"seq": after if isinstance(after, int) else 0}, True)
            return
        for n, (items, last_seq) in enumerate(converted):
            yield Page(list(items), {"seq": last_seq}, n == len(converted) - 1)

    def want_fields(self, field_ids: Iterable[str]) -> None:
        """Recorded only: ``get_issue`` always returns the description and every field."""
        self.wanted = tuple(dict.fromkeys((*self.wanted, *field_ids)))

    def write_impact(
        self,
        issue_key: str,
        *,
        fields: dict[str, Any],
        description: Any = None,
        add_labels: Iterable[str] = (),
        remove_labels: Iterable[str] = (),
    ) -> None:
        add, remove = list(add_labels), list(remove_labels)
        with self._call("write_impact", issue_key, dict(fields), description is not None, tuple(add), tuple(remove)):
            issue = self._issue(issue_key)
            issue.fields.update(copy.deepcopy(fields))
            if description is not None:
                issue.description = str(description)
            issue.labels = [x for x in dict.fromkeys([*issue.labels, *add]) if x not in remove]
            self._changed(issue)

    def issues_with_fix_version(self, version_id: str) -> list[Issue]:
        with self._call("issues_with_fix_version", version_id):
            return [self._as_issue(i) for i in self.world.issues.values() if str(version_id) in i.fix_versions]

    def open_issues(self, refs: list[Ref]) -> dict[Ref, Issue]:
        with self._call("open_issues", tuple(refs)):
            wanted = {r.id for r in refs if r.system == self.name}
            return {
                Ref(self.name, "issue", i.id): self._as_issue(i)
                for i in self.world.issues.values()
                if i.id in wanted and i.category != DONE
            }

    def replace_block(self, description: Any, block: ManagedBlock) -> tuple[Any, bool]:
        """The default: the description is Markdown text."""
        return splice_lines(description, block.markdown, start=f"## {block.title}", end=f"_{block.end}_")

    def interpret(self, event: Event, triggers: Triggers) -> list[Signal]:
        """``issue.status``, ``issue.comment`` and ``version.released``; nothing else."""
        p = event.payload
        if event.kind == "version.released" and event.subject.kind == "version":
            return [
                VersionReleased(
                    tracker=self.name, version_id=event.subject.id, name=_opt(p.get("name")), actor=event.actor
                )
            ]
        if event.subject.kind != "issue":
            return []
        issue = Ref(self.name, "issue", event.subject.id)
        key = str(p.get("key") or "")
        if event.kind == "issue.status":
            category = p.get("category")
            return [
                IssueStateObserved(
                    issue=issue,
                    key=key,
                    summary=str(p.get("summary") or ""),
                    status=_opt(p.get("status")),
                    category=category if category in CATEGORY_NAMES else None,
                    updated=event.occurred_at,
                    actor=event.actor,
                )
            ]
        if event.kind == "issue.comment":
            return [
                IssueCommentPosted(
                    issue=issue,
                    key=key,
                    comment_id=str(p.get("comment_id") or ""),
                    text=str(p.get("text") or ""),
                    actor=event.actor,
                )
            ]
        return []


def _opt(value: Any) -> str | None:
    return str(value) if value is not None and value != "" else None


# -- a Runtime on the fakes ------------------------------------------------------------------------------------


def fake_config_text(extra: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """A cxbridge config naming the three fakes (``sandbox = true``, loopback URLs) plus ``extra`` sections."""
    import tomlkit

    doc = tomlkit.document()
    doc["cxbridge"] = {"store": "cxbridge.db"}
    for section, values in (extra or {}).items():
        doc[section] = dict(values)
    systems = tomlkit.table(is_super_table=True)
    for name in FAKE_SYSTEMS:
        systems[name] = {"base_url": FAKE_BASE_URLS[name], "sandbox": True}
    doc["systems"] = systems
    return tomlkit.dumps(doc)


def fake_runtime(
    tmp_path: Path,
    world: FakeWorld | None = None,
    *,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
    clock: Callable[[], float] | None = None,
) -> Runtime:
    """A Runtime on the three fakes over ``world`` (a new one when None: ``rt.tracker().world``), with a config
    written to ``tmp_path / "cxbridge.toml"`` (``extra``: more sections, e.g. ``{"sync": {...}}``) and its store
    beside it (``clock``: the store's clock). The caller closes it (``rt.close()``)."""
    from ..config import load_config
    from ..plugins import build_plugins
    from ..runtime import Runtime
    from ..store import SQLiteStore

    world = world if world is not None else FakeWorld()
    path = Path(tmp_path) / "cxbridge.toml"
    path.write_text(fake_config_text(extra), encoding="utf-8")
    plugins = build_plugins(extra=[("fakes", world.plugin())], use_env=False)
    config = load_config(path, plugins=plugins)
    store = SQLiteStore(config.store_path(), clock=clock) if clock is not None else None
    return Runtime(config, plugins, store=store)
