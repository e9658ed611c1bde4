"""The roles a connector fills (Helpdesk, CRM, Tracker) and what each must be able to do.

A plugin registers connector classes through the ``register_connectors`` hook. The core only ever talks to a
system through these interfaces, so a Freshdesk or Linear plugin slots in by implementing the same methods.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

import requests
import requests.auth

from .errors import VendorError
from .http import HttpClient
from .http.urls import check_base_url
from .models import Attachment, Comment, Customer, Event, Issue, Person, Ref, Ticket
from .secrets import Secret
from .settings import ConfigKey as ConfigKey  # re-exported: plugins declare their config_keys with it
from .signals import Signal, Triggers, VersionReleased

if TYPE_CHECKING:
    from .http import CallCounter, HttpClient
    from .settings import SystemConfig

log = logging.getLogger(__name__)

HELPDESK = "helpdesk"
CRM_ROLE = "crm"
TRACKER = "tracker"
ROLES = (HELPDESK, CRM_ROLE, TRACKER)


@dataclass
class IssueSpec:
    """What to create in the tracker: fields in vendor-neutral form; the description is Markdown."""

    project: str
    issue_type: str
    summary: str
    description: str
    priority: str | None = None
    labels: list[str] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    """Field id -> value already in the tracker's own form (the impact's custom fields)."""
    mapped: dict[str, Any] = field(default_factory=dict)
    """Field id -> vendor-neutral value from ``[escalation.fields]`` (text, number, date text, email, or a list of
    them): ``Tracker.prepare_create`` turns them into the tracker's form."""


@dataclass(frozen=True)
class TicketLink:
    """A ticket as a tracker links to it: its reference, URL, title, a one-line summary (the customer), and the
    base URL of the helpdesk holding it (trackers build a stable id for the link from it)."""

    ticket: Ref
    url: str
    title: str
    origin: str
    summary: str | None = None
    resolved: bool = False
    """Whether the ticket is solved or closed (trackers show a resolved link struck through)."""


@dataclass(frozen=True)
class ExistingLink:
    """A ticket-issue link the helpdesk's own tracker integration holds (to bring it over into cxbridge):
    the ticket's id in the helpdesk, the issue's immutable id and its key in the tracker, the link's own id."""

    ticket_id: str
    issue_id: str
    issue_key: str
    link_id: str | None = None


@dataclass(frozen=True)
class ManagedBlock:
    """A section of an issue's description that cxbridge owns and replaces in place.

    It opens with a heading ``title`` and closes with an italic paragraph ``end``; ``body`` is Markdown.
    """

    title: str
    body: str
    end: str

    @property
    def markdown(self) -> str:
        """The whole block as Markdown: the heading, the body and the closing paragraph."""
        return f"## {self.title}\n\n{self.body.strip()}\n\n_{self.end}_\n"


@dataclass
class Page:
    """One page of a polling scan: the records changed, the cursor to resume after them, and whether it was the last.

    ``cursor`` is a small JSON-ready mapping the reconciler saves as its checkpoint after the page is handled.
    """

    items: list[Any]
    cursor: dict[str, Any]
    done: bool


@dataclass(frozen=True)
class ChangedCompany:
    """A CRM company a polling scan found modified: its reference, when it was last modified (the delivery id of
    the ``CustomerChanged`` signal ``cxbridge sync`` makes of it), and the properties cxbridge reads, as strings,
    when the scan returned them (informational: the impact refresh re-reads the company)."""

    ref: Ref
    updated_at: datetime | None = None
    properties: Mapping[str, str | None] = field(default_factory=dict)


FINDING_OK = "ok"
FINDING_FAILED = "failed"
FINDING_SKIPPED = "skipped"


