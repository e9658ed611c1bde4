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

So ``find_customer`` makes at most 3 calls (2 when the company has no deals, 1 when the contact is unknown).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import quote

import requests
import requests.auth

from cxbridge.config import SystemConfig
from cxbridge.connectors import CRM, ConfigKey, json_object
from cxbridge.errors import ConfigError, NotFound
from cxbridge.http.auth import BearerAuth
from cxbridge.models import Customer, Deal, Ref
from cxbridge.secrets import Secret

log = logging.getLogger(__name__)

CONTACT_PROPERTIES = ("email", "firstname", "lastname", "lifecyclestage")
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


class HubSpotConnector(CRM):
    """Resolves a requester to a HubSpot contact, company and open deals; writes notes on their timelines."""

    system: ClassVar[str] = "hubspot"
    cloud_domains: ClassVar[tuple[str, ...]] = ("api.hubapi.com",)
    capabilities: ClassVar[frozenset[str]] = frozenset({"notes", "deals", "associations_v4"})
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
    }

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

    @property
    def closed_stages(self) -> frozenset[str]:
        """Deal stages that mean a deal is no longer open."""
        return frozenset(str(s) for s in self._option("closed_deal_stages"))

    # -- Connector ----------------------------------------------------------------------------------------
    def check(self) -> str:
        """One cheap authenticated read (the first contact)."""
        self.http.get("/crm/v3/objects/contacts", op="contacts.list", params={"limit": 1})
        return "authenticated (private app token)"

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
            log.warning("%s: contact %s names company %s, which does not exist", self.name, contact["id"], company_id)
            return customer
        cprops = company.get("properties") or {}
        customer.company_ref = Ref(self.name, "company", str(company["id"]))
        customer.name = _text(cprops.get("name"))
        customer.domain = _text(cprops.get("domain"))
        customer.tier = _text(cprops.get(tier_p))
        customer.arr = _decimal(cprops.get(arr_p))
        customer.currency = str(self._option("currency"))
        customer.owner = _text(cprops.get(owner_p))
        customer.renewal_date = _date(cprops.get(renewal_p))
        deal_ids = _associated_ids(company.get("associations") or {}, "deals")
        if deal_ids:
            customer.deals = self._open_deals(deal_ids)
        return customer

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
