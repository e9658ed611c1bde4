"""Sync back (DESIGN section 7): what engineering does reaches every linked ticket and the CRM, once.

- A status transition, by status CATEGORY (``new``, ``indeterminate``, ``done``: ``cxbridge.signals``),
  puts a templated internal note (``sync_status.txt.j2``) on every linked ticket; where ``[sync] status_map``
  maps the category, the ticket's status changes; where ``[sync] draft_reply_on`` lists it (or the issue's
  resolution, ``"Done"``), a suggested public reply (``sync_reply.txt.j2``) is written for the agent AS AN
  INTERNAL NOTE (Zendesk has no draft API: the agent copies it into a public reply). The templates see the
  resolution and ``issue.fixed`` (false for ``[sync] not_fixed_resolutions``: Won't Do, Duplicate...). The
  customer's CRM company gets one note per transition (``sync_crm.html.j2``).
- A tracker comment that starts with ``[sync] comment_prefix`` or whose visibility group/role is listed in
  ``[sync] comment_visibility`` becomes an internal note (``sync_comment.txt.j2``), the prefix stripped.
- A released fix version gives a "fix shipped" note (``sync_release.txt.j2``) on every linked ticket of every
  issue with that fix version, and a CRM note per company.

State: per issue, the snapshot ``("sync", "<issue ref>")`` holds the last applied category, status, the remote
``updated`` time and a transition sequence number. Only a change of category acts; an event older than the last
applied one is dropped, so the same events in any order leave the same final state. Every write goes through an
intent with a deterministic op_id (issue, ticket, transition sequence), so a rerun after a crash writes nothing
twice; a note carries a marker so that an unconfirmed write is looked for before it is written again. Each note
written for a ticket is fingerprinted first, so that its echo (the helpdesk's comment webhook) is dropped.

Concurrency: the tickets are independent, and so are the companies, so one change's writes go out side by side
(``once.by_system``): at most ``[sync] concurrency`` (default 4) tickets of one helpdesk at a time, the CRM's notes
beside them under the same bound. One ticket's own writes keep their order (note, then status, then drafted
reply). A 429 on one call holds that system's other calls (the HTTP client's shared rate-limit hold); a ticket
whose write failed in a way that retries the job stops its system's remaining tickets for this run, and the
retry writes only what is missing (each write's intent).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from ..connectors import Helpdesk, Tracker
from ..errors import AmbiguousOutcome, AuthError, Conflict, RateLimited, Unavailable, VendorError
from ..models import Customer, Link, Ref
from ..signals import CATEGORY_NAMES, IssueCommentPosted, IssueStateObserved, VersionReleased
from .once import by_system, crm_note_once, marker_for, op_id, write_once

if TYPE_CHECKING:
    from .context import Context

log = logging.getLogger(__name__)

SNAPSHOT_KIND = "sync"
ECHO_KIND = "echo"
CATEGORIES = CATEGORY_NAMES
"""The neutral status categories -> how they read."""
ACTOR = "cxbridge"

TEMPLATE_STATUS = "sync_status.txt.j2"
TEMPLATE_REPLY = "sync_reply.txt.j2"
TEMPLATE_COMMENT = "sync_comment.txt.j2"
TEMPLATE_RELEASE = "sync_release.txt.j2"
TEMPLATE_CRM = "sync_crm.html.j2"

Work = tuple[str, Callable[[], int]]
"""One ticket's (or company's) writes as a call, with the system it writes to (``once.by_system``'s lanes)."""


def fingerprint(text: str) -> str:
    """A note's fingerprint: SHA-256 of its text with whitespace collapsed (how a helpdesk may reflow it)."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def is_own_note(rt: Context, ticket: Ref, body: Any) -> bool:
    """Whether a comment on the ticket is a note sync back wrote (its echo)."""
    if not isinstance(body, str) or not body.strip():
        return False
    return rt.store.get_snapshot(ECHO_KIND, f"{ticket}|{fingerprint(body)}") is not None


@dataclass(frozen=True)
class Origin:
    """The change a sync-back write answers (its ``id``: the delivery or poll that carried it), for the audit."""

    id: str | None


@dataclass
class IssueState:
    """What an issue event says about the issue's state."""

    ref: Ref
    key: str
    url: str
    summary: str
    status: str | None
    category: str | None
    updated: float | None
    category_changed: float | None
    resolution: str | None = None


class SyncBack:
    """Applies tracker events to the linked tickets and the CRM (see the module docstring)."""

    def __init__(
        self,
        rt: Context,
        *,
        crash_hook: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        concurrency: int | None = None,
    ) -> None:
        self.rt = rt
        self.store = rt.store
        self.settings = rt.config.section("sync")
        self.crash_hook = crash_hook
        self.clock = clock
        self.concurrency = int(concurrency if concurrency is not None else self.settings["concurrency"])
        """Writes to one system at once (``[sync] concurrency``): per ticket, per company."""

    def _point(self, name: str) -> None:
        if self.crash_hook is not None:
            self.crash_hook(name)

    # -- reading signals ----------------------------------------------------------------------------------------
    def _state(self, system: str, signal: IssueStateObserved | IssueCommentPosted) -> IssueState:
        tracker = self.rt.connector(system)
        observed = signal if isinstance(signal, IssueStateObserved) else None
        return IssueState(
            ref=Ref(system, "issue", signal.issue.id),
            key=signal.key,
            url=tracker.issue_url(signal.key) if isinstance(tracker, Tracker) and signal.key else "",
            summary=signal.summary,
            status=observed.status if observed else None,
            category=observed.category if observed else None,
            updated=observed.updated.timestamp() if observed and observed.updated else None,
            category_changed=observed.category_changed.timestamp() if observed and observed.category_changed else None,
            resolution=observed.resolution if observed else None,
        )

    def _status_for(self, ticket: Ref, category: str) -> str | None:
        """``[sync] status_map``: category -> status, or system name -> {category -> status}."""
        mapping = self.settings["status_map"]
        per_system = mapping.get(ticket.system)
        value = per_system.get(category) if isinstance(per_system, dict) else mapping.get(category)
        return value if isinstance(value, str) and value else None

    # -- status transitions -------------------------------------------------------------------------------------
    def issue_changed(self, system: str, signal: IssueStateObserved, origin: str | None = None) -> str:
        """A status transition (by category) reaches every linked ticket and the CRM; anything else is a no-op."""
        state = self._state(system, signal)
        event = Origin(origin)
        if state.category is None:
            return f"ignored: the event does not hold the status of {state.key or state.ref}"
        links = self.store.links_for_issue(state.ref)
        if not links:
            return f"ignored: no ticket is linked to {state.key or state.ref}"
        snap = self.store.get_snapshot(SNAPSHOT_KIND, str(state.ref)) or {}
        last_updated = snap.get("updated")
        if state.updated is not None and isinstance(last_updated, int | float) and state.updated < last_updated:
            return f"stale: {state.key} event older than the state applied last"
        previous = snap.get("category") if snap else self._baseline(state, links)
        if previous == state.category:
            if state.updated is not None and (
                not isinstance(last_updated, int | float) or state.updated > last_updated
            ):
                self.store.put_snapshot(
                    SNAPSHOT_KIND,
                    str(state.ref),
                    {**snap, "category": state.category, "status": state.status, "updated": state.updated},
                )
            return f"unchanged: {state.key} is {CATEGORIES.get(state.category, state.category)} already"
        seq = int(snap.get("seq", 0)) + 1
        written = self._apply_transition(state, links, previous, seq, signal.actor_name, event)
        self.store.put_snapshot(
            SNAPSHOT_KIND,
            str(state.ref),
            {
                "category": state.category,
                "status": state.status,
                "updated": state.updated if state.updated is not None else last_updated,
                "seq": seq,
                "event": event.id,
            },
        )
        return (
            f"synced: {state.key} {CATEGORIES.get(str(previous), previous)} -> "
            f"{CATEGORIES.get(state.category, state.category)}: {written} write(s)"
        )

    def _baseline(self, state: IssueState, links: list[Link]) -> str | None:
        """The category to compare with when nothing was applied yet.

        When the issue's category last changed before it was first linked, that category is where it stood then
        (nothing to tell); otherwise an issue starts in ``new``.
        """
        linked = [link.linked_at.timestamp() for link in links if link.linked_at is not None]
        if state.category_changed is not None and linked and state.category_changed <= min(linked):
            return state.category
        return "new"

    def _apply_transition(
        self,
        state: IssueState,
        links: list[Link],
        previous: str | None,
        seq: int,
        actor: str | None,
        event: Origin,
    ) -> int:
        assert state.category is not None
        step = f"sync.status.{seq}.{state.category}"
        base_ctx: dict[str, Any] = {
            "issue": {
                "key": state.key,
                "url": state.url,
                "summary": state.summary,
                "status": state.status,
                "category": state.category,
                "category_name": CATEGORIES.get(state.category, state.category),
                "resolution": state.resolution,
                "fixed": self._fixed(state),
            },
            "previous": {"category": previous, "category_name": CATEGORIES.get(str(previous), previous)},
            "actor": actor,
        }
        calls: list[Work] = [
            (
                link.ticket.system,
                self._ticket_work(link, event, self._transition_ticket, state, link, base_ctx, step, event),
            )
            for link in links
        ]
        calls += self._crm_notes(state, links, f"{step}.crm", {**base_ctx, "kind": "status"}, event)
        return self._run(calls)

    def _run(self, calls: list[Work]) -> int:
        """The writes of one change, each ticket's (and company's) on its own: systems side by side, at most
        ``concurrency`` calls of one system at a time (``once.by_system``); returns the writes made."""
        return sum(by_system(calls, limit=self.concurrency))

    def _transition_ticket(
        self, state: IssueState, link: Link, base_ctx: dict[str, Any], step: str, event: Origin
    ) -> int:
        """The note (and status, and drafted reply) of one transition on one ticket; returns the writes made."""
        assert state.category is not None
        helpdesk = self.rt.helpdesk(link.ticket.system)
        mapped = self._status_for(link.ticket, state.category)
        ctx = {**base_ctx, "ticket": self._ticket_ctx(helpdesk, link.ticket), "ticket_status": mapped}
        business_key = f"{state.ref}|{link.ticket}"
        written = 0
        if mapped is not None and helpdesk.supports("add_note_with_status"):
            # one update carries the note and the status: one call per ticket
            send: Callable[[str], None] = lambda text: helpdesk.add_note_with_status(  # noqa: E731
                link.ticket.id, text, mapped
            )
            if self._note(
                helpdesk, link, business_key, f"{step}.note", TEMPLATE_STATUS, ctx, event, "sync.status", send
            ):
                written += 1
                self._audit("sync.ticket_status", link, result=mapped, event=event)
        else:
            if self._note(helpdesk, link, business_key, f"{step}.note", TEMPLATE_STATUS, ctx, event, "sync.status"):
                written += 1
            if mapped is not None:
                outcome = write_once(
                    self.store,
                    op_id(business_key, f"{step}.status"),
                    "helpdesk.status",
                    business_key,
                    lambda: {"changed": helpdesk.set_status(link.ticket.id, mapped)},
                    point=self._point,
                )
                if outcome == "written":
                    written += 1
                    self._audit("sync.ticket_status", link, result=mapped, event=event)
        if self._drafts_reply(state) and self._note(
            helpdesk, link, business_key, f"{step}.reply", TEMPLATE_REPLY, ctx, event, "sync.reply_draft"
        ):
            written += 1
        return written

    def _fixed(self, state: IssueState) -> bool:
        """Whether the issue is done with a fix: done, and not closed under a ``[sync] not_fixed_resolutions`` one."""
        if state.category != "done":
            return False
        not_fixed = {str(r).casefold() for r in self.settings["not_fixed_resolutions"]}
        return state.resolution is None or state.resolution.casefold() not in not_fixed

    def _drafts_reply(self, state: IssueState) -> bool:
        """``[sync] draft_reply_on`` names the new category (exactly: ``done``) or the issue's resolution (any case)."""
        wanted = [str(x) for x in self.settings["draft_reply_on"]]
        if state.category in wanted:
            return True
        resolution = (state.resolution or "").casefold()
        return bool(resolution) and any(x.casefold() == resolution for x in wanted if x not in CATEGORIES)

    def _ticket_work(
        self, link: Link, event: Origin, write: Callable[..., int | bool], *args: Any
    ) -> Callable[[], int]:
        """One ticket's writes (``write(*args)``, in their order) as one call for ``_run``: a ticket that refuses
        them for good (deleted, closed) does not stop the others; the call returns the writes made.

        Rate limits, outages, unknown outcomes, conflicts and auth failures propagate: the job is retried (every
        write done so far is skipped by its intent) or dead-lettered.
        """

        def work() -> int:
            try:
                return int(write(*args))
            except (RateLimited, Unavailable, AmbiguousOutcome, AuthError, Conflict):
                raise
            except VendorError as exc:
                log.warning("sync back: %s refused the update: %s", link.ticket, exc)
                self._audit("sync.ticket", link, result="failed", event=event, details={"error": str(exc)})
                return 0

        return work

    # -- comments -----------------------------------------------------------------------------------------------
    def for_support(self, signal: IssueCommentPosted) -> str | None:
        """The text of a tracker comment marked for support (prefix stripped; may be empty), else None."""
        text = signal.text.strip()
        prefix = self.settings["comment_prefix"]
        # wiki markup escapes a leading bracket (``\[support]``) where the engineer typed ``[support]``
        marked = next((p for p in (prefix, "\\" + prefix) if prefix and text.startswith(p)), None)
        if marked is not None:
            return text[len(marked) :].strip()
        if self._visible_to_support(signal.visibility_type, signal.visibility_value):
            return text
        return None

    def comment_added(self, system: str, signal: IssueCommentPosted, origin: str | None = None) -> str:
        """A tracker comment marked for support becomes an internal note on every linked ticket.

        The router has dropped comments by cxbridge's own integration user (the signal's actor) already.
        """
        state = self._state(system, signal)
        event = Origin(origin)
        text = self.for_support(signal)
        if text is None:
            return f"ignored: {state.key} comment is not marked for support"
        if not text:
            return f"ignored: {state.key} comment marked for support is empty"
        links = self.store.links_for_issue(state.ref)
        if not links:
            return f"ignored: no ticket is linked to {state.key}"
        name = signal.author_name
        step = f"sync.comment.{signal.comment_id}"
        calls: list[Work] = []
        for link in links:
            helpdesk = self.rt.helpdesk(link.ticket.system)
            ctx = {
                "issue": {"key": state.key, "url": state.url, "summary": state.summary},
                "author": name,
                "comment": text,
                "ticket": self._ticket_ctx(helpdesk, link.ticket),
            }
            note = (helpdesk, link, f"{state.ref}|{link.ticket}", step, TEMPLATE_COMMENT, ctx, event, "sync.comment")
            calls.append((link.ticket.system, self._ticket_work(link, event, self._note, *note)))
        written = self._run(calls)
        return f"synced: {state.key} comment {signal.comment_id}: {written} note(s)"

    def _visible_to_support(self, kind: str | None, value: str | None) -> bool:
        wanted = {str(v) for v in self.settings["comment_visibility"]}
        if not wanted or value is None:
            return False
        return value in wanted or f"{kind}:{value}" in wanted

    # -- releases -----------------------------------------------------------------------------------------------
    def version_released(self, system: str, signal: VersionReleased, origin: str | None = None) -> str:
        """A released version: a "fix shipped" note on every linked ticket of every issue fixed in it."""
        event = Origin(origin)
        if not signal.released:
            return f"ignored: version {signal.name} is not released"
        version_id = signal.version_id
        tracker = self.rt.connector(system)
        if not isinstance(tracker, Tracker) or not tracker.supports("issues_with_fix_version"):
            return f"ignored: {system} cannot list the issues of a version"
        issues = tracker.issues_with_fix_version(version_id)
        calls: list[Work] = []
        version_ctx = {"id": version_id, "name": signal.name, "release_date": signal.release_date}
        for issue in issues:
            links = self.store.links_for_issue(issue.ref)
            if not links:
                continue
            base_ctx: dict[str, Any] = {
                "issue": {"key": issue.key, "url": issue.url, "summary": issue.summary, "status": issue.status},
                "version": version_ctx,
            }
            step = f"sync.release.{version_id}"
            for link in links:
                helpdesk = self.rt.helpdesk(link.ticket.system)
                ctx = {**base_ctx, "ticket": self._ticket_ctx(helpdesk, link.ticket)}
                note = (
                    helpdesk,
                    link,
                    f"{issue.ref}|{link.ticket}",
                    step,
                    TEMPLATE_RELEASE,
                    ctx,
                    event,
                    "sync.release",
                )
                calls.append((link.ticket.system, self._ticket_work(link, event, self._note, *note)))
            state = IssueState(issue.ref, issue.key, issue.url, issue.summary, issue.status, None, None, None)
            calls += self._crm_notes(state, links, f"{step}.crm", {**base_ctx, "kind": "release"}, event)
        written = self._run(calls)
        return f"synced: version {signal.name} released: {written} write(s) for {len(issues)} issue(s)"

    # -- writes -------------------------------------------------------------------------------------------------
    @staticmethod
    def _ticket_ctx(helpdesk: Helpdesk, ticket: Ref) -> dict[str, Any]:
        return {"system": ticket.system, "id": ticket.id, "url": helpdesk.ticket_url(ticket.id)}

    def _note(
        self,
        helpdesk: Helpdesk,
        link: Link,
        business_key: str,
        step: str,
        template: str,
        ctx: dict[str, Any],
        event: Origin,
        action: str,
        send: Callable[[str], None] | None = None,
    ) -> bool:
        """One internal note on the linked ticket for this step, ever; True when written now.

        ``send`` writes the text (default: ``add_internal_note``).
        """
        oid = op_id(business_key, step)
        marker = marker_for(oid)
        ticket = link.ticket
        cache: dict[str, str] = {}

        def body() -> str:
            if "text" not in cache:
                cache["text"] = self.rt.handoff.render(template, ctx).rstrip() + f"\n\n(cxbridge {marker})"
            return cache["text"]

        def write() -> dict[str, Any]:
            text = body()
            # the fingerprint first: the helpdesk's webhook for this very note may arrive before we return
            self.store.put_snapshot(ECHO_KIND, f"{ticket}|{fingerprint(text)}", {"op_id": oid, "at": self.clock()})
            if send is None:
                helpdesk.add_internal_note(ticket.id, text)
            else:
                send(text)
            return {"marker": marker}

        def find() -> dict[str, Any] | None:
            found = any(marker in c.body for c in helpdesk.list_comments(ticket.id))
            return {"marker": marker, "found": True} if found else None

        outcome = write_once(
            self.store, oid, "helpdesk.note", business_key, write, find=find, point=self._point, payload={"step": step}
        )
        if outcome == "written":
            self._audit(action, link, result="written", event=event, details={"op_id": oid})
            return True
        return False

    def _crm_notes(
        self, state: IssueState, links: list[Link], step: str, ctx: dict[str, Any], event: Origin
    ) -> list[Work]:
        """One note per customer company of the linked tickets (deduplicated), when a CRM is configured: a call
        each for ``_run``."""
        if not self.settings["crm_notes"]:
            return []
        crm = self.rt.crm()
        if crm is None:
            return []
        companies: dict[Ref, list[Link]] = {}
        for link in links:
            if link.customer is not None:
                companies.setdefault(link.customer, []).append(link)

        def note(company: Ref, company_links: list[Link]) -> int:
            assert crm is not None
            business_key = f"{state.ref}|{company}"
            note_ctx = {
                **ctx,
                "tickets": [self._ticket_ctx(self.rt.helpdesk(x.ticket.system), x.ticket) for x in company_links],
            }
            outcome = crm_note_once(
                self.store,
                crm,
                Customer(company_ref=company, contact_ref=None),
                op_id(business_key, step),
                business_key,
                lambda: self.rt.handoff.render(TEMPLATE_CRM, note_ctx),
                point=self._point,
            )
            if outcome != "written":
                return 0
            self.store.audit(
                actor=ACTOR,
                action="sync.crm_note",
                target=str(company),
                result="written",
                origin_event=event.id,
                issue_key=state.key,
                details={"step": step, "tickets": [str(x.ticket) for x in company_links]},
            )
            return 1

        return [(crm.name, partial(note, company, company_links)) for company, company_links in companies.items()]

    def _audit(
        self, action: str, link: Link, *, result: str, event: Origin, details: dict[str, Any] | None = None
    ) -> None:
        self.store.audit(
            actor=ACTOR,
            action=action,
            target=str(link.ticket),
            result=result,
            origin_event=event.id,
            ticket=link.ticket,
            issue_key=link.issue_key,
            details=details or {},
        )