@dataclass(frozen=True)
class Finding:
    """One result of a connector's deep check (``Connector.diagnose``): an object the configuration names, whether
    it is usable, in the vendor's own words where it answered, and what the admin should do about it.

    ``subject`` names the object as an admin finds it (``project SUP``, ``ticket field 360001``); ``state`` is
    ``"ok"``, ``"failed"`` or ``"skipped"`` (could not be checked, with the reason in ``message``); ``fix`` says
    what to change or click (empty when ok). ``cxbridge doctor`` prints one line per finding.
    """

    subject: str
    state: str
    message: str
    fix: str = ""

    @classmethod
    def ok(cls, subject: str, message: str) -> Finding:
        """The object exists and is usable."""
        return cls(subject, FINDING_OK, message)

    @classmethod
    def failed(cls, subject: str, message: str, fix: str) -> Finding:
        """The object is missing or unusable: ``message`` in the vendor's words where it answered, and the fix."""
        return cls(subject, FINDING_FAILED, message, fix)

    @classmethod
    def from_error(cls, subject: str, exc: Exception, fix: str) -> Finding:
        """A failed finding for a read that failed: the HTTP status and the vendor's own words when it answered
        (``404 No project could be found with key 'SUP'.``), else the error's text."""
        if isinstance(exc, VendorError) and exc.vendor_message:
            status = f"{exc.status} " if exc.status else ""
            return cls.failed(subject, f"{status}{exc.vendor_message}", fix)
        return cls.failed(subject, str(exc), fix)

    @classmethod
    def skipped(cls, subject: str, message: str, fix: str = "") -> Finding:
        """The object could not be checked (an earlier check failed, nothing to read it from yet...)."""
        return cls(subject, FINDING_SKIPPED, message, fix)


@dataclass(frozen=True)
class FieldNeed:
    """A tracker field the core writes on the issues escalations create and on later edits.

    ``field_id`` is as configured (``customfield_10100``); ``purpose`` names the configuration key that set it
    (``impact.fields.arr``); ``kind`` is the value the core writes: ``"number"``, ``"date"`` or ``"text"``.
    """

    field_id: str
    purpose: str
    kind: str


@dataclass(frozen=True)
class Needs:
    """What the core will ask of one configured system, for its ``Connector.diagnose`` to check the objects
    behind it: the roles the system fills in ``[escalation]``, and for a tracker the fields escalations fill on
    create (beyond project, type, summary, description and labels) and edit afterwards."""

    roles: frozenset[str] = frozenset()
    issue_fields: tuple[FieldNeed, ...] = ()
    sets_priority: bool = False
    """Escalations set the issue's priority (``[escalation.priority]`` maps some tier)."""
    create_fields: tuple[str, ...] = ()
    """Tracker field ids ``[escalation.fields]`` fills on create (checked like the create's own fields)."""


CREATE = "create"
UPDATE = "update"
OK = "ok"
MANUAL = "manual"
PRUNE = "prune"
PLAN_ACTIONS = (CREATE, UPDATE, OK, MANUAL, PRUNE)
"""What ``cxbridge setup`` does with a plan item: create or update the vendor object (and learn its ids and
secrets), nothing (``ok``: already right), tell the admin what to click (``manual``), or remove an object cxbridge
created earlier and no longer needs (``prune``: listed always, applied only with ``--prune``)."""


@dataclass(frozen=True)
class ConfigUpdate:
    """A value ``cxbridge setup`` writes back into the config file: ``path`` is the key path from the file's root
    (``("systems", "helpdesk", "issue_key_field_id")``, ``("impact", "fields", "arr")``). A ``secret`` value is
    written to a file readable by its owner only and referenced as ``{ file = ... }``; ``("webhooks", "secrets",
    name)`` takes the list form the receiver reads. Its ``value`` never appears in a plan, a log or an error."""

    path: tuple[str, ...]
    value: Any
    secret: bool = False

    def __repr__(self) -> str:
        shown = "***" if self.secret else repr(self.value)
        return f"ConfigUpdate({'.'.join(self.path)} = {shown})"


