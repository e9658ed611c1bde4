"""The HubSpot connector (CRM role): who the customer is, what they are worth, and notes on their timeline.

Every call is a documented CRM operation (``shared/specs/hubspot/``):

- ``GET /crm/v3/objects/contacts?limit=1`` for ``check()``;
- ``GET /crm/v3/objects/contacts/{email}?idProperty=email&associations=companies`` (404: unknown customer);
- ``GET /crm/v3/objects/companies/{id}?associations=deals`` with the configured property names;
- ``POST /crm/v3/objects/deals/batch/read`` for the company's deals (only when it has any);
- ``POST /crm/v3/objects/notes`` with associations to the contact (202), company (190) and ticket (228);
- ``GET /crm/v4/objects/contacts/{id}/associations/notes`` + ``POST /crm/v3/objects/notes/batch/read`` to
  find a note by its marker. This path, not CRM search, is used on purpose: search reads an index that lags
  behind writes, and ``find_note`` exists to resume right after a crash, when the note may be seconds old.

- ``GET /crm/v3/owners/{ownerId}`` for the account owner's name and email (once per owner and connector);
- ``POST /crm/v3/objects/companies/search`` (``domain`` or ``name`` EQ) for ``find_company``, when no contact
  has the requester's email.

So ``find_customer`` makes at most 4 calls (the owner read once per owner; 1 when the contact is unknown).
``get_customer`` (a company by reference, for the impact refresh) is the same company read and deals batch.

As a helpdesk, HubSpot tickets (object type ``tickets``, spec ``crm-tickets-v3.json``):

- ``get_ticket``: ``GET /crm/v3/objects/tickets/{id}?properties=...&associations=contacts,companies`` then
  ``GET /crm/v3/objects/contacts/{id}?properties=email,firstname,lastname,company`` for the first associated
  contact (the requester): 2 calls (1 for a ticket without a contact). ``Ticket.organization`` is the contact's
  ``company`` property (no third read: the CRM lookup reads the company itself);
- ``list_comments``: the ticket's notes, ``GET /crm/v4/objects/tickets/{id}/associations/notes`` (500 a page)
  and ``POST /crm/v3/objects/notes/batch/read`` (100 a call): 1 + ceil(notes / 100) calls;
- ``record_escalation``: ``PATCH /crm/v3/objects/tickets/{id}`` (issue key + escalation property, only what
  differs) and ``POST /crm/v3/objects/notes`` associated with the ticket (228): 2 calls. HubSpot tickets have
  no tags: ``tag`` maps to the escalation property set to ``escalate_value`` (the tag text is not stored);
- ``set_status``: a one-property read, then ``PATCH`` of ``hs_pipeline_stage`` when it differs;
- ``changed_tickets``: ``POST /crm/v3/objects/tickets/search`` on ``hs_lastmodifieddate`` (GTE, ascending,
  100 a page).

As a CRM polled by ``cxbridge sync`` (the ``companies`` stream): ``changed_companies``,
``POST /crm/v3/objects/companies/search`` on ``hs_lastmodifieddate`` (GTE, ascending, 200 a page), restricted
by ``hs_object_id IN`` to the linked companies when there are at most 100 of them.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import quote

import requests
import requests.auth

from cxbridge.sdk import (
    CRM,
    CRM_ROLE,
    HELPDESK,
    AuthError,
    BadReference,
    BearerAuth,
    ChangedCompany,
    Comment,
    ConfigError,
    ConfigKey,
    ConfigUpdate,
    Customer,
    CustomerChanged,
    CxbridgeError,
    Deal,
    EscalationRequested,
    Event,
    Finding,
    Helpdesk,
    HttpClient,
    Needs,
    NotFound,
    Page,
    Person,
    PlanItem,
    Ref,
    Secret,
    SetupContext,
    Signal,
    SystemConfig,
    Ticket,
    TicketStateObserved,
    Triggers,
    VendorError,
    json_object,
)

from .setup import HubSpotSetup
from .webhook import classic_kind

log = logging.getLogger(__name__)

CONTACT_PROPERTIES = ("email", "firstname", "lastname", "lifecyclestage")
COMPANY_PROPERTY_KEYS: dict[str, tuple[str, ...]] = {
    "tier_property": (),
    "arr_property": ("number",),
    "renewal_date_property": ("date", "datetime"),
    "owner_property": (),
}
"""The config keys naming company properties cxbridge reads, with the property types that hold what it reads."""
TICKET_PROPERTY_KEYS = ("escalate_property", "issue_key_property")
"""The config keys naming ticket properties, when HubSpot tickets are the helpdesk."""
DEAL_PROPERTIES = ("dealname", "dealstage", "amount", "closedate", "deal_currency_code")

# HubSpot-defined association type ids (developers.hubspot.com associations overview; VENDOR-APIS.md 2.3).
NOTE_TO_CONTACT = 202
NOTE_TO_COMPANY = 190
NOTE_TO_TICKET = 228

BATCH_READ_MAX = 100
"""The most ids one batch read accepts."""
ASSOCIATIONS_PAGE = 500
"""The largest page of the v4 associations list."""
MAX_ASSOCIATION_PAGES = 100
"""A guard against a pagination loop (50,000 notes on one contact)."""

MARKER_PREFIX = "cxbridge: "
_MESSAGE_CAP = 500

TICKET_PROPERTIES = (
    "subject",
    "content",
    "hs_pipeline",
    "hs_pipeline_stage",
    "hs_ticket_priority",
    "createdate",
    "hs_lastmodifieddate",
)
REQUESTER_PROPERTIES = ("email", "firstname", "lastname", "company")
NOTE_PROPERTIES = ("hs_note_body", "hs_timestamp", "hs_createdate", "hubspot_owner_id")
TICKET_PRIORITIES = {"LOW": "low", "MEDIUM": "normal", "HIGH": "high", "URGENT": "urgent"}
"""HubSpot's ``hs_ticket_priority`` options in the helpdesk-neutral words the priority table uses."""
SEARCH_PAGE = 100
"""Tickets per search request when scanning for changes."""
COMPANY_SEARCH_PAGE = 200
"""Companies per search request when scanning for changes (the search endpoint's maximum ``limit``)."""
IN_MAX_VALUES = 100
"""At most this many linked company ids go into one ``IN`` filter; with more, the scan reads every change."""
SEARCH_CAP = 10_000
"""HubSpot returns at most this many results of one search query (``after`` beyond it is refused)."""
MAX_SEARCH_PAGES = 10_000
"""A guard against a scan that makes no progress."""
ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9_]*-[1-9][0-9]*")
DEFAULT_APP_URL = "https://app.hubspot.com"
FALSE_VALUES = frozenset({"", "false", "0", "no", "off", "none", "null"})
"""Property values that do not ask for an escalation (a checkbox unticked, a cleared field)."""


