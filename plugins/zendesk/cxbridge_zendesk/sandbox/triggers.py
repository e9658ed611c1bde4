"""Ticket triggers in the Zendesk emulator: stored through ``/api/v2/triggers``, run after every ticket change.

After each create or update (API or Tags API), the active triggers are checked in position order, as Zendesk's
trigger cycle does: a trigger whose conditions hold fires once (its actions apply to the ticket, and a
``notification_webhook`` action calls that webhook with its rendered JSON body); when a trigger changed the
ticket, the cycle starts over (each trigger fires at most once per update).

Conditions the emulator evaluates (others are refused at creation with 422, so a test never silently relies on
one it ignores): ``current_tags`` (``includes`` / ``not_includes``, space-separated tags), ``comment_is_public``
(``is`` ``true`` / ``false`` / ``not_relevant`` / ``requester_can_see_comment``), ``update_type`` (``is`` /
``is_not`` ``Create`` / ``Change``), ``status`` (``is`` / ``is_not`` / ``changed`` / ``not_changed``) and ``priority``
(``is`` / ``is_not``). Actions:
``notification_webhook`` (``[webhook_id, body]``), ``current_tags`` (add), ``remove_tags``, ``set_tags``,
``status``, ``priority``. Placeholders in a body: see ``placeholders``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .models import Comment, Ticket, User, ZendeskModel, iso, normalize_tags

CONDITIONS: dict[str, tuple[str, ...]] = {
    "current_tags": ("includes", "not_includes"),
    "comment_is_public": ("is",),
    "update_type": ("is", "is_not"),
    "status": ("is", "is_not", "changed", "not_changed"),
    "priority": ("is", "is_not"),
}
ACTIONS = ("notification_webhook", "current_tags", "remove_tags", "set_tags", "status", "priority")
DEFAULT_CATEGORY_ID = "10001"
NUMBER_PLACEHOLDERS = ("ticket.id", "current_user.id")
STATUS_DISPLAY = {
    "new": "New",
    "open": "Open",
    "pending": "Pending",
    "hold": "On-hold",
    "solved": "Solved",
    "closed": "Closed",
}
"""How the ``{{ticket.status}}`` placeholder renders a status (its display name, not the API's word)."""


def admin_target_body(event: str, public: bool | None = None) -> str:
    """The JSON template an admin target receives: what the plugin's documentation tells a Zendesk admin to put
    in the triggers (``plugins/zendesk/README.md``); a test holds it equal to what ``cxbridge setup`` creates.
    ``public`` is None for the escalation body, else the comment trigger's literal."""
    body: dict[str, Any] = {
        "event": event,
        "ticket": {"id": "{{ticket.id}}", "tags": "{{ticket.tags}}"},
        "current_user": {
            "id": "{{current_user.id}}",
            "name": "{{current_user.name}}",
            "email": "{{current_user.email}}",
        },
    }
    if public is not None:
        body["comment"] = {"body": "{{ticket.latest_comment}}", "public": public}
    if event == "status_changed":  # a trigger on "Status | Changed" of an escalated ticket (docs: README)
        body["ticket"]["status"] = "{{ticket.status}}"
    if event == "tag_added":  # the requester's email starts the customer lookup beside the ticket read
        body["ticket"]["requester"] = {"email": "{{ticket.requester.email}}"}
    text = json.dumps(body)
    for name in NUMBER_PLACEHOLDERS:  # numbers go in unquoted
        text = text.replace(f'"{{{{{name}}}}}"', "{{" + name + "}}")
    return text


def render(template: str, values: Mapping[str, Any]) -> str:
    """A body template with its ``{{placeholder}}``s filled in as Zendesk does for a JSON webhook: each value
    JSON-escaped (no quotes added: the template has them), an unknown placeholder rendered empty."""
    out: list[str] = []
    rest = template
    while "{{" in rest:
        head, _, tail = rest.partition("{{")
        name, sep, rest = tail.partition("}}")
        if not sep:
            out.append(head + "{{" + tail)
            rest = ""
            break
        value = values.get(name.strip())
        out.append(head + ("" if value is None else json.dumps(str(value))[1:-1]))
    out.append(rest)
    return "".join(out)


@dataclass
class Trigger:
    """A ticket trigger: conditions (``all`` and ``any``) and actions, in ``position`` order."""

    id: int
    title: str
    active: bool
    position: int
    conditions: dict[str, list[dict[str, Any]]]
    actions: list[dict[str, Any]]
    created_at: float
    updated_at: float
    description: str = ""
    category_id: str = DEFAULT_CATEGORY_ID


@dataclass
class Firing:
    """A webhook call a trigger made: the webhook's id and the rendered body."""

    webhook_id: str
    body: str


@dataclass
class Update:
    """What one ticket create or update did, as the conditions see it."""

    ticket: Ticket
    actor: User | None
    created: bool
    comment: Comment | None = None
    fired: list[int] = field(default_factory=list)
    status_changed: bool = False
    """Whether the update changed the ticket's status (for ``status`` ``changed``; a create always does)."""
    requester: User | None = None
    """The ticket's requester (``{{ticket.requester.*}}``)."""


def trigger_json(t: Trigger, base: str) -> dict[str, Any]:
    """A trigger as the Triggers API returns it."""
    return {
        "url": f"{base}/api/v2/triggers/{t.id}.json",
        "id": t.id,
        "title": t.title,
        "raw_title": t.title,
        "description": t.description,
        "active": t.active,
        "position": t.position,
        "default": False,
        "category_id": t.category_id,
        "conditions": {"all": list(t.conditions.get("all", [])), "any": list(t.conditions.get("any", []))},
        "actions": list(t.actions),
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    }


def titled_actions(
    data: Any, name: str, allowed: tuple[str, ...], check: Callable[[str, dict[str, Any]], None], *, partial: bool
) -> dict[str, Any]:
    """The ``trigger`` or ``macro`` object (``name``) of a request: refused as Zendesk does when the title or the
    actions are missing, and when an action is one the emulator cannot apply; ``check`` sees each action."""
    if not isinstance(data, dict) or not isinstance(data.get(name), dict):
        raise errors.bad_request(f"Parameter {name} is required")
    t: dict[str, Any] = data[name]
    if (not partial or "title" in t) and (not isinstance(t.get("title"), str) or not t["title"].strip()):
        raise errors.record_invalid("title", "Title: cannot be blank", "BlankValue")
    if not partial or "actions" in t:
        actions = t.get("actions")
        if not isinstance(actions, list) or not actions:
            raise errors.record_invalid("actions", "Actions: cannot be blank", "BlankValue")
        for action in actions:
            field_name = action.get("field") if isinstance(action, dict) else None
            if field_name not in allowed:
                raise errors.record_invalid("actions", f"Actions: {field_name!r} is not supported by the sandbox")
            check(field_name, action)
    return t


def _checked(model: ZendeskModel, data: Any, *, partial: bool = False) -> dict[str, Any]:
    """The ``trigger`` object of a request, with what the emulator cannot evaluate refused (422)."""

    def webhook_call(name: str, action: dict[str, Any]) -> None:
        if name == "notification_webhook":
            value = action.get("value")
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
                raise errors.record_invalid("actions", "Actions: notification_webhook takes [webhook_id, body]")
            if value[0] not in model.webhooks:
                raise errors.record_invalid("actions", f"Actions: webhook {value[0]} does not exist")

    t = titled_actions(data, "trigger", ACTIONS, webhook_call, partial=partial)
    conditions = t.get("conditions", {"all": t.get("all", []), "any": t.get("any", [])})
    if not isinstance(conditions, dict):
        raise errors.record_invalid("conditions", "Conditions: must be an object with all and any")
    for group in ("all", "any"):
        for cond in conditions.get(group) or []:
            name = cond.get("field") if isinstance(cond, dict) else None
            if name not in CONDITIONS or cond.get("operator") not in CONDITIONS[name]:
                raise errors.record_invalid("conditions", f"Conditions: {cond!r} is not supported by the sandbox")
    t["conditions"] = {"all": list(conditions.get("all") or []), "any": list(conditions.get("any") or [])}
    return t


def create(model: ZendeskModel, store: dict[int, Trigger], body: Any) -> Trigger:
    """A new trigger at the end of the list."""
    t = _checked(model, body)
    now = model.now()
    made = Trigger(
        id=model.next_id("trigger"),
        title=t["title"].strip(),
        active=bool(t.get("active", True)),
        position=len(store) + 1,
        conditions=t["conditions"],
        actions=list(t["actions"]),
        created_at=now,
        updated_at=now,
        description=str(t.get("description") or ""),
    )
    store[made.id] = made
    return made


def update(model: ZendeskModel, trigger: Trigger, body: Any) -> Trigger:
    """Change the given attributes of a trigger."""
    t = _checked(model, body, partial=True)
    for name in ("title", "active", "actions", "conditions", "description"):
        if name in t:
            setattr(trigger, name, t[name].strip() if name == "title" else t[name])
    trigger.updated_at = model.now()
    return trigger


# -- running ------------------------------------------------------------------------------------------------


def placeholders(update: Update, base: str) -> dict[str, Any]:
    """The placeholder values of a ticket as a trigger's body sees it after the update."""
    ticket, user, requester = update.ticket, update.actor, update.requester
    latest = ticket.comments[-1] if ticket.comments else None
    return {
        "ticket.id": ticket.id,
        "ticket.title": ticket.subject,
        "ticket.tags": " ".join(ticket.tags),
        "ticket.status": STATUS_DISPLAY.get(ticket.status, ticket.status),
        "ticket.priority": ticket.priority or "",
        "ticket.url": f"{base.split('://', 1)[-1]}/agent/tickets/{ticket.id}",
        "ticket.link": f"{base}/agent/tickets/{ticket.id}",
        "ticket.latest_comment": latest.body if latest else "",
        "current_user.id": user.id if user else "",
        "current_user.name": user.name if user else "",
        "current_user.email": user.email if user else "",
        "ticket.requester.email": requester.email if requester else "",
    }


def _holds(cond: dict[str, Any], update: Update) -> bool:
    name, op, value = cond.get("field"), cond.get("operator"), cond.get("value")
    ticket = update.ticket
    if name == "current_tags":
        wanted = normalize_tags(str(value or "").split())
        present = any(tag in ticket.tags for tag in wanted)
        return present if op == "includes" else not present
    if name == "comment_is_public":
        comment = update.comment
        if value == "not_relevant":
            return True
        if comment is None:
            return False
        public = comment.public
        return public if value in ("true", "requester_can_see_comment") else not public
    if name == "status" and op in ("changed", "not_changed"):
        changed = bool(update.created or update.status_changed)
        return changed == (str(op) == "changed")
    if name == "update_type":
        actual = "Create" if update.created else "Change"
        return (actual == value) == (op == "is")
    actual_value = getattr(ticket, str(name), None)
    return (actual_value == value) == (op == "is")


def matches(trigger: Trigger, update: Update) -> bool:
    """Whether a trigger's conditions hold: every ``all`` one, and one ``any`` one when there are some."""
    every = all(_holds(c, update) for c in trigger.conditions.get("all", []))
    some = trigger.conditions.get("any") or []
    return every and (not some or any(_holds(c, update) for c in some))


def _act(action: dict[str, Any], update: Update, base: str, firings: list[Firing]) -> bool:
    """Apply one action; True when it changed the ticket."""
    name, value, ticket = action["field"], action.get("value"), update.ticket
    if name == "notification_webhook" and isinstance(value, list):
        firings.append(Firing(str(value[0]), render(str(value[1]), placeholders(update, base))))
        return False
    before = list(ticket.tags), ticket.status, ticket.priority
    tags = normalize_tags(str(value or "").split()) if name.endswith("tags") else []
    if name == "current_tags":
        ticket.tags = ticket.tags + [t for t in tags if t not in ticket.tags]
    elif name == "remove_tags":
        ticket.tags = [t for t in ticket.tags if t not in tags]
    elif name == "set_tags":
        ticket.tags = tags
    else:
        setattr(ticket, name, value)
    return (list(ticket.tags), ticket.status, ticket.priority) != before


def run(model: ZendeskModel, store: dict[int, Trigger], update: Update, base: str) -> list[Firing]:
    """Run the trigger cycle for one update; returns the webhook calls to make, in order."""
    firings: list[Firing] = []
    ordered = sorted((t for t in store.values() if t.active), key=lambda t: (t.position, t.id))
    restart = True
    while restart:
        restart = False
        for trigger in ordered:
            if trigger.id in update.fired or not matches(trigger, update):
                continue
            update.fired.append(trigger.id)
            changed = [_act(a, update, base, firings) for a in trigger.actions]
            if any(changed):
                model.touch(update.ticket)
                restart = True
                break
    return firings
