"""State and rules of the HubSpot emulator: CRM objects, their property schema, associations and subscriptions.

Everything a HubSpot portal would enforce lives here (unique emails, known properties, enumeration options,
pipeline stages, association types per object pair, search semantics); ``routes.py`` only parses requests and
shapes answers. Rules raise ``VendorFault`` with HubSpot's error bodies (``errors.py``).
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from . import errors

INTEGRATION = "INTEGRATION"
CRM_UI = "CRM_UI"

SEARCH_MAX_LIMIT = 200
SEARCH_MAX_RESULTS = 10_000
LIST_MAX_LIMIT = 100
BATCH_MAX_INPUTS = 100
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
ASSOCIATIONS_MAX_LIMIT = 500


def iso_ms(ts: float) -> str:
    """RFC 3339 with milliseconds and ``Z``, as HubSpot writes timestamps."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_moment(value: str) -> float | None:
    """Epoch seconds for an ISO date, ISO date-time or epoch-milliseconds string; None when it is none of them."""
    text = value.strip()
    if re.fullmatch(r"-?\d{10,}", text):
        return int(text) / 1000.0
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- the property schema ---------------------------------------------------------------------------------------


PROPERTY_KINDS = frozenset({"string", "number", "date", "datetime", "bool", "enumeration"})


@dataclass
class PropertyDef:
    """One property of an object type: its kind (string, number, date, datetime, bool, enumeration) and options;
    what the properties API shows besides (label, fieldType, group) when it was created through it."""

    name: str
    kind: str = "string"
    options: tuple[str, ...] = ()
    read_only: bool = False
    custom: bool = False
    label: str = ""
    field_type: str = ""
    group: str = ""
    description: str = ""


@dataclass(frozen=True)
class ObjectType:
    """One CRM object type with the names HubSpot knows it by and its standard property behaviour."""

    name: str
    singular: str
    type_id: str
    created_property: str
    modified_property: str
    defaults: tuple[str, ...]
    searchable: tuple[str, ...]
    required: tuple[str, ...] = ()
    unique: tuple[str, ...] = ()

    @property
    def always(self) -> tuple[str, ...]:
        """Properties every answer carries, whatever was asked for."""
        return (self.created_property, "hs_object_id", self.modified_property)


OBJECT_TYPES: dict[str, ObjectType] = {
    t.name: t
    for t in (
        ObjectType(
            "contacts",
            "contact",
            "0-1",
            "createdate",
            "lastmodifieddate",
            defaults=("email", "firstname", "lastname"),
            searchable=("firstname", "lastname", "email", "phone", "mobilephone", "company"),
            unique=("email",),
        ),
        ObjectType(
            "companies",
            "company",
            "0-2",
            "createdate",
            "hs_lastmodifieddate",
            defaults=("domain", "name"),
            searchable=("name", "domain", "website", "phone"),
        ),
        ObjectType(
            "deals",
            "deal",
            "0-3",
            "createdate",
            "hs_lastmodifieddate",
            defaults=("amount", "closedate", "dealname", "dealstage", "pipeline"),
            searchable=("dealname", "pipeline", "dealstage", "description", "dealtype"),
            required=("dealname", "dealstage"),
        ),
        ObjectType(
            "tickets",
            "ticket",
            "0-5",
            "createdate",
            "hs_lastmodifieddate",
            defaults=(
                "content",
                "hs_pipeline",
                "hs_pipeline_stage",
                "hs_ticket_category",
                "hs_ticket_priority",
                "subject",
            ),
            searchable=("subject", "content", "hs_pipeline_stage", "hs_ticket_category"),
            required=("hs_pipeline", "hs_pipeline_stage", "subject"),
        ),
        ObjectType(
            "notes",
            "note",
            "0-46",
            "hs_createdate",
            "hs_lastmodifieddate",
            defaults=(),
            searchable=("hs_note_body",),
            required=("hs_timestamp",),
        ),
    )
}

_TYPE_ALIASES: dict[str, str] = {}
for _t in OBJECT_TYPES.values():
    _TYPE_ALIASES.update({_t.name: _t.name, _t.singular: _t.name, _t.type_id: _t.name})

TICKET_PIPELINES: dict[str, tuple[str, ...]] = {"0": ("1", "2", "3", "4")}
"""The default support pipeline: New, Waiting on contact, Waiting on us, Closed."""
TICKET_PIPELINE_LABELS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "0": (
        "Support Pipeline",
        (("New", "OPEN"), ("Waiting on contact", "OPEN"), ("Waiting on us", "OPEN"), ("Closed", "CLOSED")),
    )
}
"""Each ticket pipeline's label and its stages' labels and ``ticketState``, in the order of ``TICKET_PIPELINES``."""
DEAL_PIPELINES: dict[str, tuple[str, ...]] = {
    "default": (
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
        "closedlost",
    ),
}
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)


