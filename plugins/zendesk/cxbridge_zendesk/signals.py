"""What Zendesk's webhook events mean, as cxbridge's neutral signals (``ZendeskConnector.interpret``).

Zendesk sends two shapes (``cxbridge_zendesk.webhook`` turns both into Events of kind ``ticket.<event>``):

- a trigger or automation's JSON body, which the admin writes (``cxbridge init`` suggests
  ``{"ticket": {"id", "tags"}, "current_user": {"name", "email"}, "event": "tag_added"}``);
- an event-subscription envelope ``{type: "zen:event-type:ticket.…", detail: {id, tags, …}, event: {…}}``
  (VENDOR-APIS.md 2.1: ``detail`` holds the ticket's keys, ``tags`` among them).

A ticket event whose ticket carries a status (``ticket.status``, ``detail.status``) is a ``TicketStateObserved``
too (the core acts only on linked tickets whose status changed). A ticket event whose ticket carries the
escalation tag (in ``ticket.tags``, ``detail.tags`` or the tags just added) is an ``EscalationRequested``, with
the agent from ``current_user`` and the requester's email when the body carries it (``ticket.requester.email``);
each tag starting with the decision prefix (``triggers.decision_tag_prefix``, a
macro added it) is a ``DecisionRequested`` with that agent; a
trigger's comment (``comment: {id, body, public, author_id, attachments?}``, the body cxbridge's documented
trigger template sends) is a ``TicketCommentAdded`` with the ticket's tags (the relay to engineering reads the
prefix, the public flag and a macro's tag); its author is ``current_user`` when that is the comment's
``author_id``.
The envelope's ``event`` object is not read: its shape per event type is not in the references this plugin is
checked against. Events queued from polling by earlier
versions (``{"ticket": {...}, "tags_added": [tag], "source": "poll"}``) read the same way.
"""

from __future__ import annotations

from typing import Any

from cxbridge.sdk import (
    DecisionRequested,
    EscalationRequested,
    Event,
    Person,
    Ref,
    Signal,
    TicketCommentAdded,
    TicketStateObserved,
    Triggers,
)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def ticket_tags(payload: dict[str, Any]) -> set[str]:
    """Every tag the payload says the ticket carries (or just gained)."""
    tags: set[str] = set()
    for node, key in ((payload.get("ticket"), "tags"), (payload.get("detail"), "tags"), (payload, "tags_added")):
        values = node.get(key) if isinstance(node, dict) else None
        if isinstance(values, str):
            values = values.split()
        if isinstance(values, list):
            tags.update(str(v) for v in values if isinstance(v, str | int))
    return tags


def requester_email(payload: dict[str, Any]) -> str | None:
    """The requester's email a trigger's body carries (``ticket.requester.email``, the escalation body's
    ``{{ticket.requester.email}}``), when it looks like one; None otherwise (an earlier body, an envelope)."""
    value = _dict(_dict(payload.get("ticket")).get("requester")).get("email")
    if not isinstance(value, str):
        return None
    email = value.strip()
    return email if "@" in email and len(email) <= 254 and email.isprintable() else None


def agent(payload: dict[str, Any]) -> Person | None:
    """The agent who made the change (a trigger's ``current_user`` placeholder), when the payload names one."""
    user = payload.get("current_user")
    if not isinstance(user, dict):
        return None
    name, email = user.get("name"), user.get("email")
    if not isinstance(name, str) and not isinstance(email, str):
        return None
    return Person(name=name if isinstance(name, str) else None, email=email if isinstance(email, str) else None)


def comment(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The comment a trigger's payload carries (``comment.body``), or None."""
    node = payload.get("comment")
    return node if isinstance(node, dict) and isinstance(node.get("body"), str) else None


def comment_author(system: str, payload: dict[str, Any], said: dict[str, Any]) -> Person | None:
    """Who wrote the comment: the trigger's ``current_user`` when it is the comment's ``author_id`` (or none is
    given), else the author by id only."""
    author_id = said.get("author_id")
    user = _dict(payload.get("current_user"))
    if author_id is None or str(user.get("id")) == str(author_id):
        return agent(payload)
    if isinstance(author_id, int | str) and not isinstance(author_id, bool):
        return Person(ref=Ref(system, "user", str(author_id)))
    return None


def attachment_ids(said: dict[str, Any]) -> tuple[str, ...]:
    """The ids of the comment's attachments (``comment.attachments``: ids, or objects with an ``id``)."""
    values = said.get("attachments")
    if not isinstance(values, list):
        return ()
    ids = [v.get("id") if isinstance(v, dict) else v for v in values]
    return tuple(str(i) for i in ids if isinstance(i, int | str) and not isinstance(i, bool))


def interpret(system: str, event: Event, triggers: Triggers) -> list[Signal]:
    """The signals of one Zendesk ticket event (refs name the configured ``system``)."""
    if event.subject.kind != "ticket" or not event.kind.startswith("ticket."):
        return []
    ticket = Ref(system, "ticket", event.subject.id)
    out: list[Signal] = []
    said = comment(event.payload)
    if said is not None:
        comment_id = said.get("id")
        out.append(
            TicketCommentAdded(
                ticket=ticket,
                text=str(said["body"]),
                public=said.get("public") is True,
                author=comment_author(system, event.payload, said),
                comment_id=None
                if comment_id is None or isinstance(comment_id, bool | dict | list)
                else str(comment_id),
                tags=tuple(sorted(ticket_tags(event.payload))),
                attachments=attachment_ids(said),
                actor=event.actor,
            )
        )
    if triggers.escalation_tag and triggers.escalation_tag in ticket_tags(event.payload):
        added = event.payload.get("tags_added")
        fresh = event.kind == "ticket.tag_added" or (isinstance(added, list) and triggers.escalation_tag in added)
        out.append(
            EscalationRequested(
                ticket=ticket,
                agent=agent(event.payload),
                actor=event.actor,
                fresh=fresh,
                requester_email=requester_email(event.payload),
            )
        )
    prefix = triggers.decision_tag_prefix
    if prefix:
        for tag in sorted(t for t in ticket_tags(event.payload) if t.startswith(prefix)):
            out.append(DecisionRequested(ticket=ticket, tag=tag, agent=agent(event.payload), actor=event.actor))
    status = ticket_status(event.payload)
    if status is not None:
        out.append(TicketStateObserved(ticket=ticket, status=status, actor=event.actor))
    return out


def ticket_status(payload: dict[str, Any]) -> str | None:
    """The ticket's status as the payload holds it (``ticket.status`` of a trigger body, as the ``{{ticket.status}}``
    placeholder renders it, or the envelope's ``detail.status``), lower case as the API spells it; None when absent."""
    for node in (payload.get("ticket"), payload.get("detail")):
        value = node.get("status") if isinstance(node, dict) else None
        if isinstance(value, str) and value.strip():
            word = value.strip().lower()
            return STATUS_NAMES.get(word, word)
    return None


STATUS_NAMES = {"on-hold": "hold", "on hold": "hold"}
"""The placeholder's display names (``New``, ``Open``, ``Pending``, ``On-hold``, ``Solved``, ``Closed``) that are not
the API's status, lower-cased."""
