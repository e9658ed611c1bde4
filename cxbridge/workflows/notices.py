"""Agents are told: an internal note on the ticket when its escalation (or join) failed for good, and when a replay
then went through.

When the worker dead-letters a job that asked for an escalation, ``failure_notice`` describes the failure for
the agent (what failed, in their words, and what to do) and the worker queues a ``notice`` job for it; that job
writes the note through the intent protocol (``write_once`` with a marker, read back after an unconfirmed
write), so a retry, a crash or a lost answer never writes it twice. The note's operation id is keyed by the
ticket and the failure's kind (its reason, the issue key, the error type), not by the attempt or the job: the
same failure again (a replay that fails the same way, a duplicate delivery) writes nothing new; a different
failure gets its own note. ``recovered`` writes one "now escalated" note when an escalation goes through on a
ticket that was told of a failure.

The wording is the admin's: templates named by role, ``helpdesk_failure_note.txt.j2`` and
``helpdesk_recovered_note.txt.j2`` (see ``templates/``). The context holds only what the agent needs: the
reason code, the issue key, the tracker's name, the vendor's own words (redacted, one line; never a traceback),
the escalation tag and the dead letter's job id. Secrets never reach it.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any, Final

from ..errors import (
    AuthError,
    ConfigError,
    CxbridgeError,
    NotFound,
    RateLimited,
    TemplateError,
    Unavailable,
    VendorError,
)
from ..http.redact import one_line, redact
from ..models import Ref
from ..signals import EscalationRequested
from . import syncback
from .escalate import IssueKeyRejected
from .once import marker_for, op_id, write_once
from .policy import PolicyRefused

if TYPE_CHECKING:
    from .context import Context

log = logging.getLogger(__name__)

JOB_KIND: Final = "notice"
"""The job kind that writes an agent notice (queued by the worker when an escalation is dead-lettered)."""
NOTICE_KIND: Final = "notice"
"""Snapshot kind: the last failure a ticket was told of (``<ticket ref>`` -> its note's op id, reason, job)."""
FAILURE_TEMPLATE: Final = "helpdesk_failure_note.txt.j2"
RECOVERED_TEMPLATE: Final = "helpdesk_recovered_note.txt.j2"
DETAIL_LIMIT: Final = 300
"""Characters of the vendor's words kept in a note."""

REASONS: Final = ("issue_key", "refused", "needs_admin", "unavailable", "failed")
"""What the templates branch on: the key the agent gave is wrong; a policy refused what the agent asked; the
tracker or cxbridge's configuration needs an admin (a missing project, a required field, credentials); the
vendor did not answer in time; anything else."""


def reason_of(exc: BaseException, *, transient: bool = False) -> str:
    """The notice's reason code for a failure (one of ``REASONS``); ``transient``: the worker gave up retrying it."""
    if isinstance(exc, IssueKeyRejected):
        return "issue_key"
    if isinstance(exc, PolicyRefused):
        return "refused"
    if transient or isinstance(exc, RateLimited | Unavailable):
        return "unavailable"
    if isinstance(exc, ConfigError | AuthError | NotFound | TemplateError | VendorError):
        return "needs_admin"
    return "failed"


def _detail(exc: BaseException) -> str:
    """What went wrong in the vendor's (or cxbridge's) own words: one redacted line, no traceback."""
    text = exc.vendor_message if isinstance(exc, VendorError) and exc.vendor_message else str(exc)
    if not isinstance(exc, CxbridgeError):  # a bug of ours: its text means nothing to an agent
        text = "an unexpected error inside cxbridge"
    return one_line(redact(text), DETAIL_LIMIT)


def failure_notice(
    system: str, signal: EscalationRequested, exc: BaseException, *, job_id: int, transient: bool = False
) -> dict[str, Any]:
    """The ``notice`` job payload telling the agent that the escalation ``signal`` asked for (on ``[systems.<system>]``)
    failed for good in the dead-lettered job ``job_id``. ``transient``: the worker gave up retrying it."""
    ticket = Ref(system, "ticket", signal.ticket.id)
    reason = reason_of(exc, transient=transient)
    key = exc.key if isinstance(exc, IssueKeyRejected) else signal.issue_key
    fingerprint = hashlib.sha256(f"{reason}|{key or ''}|{type(exc).__name__}".encode()).hexdigest()[:16]
    return {
        "op_id": op_id(str(ticket), f"helpdesk.failure|{fingerprint}"),
        "ticket": str(ticket),
        "system": system,
        "ticket_id": ticket.id,
        "reason": reason,
        "issue_key": key,
        "detail": _detail(exc),
        "job": job_id,
        "joining": bool(key),
    }


def _tracker_name(rt: Context) -> str:
    name = str(rt.tracker().name)
    return name.capitalize() if name.islower() else name


def _write_note(rt: Context, system: str, ticket: Ref, oid: str, kind: str, text: str) -> str:
    """One internal note per ``oid`` (found again by its marker); ``written`` or ``unchanged``."""
    helpdesk = rt.helpdesk(system)
    marker = marker_for(oid)
    body = f"{text.rstrip()}\n\n(cxbridge {marker})"

    def write() -> dict[str, Any]:
        # the fingerprint first: the helpdesk's webhook for this very note may arrive before we return
        rt.store.put_snapshot(syncback.ECHO_KIND, f"{ticket}|{syncback.fingerprint(body)}", {"op_id": oid})
        helpdesk.add_internal_note(ticket.id, body)
        return {"marker": marker}

    def find() -> dict[str, Any] | None:
        found = any(marker in c.body for c in helpdesk.list_comments(ticket.id))
        return {"marker": marker, "found": True} if found else None

    return write_once(rt.store, oid, kind, str(ticket), write, find=find, payload={"marker": marker})


def handle_notice_job(rt: Context, payload: dict[str, Any]) -> str:
    """The handler of ``notice`` jobs: the failure note on the ticket, once."""
    ticket = Ref.parse(str(payload["ticket"]))
    tag = str(rt.config.section("escalation").get("tag") or "")
    context = {
        "reason": payload.get("reason") or "failed",
        "issue_key": payload.get("issue_key"),
        "joining": bool(payload.get("joining")),
        "detail": payload.get("detail") or "",
        "tracker": _tracker_name(rt),
        "tag": tag,
        "job": payload.get("job"),
    }
    text = rt.handoff.render(FAILURE_TEMPLATE, context)
    oid = str(payload["op_id"])
    outcome = _write_note(rt, str(payload["system"]), ticket, oid, "helpdesk.failure_note", text)
    rt.store.put_snapshot(NOTICE_KIND, str(ticket), {"op_id": oid, "reason": context["reason"], "job": context["job"]})
    return f"told: {ticket} failure note {outcome} ({context['reason']})"


def recovered(rt: Context, system: str, ticket: Ref, *, issue_key: str, issue_url: str, created: bool) -> str | None:
    """After an escalation went through: one note saying so on a ticket that was told of a failure (None if it
    was not). Keyed by the failure's note, so each failure is followed by at most one such note."""
    told = rt.store.get_snapshot(NOTICE_KIND, str(ticket))
    if not told or not isinstance(told.get("op_id"), str):
        return None
    context = {"issue_key": issue_key, "issue_url": issue_url, "created": created, "tracker": _tracker_name(rt)}
    oid = op_id(str(ticket), f"helpdesk.recovered|{told['op_id']}")
    text = rt.handoff.render(RECOVERED_TEMPLATE, context)
    return _write_note(rt, system, ticket, oid, "helpdesk.recovered_note", text)