def resolve_type(name: str) -> ObjectType:
    """The object type named by a path segment: plural, singular or type id (``contacts``, ``contact``, ``0-1``)."""
    key = _TYPE_ALIASES.get(name.lower())
    if key is None:
        raise errors.invalid(f"Unable to infer object type from: {name}")
    return OBJECT_TYPES[key]


def standard_properties() -> dict[str, dict[str, PropertyDef]]:
    """The portal's property schema for a fresh account, including the sandbox portal's custom properties.

    The custom ones (company ``tier`` and ``renewal_date``; ticket ``escalate_to_engineering``, and cxbridge's
    default ticket properties ``cxbridge_escalate`` (checkbox) and ``cxbridge_issue_key`` (text)) stand for what an
    admin creates in Settings > Properties before connecting cxbridge.
    """

    def defs(*items: PropertyDef | str) -> dict[str, PropertyDef]:
        made = [PropertyDef(i) if isinstance(i, str) else i for i in items]
        return {p.name: p for p in made}

    owner = PropertyDef("hubspot_owner_id", "enumeration")  # options: the portal's owners (checked separately)
    common = (PropertyDef("hs_object_id", "number", read_only=True),)
    return {
        "contacts": defs(
            *common,
            PropertyDef("createdate", "datetime", read_only=True),
            PropertyDef("lastmodifieddate", "datetime", read_only=True),
            "email",
            "firstname",
            "lastname",
            "phone",
            "mobilephone",
            "company",
            "jobtitle",
            "website",
            "address",
            "city",
            "state",
            "zip",
            "country",
            "hs_lead_status",
            PropertyDef("lifecyclestage", "enumeration", LIFECYCLE_STAGES),
            owner,
        ),
        "companies": defs(
            *common,
            PropertyDef("createdate", "datetime", read_only=True),
            PropertyDef("hs_lastmodifieddate", "datetime", read_only=True),
            "name",
            "domain",
            "website",
            "phone",
            "industry",
            "city",
            "state",
            "country",
            "description",
            "type",
            PropertyDef("annualrevenue", "number"),
            PropertyDef("numberofemployees", "number"),
            PropertyDef("lifecyclestage", "enumeration", LIFECYCLE_STAGES),
            owner,
            PropertyDef("tier", custom=True),
            PropertyDef("renewal_date", "date", custom=True),
        ),
        "deals": defs(
            *common,
            PropertyDef("createdate", "datetime", read_only=True),
            PropertyDef("hs_lastmodifieddate", "datetime", read_only=True),
            "dealname",
            "description",
            "dealtype",
            PropertyDef("amount", "number"),
            PropertyDef("closedate", "datetime"),
            PropertyDef("pipeline", "enumeration", tuple(DEAL_PIPELINES)),
            PropertyDef("dealstage", "enumeration"),
            owner,
        ),
        "tickets": defs(
            *common,
            PropertyDef("createdate", "datetime", read_only=True),
            PropertyDef("hs_lastmodifieddate", "datetime", read_only=True),
            "subject",
            "content",
            "hs_ticket_category",
            "source_type",
            PropertyDef("hs_pipeline", "enumeration", tuple(TICKET_PIPELINES)),
            PropertyDef("hs_pipeline_stage", "enumeration"),
            PropertyDef("hs_ticket_priority", "enumeration", ("LOW", "MEDIUM", "HIGH", "URGENT")),
            owner,
            PropertyDef("escalate_to_engineering", "bool", custom=True),
            PropertyDef("cxbridge_escalate", "bool", custom=True),
            PropertyDef("cxbridge_issue_key", custom=True),
        ),
        "notes": defs(
            *common,
            PropertyDef("hs_createdate", "datetime", read_only=True),
            PropertyDef("hs_lastmodifieddate", "datetime", read_only=True),
            "hs_note_body",
            PropertyDef("hs_timestamp", "datetime"),
            "hs_attachment_ids",
            owner,
        ),
    }


# -- associations ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssociationType:
    """A HubSpot-defined association type between two object types (one direction)."""

    from_type: str
    to_type: str
    type_id: int
    name: str
    label: str | None
    inverse_id: int
    category: str = "HUBSPOT_DEFINED"

    @property
    def primary(self) -> bool:
        """Whether this is a "Primary" type (one primary company per contact, deal or ticket)."""
        return self.label == "Primary"