@dataclass(frozen=True)
class SetupContext:
    """What a connector's provisioning needs besides its own ``[systems.<name>]`` table.

    ``webhook_url`` is the full URL the vendor must call for this system (``[webhooks] public_urls.<name>``, else
    ``public_url`` + ``/webhooks/<name>``; empty when neither is set: webhook items are then ``manual``).
    ``webhook_secrets`` are the active signing secrets configured for it. ``roles`` are the roles the system
    plays in ``[escalation]``; ``escalation_tag`` is ``[escalation] tag``; ``impact_fields`` is ``[impact]
    fields``. ``decision_tags`` are the full tags of ``[decisions] macros`` (prefix included), each one a decision
    the helpdesk must deliver to cxbridge when an agent adds it; ``decision_macros`` maps those of them that some
    policy rule grants to the title of the example macro that adds the tag (a helpdesk without macros ignores it).
    """

    webhook_url: str
    webhook_secrets: tuple[Secret, ...] = ()
    roles: frozenset[str] = frozenset()
    escalation_tag: str = ""
    impact_fields: Mapping[str, str] = field(default_factory=dict)
    decision_tags: tuple[str, ...] = ()
    decision_macros: Mapping[str, str] = field(default_factory=dict)


@dataclass
class PlanItem:
    """One vendor-side object ``cxbridge setup`` manages, compared with what exists.

    ``kind`` and ``name`` say what it is for a person (``webhook``, ``cxbridge``); ``action`` is one of
    ``PLAN_ACTIONS``; ``detail`` says what differs, or (``manual``) exactly what the admin must click. ``vendor_id``
    is the existing object's id, when there is one. ``desired`` holds the plugin's own data for applying the item
    (the request body); the core never reads it. ``learned`` are config updates already known when planning (the
    id of an object that exists but the config does not name yet): an item whose only change is the config is an
    ``update``. ``optional`` marks an ``update`` of an object that works as it is (what an earlier version
    provisioned): ``setup --apply`` makes it, ``cxbridge doctor`` does not count it as wrong. Secrets never go into
    ``detail`` or ``desired``'s text."""

    system: str
    kind: str
    name: str
    action: str
    detail: str = ""
    vendor_id: str | None = None
    desired: dict[str, Any] = field(default_factory=dict, repr=False)
    learned: list[ConfigUpdate] = field(default_factory=list)
    optional: bool = False

    def __post_init__(self) -> None:
        if self.action not in PLAN_ACTIONS:
            raise ValueError(f"unknown plan action {self.action!r} (known: {', '.join(PLAN_ACTIONS)})")

    @property
    def pending(self) -> bool:
        """Whether ``setup --apply`` would change something (or the admin must act) for this item."""
        return self.action != OK


