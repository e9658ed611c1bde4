"""The CRM properties API of the HubSpot emulator (``/crm/v3/properties/{objectType}``): list, read and create
properties and property groups, over the portal's property schema (``Portal.schema``, which record writes are
checked against), so a property created here can be written at once, as on HubSpot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from . import errors
from .models import PROPERTY_KINDS, PropertyDef, iso_ms, resolve_type

if TYPE_CHECKING:
    from .models import Portal

FIELD_TYPES = {
    "string": ("text", "textarea", "html", "file"),
    "number": ("number", "calculation_equation"),
    "date": ("date",),
    "datetime": ("date",),
    "bool": ("booleancheckbox", "checkbox"),
    "enumeration": ("select", "radio", "checkbox", "booleancheckbox"),
    "phone_number": ("phonenumber",),
}
DEFAULT_FIELD_TYPE = {"string": "text", "number": "number", "date": "date", "datetime": "date"}
PREFIX = "/crm/v3/properties/<object_type>"


def rules() -> list[Rule]:
    """The properties API's routes (endpoints name ``route_<endpoint>`` methods of ``PropertiesRoutes``)."""
    return [
        Rule(PREFIX, methods=["GET"], endpoint="list_properties"),
        Rule(PREFIX, methods=["POST"], endpoint="create_property"),
        Rule(f"{PREFIX}/groups", methods=["GET"], endpoint="list_groups"),
        Rule(f"{PREFIX}/groups", methods=["POST"], endpoint="create_group"),
        Rule(f"{PREFIX}/groups/<group_name>", methods=["GET"], endpoint="get_group"),
        Rule(f"{PREFIX}/<property_name>", methods=["GET"], endpoint="get_property"),
    ]


def default_group(type_name: str) -> str:
    """The group HubSpot's own properties of a type are in (``companyinformation``)."""
    return f"{resolve_type(type_name).singular}information"


def groups(portal: Portal, type_name: str) -> dict[str, dict[str, Any]]:
    """The property groups of an object type (its default group always exists)."""
    known = portal.property_groups.setdefault(type_name, {})
    default = default_group(type_name)
    known.setdefault(default, {"name": default, "label": default.replace("information", " information").title()})
    return known


def property_json(portal: Portal, type_name: str, prop: PropertyDef) -> dict[str, Any]:
    """A property as ``/crm/v3/properties`` shows it (``Property``)."""
    field_type = prop.field_type or DEFAULT_FIELD_TYPE.get(prop.kind) or FIELD_TYPES[prop.kind][0]
    options = prop.options or (("true", "false") if prop.kind == "bool" else ())
    return {
        "name": prop.name,
        "label": prop.label or prop.name.replace("_", " ").capitalize(),
        "type": prop.kind,
        "fieldType": field_type,
        "description": prop.description,
        "groupName": prop.group or default_group(type_name),
        "options": [
            {"label": o.replace("_", " ").capitalize(), "value": o, "hidden": False, "displayOrder": i}
            for i, o in enumerate(options)
        ],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": prop.name in resolve_type(type_name).unique,
        "hidden": False,
        "hubspotDefined": not prop.custom,
        "formField": not prop.read_only,
        "archived": False,
        "createdAt": iso_ms(portal.clock()),
        "updatedAt": iso_ms(portal.clock()),
        "modificationMetadata": {
            "archivable": prop.custom,
            "readOnlyDefinition": not prop.custom,
            "readOnlyValue": prop.read_only,
        },
    }


def create_property(portal: Portal, type_name: str, body: Any) -> PropertyDef:
    """A new custom property from a ``PropertyCreate`` body (name, label, type, fieldType, groupName)."""
    if not isinstance(body, dict):
        raise errors.invalid("Invalid input JSON: expected an object")
    missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
    if missing:
        raise errors.invalid(f"Invalid input JSON: missing {', '.join(missing)}")
    kind, field_type = str(body["type"]), str(body["fieldType"])
    if kind not in PROPERTY_KINDS:
        raise errors.invalid(f"Property type {kind!r} is not one of {sorted(PROPERTY_KINDS)}")
    if field_type not in FIELD_TYPES.get(kind, ()):
        raise errors.invalid(f"fieldType {field_type!r} is not valid for a {kind} property")
    if str(body["groupName"]) not in groups(portal, type_name):
        raise errors.invalid(f"Property group {body['groupName']!r} does not exist")
    name = str(body["name"])
    if name in portal.schema[type_name]:
        raise errors.conflict(f"A property named '{name}' already exists.")
    options = body.get("options") or []
    values = tuple(str(o.get("value")) for o in options if isinstance(o, dict) and o.get("value") is not None)
    portal.define_property(type_name, name, kind, values if kind == "enumeration" else ())
    made = portal.schema[type_name][name]
    made.label = str(body["label"])
    made.field_type = field_type
    made.group = str(body["groupName"])
    made.description = str(body.get("description") or "")
    return made


class PropertiesRoutes:
    """Route handlers of the properties API; mixed into the HubSpot backend."""

    portal: Portal

    def route_list_properties(self, request: Request, object_type: str) -> Response:
        otype = resolve_type(object_type)
        shown = [property_json(self.portal, otype.name, p) for p in self.portal.schema[otype.name].values()]
        return self.json({"results": shown})  # type: ignore[attr-defined,no-any-return]

    def route_get_property(self, request: Request, object_type: str, property_name: str) -> Response:
        otype = resolve_type(object_type)
        found = self.portal.schema[otype.name].get(property_name)
        if found is None:
            raise errors.not_found(f"Unable to find property {property_name} for object type {otype.type_id}")
        return self.json(property_json(self.portal, otype.name, found))  # type: ignore[attr-defined,no-any-return]

    def route_create_property(self, request: Request, object_type: str) -> Response:
        otype = resolve_type(object_type)
        made = create_property(self.portal, otype.name, request.get_json(silent=True))
        return self.json(property_json(self.portal, otype.name, made), 201)  # type: ignore[attr-defined,no-any-return]

    def route_list_groups(self, request: Request, object_type: str) -> Response:
        otype = resolve_type(object_type)
        shown = [{**g, "displayOrder": -1, "archived": False} for g in groups(self.portal, otype.name).values()]
        return self.json({"results": shown})  # type: ignore[attr-defined,no-any-return]

    def route_get_group(self, request: Request, object_type: str, group_name: str) -> Response:
        otype = resolve_type(object_type)
        found = groups(self.portal, otype.name).get(group_name)
        if found is None:
            raise errors.not_found(f"Unable to find property group {group_name}")
        return self.json({**found, "displayOrder": -1, "archived": False})  # type: ignore[attr-defined,no-any-return]

    def route_create_group(self, request: Request, object_type: str) -> Response:
        otype = resolve_type(object_type)
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not body.get("name") or not body.get("label"):
            raise errors.invalid("Invalid input JSON: name and label are required")
        known = groups(self.portal, otype.name)
        if str(body["name"]) in known:
            raise errors.conflict(f"A property group named '{body['name']}' already exists.")
        known[str(body["name"])] = {"name": str(body["name"]), "label": str(body["label"])}
        shown = {**known[str(body["name"])], "displayOrder": -1, "archived": False}
        return self.json(shown, 201)  # type: ignore[attr-defined,no-any-return]