_PAIRS: tuple[tuple[str, str, int, str, str | None, int, str], ...] = (
    # from, to, id, name, label, inverse id, inverse name (the inverse has the same label)
    ("contacts", "companies", 279, "contact_to_company_unlabeled", None, 280, "company_to_contact_unlabeled"),
    ("contacts", "companies", 1, "contact_to_company", "Primary", 2, "company_to_contact"),
    ("deals", "contacts", 3, "deal_to_contact", None, 4, "contact_to_deal"),
    ("deals", "companies", 341, "deal_to_company_unlabeled", None, 342, "company_to_deal_unlabeled"),
    ("deals", "companies", 5, "deal_to_company", "Primary", 6, "company_to_deal"),
    ("tickets", "contacts", 16, "ticket_to_contact", None, 15, "contact_to_ticket"),
    ("tickets", "companies", 339, "ticket_to_company_unlabeled", None, 340, "company_to_ticket_unlabeled"),
    ("tickets", "companies", 26, "ticket_to_company", "Primary", 25, "company_to_ticket"),
    ("tickets", "deals", 28, "ticket_to_deal", None, 27, "deal_to_ticket"),
    ("notes", "contacts", 202, "note_to_contact", None, 201, "contact_to_note"),
    ("notes", "companies", 190, "note_to_company", None, 189, "company_to_note"),
    ("notes", "deals", 214, "note_to_deal", None, 213, "deal_to_note"),
    ("notes", "tickets", 228, "note_to_ticket", None, 227, "ticket_to_note"),
)

ASSOCIATION_TYPES: dict[int, AssociationType] = {}
for _f, _to, _id, _name, _label, _inv, _inv_name in _PAIRS:
    ASSOCIATION_TYPES[_id] = AssociationType(_f, _to, _id, _name, _label, _inv)
    ASSOCIATION_TYPES[_inv] = AssociationType(_to, _f, _inv, _inv_name, _label, _id)


def association_types(from_type: str, to_type: str) -> list[AssociationType]:
    """The HubSpot-defined types from one object type to another (unlabeled first)."""
    found = [a for a in ASSOCIATION_TYPES.values() if a.from_type == from_type and a.to_type == to_type]
    return sorted(found, key=lambda a: (a.label is not None, a.type_id))


def default_association(from_type: str, to_type: str) -> AssociationType:
    """The default (unlabeled) association type between two object types, or a 400 when there is none."""
    found = association_types(from_type, to_type)
    if not found:
        raise errors.invalid(f"No association types are defined from {from_type} to {to_type}")
    return found[0]


# -- records ---------------------------------------------------------------------------------------------------


@dataclass
class CrmObject:
    """One record: its id, string property values with history, timestamps and archived flag."""

    type: ObjectType
    id: str
    properties: dict[str, str]
    created_at: float
    updated_at: float
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    archived: bool = False
    archived_at: float | None = None


@dataclass
class Change:
    """A change a webhook subscription may report."""

    object_type: ObjectType
    object_id: str
    kind: str  # "propertyChange" | "creation" | "deletion"
    source: str
    occurred_at: float
    property_name: str | None = None
    value: str | None = None


@dataclass
class Subscription:
    """A webhook subscription of the app (``ticket.propertyChange`` on ``hs_pipeline_stage`` and so on)."""

    id: int
    event_type: str
    property_name: str | None
    active: bool
    created_at: float
    updated_at: float
    object_type_id: str | None = None
    """The object type of a generic ``object.*`` subscription (``0-5`` tickets, ``0-2`` companies)."""

    @property
    def generic(self) -> bool:
        """Whether this is a generic ``object.*`` subscription (its events carry ``objectTypeId``)."""
        return self.event_type.startswith("object.")

    def matches(self, change: Change) -> bool:
        """Whether this subscription reports a change."""
        if not self.active:
            return False
        if self.generic:
            if self.event_type != f"object.{change.kind}" or self.object_type_id != change.object_type.type_id:
                return False
        elif self.event_type != f"{change.object_type.singular}.{change.kind}":
            return False
        return change.kind != "propertyChange" or self.property_name == change.property_name


DEFAULT_SUBSCRIPTIONS: tuple[tuple[str, str | None], ...] = (
    ("ticket.propertyChange", "hs_pipeline_stage"),
    ("ticket.propertyChange", "escalate_to_engineering"),
    ("ticket.propertyChange", "cxbridge_escalate"),
    ("company.propertyChange", "annualrevenue"),
)