class Connector(ABC):
    """A configured connection to one system; subclasses fill one or more roles.

    ``system`` is the plugin's key (``zendesk``); an admin may configure several instances under other names,
    which ``name`` holds. The base class owns the echo guard: a change is never synced back to the system it
    came from, and a write whose target already holds the value is skipped and logged as unchanged.
    """

    system: ClassVar[str]
    roles: ClassVar[frozenset[str]] = frozenset()
    config_keys: ClassVar[Mapping[str, ConfigKey]] = {}
    cloud_domains: ClassVar[tuple[str, ...]] = ()
    """Host suffixes (``.zendesk.com``) or exact hosts (``api.hubapi.com``) a non-sandbox base URL must be on."""
    allow_any_https_host: ClassVar[bool] = False
    """True for self-hosted products (Jira Data Center): any https host the admin configured is accepted."""

    default_headers: ClassVar[Mapping[str, str]] = {}
    primary_roles: ClassVar[frozenset[str]] = frozenset()
    """The roles this system takes when ``[escalation]`` names none (HubSpot is a helpdesk too, but first a CRM)."""
    template_aliases: ClassVar[Mapping[str, str]] = {}
    """Template file names this plugin's admins may have overridden under an older name: role template file ->
    the older file name (``{"helpdesk_note.txt.j2": "zendesk_note.txt.j2"}``). Found in the admin's folders only."""

    def __init__(self, config: SystemConfig, http: HttpClient) -> None:
        self.config = config
        self.http = http
        self.name = config.name

    @classmethod
    def from_config(
        cls,
        config: SystemConfig,
        *,
        counter: CallCounter | None = None,
        session: requests.Session | None = None,
    ) -> Self:
        """Build the connector with an HTTP client set up for this vendor (auth, error bodies, allowed hosts)."""

        http = HttpClient(
            config,
            auth=cls.make_auth(config),
            error_message=cls.error_message,
            counter=counter,
            session=session,
            default_headers=dict(cls.default_headers),
            cloud_domains=cls.cloud_domains,
            allow_any_https_host=cls.allows_any_https_host(config),
        )
        return cls(config, http)

    @classmethod
    def allows_any_https_host(cls, config: SystemConfig) -> bool:
        """Whether this configuration may use any https host (a self-hosted product), not only the vendor's."""
        return cls.allow_any_https_host

    @classmethod
    def check_config_url(cls, config: SystemConfig) -> str:
        """Check the configured base URL against this vendor's rules (DESIGN section 5); raises ``ConfigError``."""

        return check_base_url(
            config.name,
            config.base_url,
            sandbox=config.sandbox,
            cloud_domains=cls.cloud_domains,
            allow_any_https_host=cls.allows_any_https_host(config),
        )

    @classmethod
    @abstractmethod
    def make_auth(cls, config: SystemConfig) -> requests.auth.AuthBase:
        """The requests auth for this configuration (API token, OAuth bearer, PAT...)."""

    @staticmethod
    def error_message(response: requests.Response) -> str | None:
        """The vendor's own words from an error response body, or None (override per vendor)."""
        return None

    @abstractmethod
    def check(self) -> str:
        """Make one cheap authenticated call and say who we are there (``authenticated as ...``)."""

    @classmethod
    def supports(cls, method: str) -> bool:
        """Whether this connector implements an optional role method (overrides the role's default).

        The core asks before it relies on an optional capability (polling, releases, open-issue filters...).
        """
        own = getattr(cls, method, None)
        for base in (Helpdesk, CRM, Tracker, Connector):
            if issubclass(cls, base) and method in vars(base):
                return own is not None and own is not vars(base)[method]
        return own is not None

    def diagnose(self, needs: Needs) -> list[Finding]:
        """Check, after ``check()`` passed, that every object the configuration names exists at the vendor and is
        usable for what the core needs (``needs``): projects, issue types, required and custom fields, ticket
        fields, properties... One ``Finding`` per object, failures with the vendor's words and the fix.

        Reads only, never writes. The default checks nothing (an empty list); ``cxbridge doctor`` prints what a
        plugin returns and fails on any failed finding.
        """
        return []

    def interpret(self, event: Event, triggers: Triggers) -> list[Signal]:
        """The neutral signals one of this system's events carries (a webhook delivery's Event, or a job queued
        by an earlier version); an empty list when the event means nothing to cxbridge. Refs name this
        configured system (``self.name``). Never calls the vendor."""
        return []

    def integration_user_id(self) -> str | None:
        """The id cxbridge's own credentials act as on this system, as its events name the actor (one call at
        most per process; None when the system cannot tell). Changes made by this user are echoes."""
        return None

    def plan_setup(self, setup: SetupContext) -> list[PlanItem]:
        """The vendor-side objects cxbridge needs on this system (fields, webhooks, triggers, properties...),
        each compared with what exists (reads only; never writes). The default: nothing to provision."""
        return []

    def apply_setup(self, item: PlanItem, setup: SetupContext) -> list[ConfigUpdate]:
        """Make one ``create``, ``update`` or ``prune`` item of ``plan_setup`` so, and return what was learned
        (ids, signing secrets) as config updates. Applying an item twice must not create a second object."""
        raise NotImplementedError(f"{self.name}: this system provisions nothing")

    def unchanged(self, op: str, target: str) -> None:
        """Record that a write was skipped because the target already held the value."""
        log.info("%s.%s.unchanged target=%s", self.name, op, target)


