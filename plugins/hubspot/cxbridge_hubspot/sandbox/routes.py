"""HubSpot's routes: parse requests the way HubSpot does and answer in its shapes.

CRM objects v3 (``/crm/v3/objects/{type}``: get, list, create, update, archive, batch read, search), properties v3
(``/crm/v3/properties/{type}``, in ``properties.py``), associations
v4 (``/crm/v4/objects/.../associations/...``, batch read, labels) and the webhooks v3 management API
(``/webhooks/v3/{appId}/settings`` and ``/subscriptions``). State and rules live in ``models.Portal``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from cxbridge.sdk import Backend, VendorFault

from . import errors, properties
from .models import (
    ASSOCIATIONS_MAX_LIMIT,
    BATCH_MAX_INPUTS,
    TICKET_PIPELINE_LABELS,
    TICKET_PIPELINES,
    CrmObject,
    ObjectType,
    Portal,
    Subscription,
    association_types,
    default_association,
    iso_ms,
    resolve_type,
)

ASSOCIATIONS_BATCH_MAX_INPUTS = 1000
ALL_PROPERTIES: frozenset[str] = frozenset({"*"})
"""Pass (this object itself) as ``properties`` to ``public_object`` for every value a record holds."""


def hubspot_url_map() -> Map:
    """The routes the emulator answers; endpoints name ``route_<endpoint>`` methods."""
    objects = "/crm/v3/objects/<object_type>"
    v4 = "/crm/v4/objects/<from_type>/<from_id>/associations"
    rules = [
        *properties.rules(),
        Rule(objects, methods=["GET"], endpoint="list_objects"),
        Rule(objects, methods=["POST"], endpoint="create_object"),
        Rule(f"{objects}/search", methods=["POST"], endpoint="search_objects"),
        Rule(f"{objects}/batch/read", methods=["POST"], endpoint="batch_read"),
        Rule(f"{objects}/<object_id>", methods=["GET"], endpoint="get_object"),
        Rule(f"{objects}/<object_id>", methods=["PATCH"], endpoint="update_object"),
        Rule(f"{objects}/<object_id>", methods=["DELETE"], endpoint="archive_object"),
        Rule(f"{v4}/default/<to_type>/<to_id>", methods=["PUT"], endpoint="associate_default"),
        Rule(f"{v4}/<to_type>/<to_id>", methods=["PUT"], endpoint="associate_labels"),
        Rule(f"{v4}/<to_type>/<to_id>", methods=["DELETE"], endpoint="dissociate"),
        Rule(f"{v4}/<to_type>", methods=["GET"], endpoint="list_associations"),
        Rule(
            "/crm/v4/associations/<from_type>/<to_type>/batch/read",
            methods=["POST"],
            endpoint="batch_read_associations",
        ),
        Rule("/crm/v4/associations/<from_type>/<to_type>/labels", methods=["GET"], endpoint="association_labels"),
        Rule("/crm/associations/v4/<from_type>/<to_type>/labels", methods=["GET"], endpoint="association_labels"),
        Rule("/crm/v3/pipelines/<object_type>", methods=["GET"], endpoint="list_pipelines"),
        Rule("/crm/v3/owners", methods=["GET"], endpoint="list_owners"),
        Rule("/crm/v3/owners/<owner_id>", methods=["GET"], endpoint="get_owner"),
        Rule("/webhooks/v3/<app_id>/settings", methods=["GET"], endpoint="get_settings"),
        Rule("/webhooks/v3/<app_id>/settings", methods=["PUT"], endpoint="put_settings"),
        Rule("/webhooks/v3/<app_id>/settings", methods=["DELETE"], endpoint="delete_settings"),
        Rule("/webhooks/v3/<app_id>/subscriptions", methods=["GET"], endpoint="list_subscriptions"),
        Rule("/webhooks/v3/<app_id>/subscriptions", methods=["POST"], endpoint="create_subscription"),
        Rule("/webhooks/v3/<app_id>/subscriptions/<sub_id>", methods=["GET"], endpoint="get_subscription"),
        Rule("/webhooks/v3/<app_id>/subscriptions/<sub_id>", methods=["PATCH"], endpoint="update_subscription"),
        Rule("/webhooks/v3/<app_id>/subscriptions/<sub_id>", methods=["DELETE"], endpoint="delete_subscription"),
    ]
    return Map(rules, strict_slashes=False, merge_slashes=False)


def list_arg(request: Request, name: str) -> list[str] | None:
    """A list query parameter sent as repeated keys or as comma lists (both, as HubSpot accepts); None if absent."""
    if name not in request.args:
        return None
    return [part.strip() for raw in request.args.getlist(name) for part in raw.split(",") if part.strip()]


def bool_arg(request: Request, name: str) -> bool:
    """A boolean query parameter (``true``/``false``)."""
    return request.args.get(name, "false").strip().lower() == "true"


def int_arg(request: Request, name: str, default: int) -> int:
    """An integer query parameter, or a 400."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise errors.invalid(f"{name} must be an integer, was {raw!r}") from None


