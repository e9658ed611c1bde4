"""Macros in the Zendesk emulator: stored through ``/api/v2/macros`` (List, Create) and ``/api/v2/macros/{id}``
(Show, Update, Delete), answered as the Macros API documents them: an admin sees and changes every macro; an
agent sees the shared ones and their own personal ones, and what an agent creates is personal.

A macro is applied by an agent in the agent workspace, which then updates the ticket with the macro's actions;
the emulator has no agent workspace, so a test applies a macro as the workspace would: it reads the macro and
sends the ticket update its actions describe (``current_tags`` adds tags). The actions the emulator accepts are
the ones it can apply that way (others are refused with 422, so a test never relies on one it ignores).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import errors
from .models import User, ZendeskModel, iso
from .triggers import titled_actions

ACTIONS = ("current_tags", "remove_tags", "set_tags", "status", "priority", "comment_value", "comment_mode_is_public")


@dataclass
class Macro:
    """A macro: a title and the ticket changes (actions) an agent applies with it."""

    id: int
    title: str
    actions: list[dict[str, Any]]
    active: bool
    position: int
    created_at: float
    updated_at: float
    description: str | None = None
    restriction: dict[str, Any] | None = None
    usage: dict[str, int] = field(default_factory=dict)


def macro_json(m: Macro, base: str) -> dict[str, Any]:
    """A macro as the Macros API returns it (``restriction`` null: every agent of the account may use it)."""
    return {
        "url": f"{base}/api/v2/macros/{m.id}.json",
        "id": m.id,
        "title": m.title,
        "raw_title": m.title,
        "description": m.description,
        "active": m.active,
        "position": m.position,
        "default": False,
        "actions": [dict(a) for a in m.actions],
        "restriction": m.restriction,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    }


def visible(m: Macro, user: User) -> bool:
    """Whether a user sees a macro: admins every one; an agent the shared ones and their own personal ones
    (group restrictions are not modelled: the emulator has no groups)."""
    return user.role == "admin" or m.restriction is None or _own(m, user)


def editable(m: Macro, user: User) -> bool:
    """Whether a user may change or delete a macro: admins any; an agent only their personal ones."""
    return user.role == "admin" or _own(m, user)


def _own(m: Macro, user: User) -> bool:
    r = m.restriction or {}
    return r.get("type") == "User" and r.get("id") == user.id


def _has_value(name: str, action: dict[str, Any]) -> None:
    if not isinstance(action.get("value"), str | bool | list):
        raise errors.record_invalid("actions", f"Actions: {name} needs a value")


def _checked(data: Any, *, partial: bool = False) -> dict[str, Any]:
    """The ``macro`` object of a request, refused as Zendesk does when a title or the actions are missing."""
    m = titled_actions(data, "macro", ACTIONS, _has_value, partial=partial)
    if "active" in m and not isinstance(m["active"], bool):
        raise errors.record_invalid("active", "Active: must be true or false")
    if m.get("restriction") is not None and not isinstance(m["restriction"], dict):
        raise errors.record_invalid("restriction", "Restriction: must be an object or null")
    return m


def create(model: ZendeskModel, store: dict[int, Macro], body: Any, user: User) -> Macro:
    """A new macro at the end of the list: an admin's is shared unless a restriction is given; an agent's is
    personal (restricted to the agent), as Zendesk makes it."""
    m = _checked(body)
    restriction = m.get("restriction") if user.role == "admin" else {"type": "User", "id": user.id}
    now = model.now()
    made = Macro(
        id=model.next_id("macro"),
        title=m["title"].strip(),
        actions=[dict(a) for a in m["actions"]],
        active=bool(m.get("active", True)),
        position=len(store) + 1,
        created_at=now,
        updated_at=now,
        description=m.get("description"),
        restriction=restriction,
    )
    store[made.id] = made
    return made


def update(model: ZendeskModel, macro: Macro, body: Any, user: User) -> Macro:
    """Change the given attributes of a macro (an agent cannot share their personal macro)."""
    m = _checked(body, partial=True)
    names = ("title", "actions", "active", "description") + (("restriction",) if user.role == "admin" else ())
    for name in names:
        if name in m:
            setattr(macro, name, m[name].strip() if name == "title" else m[name])
    macro.updated_at = model.now()
    return macro