class Helpdesk(Connector):
    """Where agents work on tickets: read a ticket and its history, write notes and escalation state back."""

    roles = frozenset({HELPDESK})

    @abstractmethod
    def get_ticket(self, ticket_id: str) -> Ticket:
        """The ticket with its requester and organization (one call); comments are not filled in."""

    @abstractmethod
    def list_comments(self, ticket_id: str) -> list[Comment]:
        """Every comment of the ticket, oldest first, following the vendor's pagination."""

    @abstractmethod
    def record_escalation(
        self, ticket: Ticket, *, note: str, tag: str, issue_key: str, issue_url: str, first_attempt: bool = False
    ) -> bool:
        """In one update: an internal note, the escalation tag and the issue key on the ticket.

        Keeps tags others added meanwhile. Returns False (and writes nothing) when the ticket already carries
        the tag and the issue key, i.e. the update was applied before. ``first_attempt`` says that no earlier
        attempt can have written it (the agent may have typed the key and the tag): the note is written anyway.
        """

    @abstractmethod
    def add_internal_note(self, ticket_id: str, body: str) -> None:
        """An internal note (not visible to the customer) on the ticket."""

    @abstractmethod
    def ticket_url(self, ticket_id: str) -> str:
        """The agent-facing URL of the ticket."""

    def agent_person(self, user_id: str) -> Person | None:
        """The helpdesk user ``user_id`` as an agent (name, email), read with cxbridge's own credentials, for the
        agent API: the helpdesk vouched for the id in a signed app request, this says who it is. None when the user
        is no active agent or admin (an end user, a suspended one); NotFound when there is no such user."""
        raise NotImplementedError(f"{self.name}: this helpdesk cannot tell who an agent is")

    def changed_tickets(self, cursor: dict[str, Any] | None, *, since: float) -> Iterator[Page]:
        """Pages of tickets (``Ticket``) changed since ``since`` (epoch seconds), or after a saved ``cursor``."""
        raise NotImplementedError(f"{self.name}: this helpdesk cannot list changed tickets")

    def set_status(self, ticket_id: str, status: str) -> bool:
        """Move the ticket to ``status``; False (nothing written) when it is there already."""
        raise NotImplementedError(f"{self.name}: this helpdesk cannot change a ticket's status")

    def add_note_with_status(self, ticket_id: str, body: str, status: str) -> None:
        """An internal note and a status change in ONE update (optional: sync back otherwise writes them apart)."""
        raise NotImplementedError(f"{self.name}: this helpdesk cannot write a note and a status in one update")

    def add_public_reply(self, ticket_id: str, body: str, *, marker: str) -> None:
        """A public reply (seen by the customer) on the ticket, carrying ``marker`` where only the helpdesk's own
        records show it (never in the text the customer reads), so that ``has_public_reply`` finds it again."""
        raise NotImplementedError(f"{self.name}: this helpdesk cannot post a public reply through its API")

    def has_public_reply(self, ticket_id: str, marker: str) -> bool:
        """Whether a public reply written by ``add_public_reply`` with ``marker`` is on the ticket (after a crash)."""
        raise NotImplementedError(f"{self.name}: this helpdesk cannot post a public reply through its API")

    def add_note_removing_tag(self, ticket_id: str, body: str, tag: str) -> None:
        """An internal note and the removal of ``tag`` in one update (the outcome of a decision asked by a tag);
        other tags, also ones added meanwhile, are kept."""
        raise NotImplementedError(f"{self.name}: this helpdesk cannot remove a tag")

    def get_attachment(self, attachment_id: str) -> Attachment:
        """An attachment of a ticket comment by id: name, content type, size and the URL the helpdesk serves it at."""
        raise NotImplementedError(f"{self.name}: this helpdesk cannot read an attachment")

    def download_attachment(self, attachment: Attachment, *, max_bytes: int) -> bytes:
        """The attachment's bytes, fetched only from the helpdesk's own origin (never another host, never a
        redirect); ``VendorError`` when it is elsewhere or larger than ``max_bytes``."""
        raise NotImplementedError(f"{self.name}: this helpdesk cannot download an attachment")

    def wants_escalation(self, ticket: Ticket, triggers: Triggers) -> bool:
        """Whether a ticket, as read or polled, asks to be escalated: by default it carries the escalation tag."""
        return bool(triggers.escalation_tag) and triggers.escalation_tag in ticket.tags

    def requested_issue_key(self, ticket: Ticket) -> str | None:
        """An issue key the agent typed into the ticket (to join that issue), or None; the ticket is as read."""
        return None

    def integration_links(self) -> Iterator[ExistingLink]:
        """Every ticket-issue link of the helpdesk's own tracker integration, following its pagination (for
        ``cxbridge import-links``)."""
        raise NotImplementedError(f"{self.name}: this helpdesk has no tracker integration links to import")

    def status_name(self, status: str | None) -> str | None:
        """How people see a ticket status when ``Ticket.status`` is an id (a pipeline stage's label); None when the
        status reads as it is (the default)."""
        return None

    def ticket_closed(self, status: str | None) -> bool:
        """Whether a ticket status (``Ticket.status`` as this helpdesk reads it) means solved or closed: by default
        ``solved`` or ``closed``. A helpdesk whose statuses are its own ids (pipeline stages) overrides it."""
        return (status or "").strip().lower() in ("solved", "closed")

    def ticket_ref(self, ticket_id: str) -> Ref:
        """The reference of a ticket of this system."""
        return Ref(self.name, "ticket", str(ticket_id))


