"""The Zendesk triggers ``cxbridge setup`` creates, and the JSON bodies they send to cxbridge's webhook.

Zendesk calls a webhook subscribed to ``conditional_ticket_events`` only when a trigger's ``notification_webhook``
action names it; the action's value is ``[webhook_id, body]``, where the body is a JSON template whose
``{{...}}`` placeholders Zendesk fills in (JSON-escaped, in a webhook whose ``request_format`` is ``json``).
The bodies below use Zendesk's documented placeholders only:

- escalation (trigger "cxbridge: escalate"; fires once when a ticket carries the escalation tag and not yet the
  ``<tag>_sent`` marker, which the same trigger adds, so later updates of the ticket do not fire it again)::

    {"event": "tag_added",
     "ticket": {"id": {{ticket.id}}, "tags": "{{ticket.tags}}", "requester": {"email": "{{ticket.requester.email}}"}},
     "current_user": {"id": {{current_user.id}}, "name": "{{current_user.name}}", "email": "{{current_user.email}}"}}

  ``{{ticket.requester.email}}`` (Zendesk's placeholders reference: ``user.email`` of ``ticket.requester``) is a
  hint: cxbridge starts the CRM lookup of the customer with it while it reads the ticket, and redoes the lookup
  from the ticket when the ticket's requester turns out to be someone else. A body without it (provisioned by an
  earlier version) still works, the lookup then waiting for the ticket.

- a comment on an escalated ticket (triggers "cxbridge: public comment" and "cxbridge: internal comment": the
  condition ``comment_is_public`` tells them apart, so ``public`` is a literal, not a placeholder)::

    {"event": "comment_added",
     "ticket": {"id": {{ticket.id}}, "tags": "{{ticket.tags}}"},
     "current_user": {"id": {{current_user.id}}, "name": "{{current_user.name}}", "email": "{{current_user.email}}"},
     "comment": {"body": "{{ticket.latest_comment}}", "public": true}}

- a decision asked from a macro (trigger "cxbridge: decide", only when ``[decisions] macros`` lists some: fires on
  any update of a ticket that carries at least one of those tags; cxbridge removes the tag when it has decided,
  so the trigger stops firing)::

    {"event": "decision_requested",
     "ticket": {"id": {{ticket.id}}, "tags": "{{ticket.tags}}"},
     "current_user": {"id": {{current_user.id}}, "name": "{{current_user.name}}", "email": "{{current_user.email}}"}}

- a status change of an escalated ticket (trigger "cxbridge: status changed": ``status`` ``changed``, so the remote
  link's ``resolved`` flag and the impact follow a solved or reopened ticket without waiting for ``cxbridge sync``;
  the plugin lowers the placeholder's rendering, "Solved", to the API's ``solved``)::

    {"event": "status_changed",
     "ticket": {"id": {{ticket.id}}, "tags": "{{ticket.tags}}", "status": "{{ticket.status}}"},
     "current_user": {"id": {{current_user.id}}, "name": "{{current_user.name}}", "email": "{{current_user.email}}"}}

``{{ticket.tags}}`` renders the tags separated by spaces; the plugin reads both forms. There is no event id in the
body: the verifier deduplicates by Zendesk's ``X-Zendesk-Webhook-Invocation-Id`` header.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

WEBHOOK_NAME = "cxbridge"
SENT_SUFFIX = "_sent"

_USER = (
    '"current_user": {"id": {{current_user.id}}, "name": "{{current_user.name}}", "email": "{{current_user.email}}"}'
)
_TICKET = '"ticket": {"id": {{ticket.id}}, "tags": "{{ticket.tags}}"}'

ESCALATION_BODY = (
    '{"event": "tag_added", "ticket": {"id": {{ticket.id}}, "tags": "{{ticket.tags}}", '
    + '"requester": {"email": "{{ticket.requester.email}}"}}, '
    + _USER
    + "}"
)
"""The JSON template of the escalation trigger's webhook call: the requester's email lets cxbridge start the
customer lookup beside the ticket read (the ticket read stays the truth)."""

EARLIER_ESCALATION_BODIES = ('{"event": "tag_added", ' + _TICKET + ", " + _USER + "}",)
"""Escalation bodies earlier versions of ``cxbridge setup`` provisioned: they still work (the escalation reads the
requester from the ticket, one round trip later), so ``setup --plan`` offers the update without calling the
trigger broken."""


STATUS_BODY = (
    '{"event": "status_changed", "ticket": {"id": {{ticket.id}}, "tags": "{{ticket.tags}}", "status": '
    + '"{{ticket.status}}"}, '
    + _USER
    + "}"
)
"""The JSON template of the status trigger's webhook call (the ticket's status after the update)."""

DECISION_BODY = '{"event": "decision_requested", ' + _TICKET + ", " + _USER + "}"
"""The JSON template of the decide trigger's webhook call: the plugin reads every tag with the decision prefix
in ``ticket.tags`` as a decision asked by ``current_user``."""
DECIDE_TITLE = "cxbridge: decide"


def decide_trigger(decision_tags: Sequence[str], webhook_id: str) -> dict[str, Any]:
    """The trigger that delivers a ticket carrying any of the decision tags (Zendesk's "Tags contains at least one
    of the following": ``current_tags`` ``includes`` the tags separated by spaces)."""
    return {
        "title": DECIDE_TITLE,
        "description": "Sends a decision an agent asks for with a cxbridge macro (tags: "
        + ", ".join(decision_tags)
        + "); cxbridge decides under its policies, removes the tag and writes the outcome as an internal note.",
        "active": True,
        "conditions": {
            "all": [{"field": "current_tags", "operator": "includes", "value": " ".join(decision_tags)}],
            "any": [],
        },
        "actions": [{"field": "notification_webhook", "value": [webhook_id, DECISION_BODY]}],
    }


def comment_body(public: bool) -> str:
    """The JSON template of a comment trigger's webhook call (``public`` is the trigger's own condition)."""
    flag = "true" if public else "false"
    return (
        '{"event": "comment_added", '
        + _TICKET
        + ", "
        + _USER
        + ', "comment": {"body": "{{ticket.latest_comment}}", "public": '
        + flag
        + "}}"
    )


def desired_triggers(tag: str, webhook_id: str, decision_tags: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The triggers cxbridge needs, as ``POST /api/v2/triggers`` bodies' ``trigger`` objects, by title (the decide
    trigger only when there are decision tags)."""
    marker = tag + SENT_SUFFIX
    escalate = {
        "title": "cxbridge: escalate",
        "description": f"Sends the ticket to cxbridge once when an agent adds the tag {tag}.",
        "active": True,
        "conditions": {
            "all": [
                {"field": "current_tags", "operator": "includes", "value": tag},
                {"field": "current_tags", "operator": "not_includes", "value": marker},
            ],
            "any": [],
        },
        "actions": [
            {"field": "notification_webhook", "value": [webhook_id, ESCALATION_BODY]},
            {"field": "current_tags", "value": marker},
        ],
    }
    out = [escalate]
    for public, word in ((True, "public"), (False, "internal")):
        out.append(
            {
                "title": f"cxbridge: {word} comment",
                "description": f"Sends each {word} comment on a ticket escalated by cxbridge (tag {tag}).",
                "active": True,
                "conditions": {
                    "all": [
                        {"field": "current_tags", "operator": "includes", "value": tag},
                        {"field": "comment_is_public", "operator": "is", "value": "true" if public else "false"},
                    ],
                    "any": [],
                },
                "actions": [{"field": "notification_webhook", "value": [webhook_id, comment_body(public)]}],
            }
        )
    out.append(
        {
            "title": "cxbridge: status changed",
            "description": f"Sends the new status of a ticket escalated by cxbridge (tag {tag}) when it changes.",
            "active": True,
            "conditions": {
                "all": [
                    {"field": "current_tags", "operator": "includes", "value": tag},
                    {"field": "status", "operator": "changed"},
                ],
                "any": [],
            },
            "actions": [{"field": "notification_webhook", "value": [webhook_id, STATUS_BODY]}],
        }
    )
    if decision_tags:
        out.append(decide_trigger(decision_tags, webhook_id))
    return out