class Portal:
    """One HubSpot account: records of every type, associations, the property schema and webhook subscriptions."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.objects: dict[str, dict[str, CrmObject]] = {name: {} for name in OBJECT_TYPES}
        self.links: dict[tuple[str, str], dict[str, dict[str, set[int]]]] = {}
        self.schema = standard_properties()
        self.owners: dict[str, dict[str, Any]] = {}
        self.changes: list[Change] = []
        self.subscriptions: dict[int, Subscription] = {}
        self.settings: dict[str, Any] | None = None
        self.property_groups: dict[str, dict[str, dict[str, Any]]] = {}
        self._next_id = 1001
        self._next_subscription_id = 1
        for event_type, prop in DEFAULT_SUBSCRIPTIONS:
            self.add_subscription(event_type, prop, active=True)

    # -- ids, schema -----------------------------------------------------------------------------------------
    def new_id(self) -> str:
        """The next record id (one counter for every type, so ids never collide across types)."""
        value = self._next_id
        self._next_id += 1
        return str(value)

    def define_property(self, object_type: str, name: str, kind: str = "string", options: Sequence[str] = ()) -> None:
        """Add a custom property to an object type (what an admin does in HubSpot's settings)."""
        otype = resolve_type(object_type)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in self.schema[otype.name]:
            raise errors.invalid(f"Invalid or existing property name: {name!r}")
        if kind not in PROPERTY_KINDS:
            raise errors.invalid(f"Invalid property kind {kind!r}; use one of {sorted(PROPERTY_KINDS)}")
        self.schema[otype.name][name] = PropertyDef(name, kind, tuple(options), custom=True)

    def remove_custom_properties(self) -> None:
        """Forget every custom property and the app's subscriptions: a portal before ``cxbridge setup``."""
        for props in self.schema.values():
            for name in [n for n, p in props.items() if p.custom]:
                del props[name]
        self.property_groups.clear()
        self.subscriptions.clear()
        self.settings = None

    def add_owner(self, owner_id: str, first_name: str, last_name: str, email: str) -> None:
        """Register a user who can own records (``hubspot_owner_id`` values must name one)."""
        at = iso_ms(self.clock())
        self.owners[owner_id] = {
            "id": owner_id,
            "firstName": first_name,
            "lastName": last_name,
            "email": email,
            "type": "PERSON",
            "userId": int(owner_id) % 10_000_000,
            "createdAt": at,
            "updatedAt": at,
            "archived": False,
        }

    # -- webhook subscriptions --------------------------------------------------------------------------------
    def add_subscription(
        self,
        event_type: str,
        property_name: str | None = None,
        *,
        active: bool = False,
        object_type_id: str | None = None,
    ) -> Subscription:
        """Subscribe the app to an event type (``ticket.propertyChange`` with a property name, ``contact.creation``,
        or a generic ``object.propertyChange`` with ``object_type_id`` such as ``0-5``)."""
        if not re.fullmatch(r"[a-z_]+\.[A-Za-z]+", event_type):
            raise errors.invalid(f"Invalid eventType: {event_type}")
        if event_type.endswith(".propertyChange") and not property_name:
            raise errors.invalid("propertyName is required for propertyChange subscriptions")
        if event_type.startswith("object."):
            known = {t.type_id for t in OBJECT_TYPES.values()} | {t.singular for t in OBJECT_TYPES.values()}
            if object_type_id not in known:
                raise errors.invalid(f"objectTypeId is required for {event_type} subscriptions (e.g. 0-5 for tickets)")
            object_type_id = resolve_type(object_type_id).type_id
        else:
            object_type_id = None
        now = self.clock()
        sub = Subscription(
            self._next_subscription_id, event_type, property_name, active, now, now, object_type_id=object_type_id
        )
        self._next_subscription_id += 1
        self.subscriptions[sub.id] = sub
        return sub

    def subscription(self, key: str) -> Subscription:
        """One subscription by id, or a 404."""
        sub = self.subscriptions.get(int(key)) if key.isdigit() else None
        if sub is None:
            raise errors.not_found(f"No subscription with id {key}")
        return sub

    def take_changes(self) -> list[Change]:
        """The changes recorded since the last call (what webhooks may report)."""
        taken, self.changes = self.changes, []
        return taken

    # -- property values --------------------------------------------------------------------------------------
    def clean(
        self, otype: ObjectType, raw: Mapping[str, Any], *, creating: bool, current: Mapping[str, str] | None = None
    ) -> dict[str, str | None]:
        """Validated values as strings (None clears a value); a 400 lists every invalid property at once."""
        if not isinstance(raw, Mapping):
            raise errors.invalid("Invalid input JSON: properties must be an object")
        schema = self.schema[otype.name]
        problems: list[tuple[str, str, str]] = []
        cleaned: dict[str, str | None] = {}
        for name, value in raw.items():
            prop = schema.get(name)
            if prop is None:
                problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if prop.read_only:
                problems.append(
                    (name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
                )
                continue
            text = _as_text(value)
            if text is None or text == "":
                cleaned[name] = None
                continue
            checked, problem = self._check_value(otype, prop, text, {**(current or {}), **raw})
            if problem:
                problems.append((name, problem[0], problem[1]))
            else:
                cleaned[name] = checked
        if creating:
            merged = {k: v for k, v in cleaned.items() if v is not None}
            if otype.name == "deals" and "pipeline" not in merged and "dealstage" in merged:
                cleaned["pipeline"] = "default"
                merged["pipeline"] = "default"
            for name in otype.required:
                if name not in merged and not any(p[0] == name for p in problems):
                    problems.append((name, "REQUIRED_PROPERTY", f"{name} is required"))
        if problems:
            raise errors.property_errors(problems)
        return cleaned

    def _check_value(
        self, otype: ObjectType, prop: PropertyDef, text: str, context: Mapping[str, Any]
    ) -> tuple[str, tuple[str, str] | None]:
        if prop.name == "email" and otype.name == "contacts":
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text):
                return text, ("INVALID_EMAIL", f"Email address {text} is invalid")
            return text.lower(), None
        if prop.name == "hubspot_owner_id":
            if text not in self.owners:
                return text, ("INVALID_OPTION", f"{text} was not one of the allowed options")
            return text, None
        options: Iterable[str] = prop.options
        if prop.name == "hs_pipeline_stage":
            options = TICKET_PIPELINES.get(_as_text(context.get("hs_pipeline")) or "0", ())
        elif prop.name == "dealstage":
            options = DEAL_PIPELINES.get(_as_text(context.get("pipeline")) or "default", ())
        if prop.kind == "enumeration" and text not in options:
            return text, ("INVALID_OPTION", f"{text} was not one of the allowed options: {sorted(options)}")
        if prop.kind == "bool":
            if text.lower() not in ("true", "false"):
                return text, ("INVALID_OPTION", f"{text} was not one of the allowed options: ['false', 'true']")
            return text.lower(), None
        if prop.kind == "number":
            try:
                number = float(text)
            except ValueError:
                return text, ("INVALID_FLOAT", f"{text} is not a valid number")
            if not math.isfinite(number):
                return text, ("INVALID_FLOAT", f"{text} is not a valid number")
            return text, None
        if prop.kind in ("date", "datetime"):
            moment = parse_moment(text)
            if moment is None:
                return text, ("INVALID_DATE", f"{text} is not a valid date")
            if prop.kind == "datetime":
                return iso_ms(moment), None
            return datetime.fromtimestamp(moment, UTC).date().isoformat(), None
        return text, None

    def _record(self, obj: CrmObject, name: str, value: str | None, source: str, now: float) -> bool:
        old = obj.properties.get(name)
        if value == old:
            return False
        if value is None:
            obj.properties.pop(name, None)
        else:
            obj.properties[name] = value
        entry = {
            "value": value or "",
            "timestamp": iso_ms(now),
            "sourceType": "API" if source == INTEGRATION else source,
        }
        obj.history.setdefault(name, []).insert(0, entry)
        self.changes.append(Change(obj.type, obj.id, "propertyChange", source, now, name, value or ""))
        return True

    # -- records ----------------------------------------------------------------------------------------------
    def create(
        self,
        otype: ObjectType,
        raw: Mapping[str, Any],
        associations: Sequence[Mapping[str, Any]] = (),
        *,
        source: str = INTEGRATION,
    ) -> CrmObject:
        """Create a record (and its associations, all or nothing)."""
        values = self.clean(otype, raw, creating=True)
        self._check_unique(otype, values, None)
        planned = self._plan_associations(otype, associations)
        now = self.clock()
        obj = CrmObject(otype, self.new_id(), {}, now, now)
        for name, stamp in (
            (otype.created_property, iso_ms(now)),
            (otype.modified_property, iso_ms(now)),
            ("hs_object_id", obj.id),
        ):
            obj.properties[name] = stamp
        self.objects[otype.name][obj.id] = obj
        self.changes.append(Change(otype, obj.id, "creation", source, now))
        for name, value in values.items():
            if value is not None:
                self._record(obj, name, value, source, now)
        for to_type, to_id, type_ids in planned:
            self.associate(otype.name, obj.id, to_type, to_id, type_ids)
        return obj

    def update(
        self,
        otype: ObjectType,
        key: str,
        raw: Mapping[str, Any],
        *,
        id_property: str | None = None,
        source: str = INTEGRATION,
    ) -> CrmObject:
        """Set property values (an empty string clears one); unchanged values are not recorded as changes."""
        obj = self.find(otype, key, id_property=id_property)
        values = self.clean(otype, raw, creating=False, current=obj.properties)
        self._check_unique(otype, values, obj.id)
        now = self.clock()
        changed = False
        for name, value in values.items():
            changed = self._record(obj, name, value, source, now) or changed
        if changed:
            obj.updated_at = now
            obj.properties[otype.modified_property] = iso_ms(now)
        return obj

    def archive(self, otype: ObjectType, key: str, *, source: str = INTEGRATION) -> None:
        """Move a record to the recycle bin (HubSpot's DELETE)."""
        obj = self.find(otype, key)
        now = self.clock()
        obj.archived, obj.archived_at, obj.updated_at = True, now, now
        self.changes.append(Change(otype, obj.id, "deletion", source, now))

    def _check_unique(self, otype: ObjectType, values: Mapping[str, str | None], own_id: str | None) -> None:
        for name in otype.unique:
            value = values.get(name)
            if value is None:
                continue
            existing = self.lookup(otype, value, id_property=name)
            if existing is not None and existing.id != own_id:
                label = otype.singular.capitalize()
                raise errors.conflict(f"{label} already exists. Existing ID: {existing.id}")

    def lookup(
        self, otype: ObjectType, key: str, *, id_property: str | None = None, archived: bool = False
    ) -> CrmObject | None:
        """A record by id or by a unique property's value, or None."""
        store = self.objects[otype.name]
        if not id_property or id_property == "hs_object_id":
            obj = store.get(str(key))
            return obj if obj is not None and obj.archived == archived else None
        if id_property not in otype.unique:
            raise errors.invalid(
                f"{id_property} is not a unique property of {otype.name}; use one of {['hs_object_id', *otype.unique]}"
            )
        wanted = str(key).lower()
        for obj in store.values():
            if obj.archived == archived and obj.properties.get(id_property, "").lower() == wanted:
                return obj
        return None

    def find(self, otype: ObjectType, key: str, *, id_property: str | None = None, archived: bool = False) -> CrmObject:
        """A record, or HubSpot's 404."""
        obj = self.lookup(otype, key, id_property=id_property, archived=archived)
        if obj is None:
            raise errors.not_found("resource not found")
        return obj

    def live(self, otype: ObjectType, *, archived: bool = False) -> list[CrmObject]:
        """Records of a type in id order."""
        found = [o for o in self.objects[otype.name].values() if o.archived == archived]
        return sorted(found, key=lambda o: int(o.id))

    def page(
        self, otype: ObjectType, *, limit: int, after: str | None, archived: bool = False
    ) -> tuple[list[CrmObject], str | None]:
        """One page of a list: records with ids from ``after`` on, and the next ``after`` when more remain."""
        if limit < 1 or limit > LIST_MAX_LIMIT:
            raise errors.invalid(f"limit must be between 1 and {LIST_MAX_LIMIT}, was {limit}")
        start = 0
        if after:
            if not after.isdigit():
                raise errors.invalid(f"Invalid after: {after}")
            start = int(after)
        rows = [o for o in self.live(otype, archived=archived) if int(o.id) >= start]
        more = rows[limit:]
        return rows[:limit], (more[0].id if more else None)

    # -- associations -----------------------------------------------------------------------------------------
    def _plan_associations(
        self, otype: ObjectType, items: Sequence[Mapping[str, Any]]
    ) -> list[tuple[str, str, list[int]]]:
        planned: list[tuple[str, str, list[int]]] = []
        if items is None:
            return planned
        if not isinstance(items, (list, tuple)):
            raise errors.invalid("Invalid input JSON: associations must be an array")
        for item in items:
            target = item.get("to") if isinstance(item, Mapping) else None
            to_id = str(target.get("id", "")) if isinstance(target, Mapping) else ""
            specs = item.get("types") if isinstance(item, Mapping) else None
            if not to_id or not isinstance(specs, list) or not specs:
                raise errors.invalid("Each association needs to.id and at least one type")
            to_types = set()
            ids: list[int] = []
            for spec in specs:
                if not isinstance(spec, Mapping):
                    raise errors.invalid("Invalid association type: expected an object")
                atype = self._association_type(spec.get("associationCategory"), spec.get("associationTypeId"))
                if atype.from_type != otype.name:
                    raise errors.invalid(f"{atype.type_id} is not a valid association type from {otype.name}")
                to_types.add(atype.to_type)
                ids.append(atype.type_id)
            if len(to_types) != 1:
                raise errors.invalid("All association types of one target must point at one object type")
            to_type = to_types.pop()
            if self.lookup(OBJECT_TYPES[to_type], to_id) is None:
                raise errors.invalid(
                    f"{OBJECT_TYPES[to_type].singular} {to_id} does not exist", context={"ids": [to_id]}
                )
            planned.append((to_type, to_id, ids))
        return planned

    def _association_type(self, category: Any, type_id: Any) -> AssociationType:
        try:
            atype = ASSOCIATION_TYPES[int(type_id)]
        except (KeyError, TypeError, ValueError):
            raise errors.invalid(f"Unknown association type id {type_id!r}") from None
        if category != atype.category:
            raise errors.invalid(f"association type {atype.type_id} is {atype.category}, not {category}")
        return atype

    def association_spec(
        self, from_type: ObjectType, to_type: ObjectType, category: Any, type_id: Any
    ) -> AssociationType:
        """Validate one ``AssociationSpec`` for a pair of object types."""
        atype = self._association_type(category, type_id)
        if (atype.from_type, atype.to_type) != (from_type.name, to_type.name):
            raise errors.invalid(
                f"association type {atype.type_id} is not defined from {from_type.name} to {to_type.name}"
            )
        return atype

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: Iterable[int]) -> None:
        """Store association types in both directions; a labeled type brings the pair's unlabeled one along."""
        for type_id in type_ids:
            atype = ASSOCIATION_TYPES[type_id]
            wanted = [atype]
            if atype.label is not None:
                wanted.append(default_association(from_type, to_type))
            for a in wanted:
                self._link(from_type, from_id, to_type, to_id).add(a.type_id)
                self._link(to_type, to_id, from_type, from_id).add(a.inverse_id)
            if atype.primary:
                self._keep_one_primary(from_type, from_id, to_type, to_id, atype)

    def _keep_one_primary(self, from_type: str, from_id: str, to_type: str, to_id: str, atype: AssociationType) -> None:
        # The side that is not the company has at most one primary company.
        if to_type == "companies":
            owner_type, owner_id, company_id, owner_tid = from_type, from_id, to_id, atype.type_id
        else:
            owner_type, owner_id, company_id, owner_tid = to_type, to_id, from_id, atype.inverse_id
        inverse = ASSOCIATION_TYPES[owner_tid].inverse_id
        for other_id, tids in self.links.get((owner_type, owner_id), {}).get("companies", {}).items():
            if other_id != company_id and owner_tid in tids:
                tids.discard(owner_tid)
                self._link("companies", other_id, owner_type, owner_id).discard(inverse)

    def _link(self, from_type: str, from_id: str, to_type: str, to_id: str) -> set[int]:
        return self.links.setdefault((from_type, from_id), {}).setdefault(to_type, {}).setdefault(to_id, set())

    def dissociate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Remove every association type between two records, both directions."""
        self.links.get((from_type, from_id), {}).get(to_type, {}).pop(to_id, None)
        self.links.get((to_type, to_id), {}).get(from_type, {}).pop(from_id, None)

    def associated(self, from_type: str, from_id: str, to_type: str) -> list[tuple[str, list[AssociationType]]]:
        """The records of ``to_type`` associated with one record, in id order, with the types between them."""
        targets = self.links.get((from_type, from_id), {}).get(to_type, {})
        rows = []
        for to_id, tids in targets.items():
            target = self.objects[to_type].get(to_id)
            if tids and target is not None and not target.archived:
                rows.append((to_id, [ASSOCIATION_TYPES[t] for t in sorted(tids)]))
        return sorted(rows, key=lambda r: int(r[0]))

    # -- search -----------------------------------------------------------------------------------------------
    def search(self, otype: ObjectType, body: Mapping[str, Any]) -> tuple[list[CrmObject], int, str | None]:
        """Run a ``PublicObjectSearchRequest``: (page, total matches, next ``after``)."""
        limit = _int(body.get("limit"), 10, "limit")
        if limit < 0 or limit > SEARCH_MAX_LIMIT:
            raise errors.invalid(f"limit must be between 0 and {SEARCH_MAX_LIMIT}, was {limit}")
        offset = _int(body.get("after"), 0, "after")
        if offset < 0 or offset >= SEARCH_MAX_RESULTS:
            raise errors.invalid(f"Paging beyond {SEARCH_MAX_RESULTS} results is not supported: after={offset}")
        groups = body.get("filterGroups") or []
        query = body.get("query")
        if query is not None and (not isinstance(query, str) or len(query) > 3000):
            raise errors.invalid("query must be a string of at most 3000 characters")
        self._check_filter_limits(groups)
        matched = [o for o in self.live(otype) if self._matches(o, groups) and _matches_query(o, otype, query)]
        for sort in reversed(_sorts(body.get("sorts") or [])):
            name, descending = sort
            present = [o for o in matched if name in o.properties]
            missing = [o for o in matched if name not in o.properties]
            present.sort(key=lambda o: _sort_key(o.properties[name]), reverse=descending)
            matched = present + missing
        total = len(matched)
        end = min(offset + limit, SEARCH_MAX_RESULTS)
        window = matched[offset:end]
        has_next = end < total and end < SEARCH_MAX_RESULTS
        return window, total, (str(end) if has_next else None)

    @staticmethod
    def _check_filter_limits(groups: Any) -> None:
        if not isinstance(groups, list):
            raise errors.invalid("filterGroups must be an array")
        if len(groups) > MAX_FILTER_GROUPS:
            raise errors.invalid(f"Too many filter groups ({len(groups)}); the limit is {MAX_FILTER_GROUPS}")
        total = 0
        for group in groups:
            filters = group.get("filters") if isinstance(group, Mapping) else None
            if not isinstance(filters, list):
                raise errors.invalid("each filter group needs a filters array")
            if len(filters) > MAX_FILTERS_PER_GROUP:
                raise errors.invalid(
                    f"Too many filters in a group ({len(filters)}); the limit is {MAX_FILTERS_PER_GROUP}"
                )
            total += len(filters)
        if total > MAX_FILTERS:
            raise errors.invalid(f"Too many filters ({total}); the limit is {MAX_FILTERS}")

    def _matches(self, obj: CrmObject, groups: Sequence[Mapping[str, Any]]) -> bool:
        if not groups:
            return True
        return any(all(self._filter(obj, f) for f in group["filters"]) for group in groups)

    def _filter(self, obj: CrmObject, spec: Mapping[str, Any]) -> bool:
        name = spec.get("propertyName")
        operator = spec.get("operator")
        if not isinstance(name, str) or operator not in OPERATORS:
            raise errors.invalid(f"Invalid filter: propertyName {name!r}, operator {operator!r}")
        if name.startswith("associations."):
            to_type = resolve_type(name.split(".", 1)[1])
            ids = {to_id for to_id, _ in self.associated(obj.type.name, obj.id, to_type.name)}
            if operator == "EQ":
                return str(spec.get("value")) in ids
            if operator == "IN":
                return bool(ids & {str(v) for v in spec.get("values") or []})
            raise errors.invalid(f"operator {operator} is not supported on {name}")
        return OPERATORS[operator](obj.properties.get(name), spec)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    raise errors.invalid(f"Property values must be strings, numbers or booleans, not {type(value).__name__}")


def _int(value: Any, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.invalid(f"{name} must be an integer, was {value!r}") from None


def _sorts(items: Sequence[Any]) -> list[tuple[str, bool]]:
    """Sorts as (property, descending): strings (``createdate``, ``-createdate``) or {propertyName, direction}."""
    sorts = []
    for item in items:
        if isinstance(item, str):
            sorts.append((item.lstrip("-"), item.startswith("-")))
        elif isinstance(item, Mapping) and isinstance(item.get("propertyName"), str):
            sorts.append((item["propertyName"], str(item.get("direction", "ASCENDING")).upper() == "DESCENDING"))
        else:
            raise errors.invalid(f"Invalid sort: {item!r}")
    return sorts


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _compare(prop: str, value: str) -> int | None:
    """-1, 0 or 1 comparing a property value with a filter value: as numbers, moments or text."""
    left_n, right_n = _number(prop), _number(value)
    if left_n is not None and right_n is not None:
        return (left_n > right_n) - (left_n < right_n)
    left_m, right_m = parse_moment(prop), parse_moment(value)
    if left_m is not None and right_m is not None:
        return (left_m > right_m) - (left_m < right_m)
    a, b = prop.lower(), value.lower()
    return (a > b) - (a < b)


def _sort_key(value: str) -> tuple[int, Any]:
    number = _number(value)
    if number is not None:
        return (0, number)
    moment = parse_moment(value)
    if moment is not None:
        return (1, moment)
    return (2, value.lower())


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^0-9a-z]+", text.lower()) if t]


def _contains_token(prop: str | None, value: str) -> bool:
    if prop is None:
        return False
    pattern = value.lower().strip()
    if "*" in pattern:
        return fnmatch.fnmatchcase(prop.lower(), pattern) or any(fnmatch.fnmatchcase(t, pattern) for t in _tokens(prop))
    wanted = _tokens(pattern)
    have = _tokens(prop)
    return bool(wanted) and all(w in have for w in wanted)


def _matches_query(obj: CrmObject, otype: ObjectType, query: str | None) -> bool:
    if not query:
        return True
    words = _tokens(query)
    haystack = [t for name in otype.searchable for t in _tokens(obj.properties.get(name, ""))]
    return all(any(h.startswith(w) for h in haystack) for w in words)


def _filter_value(spec: Mapping[str, Any], key: str = "value") -> str:
    value = _as_text(spec.get(key))
    if value is None:
        raise errors.invalid(f"filter on {spec.get('propertyName')} with {spec.get('operator')} needs {key}")
    return value


def _filter_values(spec: Mapping[str, Any]) -> list[str]:
    values = spec.get("values")
    if not isinstance(values, list) or not values:
        raise errors.invalid(f"filter on {spec.get('propertyName')} with {spec.get('operator')} needs values")
    return [v for v in (_as_text(x) for x in values) if v is not None]


def _cmp_op(test: Callable[[int], bool]) -> Callable[[str | None, Mapping[str, Any]], bool]:
    def run(prop: str | None, spec: Mapping[str, Any]) -> bool:
        value = _filter_value(spec)
        if prop is None:
            return False
        result = _compare(prop, value)
        return result is not None and test(result)

    return run


def _between(prop: str | None, spec: Mapping[str, Any]) -> bool:
    low, high = _filter_value(spec), _filter_value(spec, "highValue")
    return prop is not None and _compare(prop, low) in (0, 1) and _compare(prop, high) in (-1, 0)


OPERATORS: dict[str, Callable[[str | None, Mapping[str, Any]], bool]] = {
    "EQ": _cmp_op(lambda r: r == 0),
    "NEQ": lambda prop, spec: prop is None or _compare(prop, _filter_value(spec)) != 0,
    "LT": _cmp_op(lambda r: r < 0),
    "LTE": _cmp_op(lambda r: r <= 0),
    "GT": _cmp_op(lambda r: r > 0),
    "GTE": _cmp_op(lambda r: r >= 0),
    "BETWEEN": _between,
    "IN": lambda prop, spec: prop is not None and any(_compare(prop, v) == 0 for v in _filter_values(spec)),
    "NOT_IN": lambda prop, spec: prop is None or all(_compare(prop, v) != 0 for v in _filter_values(spec)),
    "HAS_PROPERTY": lambda prop, spec: prop is not None and prop != "",
    "NOT_HAS_PROPERTY": lambda prop, spec: prop is None or prop == "",
    "CONTAINS_TOKEN": lambda prop, spec: _contains_token(prop, _filter_value(spec)),
    "NOT_CONTAINS_TOKEN": lambda prop, spec: not _contains_token(prop, _filter_value(spec)),
}