class CRM(Connector):
    """Where the customer relationship lives: who the customer is, what they are worth, their timeline."""

    roles = frozenset({CRM_ROLE})

    @abstractmethod
    def find_customer(self, email: str) -> Customer:
        """The contact by email with its company and open deals; ``Customer.unknown()`` when absent."""

    @abstractmethod
    def add_note(self, customer: Customer, body_html: str, *, marker: str, ticket: Ref | None = None) -> Ref:
        """One note on the contact's and company's timeline (and the CRM ticket's, when given)."""

    @abstractmethod
    def find_note(self, customer: Customer, marker: str) -> Ref | None:
        """A note written earlier with this marker, if the CRM has it (for resuming after a crash)."""

    def get_customer(self, company_ref: Ref) -> Customer:
        """The company as the CRM holds it now, with its open deals (for refreshing an issue's impact)."""
        raise NotImplementedError(f"{self.name}: this CRM cannot read a company by reference")

    def find_company(self, *, domain: str | None = None, name: str | None = None) -> Customer:
        """The company whose domain is ``domain`` (or whose name is ``name``: give one), with its open deals, as
        ``find_customer`` fills it but without a contact; ``Customer.unknown()`` when none (or several with that
        name: a guess would put the wrong revenue on the issue). For a requester the CRM has no contact for."""
        raise NotImplementedError(f"{self.name}: this CRM cannot look a company up by domain or name")

    def changed_companies(
        self, cursor: dict[str, Any] | None, *, since: float, company_ids: Collection[str] | None = None
    ) -> Iterator[Page]:
        """Pages of companies (``ChangedCompany``) modified since ``since`` (epoch seconds), or after a saved
        ``cursor``, oldest change first, for ``cxbridge sync`` to refresh the impact a missed webhook did not.
        ``company_ids``: the only companies that matter (those linked to issues), where restricting the query
        saves calls; None for every company (the core drops unlinked ones)."""
        raise NotImplementedError(f"{self.name}: this CRM cannot list changed companies")