def next_link(request: Request, after: str) -> str:
    """The absolute URL of the next page: this request's URL (its host) with ``after`` replaced."""
    pairs = [(k, v) for k, v in request.args.items(multi=True) if k != "after"]
    pairs.append(("after", after))
    return f"{request.host_url.rstrip('/')}{request.path}?{urlencode(pairs)}"


def body_object(data: Any) -> Mapping[str, Any]:
    """The request body as a JSON object, or a 400."""
    if not isinstance(data, Mapping):
        raise errors.invalid("Invalid input JSON: expected an object")
    return data


def batch_inputs(data: Mapping[str, Any], limit: int) -> list[Any]:
    """A batch request's ``inputs``, or a 400 when missing or longer than ``limit``."""
    inputs = data.get("inputs")
    if not isinstance(inputs, list):
        raise errors.invalid("Invalid input JSON: inputs is required")
    if len(inputs) > limit:
        raise errors.invalid(f"Too many inputs ({len(inputs)}); the limit is {limit}")
    return inputs


def public_object(
    portal: Portal,
    obj: CrmObject,
    properties: Iterable[str] | None,
    *,
    with_history: Iterable[str] | None = None,
    associations: Iterable[str] | None = None,
) -> dict[str, Any]:
    """A ``SimplePublicObject`` (``…WithAssociations`` when associations were asked for).

    ``properties=None`` gives the type's default properties; ``ALL_PROPERTIES`` every value the record holds.
    The id, create and modified dates are always included; properties without a value are left out.
    """
    otype = obj.type
    if properties is ALL_PROPERTIES:
        shown = dict(obj.properties)
    else:
        wanted = set(otype.defaults if properties is None else properties)
        wanted.update(otype.always)
        shown = {k: v for k, v in obj.properties.items() if k in wanted}
    body: dict[str, Any] = {
        "id": obj.id,
        "properties": dict(sorted(shown.items())),
        "createdAt": iso_ms(obj.created_at),
        "updatedAt": iso_ms(obj.updated_at),
        "archived": obj.archived,
    }
    if obj.archived and obj.archived_at is not None:
        body["archivedAt"] = iso_ms(obj.archived_at)
    if with_history:
        body["propertiesWithHistory"] = {
            name: [dict(entry) for entry in obj.history[name]] for name in with_history if name in obj.history
        }
    if associations:
        found: dict[str, Any] = {}
        for name in associations:
            try:
                to_type = resolve_type(name)
            except VendorFault:  # HubSpot ignores association types it does not know
                continue
            results = [
                {"id": to_id, "type": atype.name}
                for to_id, atypes in portal.associated(otype.name, obj.id, to_type.name)
                for atype in atypes
            ]
            if results:
                found[to_type.name] = {"results": results}
        if found:
            body["associations"] = found
    return body


def association_spec_with_label(atype: Any) -> dict[str, Any]:
    """An ``AssociationSpecWithLabel`` (no ``label`` key for an unlabeled type)."""
    spec: dict[str, Any] = {"category": atype.category, "typeId": atype.type_id}
    if atype.label is not None:
        spec["label"] = atype.label
    return spec