class HubSpotConnector(CRM, Helpdesk):
    """HubSpot as the CRM (contact, company, open deals, timeline notes) and as a helpdesk (its tickets).

    A ticket's notes are its internal comments; the issue key goes into a ticket property
    (``issue_key_property``); an agent escalates by setting ``escalate_property`` to ``escalate_value``.
    """

    system: ClassVar[str] = "hubspot"
    roles: ClassVar[frozenset[str]] = frozenset({CRM_ROLE, HELPDESK})
    cloud_domains: ClassVar[tuple[str, ...]] = ("api.hubapi.com",)
    primary_roles: ClassVar[frozenset[str]] = frozenset({CRM_ROLE})
    template_aliases: ClassVar[Mapping[str, str]] = {"crm_note.html.j2": "hubspot_note.html.j2"}
    default_headers: ClassVar[Mapping[str, str]] = {"Accept": "application/json"}
    config_keys: ClassVar[Mapping[str, ConfigKey]] = {
        "access_token": ConfigKey(Secret, required=True, help="a private app (or OAuth) access token"),
        "tier_property": ConfigKey(str, default="tier", help="company property holding the customer tier"),
        "arr_property": ConfigKey(str, default="annualrevenue", help="company property holding ARR"),
        "renewal_date_property": ConfigKey(
            str, default="renewal_date", help="company property holding the renewal date"
        ),
        "owner_property": ConfigKey(str, default="hubspot_owner_id", help="company property naming the owner"),
        "currency": ConfigKey(str, default="USD", help="currency of the ARR property"),
        "closed_deal_stages": ConfigKey(
            list, default=["closedwon", "closedlost"], help="deal stages that are not open"
        ),
        "escalate_property": ConfigKey(
            str, default="cxbridge_escalate", help="ticket property an agent sets to escalate the ticket"
        ),
        "escalate_value": ConfigKey(str, default="true", help="the value of escalate_property that escalates"),
        "closed_ticket_stages": ConfigKey(
            list,
            default=["4"],
            help="ticket pipeline stage ids that mean closed (4: Closed in the default support pipeline)",
        ),
        "issue_key_property": ConfigKey(
            str, default="cxbridge_issue_key", help="ticket property (text) that holds the tracker issue key"
        ),
        "portal_id": ConfigKey((str, int), help="the HubSpot account (portal) id, for ticket links in the HubSpot app"),
        "app_id": ConfigKey((str, int), help="the public app's id, for 'cxbridge setup' to register its webhooks"),
        "developer_api_key": ConfigKey(
            Secret, help="the developer account's API key, for the app's webhooks API ('cxbridge setup')"
        ),
        "app_url": ConfigKey(
            str, default=DEFAULT_APP_URL, help="the HubSpot app's origin (https://app-eu1.hubspot.com in the EU)"
        ),
    }

    def __init__(self, config: SystemConfig, http: HttpClient) -> None:
        super().__init__(config, http)
        self._owners: dict[str, tuple[str | None, str | None]] = {}
        """Owner id -> (name, email), read once per owner by this connector."""
        self._stages: dict[str, tuple[str, bool]] | None = None
        """Ticket pipeline stage id -> (label, closed), read once by this connector."""

    @classmethod
    def make_auth(cls, config: SystemConfig) -> requests.auth.AuthBase:
        """``Authorization: Bearer <access_token>``."""
        token = config.get("access_token")
        if not isinstance(token, Secret) or not token:
            raise ConfigError(
                f"systems.{config.name}.access_token: the HubSpot system {config.name!r} needs a token "
                f'({{ env = "NAME" }} or {{ file = "path" }})'
            )
        return BearerAuth(token)

    @staticmethod
    def error_message(response: requests.Response) -> str | None:
        """HubSpot's words: the ``Error`` body's ``message`` and ``category``, or a 429 body's ``message``."""
        body = json_object(response)
        if body is None:
            return None
        message = body.get("message")
        if not isinstance(message, str) or not message:
            return None
        extra = [body[k] for k in ("category", "errorType", "policyName") if isinstance(body.get(k), str)]
        details = [
            e["message"]
            for e in body.get("errors") or []
            if isinstance(e, dict) and isinstance(e.get("message"), str) and e["message"] != message
        ]
        text = message
        if extra:
            text += f" ({', '.join(extra)})"
        if details:
            text += ": " + "; ".join(details)
        return text if len(text) <= _MESSAGE_CAP else text[: _MESSAGE_CAP - 3] + "..."

    # -- options ------------------------------------------------------------------------------------------
    def _option(self, key: str) -> Any:
        value = self.config.get(key)
        return self.config_keys[key].default if value is None else value

    def option(self, key: str) -> Any:
        """A configured option of this system, or its default."""
        return self._option(key)

    # -- provisioning ------------------------------------------------------------------------------------
    def plan_setup(self, setup: SetupContext) -> list[PlanItem]:
        """The company properties (as the CRM), the ticket properties and the app's webhooks (as the helpdesk)."""
        return HubSpotSetup(self).plan(setup)

    def apply_setup(self, item: PlanItem, setup: SetupContext) -> list[ConfigUpdate]:
        """Create a property (and its group) or set up the app's webhooks; nothing to write back."""
        return HubSpotSetup(self).apply(item, setup)

    @property
    def closed_stages(self) -> frozenset[str]:
        """Deal stages that mean a deal is no longer open."""
        return frozenset(str(s) for s in self._option("closed_deal_stages"))

    # -- Connector ----------------------------------------------------------------------------------------
    def check(self) -> str:
        """One cheap authenticated read (the first contact)."""
        self.http.get("/crm/v3/objects/contacts", op="contacts.list", params={"limit": 1})
        return "authenticated (private app token)"

    def diagnose(self, needs: Needs) -> list[Finding]:
        """Every property the configuration names exists (``GET /crm/v3/properties/{objectType}/{propertyName}``,
        Read a property) and holds the kind of value read: the company properties when this is the CRM, the ticket
        properties when it is the helpdesk."""
        findings: list[Finding] = []
        wanted: list[tuple[str, str, tuple[str, ...]]] = []
        if CRM_ROLE in needs.roles:
            wanted += [(key, "companies", kinds) for key, kinds in COMPANY_PROPERTY_KEYS.items()]
        if HELPDESK in needs.roles:
            wanted += [(key, "tickets", ()) for key in TICKET_PROPERTY_KEYS]
        for key, object_type, kinds in wanted:
            name = self.config.get(key)
            if not isinstance(name, str) or not name:
                continue
            singular = object_type.removesuffix("s").removesuffix("ie") + ("y" if object_type == "companies" else "")
            subject = f"{singular} property {name} ({key})"
            fix = (
                f"set systems.{self.name}.{key} to an existing {singular} property's internal name (Settings > "
                "Properties), or run 'cxbridge setup --apply' to create it"
            )
            try:
                path = f"/crm/v3/properties/{object_type}/{quote(name, safe='')}"
                prop = self.http.get(path, op="properties.get").json()
            except CxbridgeError as exc:
                findings.append(Finding.from_error(subject, exc, fix))
                continue
            kind = str(prop.get("type") or "") if isinstance(prop, dict) else ""
            if kinds and kind not in kinds:
                message = f"it is a {kind or 'untyped'} property; cxbridge reads a {' or '.join(kinds)}"
                findings.append(Finding.failed(subject, message, fix))
            else:
                findings.append(Finding.ok(subject, f"{prop.get('label') or name} ({kind})"))
        return findings

    # -- CRM ----------------------------------------------------------------------------------------------
    def find_customer(self, email: str) -> Customer:
        """The contact by email, its primary company and the company's open deals (at most 3 calls)."""
        if not isinstance(email, str) or "@" not in email.strip():
            return Customer.unknown()
        try:
            contact = self.http.get(
                f"/crm/v3/objects/contacts/{quote(email.strip(), safe='')}",
                op="contacts.by_email",
                params={
                    "idProperty": "email",
                    "properties": ",".join(CONTACT_PROPERTIES),
                    "associations": "companies",
                },
            ).json()
        except NotFound:
            return Customer.unknown()
        props = contact.get("properties") or {}
        customer = Customer(
            company_ref=None,
            contact_ref=Ref(self.name, "contact", str(contact["id"])),
            lifecycle_stage=_text(props.get("lifecyclestage")),
        )
        company_id = _primary_company(contact.get("associations") or {})
        if company_id is None:
            return customer
        if not self._fill_company(customer, company_id):
            log.warning("%s: contact %s names company %s, which does not exist", self.name, contact["id"], company_id)
        return customer

    def get_customer(self, company_ref: Ref) -> Customer:
        """The company as HubSpot holds it now, with its open deals (1 call, 2 when it has deals).

        The same read as ``find_customer``'s company step. A company HubSpot no longer has (404) gives a
        Customer with ``known=False`` that keeps ``company_ref``, so the impact refresh can tell it apart.
        """
        if company_ref.kind != "company" or company_ref.system not in (self.name, self.system):
            raise ValueError(f"{self.name}: {company_ref} is not a company of this CRM")
        customer = Customer(company_ref=None, contact_ref=None)
        if not self._fill_company(customer, company_ref.id):
            return Customer(company_ref=company_ref, contact_ref=None, known=False)
        return customer

    def find_company(self, *, domain: str | None = None, name: str | None = None) -> Customer:
        """The company by its ``domain`` property (or ``name``), with its open deals (3 calls at most; 1 when none).

        ``POST /crm/v3/objects/companies/search`` with one ``EQ`` filter (HubSpot compares text case-insensitively),
        at most 2 results: two companies with that domain or name are ambiguous and give ``Customer.unknown()``
        (logged), as does none. Then the company read of ``find_customer``. The search index lags writes by
        seconds, which matters not for companies that exist before their tickets.
        """
        prop, value = ("domain", domain) if domain else ("name", name)
        text = (value or "").strip()
        if not text:
            return Customer.unknown()
        body = self.http.post(
            "/crm/v3/objects/companies/search",
            op="companies.search",
            json={
                "filterGroups": [{"filters": [{"propertyName": prop, "operator": "EQ", "value": text}]}],
                "properties": ["name", "domain"],
                "sorts": ["hs_object_id"],
                "limit": 2,
                "after": "0",
            },
        ).json()
        ids = [str(r["id"]) for r in body.get("results") or [] if isinstance(r, dict) and r.get("id") is not None]
        if len(ids) != 1:
            if ids:
                log.warning(
                    "%s: several companies have the %s %r; none is taken for the customer", self.name, prop, text
                )
            return Customer.unknown()
        customer = Customer(company_ref=None, contact_ref=None)
        return customer if self._fill_company(customer, ids[0]) else Customer.unknown()

    def owner(self, owner_id: str) -> tuple[str | None, str | None]:
        """The owner's name and email (``GET /crm/v3/owners/{ownerId}``, once per owner and connector); (None, None)
        when HubSpot has no such owner or the token may not read owners (``crm.objects.owners.read``)."""
        if owner_id in self._owners:
            return self._owners[owner_id]
        try:
            raw = self.http.get(f"/crm/v3/owners/{quote(owner_id, safe='')}", op="owners.show").json()
        except (NotFound, AuthError) as exc:
            log.warning("%s: owner %s cannot be read (%s); its id is shown instead", self.name, owner_id, exc)
            found: tuple[str | None, str | None] = (None, None)
        else:
            name = " ".join(p for p in (_text(raw.get("firstName")), _text(raw.get("lastName"))) if p) or None
            found = (name, _text(raw.get("email")))
        self._owners[owner_id] = found
        return found

    def _fill_company(self, customer: Customer, company_id: str) -> bool:
        """Read the company (with its deal ids) and its open deals into ``customer``; False when it is gone."""
        tier_p, arr_p = self._option("tier_property"), self._option("arr_property")
        renewal_p, owner_p = self._option("renewal_date_property"), self._option("owner_property")
        try:
            company = self.http.get(
                f"/crm/v3/objects/companies/{quote(company_id, safe='')}",
                op="companies.show",
                params={
                    "properties": ",".join(dict.fromkeys(["name", "domain", tier_p, arr_p, renewal_p, owner_p])),
                    "associations": "deals",
                },
            ).json()
        except NotFound:
            return False
        cprops = company.get("properties") or {}
        customer.company_ref = Ref(self.name, "company", str(company["id"]))
        customer.name = _text(cprops.get("name"))
        customer.domain = _text(cprops.get("domain"))
        customer.tier = _text(cprops.get(tier_p))
        customer.arr = _decimal(cprops.get(arr_p))
        customer.currency = str(self._option("currency"))
        owner_id = _text(cprops.get(owner_p))
        if owner_id is not None and owner_p == "hubspot_owner_id":
            name, customer.owner_email = self.owner(owner_id)
            customer.owner = name or customer.owner_email or owner_id
        else:  # a custom owner property holds the owner as text
            customer.owner = owner_id
        customer.renewal_date = _date(cprops.get(renewal_p))
        deal_ids = _associated_ids(company.get("associations") or {}, "deals")
        if deal_ids:
            customer.deals = self._open_deals(deal_ids)
        return True

    def _open_deals(self, deal_ids: list[str]) -> list[Deal]:
        closed = self.closed_stages
        deals: list[Deal] = []
        for chunk in _chunks(deal_ids, BATCH_READ_MAX):
            body = self.http.post(
                "/crm/v3/objects/deals/batch/read",
                op="deals.batch_read",
                json={
                    "inputs": [{"id": i} for i in chunk],
                    "properties": list(DEAL_PROPERTIES),
                    "propertiesWithHistory": [],
                },
            ).json()
            for raw in body.get("results") or []:
                props = raw.get("properties") or {}
                stage = _text(props.get("dealstage"))
                if stage is not None and stage in closed:
                    continue
                deals.append(
                    Deal(
                        ref=Ref(self.name, "deal", str(raw["id"])),
                        name=_text(props.get("dealname")) or "",
                        stage=stage,
                        amount=_decimal(props.get("amount")),
                        currency=_text(props.get("deal_currency_code")) or str(self._option("currency")),
                        close_date=_text(props.get("closedate")),
                    )
                )
        return deals

    def add_note(self, customer: Customer, body_html: str, *, marker: str, ticket: Ref | None = None) -> Ref:
        """One note on the contact's and company's timelines (and a HubSpot ticket's), findable by marker.

        The marker is appended as a last paragraph ``<p>cxbridge: MARKER</p>``. Raises ``ValueError`` for a
        customer the CRM does not know: a note without associations would be on no timeline at all.
        """
        if customer.contact_ref is None and customer.company_ref is None:
            raise ValueError("the customer is unknown to the CRM: there is no timeline to put a note on")
        associations: list[dict[str, Any]] = []
        for ref, type_id in (
            (customer.contact_ref, NOTE_TO_CONTACT),
            (customer.company_ref, NOTE_TO_COMPANY),
            (ticket if ticket is not None and self._is_own_ticket(ticket) else None, NOTE_TO_TICKET),
        ):
            if ref is not None:
                associations.append(
                    {
                        "to": {"id": ref.id},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
                    }
                )
        body = f"{body_html}<p>{MARKER_PREFIX}{html.escape(marker)}</p>"
        created = self.http.post(
            "/crm/v3/objects/notes",
            op="notes.create",
            json={
                "properties": {"hs_timestamp": _now_iso(), "hs_note_body": body},
                "associations": associations,
            },
            creates=True,
        ).json()
        return Ref(self.name, "note", str(created["id"]))

    def _is_own_ticket(self, ref: Ref) -> bool:
        return ref.kind == "ticket" and ref.system in (self.name, self.system)

    def find_note(self, customer: Customer, marker: str) -> Ref | None:
        """A note carrying the marker among the contact's (else the company's) notes, newest ids first."""
        if customer.contact_ref is not None:
            object_type, object_id = "contacts", customer.contact_ref.id
        elif customer.company_ref is not None:
            object_type, object_id = "companies", customer.company_ref.id
        else:
            return None
        return self._find_marked_note(object_type, object_id, marker)

    def _find_marked_note(self, object_type: str, object_id: str, marker: str) -> Ref | None:
        """A note of one record carrying ``<p>cxbridge: MARKER</p>``, newest ids first (None when absent)."""
        note_ids = self._associated_note_ids(object_type, object_id)
        note_ids.sort(key=lambda i: (len(i), i), reverse=True)
        # the marker as written (escaped) or as HubSpot may hand it back (unescaped), not as a prefix of another
        needle = re.compile(
            "|".join(re.escape(MARKER_PREFIX + m) for m in {html.escape(marker), marker}) + r"(?![\w.:-])"
        )
        for chunk in _chunks(note_ids, BATCH_READ_MAX):
            body = self.http.post(
                "/crm/v3/objects/notes/batch/read",
                op="notes.batch_read",
                json={
                    "inputs": [{"id": i} for i in chunk],
                    "properties": ["hs_note_body"],
                    "propertiesWithHistory": [],
                },
            ).json()
            for raw in body.get("results") or []:
                text = (raw.get("properties") or {}).get("hs_note_body") or ""
                if isinstance(text, str) and needle.search(text):
                    return Ref(self.name, "note", str(raw["id"]))
        return None

    def _associated_note_ids(self, object_type: str, object_id: str) -> list[str]:
        ids: list[str] = []
        params: dict[str, Any] = {"limit": ASSOCIATIONS_PAGE}
        seen: set[str] = set()
        for _ in range(MAX_ASSOCIATION_PAGES):
            body = self.http.get(
                f"/crm/v4/objects/{object_type}/{quote(object_id, safe='')}/associations/notes",
                op="associations.notes",
                params=params,
            ).json()
            for item in body.get("results") or []:
                to_id = item.get("toObjectId") if isinstance(item, dict) else None
                if to_id is not None:
                    ids.append(str(to_id))
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after or after in seen:
                break
            seen.add(after)
            params = {"limit": ASSOCIATIONS_PAGE, "after": after}
        return list(dict.fromkeys(ids))

    # -- Helpdesk (HubSpot tickets) -----------------------------------------------------------------------
    @property
    def escalate_property(self) -> str:
        """The ticket property an agent sets to ``escalate_value`` to escalate the ticket."""
        return str(self._option("escalate_property"))

    @property
    def escalate_value(self) -> str:
        """The value of ``escalate_property`` that means "escalate"."""
        return str(self._option("escalate_value"))

    @property
    def issue_key_property(self) -> str:
        """The ticket property that holds the tracker issue key."""
        return str(self._option("issue_key_property"))

    def _ticket_properties(self) -> list[str]:
        return list(dict.fromkeys([*TICKET_PROPERTIES, self.escalate_property, self.issue_key_property]))

    def ticket_url(self, ticket_id: str) -> str:
        """The ticket's record page in the HubSpot app: ``{app_url}/contacts/{portal_id}/record/0-5/{id}``."""
        portal = self.config.get("portal_id")
        if portal is None or isinstance(portal, bool) or not str(portal).strip().isdigit():
            raise ConfigError(
                f"systems.{self.name}.portal_id: the HubSpot account id is needed for ticket links "
                "(Settings > Account details, or the number in any HubSpot app URL)"
            )
        app = str(self._option("app_url")).rstrip("/")
        return f"{app}/contacts/{str(portal).strip()}/record/0-5/{_object_id(ticket_id)}"

    def get_ticket(self, ticket_id: str) -> Ticket:
        """The ticket with its properties and associations (1 call), and its first contact as the requester (1)."""
        tid = _object_id(ticket_id)
        raw = self.http.get(
            f"/crm/v3/objects/tickets/{tid}",
            op="tickets.show",
            params={"properties": ",".join(self._ticket_properties()), "associations": "contacts,companies"},
        ).json()
        if not isinstance(raw, dict) or raw.get("id") is None:
            raise VendorError(self.name, f"{self.name}: the ticket response holds no ticket")
        ticket = self._ticket_from(raw)
        contact_ids = _associated_ids(raw.get("associations") or {}, "contacts")
        if contact_ids:
            ticket.requester, ticket.organization = self._requester(contact_ids[0])
        return ticket

    def _requester(self, contact_id: str) -> tuple[Person, str | None]:
        ref = Ref(self.name, "contact", contact_id)
        try:
            contact = self.http.get(
                f"/crm/v3/objects/contacts/{quote(contact_id, safe='')}",
                op="contacts.show",
                params={"properties": ",".join(REQUESTER_PROPERTIES)},
            ).json()
        except NotFound:
            log.warning("%s: a ticket names contact %s, which does not exist", self.name, contact_id)
            return Person(ref=ref), None
        props = contact.get("properties") or {}
        name = " ".join(p for p in (_text(props.get("firstname")), _text(props.get("lastname"))) if p) or None
        return Person(name=name, email=_text(props.get("email")), ref=ref), _text(props.get("company"))

    def _ticket_from(self, raw: Mapping[str, Any]) -> Ticket:
        props = raw.get("properties") or {}
        tid = str(raw["id"])
        priority = _text(props.get("hs_ticket_priority"))
        return Ticket(
            ref=self.ticket_ref(tid),
            url=self.ticket_url(tid),
            subject=_text(props.get("subject")) or "",
            description=props.get("content") or "",
            status=_text(props.get("hs_pipeline_stage")),
            priority=TICKET_PRIORITIES.get(priority.upper(), priority.lower()) if priority else None,
            tags=[],
            custom_fields={
                name: props.get(name) for name in (self.escalate_property, self.issue_key_property, "hs_pipeline")
            },
            created_at=_parse_time(props.get("createdate") or raw.get("createdAt")),
            updated_at=_parse_time(props.get("hs_lastmodifieddate") or raw.get("updatedAt")),
            raw=dict(raw),
        )

    def list_comments(self, ticket_id: str) -> list[Comment]:
        """The ticket's notes (internal by nature), oldest first by ``hs_timestamp``, as plain text."""
        tid = _object_id(ticket_id)
        comments: list[Comment] = []
        for chunk in _chunks(self._associated_note_ids("tickets", tid), BATCH_READ_MAX):
            body = self.http.post(
                "/crm/v3/objects/notes/batch/read",
                op="notes.batch_read",
                json={
                    "inputs": [{"id": i} for i in chunk],
                    "properties": list(NOTE_PROPERTIES),
                    "propertiesWithHistory": [],
                },
            ).json()
            for raw in body.get("results") or []:
                if isinstance(raw, dict) and raw.get("id") is not None:
                    comments.append(self._comment_from(raw))
        comments.sort(
            key=lambda c: (c.created_at is None, c.created_at or datetime.min.replace(tzinfo=UTC), int(c.ref.id))
        )
        return comments

    def _comment_from(self, raw: Mapping[str, Any]) -> Comment:
        props = raw.get("properties") or {}
        owner = _text(props.get("hubspot_owner_id"))
        return Comment(
            ref=Ref(self.name, "note", str(raw["id"])),
            body=html_to_text(props.get("hs_note_body") or ""),
            public=False,
            author=Person(ref=Ref(self.name, "owner", owner)) if owner else None,
            created_at=_parse_time(props.get("hs_timestamp") or props.get("hs_createdate") or raw.get("createdAt")),
        )

    def add_internal_note(self, ticket_id: str, body: str) -> None:
        """A note on the ticket's timeline (plain text, sent as HTML paragraphs); a create, so never retried."""
        self._ticket_note(_object_id(ticket_id), text_to_html(body))

    def _ticket_note(self, ticket_id: str, body_html: str) -> str:
        created = self.http.post(
            "/crm/v3/objects/notes",
            op="notes.create",
            json={
                "properties": {"hs_timestamp": _now_iso(), "hs_note_body": body_html},
                "associations": [
                    {
                        "to": {"id": ticket_id},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_TICKET}],
                    }
                ],
            },
            creates=True,
        ).json()
        return str(created["id"])

    def record_escalation(
        self, ticket: Ticket, *, note: str, tag: str, issue_key: str, issue_url: str, first_attempt: bool = False
    ) -> bool:
        """The issue key (and the escalation property, HubSpot's stand-in for ``tag``) and one note on the ticket.

        HubSpot cannot write a property and a note in one call, so the PATCH comes first (only the properties
        that differ) and the note, marked ``cxbridge: escalated KEY``, second. When the ticket already holds
        the key and the escalation value, the update was applied before (or the agent typed the key to join
        the issue): the ticket's notes are read for the marker and the note is written only if it is missing,
        so a crash between the two calls, or a rerun, leaves exactly one note. Returns False when nothing
        was written.
        """
        tid = _object_id(ticket.ref.id)
        wanted = {self.issue_key_property: issue_key, self.escalate_property: self.escalate_value}
        changes = {k: v for k, v in wanted.items() if _text(ticket.custom_fields.get(k)) != v}
        marker = f"escalated {issue_key}"
        if not changes:
            if self._find_marked_note("tickets", tid, marker) is not None:
                self.unchanged("record_escalation", str(ticket.ref))
                return False
        else:
            self.http.patch(f"/crm/v3/objects/tickets/{tid}", op="tickets.escalate", json={"properties": changes})
        self._ticket_note(tid, f"{text_to_html(note)}<p>{MARKER_PREFIX}{html.escape(marker)}</p>")
        return True

    def set_status(self, ticket_id: str, status: str) -> bool:
        """Move the ticket to the pipeline stage ``status`` (a stage id of its pipeline); False when it is there.

        One read of ``hs_pipeline_stage``, then a PATCH when it differs (HubSpot refuses a stage that is not
        in the ticket's pipeline with 400).
        """
        tid = _object_id(ticket_id)
        stage = str(status).strip()
        if not stage:
            raise ConfigError(f"{self.name}: an empty pipeline stage is not a ticket status")
        current = self.http.get(
            f"/crm/v3/objects/tickets/{tid}", op="tickets.stage", params={"properties": "hs_pipeline_stage"}
        ).json()
        if _text((current.get("properties") or {}).get("hs_pipeline_stage")) == stage:
            self.unchanged("set_status", str(self.ticket_ref(tid)))
            return False
        self.http.patch(
            f"/crm/v3/objects/tickets/{tid}", op="tickets.status", json={"properties": {"hs_pipeline_stage": stage}}
        )
        return True

    def requested_issue_key(self, ticket: Ticket) -> str | None:
        """The issue key an agent typed into ``issue_key_property`` (``ENG-12``), or None."""
        value = _text(ticket.custom_fields.get(self.issue_key_property))
        if value is None:
            return None
        key = value.upper()
        return key if ISSUE_KEY.fullmatch(key) else None

    def wants_escalation(self, ticket: Ticket, triggers: Triggers) -> bool:
        """Whether the ticket's escalation property holds the configured value (the trigger, as read)."""
        return _text(ticket.custom_fields.get(self.escalate_property)) == self.escalate_value

    def ticket_stages(self) -> dict[str, tuple[str, bool]]:
        """Every ticket pipeline stage: id -> (label, closed by its ``metadata.ticketState``), read once per
        connector (``GET /crm/v3/pipelines/tickets``, HubSpot's CRM pipelines API); empty when the token may not
        read pipelines."""
        if self._stages is None:
            stages: dict[str, tuple[str, bool]] = {}
            try:
                body = self.http.get("/crm/v3/pipelines/tickets", op="pipelines.tickets").json()
            except (AuthError, NotFound) as exc:
                log.warning("%s: ticket pipelines cannot be read (%s); stages are shown by id", self.name, exc)
                body = {}
            for pipeline in body.get("results") or []:
                for stage in (pipeline.get("stages") if isinstance(pipeline, dict) else None) or []:
                    if isinstance(stage, dict) and stage.get("id") is not None:
                        state = (stage.get("metadata") or {}).get("ticketState")
                        stages[str(stage["id"])] = (str(stage.get("label") or stage["id"]), state == "CLOSED")
            self._stages = stages
        return self._stages

    def status_name(self, status: str | None) -> str | None:
        """A pipeline stage's label (``Waiting on us`` for ``3``); None when HubSpot does not tell."""
        return None if status is None else (self.ticket_stages().get(str(status).strip()) or (None, False))[0]

    def ticket_closed(self, status: str | None) -> bool:
        """Whether a pipeline stage is closed: its ``ticketState`` is CLOSED, or it is one of
        ``closed_ticket_stages``."""
        if status is None:
            return False
        stage = str(status).strip()
        known = self.ticket_stages().get(stage)
        return (known is not None and known[1]) or stage in {str(s) for s in self._option("closed_ticket_stages")}

    def interpret(self, event: Event, triggers: Triggers) -> list[Signal]:
        """A ``ticket.propertyChange`` of ``escalate_property`` to ``escalate_value`` (any value that is not
        false-like when ``escalate_value`` is empty) is an ``EscalationRequested``; of ``hs_pipeline_stage`` a
        ``TicketStateObserved``. A ``company.propertyChange`` of a property the customer impact reads (name,
        domain, tier, ARR, renewal date, owner) is a ``CustomerChanged``. Anything else means nothing.

        A generic ``object.propertyChange`` about a ticket (``0-5``) or a company (``0-2``) means the same."""
        kind = classic_kind(event)
        if kind == "company.propertyChange" and event.subject.kind == "company":
            name = event.payload.get("propertyName")
            watched = {"name", "domain", *(self._option(k) for k in COMPANY_PROPERTY_KEYS)}
            if name not in watched:
                return []
            return [CustomerChanged(company=Ref(self.name, "company", event.subject.id), properties=(str(name),))]
        if kind != "ticket.propertyChange" or event.subject.kind != "ticket":
            return []
        if event.payload.get("propertyName") == "hs_pipeline_stage":
            stage = event.payload.get("propertyValue")
            return [
                TicketStateObserved(
                    ticket=Ref(self.name, "ticket", event.subject.id),
                    status=None if stage is None else str(stage),
                    actor=event.actor,
                )
            ]
        if event.payload.get("propertyName") != self.escalate_property:
            return []
        value = event.payload.get("propertyValue")
        text = "" if value is None else str(value).strip().lower()
        expected = self.escalate_value.strip().lower()
        if (expected and text != expected) or (not expected and text in FALSE_VALUES):
            return []
        return [EscalationRequested(ticket=Ref(self.name, "ticket", event.subject.id), actor=event.actor, fresh=True)]

    def changed_tickets(self, cursor: dict[str, Any] | None, *, since: float) -> Iterator[Page]:
        """Tickets modified since ``since`` (epoch seconds), or after a saved ``cursor``, one Page per request.

        CRM search ``hs_lastmodifieddate GTE t`` sorted ascending, 100 a page (``_scan_modified``). Search
        results carry properties only: a ticket's ``requester`` is None (``get_ticket`` reads it in full when it
        is acted on). The search index lags writes by seconds.
        """
        yield from self._scan_modified(
            "tickets", self._ticket_properties(), cursor, since, SEARCH_PAGE, [], self._ticket_from
        )

    def changed_companies(
        self, cursor: dict[str, Any] | None, *, since: float, company_ids: Collection[str] | None = None
    ) -> Iterator[Page]:
        """Companies modified since ``since`` (epoch seconds), or after a saved ``cursor``, as ``ChangedCompany``.

        ``POST /crm/v3/objects/companies/search`` on ``hs_lastmodifieddate`` (GTE, ascending), 200 a page (the
        endpoint's maximum), with the properties the impact reads (name, domain, tier, ARR, renewal date, owner).
        With ``company_ids`` (the linked companies) of at most ``IN_MAX_VALUES``, an ``hs_object_id IN`` filter
        restricts the query to them: one request, usually empty. With more, every modified company is read and
        the others dropped here (still fewer calls than one read per linked company). Keyset paging as in
        ``_scan_modified``: HubSpot's 10,000-result cap of one query is met by restarting from the last modified
        time seen, so the checkpoint moves forward past the cap.
        """
        wanted = None if company_ids is None else {str(i) for i in company_ids}
        if wanted is not None and not wanted:
            return
        extra: list[dict[str, Any]] = []
        if wanted is not None and len(wanted) <= IN_MAX_VALUES:
            extra.append({"propertyName": "hs_object_id", "operator": "IN", "values": sorted(wanted, key=_id_order)})
        names = list(dict.fromkeys(["name", "domain", "hs_lastmodifieddate", *self._company_properties()]))

        def changed(raw: Mapping[str, Any]) -> ChangedCompany | None:
            if wanted is not None and str(raw["id"]) not in wanted:
                return None
            props = raw.get("properties") or {}
            return ChangedCompany(
                ref=Ref(self.name, "company", str(raw["id"])),
                updated_at=_parse_time(props.get("hs_lastmodifieddate") or raw.get("updatedAt")),
                properties={n: _text(props.get(n)) for n in names if n != "hs_lastmodifieddate"},
            )

        yield from self._scan_modified("companies", names, cursor, since, COMPANY_SEARCH_PAGE, extra, changed)

    def _company_properties(self) -> list[str]:
        return [str(self._option(k)) for k in COMPANY_PROPERTY_KEYS]

    def _scan_modified(
        self,
        object_type: str,
        properties: list[str],
        cursor: dict[str, Any] | None,
        since: float,
        page_size: int,
        extra_filters: list[dict[str, Any]],
        build: Callable[[Mapping[str, Any]], Any | None],
    ) -> Iterator[Page]:
        """CRM search of ``object_type`` on ``hs_lastmodifieddate GTE t`` sorted ascending, one Page per request.

        Each request restarts the query from the last modified time seen (keyset paging): a record modified
        during the scan moves to the end instead of shifting an offset window (which would skip another one),
        and HubSpot's 10,000-result cap of one query is never reached. Records at exactly that millisecond that
        were already yielded are skipped by id; ``after`` pages on only through a run of more than a page of
        records sharing one millisecond. The cursor ``{"modified_ms", "ids"}`` resumes after the last record
        seen, also on the next run. ``build`` turns a result into the page's item (None: not one to yield).
        """
        saved = cursor or {}
        if isinstance(saved.get("modified_ms"), int):
            last_ms, last_ids = int(saved["modified_ms"]), {str(i) for i in saved.get("ids") or []}
        else:
            last_ms, last_ids = int(since * 1000), set()
        query_ms, offset = last_ms, 0
        for _ in range(MAX_SEARCH_PAGES):
            modified = {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(query_ms)}
            body = self.http.post(
                f"/crm/v3/objects/{object_type}/search",
                op=f"{object_type}.search",
                json={
                    "filterGroups": [{"filters": [modified, *extra_filters]}],
                    "sorts": ["hs_lastmodifieddate"],
                    "properties": properties,
                    "limit": page_size,
                    "after": str(offset),
                },
            ).json()
            items: list[Any] = []
            for raw in body.get("results") or []:
                if not isinstance(raw, dict) or raw.get("id") is None:
                    continue
                rid = str(raw["id"])
                ms = _epoch_ms((raw.get("properties") or {}).get("hs_lastmodifieddate") or raw.get("updatedAt"))
                if ms is not None and (ms < last_ms or (ms == last_ms and rid in last_ids)):
                    continue
                item = build(raw)
                if item is not None:
                    items.append(item)
                if ms is not None and ms > last_ms:
                    last_ms, last_ids = ms, {rid}
                elif ms is not None:
                    last_ids.add(rid)
            after = str(((body.get("paging") or {}).get("next") or {}).get("after") or "")
            done = not after
            if not done:
                if last_ms > query_ms:
                    query_ms, offset = last_ms, 0
                elif after.isdigit() and int(after) < SEARCH_CAP:
                    offset = int(after)
                else:
                    log.warning(
                        "%s: more than %d %s share one modified time; the scan stops there",
                        self.name,
                        SEARCH_CAP,
                        object_type,
                    )
                    done = True
            yield Page(items, {"modified_ms": last_ms, "ids": sorted(last_ids, key=_id_order)}, done)
            if done:
                return
        raise VendorError(
            self.name, f"{self.name}: the {object_type} scan made no progress in {MAX_SEARCH_PAGES} pages"
        )