class Tracker(Connector):
    """Where engineering works: issues, their links to tickets, comments."""

    roles = frozenset({TRACKER})

    @abstractmethod
    def create_issue(self, spec: IssueSpec) -> Issue:
        """Create an issue; ``spec.properties`` are stored on the issue in the same call."""

    @abstractmethod
    def get_issue(self, key_or_id: str) -> Issue:
        """The issue by key or id."""

    @abstractmethod
    def search_by_label(self, label: str) -> list[Issue]:
        """Issues carrying a label (the marker an escalation puts on the issue it creates)."""

    @abstractmethod
    def link_ticket(self, issue_key: str, link: TicketLink) -> str:
        """A link from the issue to the ticket, as the tracker shows linked records; linking the same ticket again
        updates that link instead of adding one. Returns the link's id."""

    @abstractmethod
    def add_comment(self, issue_key: str, body: str, *, internal: bool = False) -> str:
        """A comment (Markdown) on the issue; returns its id. ``internal``: visible to the team only, where the
        tracker can restrict a comment (a relayed support note is never shown to a portal customer)."""

    def update_comment(self, issue_key: str, comment_id: str, body: str, *, internal: bool = False) -> None:
        """Replace the body (Markdown) of a comment cxbridge wrote (an edit of the support note it relays)."""
        raise NotImplementedError(f"{self.name}: this tracker cannot edit a comment")

    @abstractmethod
    def issue_url(self, key: str) -> str:
        """The browse URL of an issue."""

    def add_attachment(self, issue_key: str, filename: str, content: bytes, content_type: str) -> Attachment:
        """Upload one file to the issue; returns it as the tracker holds it. Not retried on an unknown outcome:
        the caller looks for it with ``list_attachments`` (same filename and size) first."""
        raise NotImplementedError(f"{self.name}: this tracker cannot take attachments")

    def list_attachments(self, issue_key: str) -> list[Attachment]:
        """The issue's attachments (to find an upload whose answer was lost)."""
        raise NotImplementedError(f"{self.name}: this tracker cannot list attachments")

    def list_comments(self, issue_key: str) -> list[Comment]:
        """The issue's comments as plain text with author (``ref``: the id webhooks name), visibility and times
        (for ``cxbridge sync`` to recover comments for support that no webhook delivered)."""
        raise NotImplementedError(f"{self.name}: this tracker cannot list an issue's comments")

    def released_versions(self, *, since: float, issue_keys: Iterable[str] = ()) -> list[VersionReleased]:
        """Versions released on or after the day of ``since`` (epoch seconds) in the default project and the
        projects of ``issue_keys`` (the linked issues), as the signals their webhooks would carry."""
        raise NotImplementedError(f"{self.name}: this tracker cannot list released versions")

    def prepare_create(self, spec: IssueSpec) -> list[str]:
        """Turn ``spec.mapped`` into field values in the tracker's form (added to ``spec.fields``) and say, one
        line each, what would make the create fail: a required field not filled, a mapped value the tracker cannot
        take (an unknown user, an option not allowed). Reads only (cached); the escalation refuses before any write
        when a line comes back. By default the mapped values are passed as they are."""
        spec.fields.update(spec.mapped)
        return []

    def unfilled_required_fields(self, project: str, issue_type: str, provided: Iterable[str]) -> list[str]:
        """The fields the tracker requires to create an issue of this type in this project that neither the
        create itself nor ``provided`` (field ids) fill, one line each naming the field (for ``doctor``)."""
        raise NotImplementedError(f"{self.name}: this tracker cannot tell which fields a create requires")

    def duplicate_of(self, issue_key: str) -> str | None:
        """The key of the issue this one was closed as a duplicate of (its resolution says duplicate and it links
        to that issue as its duplicate), or None (one read)."""
        raise NotImplementedError(f"{self.name}: this tracker cannot tell what an issue duplicates")

    def reopen(self, issue_key: str) -> str:
        """Move a done issue back to work (a status outside the done category); returns the new status's name."""
        raise NotImplementedError(f"{self.name}: this tracker cannot reopen an issue")

    def set_priority(self, issue_key: str, priority: str) -> bool:
        """Set the issue's priority (a cxbridge priority name: Lowest..Highest, mapped by the tracker's own table);
        False (nothing written) when the issue has it already."""
        raise NotImplementedError(f"{self.name}: this tracker cannot change an issue's priority")

    def find_comment(self, issue_key: str, marker: str) -> str | None:
        """The id of a comment on the issue whose text holds ``marker`` (for resuming after a crash), or None."""
        raise NotImplementedError(f"{self.name}: this tracker cannot read an issue's comments")

    def changed_issues(self, cursor: dict[str, Any] | None, *, since: float) -> Iterator[Page]:
        """Pages of issues (``Issue``) updated since ``since`` (epoch seconds), or after a saved ``cursor``."""
        raise NotImplementedError(f"{self.name}: this tracker cannot list changed issues")

    def rich_text(self, markdown: str) -> Any:
        """Markdown in the tracker's own rich-text form (what ``Issue.description`` holds); plain by default."""
        return markdown

    def want_fields(self, field_ids: Iterable[str]) -> None:
        """Ask ``get_issue`` to return these fields too (in ``Issue.fields``; ``description`` fills
        ``Issue.description``), in the same call. The impact rollup asks for its custom fields this way."""

    def write_impact(
        self,
        issue_key: str,
        *,
        fields: dict[str, Any],
        description: Any = None,
        add_labels: Iterable[str] = (),
        remove_labels: Iterable[str] = (),
    ) -> None:
        """One edit of the issue: set ``fields`` (and ``description``, in the tracker's form, when given), and add
        and remove labels. The customer impact rollup writes through it."""
        raise NotImplementedError(f"{self.name}: this tracker cannot write the customer impact")

    def unlink_ticket(self, issue_key: str, link: TicketLink) -> bool:
        """Remove the issue's link to the ticket (written by ``link_ticket``); False when the issue had none."""
        raise NotImplementedError(f"{self.name}: this tracker cannot remove a link to a ticket")

    def issues_with_fix_version(self, version_id: str) -> list[Issue]:
        """Every issue fixed in the version (for a release's "fix shipped" notes)."""
        raise NotImplementedError(f"{self.name}: this tracker cannot list the issues of a version")

    def open_issues(self, refs: list[Ref]) -> dict[Ref, Issue]:
        """The issues among ``refs`` whose status category is not done, by the fewest calls the tracker allows
        (for ranking open issues by impact)."""
        raise NotImplementedError(f"{self.name}: this tracker cannot filter open issues")

    def replace_block(self, description: Any, block: ManagedBlock) -> tuple[Any, bool]:
        """The description (in the tracker's form, as ``get_issue`` read it) with the managed block replaced in
        place, or appended when absent; and whether the block differed. The default treats the description as
        Markdown text; a tracker with its own rich text overrides it."""
        return splice_lines(description, block.markdown, start=f"## {block.title}", end=f"_{block.end}_")


def splice_lines(text: Any, block: str, *, start: str, end: str) -> tuple[str, bool]:
    """Text with the lines from ``start`` to ``end`` replaced by ``block`` (appended if absent); and whether the
    block's lines differed from what was there."""
    lines = (text if isinstance(text, str) else "").replace("\r\n", "\n").split("\n")
    span = None
    for i, line in enumerate(lines):
        if line.strip() == start:
            span = next(((i, j + 1) for j in range(i + 1, len(lines)) if lines[j].strip() == end), None)
            break
    block_lines = block.strip("\n").split("\n")
    if span is None:
        body = "\n".join(lines).rstrip("\n")
        return (body + "\n\n" if body.strip() else "") + "\n".join(block_lines), True
    changed = "\n".join(lines[span[0] : span[1]]).strip() != block.strip()
    lines[span[0] : span[1]] = block_lines
    return "\n".join(lines), changed


def json_object(response: requests.Response) -> dict[str, Any] | None:
    """A response's body when it is a JSON object, else None (for reading vendors' error bodies)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 timestamp from a vendor's body (``2019-08-08T16:23:32.000+0000``) as a datetime, or None
    when it is absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