class HubSpotRoutes(properties.PropertiesRoutes, Backend):
    """The route methods of the HubSpot emulator; ``HubSpotBackend`` adds auth, seeds and webhooks."""

    portal: Portal
    app_id: int

    def url_map(self) -> Map:
        """HubSpot's routes."""
        return hubspot_url_map()

    # -- CRM objects v3 ---------------------------------------------------------------------------------------
    def route_get_object(self, request: Request, object_type: str, object_id: str) -> Response:
        """GET /crm/v3/objects/{type}/{id} (``idProperty``, ``properties``, ``associations``, ``archived``)."""
        otype = resolve_type(object_type)
        obj = self.portal.find(
            otype, object_id, id_property=request.args.get("idProperty"), archived=bool_arg(request, "archived")
        )
        return self.json(self._public(obj, request))

    def route_list_objects(self, request: Request, object_type: str) -> Response:
        """GET /crm/v3/objects/{type}: a page of records (``limit`` ≤ 100, ``after``)."""
        otype = resolve_type(object_type)
        rows, after = self.portal.page(
            otype,
            limit=int_arg(request, "limit", 10),
            after=request.args.get("after"),
            archived=bool_arg(request, "archived"),
        )
        body: dict[str, Any] = {"results": [self._public(o, request) for o in rows]}
        if after is not None:
            body["paging"] = {"next": {"after": after, "link": next_link(request, after)}}
        return self.json(body)

    def route_create_object(self, request: Request, object_type: str) -> Response:
        """POST /crm/v3/objects/{type}: create with optional associations, 201."""
        otype = resolve_type(object_type)
        data = body_object(self.read_json(request))
        obj = self.portal.create(otype, data.get("properties") or {}, data.get("associations") or [])
        return self.json(public_object(self.portal, obj, ALL_PROPERTIES), 201)

    def route_update_object(self, request: Request, object_type: str, object_id: str) -> Response:
        """PATCH /crm/v3/objects/{type}/{id} (``idProperty``): set or clear values."""
        otype = resolve_type(object_type)
        data = body_object(self.read_json(request))
        properties = data.get("properties")
        if not isinstance(properties, Mapping):
            raise errors.invalid("Invalid input JSON: properties is required")
        obj = self.portal.update(otype, object_id, properties, id_property=request.args.get("idProperty"))
        return self.json(public_object(self.portal, obj, ALL_PROPERTIES))

    def route_archive_object(self, request: Request, object_type: str, object_id: str) -> Response:
        """DELETE /crm/v3/objects/{type}/{id}: archive, 204."""
        self.portal.archive(resolve_type(object_type), object_id)
        return Response(status=204)

    def route_batch_read(self, request: Request, object_type: str) -> Response:
        """POST /crm/v3/objects/{type}/batch/read: 200, or 207 with errors for missing ids."""
        otype = resolve_type(object_type)
        started = self.clock()
        data = body_object(self.read_json(request))
        inputs = batch_inputs(data, BATCH_MAX_INPUTS)
        id_property = data.get("idProperty")
        properties = data.get("properties")
        history = data.get("propertiesWithHistory")
        archived = bool_arg(request, "archived")
        results, missing, seen = [], [], set()
        for item in inputs:
            key = str(item.get("id", "")) if isinstance(item, Mapping) else ""
            obj = self.portal.lookup(otype, key, id_property=id_property, archived=archived) if key else None
            if obj is None:
                missing.append(key)
            elif obj.id not in seen:
                seen.add(obj.id)
                results.append(
                    public_object(self.portal, obj, properties if properties else None, with_history=history)
                )
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "requestedAt": iso_ms(started),
            "startedAt": iso_ms(started),
            "completedAt": iso_ms(self.clock()),
        }
        if not missing:
            return self.json(body)
        label = otype.singular.upper()
        body["errors"] = [
            errors.standard_error(
                "OBJECT_NOT_FOUND",
                f"Could not get some {label} objects, they may be deleted or not exist. Check that ids are valid.",
                {"ids": missing},
            )
        ]
        body["numErrors"] = 1
        return self.json(body, 207)

    def route_search_objects(self, request: Request, object_type: str) -> Response:
        """POST /crm/v3/objects/{type}/search: filter groups, sorts, offset paging, total."""
        otype = resolve_type(object_type)
        data = body_object(self.read_json(request) or {})
        rows, total, after = self.portal.search(otype, data)
        properties = data.get("properties")
        body: dict[str, Any] = {
            "total": total,
            "results": [public_object(self.portal, o, properties if properties else None) for o in rows],
        }
        if after is not None:
            body["paging"] = {"next": {"after": after}}
        return self.json(body)

    def _public(self, obj: CrmObject, request: Request) -> dict[str, Any]:
        return public_object(
            self.portal,
            obj,
            list_arg(request, "properties"),
            with_history=list_arg(request, "propertiesWithHistory"),
            associations=list_arg(request, "associations"),
        )

    # -- pipelines v3 (developers.hubspot.com CRM pipelines API; not in the specs folder) ------------------------
    def route_list_pipelines(self, request: Request, object_type: str) -> Response:
        """GET /crm/v3/pipelines/{objectType}: every pipeline with its stages (tickets: ``metadata.ticketState``)."""
        if object_type not in ("tickets", "0-5"):
            raise errors.not_found(f"Unable to find pipelines for object type {object_type}")
        created = iso_ms(0.0)
        results = []
        for order, (pipeline_id, stage_ids) in enumerate(TICKET_PIPELINES.items()):
            label, stages = TICKET_PIPELINE_LABELS[pipeline_id]
            results.append(
                {
                    "id": pipeline_id,
                    "label": label,
                    "displayOrder": order,
                    "archived": False,
                    "createdAt": created,
                    "updatedAt": created,
                    "stages": [
                        {
                            "id": stage_id,
                            "label": stage_label,
                            "displayOrder": n,
                            "metadata": {"ticketState": state},
                            "archived": False,
                            "createdAt": created,
                            "updatedAt": created,
                        }
                        for n, (stage_id, (stage_label, state)) in enumerate(zip(stage_ids, stages, strict=True))
                    ],
                }
            )
        return self.json({"results": results})

    # -- owners v3 -------------------------------------------------------------------------------------------
    def route_get_owner(self, request: Request, owner_id: str) -> Response:
        """GET /crm/v3/owners/{ownerId} (``idProperty`` id or userId, ``archived``): one owner, 404 when absent."""
        by_user = request.args.get("idProperty") == "userId"
        for owner in self.portal.owners.values():
            if (str(owner["userId"]) if by_user else owner["id"]) == owner_id:
                return self.json(dict(owner))
        raise errors.not_found(f"No owner found with id {owner_id}")

    def route_list_owners(self, request: Request) -> Response:
        """GET /crm/v3/owners (``email`` filter, ``limit`` ≤ 500, ``after``): a page of owners."""
        email = request.args.get("email")
        rows = [dict(o) for o in self.portal.owners.values() if not email or o["email"].lower() == email.lower()]
        limit = int_arg(request, "limit", 100)
        start = int_arg(request, "after", 0)
        body: dict[str, Any] = {"results": rows[start : start + limit]}
        if start + limit < len(rows):
            body["paging"] = {"next": {"after": str(start + limit), "link": next_link(request, str(start + limit))}}
        return self.json(body)

    # -- associations v4 --------------------------------------------------------------------------------------
    def _pair(self, from_type: str, from_id: str, to_type: str, to_id: str) -> tuple[ObjectType, ObjectType]:
        source, target = resolve_type(from_type), resolve_type(to_type)
        self.portal.find(source, from_id)
        self.portal.find(target, to_id)
        return source, target

    def route_associate_default(
        self, request: Request, from_type: str, from_id: str, to_type: str, to_id: str
    ) -> Response:
        """PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}."""
        started = self.clock()
        source, target = self._pair(from_type, from_id, to_type, to_id)
        atype = default_association(source.name, target.name)
        self.portal.associate(source.name, from_id, target.name, to_id, [atype.type_id])
        inverse = default_association(target.name, source.name)
        results = [
            {
                "from": {"id": from_id},
                "to": {"id": to_id},
                "associationSpec": {"associationCategory": atype.category, "associationTypeId": atype.type_id},
            },
            {
                "from": {"id": to_id},
                "to": {"id": from_id},
                "associationSpec": {"associationCategory": inverse.category, "associationTypeId": inverse.type_id},
            },
        ]
        return self.json(
            {
                "status": "COMPLETE",
                "results": results,
                "startedAt": iso_ms(started),
                "completedAt": iso_ms(self.clock()),
            }
        )

    def route_associate_labels(
        self, request: Request, from_type: str, from_id: str, to_type: str, to_id: str
    ) -> Response:
        """PUT /crm/v4/objects/{from}/{id}/associations/{to}/{toId} with [AssociationSpec], 201."""
        source, target = self._pair(from_type, from_id, to_type, to_id)
        specs = self.read_json(request)
        if not isinstance(specs, list) or not specs:
            raise errors.invalid("Invalid input JSON: expected a non-empty array of association specs")
        atypes = []
        for spec in specs:
            if not isinstance(spec, Mapping):
                raise errors.invalid("Invalid association spec: expected an object")
            atypes.append(
                self.portal.association_spec(
                    source, target, spec.get("associationCategory"), spec.get("associationTypeId")
                )
            )
        self.portal.associate(source.name, from_id, target.name, to_id, [a.type_id for a in atypes])
        labels = sorted({a.label for a in atypes if a.label is not None})
        return self.json(
            {
                "fromObjectTypeId": source.type_id,
                "fromObjectId": from_id,
                "toObjectTypeId": target.type_id,
                "toObjectId": to_id,
                "labels": labels,
            },
            201,
        )

    def route_dissociate(self, request: Request, from_type: str, from_id: str, to_type: str, to_id: str) -> Response:
        """DELETE /crm/v4/objects/{from}/{id}/associations/{to}/{toId}: every type, both ways, 204."""
        source, target = resolve_type(from_type), resolve_type(to_type)
        self.portal.dissociate(source.name, from_id, target.name, to_id)
        return Response(status=204)

    def route_list_associations(self, request: Request, from_type: str, from_id: str, to_type: str) -> Response:
        """GET /crm/v4/objects/{from}/{id}/associations/{to} (``limit`` ≤ 500, ``after``)."""
        source, target = resolve_type(from_type), resolve_type(to_type)
        self.portal.find(source, from_id)
        limit = int_arg(request, "limit", ASSOCIATIONS_MAX_LIMIT)
        if limit < 1 or limit > ASSOCIATIONS_MAX_LIMIT:
            raise errors.invalid(f"limit must be between 1 and {ASSOCIATIONS_MAX_LIMIT}, was {limit}")
        after = request.args.get("after") or "0"
        if not after.isdigit():
            raise errors.invalid(f"Invalid after: {after}")
        rows = self.portal.associated(source.name, from_id, target.name)
        start = int(after)
        page = rows[start : start + limit]
        body: dict[str, Any] = {
            "results": [
                {"toObjectId": to_id, "associationTypes": [association_spec_with_label(a) for a in atypes]}
                for to_id, atypes in page
            ]
        }
        if start + limit < len(rows):
            nxt = str(start + limit)
            body["paging"] = {"next": {"after": nxt, "link": next_link(request, nxt)}}
        return self.json(body)

    def route_batch_read_associations(self, request: Request, from_type: str, to_type: str) -> Response:
        """POST /crm/v4/associations/{from}/{to}/batch/read: 200, or 207 with errors."""
        started = self.clock()
        source, target = resolve_type(from_type), resolve_type(to_type)
        data = body_object(self.read_json(request))
        inputs = batch_inputs(data, ASSOCIATIONS_BATCH_MAX_INPUTS)
        results, problems = [], []
        for item in inputs:
            key = str(item.get("id", "")) if isinstance(item, Mapping) else ""
            rows = self.portal.associated(source.name, key, target.name) if key else []
            if not rows:
                problems.append(
                    errors.standard_error(
                        "OBJECT_NOT_FOUND",
                        f"No {target.singular} is associated with {source.singular} {key}.",
                        {"fromObjectId": [key]},
                    )
                )
                continue
            results.append(
                {
                    "from": {"id": key},
                    "to": [
                        {"toObjectId": to_id, "associationTypes": [association_spec_with_label(a) for a in atypes]}
                        for to_id, atypes in rows
                    ],
                }
            )
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_ms(started),
            "completedAt": iso_ms(self.clock()),
        }
        if not problems:
            return self.json(body)
        body["errors"] = problems
        body["numErrors"] = len(problems)
        return self.json(body, 207)

    def route_association_labels(self, request: Request, from_type: str, to_type: str) -> Response:
        """GET the association types (labels) defined from one object type to another."""
        source, target = resolve_type(from_type), resolve_type(to_type)
        results = [association_spec_with_label(a) for a in association_types(source.name, target.name)]
        return self.json({"results": results})

    # -- webhooks v3 management -------------------------------------------------------------------------------
    def _check_app(self, app_id: str) -> None:
        if app_id != str(self.app_id):
            raise errors.not_found(f"No app with id {app_id} belongs to this developer account")

    def route_get_settings(self, request: Request, app_id: str) -> Response:
        """GET /webhooks/v3/{appId}/settings."""
        self._check_app(app_id)
        if self.portal.settings is None:
            raise errors.not_found(f"No webhook settings for app {app_id}")
        return self.json(self.portal.settings)

    def route_put_settings(self, request: Request, app_id: str) -> Response:
        """PUT /webhooks/v3/{appId}/settings: the target URL webhooks go to."""
        self._check_app(app_id)
        data = body_object(self.read_json(request))
        target = data.get("targetUrl")
        throttling = data.get("throttling")
        if not isinstance(target, str) or not target.startswith(("https://", "http://")):
            raise errors.invalid("targetUrl must be an absolute URL")
        if not isinstance(throttling, Mapping) or not isinstance(throttling.get("maxConcurrentRequests"), int):
            raise errors.invalid("throttling.maxConcurrentRequests is required")
        now = iso_ms(self.clock())
        created = self.portal.settings["createdAt"] if self.portal.settings else now
        self.portal.settings = {
            "targetUrl": target,
            "throttling": dict(throttling),
            "createdAt": created,
            "updatedAt": now,
        }
        return self.json(self.portal.settings)

    def route_delete_settings(self, request: Request, app_id: str) -> Response:
        """DELETE /webhooks/v3/{appId}/settings, 204."""
        self._check_app(app_id)
        self.portal.settings = None
        return Response(status=204)

    def route_list_subscriptions(self, request: Request, app_id: str) -> Response:
        """GET /webhooks/v3/{appId}/subscriptions."""
        self._check_app(app_id)
        return self.json({"results": [subscription_body(s) for s in self.portal.subscriptions.values()]})

    def route_create_subscription(self, request: Request, app_id: str) -> Response:
        """POST /webhooks/v3/{appId}/subscriptions, 201."""
        self._check_app(app_id)
        data = body_object(self.read_json(request))
        event_type = data.get("eventType")
        if not isinstance(event_type, str):
            raise errors.invalid("eventType is required")
        object_type_id = data.get("objectTypeId")
        sub = self.portal.add_subscription(
            event_type,
            data.get("propertyName"),
            active=bool(data.get("active")),
            object_type_id=object_type_id if isinstance(object_type_id, str) else None,
        )
        return self.json(subscription_body(sub), 201)

    def route_get_subscription(self, request: Request, app_id: str, sub_id: str) -> Response:
        """GET /webhooks/v3/{appId}/subscriptions/{id}."""
        self._check_app(app_id)
        return self.json(subscription_body(self.portal.subscription(sub_id)))

    def route_update_subscription(self, request: Request, app_id: str, sub_id: str) -> Response:
        """PATCH /webhooks/v3/{appId}/subscriptions/{id}: pause or resume."""
        self._check_app(app_id)
        sub = self.portal.subscription(sub_id)
        data = body_object(self.read_json(request))
        if "active" in data:
            sub.active = bool(data["active"])
            sub.updated_at = self.clock()
        return self.json(subscription_body(sub))

    def route_delete_subscription(self, request: Request, app_id: str, sub_id: str) -> Response:
        """DELETE /webhooks/v3/{appId}/subscriptions/{id}, 204."""
        self._check_app(app_id)
        sub = self.portal.subscription(sub_id)
        del self.portal.subscriptions[sub.id]
        return Response(status=204)


def subscription_body(sub: Subscription) -> dict[str, Any]:
    """A ``SubscriptionResponse``."""
    body: dict[str, Any] = {
        "id": str(sub.id),
        "eventType": sub.event_type,
        "active": sub.active,
        "createdAt": iso_ms(sub.created_at),
        "updatedAt": iso_ms(sub.updated_at),
    }
    if sub.property_name:
        body["propertyName"] = sub.property_name
    if sub.object_type_id:
        body["objectTypeId"] = sub.object_type_id
    return body