def _id_order(value: str) -> tuple[int, str]:
    return (len(value), value)


def _primary_company(associations: Mapping[str, Any]) -> str | None:
    """The contact's primary company (association type ``contact_to_company``), else the first one."""
    results = (associations.get("companies") or {}).get("results") or []
    first: str | None = None
    for item in results:
        if not isinstance(item, dict) or item.get("id") is None:
            continue
        if item.get("type") == "contact_to_company":
            return str(item["id"])
        if first is None:
            first = str(item["id"])
    return first


def _associated_ids(associations: Mapping[str, Any], to_type: str) -> list[str]:
    results = (associations.get(to_type) or {}).get("results") or []
    return list(dict.fromkeys(str(i["id"]) for i in results if isinstance(i, dict) and i.get("id") is not None))


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _text(value: Any) -> str | None:
    """A property value: HubSpot sends strings, and an empty string means no value."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _decimal(value: Any) -> Decimal | None:
    text = _text(value)
    if text is None:
        return None
    try:
        number = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _date(value: Any) -> str | None:
    """A date property as ``YYYY-MM-DD`` (HubSpot may send ISO text or epoch milliseconds)."""
    text = _text(value)
    if text is None:
        return None
    if text.isascii() and text.isdigit() and 10 <= len(text) <= 15:
        try:
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC).date().isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    return text[:10] if len(text) >= 10 and text[4:5] == "-" and text[7:8] == "-" else text


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _object_id(object_id: str | int) -> str:
    """A HubSpot record id as it goes into a path: digits only, so no value can change the path."""
    text = str(object_id).strip()
    if not text.isdigit() or not text.isascii():
        raise BadReference(f"not a HubSpot record id: {object_id!r}")
    return text


def _parse_time(value: Any) -> datetime | None:
    """A HubSpot timestamp (ISO 8601, or epoch milliseconds) as an aware datetime."""
    text = _text(value)
    if text is None:
        return None
    if text.isascii() and text.isdigit():
        try:
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _epoch_ms(value: Any) -> int | None:
    moment = _parse_time(value)
    return None if moment is None else round(moment.timestamp() * 1000)


def text_to_html(text: str) -> str:
    """Plain text as the HTML a HubSpot note body holds: escaped, blank lines make paragraphs, lines ``<br>``."""
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]
    return "".join("<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>" for p in paragraphs)


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment, with line breaks where blocks and ``<br>`` end."""

    BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BREAKS and tag != "br":
            self.parts.append("\n\n" if tag == "p" else "\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(body: str) -> str:
    """A note body (HTML) as plain text: tags dropped, entities decoded, paragraphs kept apart."""
    parser = _TextExtractor()
    parser.feed(str(body))
    parser.close()
    text = "".join(parser.parts)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
