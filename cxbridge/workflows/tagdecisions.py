"""Decisions asked from inside the helpdesk by a tag (a macro adds it), applied or refused under the policies.

An agent applies a macro that adds a tag such as ``cxb_decide_credit_50``; the helpdesk's trigger delivers the
ticket to cxbridge; the plugin reads the tag as a ``DecisionRequested`` (its prefix is ``[decisions]
tag_prefix``) with the agent who applied it. Here the rest of the tag is read by ``[decisions] tag_actions``
(``credit_{value}``, ``priority_{value}``, ``reopen``, ``public_reply``), the decision is taken through
``act_on_ticket`` with that agent as the actor (audited, carried out, announced on the issue and the CRM), and
the outcome, granted or refused, is written as ONE internal note in the same update that removes the tag.

Exactly once: the ticket is read first, and a tag that is gone was handled (a duplicate or late delivery
changes nothing). One application of a tag is one request id (``tag:<tag>:<n>``, ``n`` counting the times the
tag was handled on this ticket before), so a rerun after a crash, or a second delivery while the tag is still
there, completes the same decision instead of taking a second one; the agent applying the macro again later
(the tag back after its removal) is a new decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, CxbridgeError
from ..models import Person, Ref
from ..signals import DecisionRequested
from .once import marker_for, op_id, write_once
from .policy import (
    ActionRequest,
    DecisionImpossible,
    Policies,
    PolicyRefused,
    act_on_ticket,
    describe_action,
    parse_action,
)

if TYPE_CHECKING:
    from ..connectors import Helpdesk
    from ..models import Ticket
    from .context import Context

log = logging.getLogger(__name__)

DEFAULT_TAG_ACTIONS = {
    "credit": "credit_{value}",
    "priority": "priority_{value}",
    "reopen": "reopen",
    "public_reply": "public_reply",
}
"""What follows ``[decisions] tag_prefix`` for each action; ``{value}`` stands for the value."""
MAX_GENERATIONS = 10_000
"""A guard: no ticket has a decision tag applied this many times."""


class BadDecisionTag(CxbridgeError):
    """A tag with the decision prefix that names no configured action, or a value cxbridge cannot read."""


def tag_actions(settings: dict[str, Any]) -> dict[str, str]:
    """The configured patterns over the defaults (an action set to ``""`` is off)."""
    merged = {**DEFAULT_TAG_ACTIONS, **dict(settings.get("tag_actions") or {})}
    return {action: str(pattern) for action, pattern in merged.items() if pattern}


def tag_value(action: str, raw: str) -> str:
    """A value as a tag can hold it, as ``parse_action`` reads it: ``50``, ``50.5``, ``50_eur`` -> ``50 EUR``;
    ``high`` -> ``high``."""
    if action != "credit":
        return raw.replace("_", " ")
    amount, _, currency = raw.partition("_")
    try:
        Decimal(amount)
    except InvalidOperation:
        raise BadDecisionTag(f"{raw!r} is not an amount (e.g. 50, 50.5 or 50_eur)") from None
    return f"{amount} {currency.upper()}".strip()


def parse_decision_tag(tag: str, prefix: str, patterns: dict[str, str]) -> ActionRequest:
    """The decision a tag asks for; ``BadDecisionTag`` when it names none (or a value cxbridge cannot read).

    Patterns without ``{value}`` are matched exactly first, then those with one (``credit_{value}`` reads
    ``credit_50``).
    """
    if not prefix or not tag.startswith(prefix):
        raise BadDecisionTag(f"the tag {tag!r} does not start with the decision prefix {prefix!r}")
    rest = tag[len(prefix) :]
    for action, pattern in sorted(patterns.items(), key=lambda item: "{value}" in item[1]):
        if "{value}" not in pattern:
            if rest == pattern:
                return parse_action(action)
            continue
        head, _, tail = pattern.partition("{value}")
        if rest.startswith(head) and rest.endswith(tail) and len(rest) > len(head) + len(tail):
            raw = rest[len(head) : len(rest) - len(tail)]
            try:
                return parse_action(action, tag_value(action, raw))
            except BadDecisionTag:
                raise
            except CxbridgeError as exc:
                raise BadDecisionTag(str(exc)) from None
    known = ", ".join(prefix + p.replace("{value}", "<value>") for p in patterns.values())
    raise BadDecisionTag(f"the tag {tag!r} names no decision (known: {known})")


MACRO_TITLE_PREFIX = "cxbridge: "
"""The titles of the example macros ``cxbridge setup`` creates start with this."""


@dataclass(frozen=True)
class DecisionMacro:
    """One decision the admin listed in ``[decisions] macros``: its full tag, the title of its example macro, and
    the policy rules whose grant covers it (none: no agent could be granted it, so no macro is offered)."""

    tag: str
    title: str
    granted_by: tuple[str, ...]


def decision_macros(settings: dict[str, Any], policies: Policies) -> list[DecisionMacro]:
    """The decisions of ``[decisions] macros`` (suffixes after ``tag_prefix``), each read by the tag parser.

    A suffix the parser cannot read, or a list without a prefix, is a ``ConfigError`` naming it; a suffix listed
    twice counts once. ``granted_by`` names every rule whose grant covers the value (whatever its condition:
    the condition is about the ticket, the customer and the agent, known only when the macro is applied).
    """
    listed = [str(s) for s in settings.get("macros") or []]
    if not listed:
        return []
    prefix = str(settings.get("tag_prefix") or "")
    if not prefix:
        raise ConfigError('[decisions] macros needs a tag_prefix (it is ""): the macros add prefixed tags')
    patterns = tag_actions(settings)
    out: list[DecisionMacro] = []
    for suffix in dict.fromkeys(listed):
        tag = prefix + suffix
        try:
            request = parse_decision_tag(tag, prefix, patterns)
        except BadDecisionTag as exc:
            raise ConfigError(f"[decisions] macros: {suffix!r}: {exc}") from None
        value = request.value
        rules = tuple(r.name for r in policies.rules if r.grant.covers(request.action, value)[0])
        title = MACRO_TITLE_PREFIX + describe_action(request.action, value)
        out.append(DecisionMacro(tag, title, rules))
    return out


def _generation(rt: Context, ticket: Ref, tag: str) -> int:
    """How many times this tag was handled on this ticket before (its outcome note written)."""
    for n in range(MAX_GENERATIONS):
        intent = rt.store.get_intent(op_id(f"{ticket}|{tag}|{n}", "tag.outcome"))
        if intent is None or intent.state != "done":
            return n
    raise CxbridgeError(f"{ticket}: the tag {tag} was handled {MAX_GENERATIONS} times; refusing to go on")


def _own_words(helpdesk: Helpdesk, ticket: Ticket, agent: Person) -> str | None:
    """The agent's latest internal note on the ticket (not one cxbridge wrote), as the words of a public reply."""
    if not agent.email:
        return None
    email = agent.email.lower()
    for comment in reversed(helpdesk.list_comments(ticket.ref.id)):
        if comment.public or comment.author is None or (comment.author.email or "").lower() != email:
            continue
        if "cxbridge: cxb-" in comment.body or "(cxbridge cxb-" in comment.body:
            continue
        return comment.body.strip() or None
    return None


def decide_from_tag(rt: Context, system: str, signal: DecisionRequested, origin: str | None) -> str:
    """Apply or refuse the decision a tag asks for, write the outcome as one internal note and remove the tag."""
    settings = rt.config.section("decisions")
    helpdesk = rt.helpdesk(system)
    tag = signal.tag
    ticket = helpdesk.get_ticket(signal.ticket.id)
    if tag not in ticket.tags:
        return f"unchanged: {ticket.ref} no longer carries {tag} (handled before)"
    if not helpdesk.supports("add_note_removing_tag"):
        return f"ignored: {system} cannot remove the tag {tag}; decide with 'cxbridge act' instead"
    generation = _generation(rt, ticket.ref, tag)
    agent = signal.agent or Person()
    who = agent.email or agent.name
    granted, verdict = False, "not applied"
    try:
        request = parse_decision_tag(tag, str(settings.get("tag_prefix") or ""), tag_actions(settings))
        words = describe_action(request.action, request.value)
        if not agent.email:
            raise DecisionImpossible(
                f"{words}: the helpdesk did not say who added the tag (the trigger's payload needs "
                "current_user.email), and decisions belong to a named agent. Nothing was decided."
            )
        reply = None
        if request.action == "public_reply" and settings.get("reply_words", "latest_note") == "latest_note":
            reply = _own_words(helpdesk, ticket, agent)
        result = act_on_ticket(
            rt,
            ticket.ref.id,
            request,
            agent,
            request_id=f"tag:{tag}:{generation}",
            helpdesk=system,
            reply=reply,
            announce_on_ticket=False,
            origin_event=origin,
        )
        outcome, granted, verdict = result.outcome, True, "granted"
    except PolicyRefused as exc:
        outcome, verdict = f"REFUSED: {exc}. Nothing was applied.", "refused"
    except (BadDecisionTag, DecisionImpossible) as exc:
        outcome = f"NOT APPLIED: {exc}"
    text = f"{outcome}\n\n(Asked by {who or 'an unnamed user'} with the tag {tag}; cxbridge removed the tag.)"
    oid = op_id(f"{ticket.ref}|{tag}|{generation}", "tag.outcome")
    marker = marker_for(oid)

    def write() -> dict[str, Any]:
        helpdesk.add_note_removing_tag(ticket.ref.id, f"{text}\n\ncxbridge: {marker}", tag)
        return {"granted": granted}

    def find() -> dict[str, Any] | None:
        found = any(marker in c.body for c in helpdesk.list_comments(ticket.ref.id))
        return {"granted": granted} if found else None

    write_once(rt.store, oid, "helpdesk.tag_outcome", str(ticket.ref), write, find=find, payload={"marker": marker})
    log.info("%s: decision tag %s by %s: %s", ticket.ref, tag, who, verdict)
    return f"decided: {tag} on {ticket.ref} {verdict}"
