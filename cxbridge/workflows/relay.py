"""Support to engineering: what support (and, when enabled, the customer) says on a linked ticket reaches the issues.

A ``TicketCommentAdded`` (a webhook, or ``cxbridge sync`` reading a linked ticket's comments) is relayed when
``[sync] to_tracker`` is on and the comment is marked for engineering:

- an internal note that starts with ``[sync] engineering_prefix`` (default ``[engineering]``; the prefix is
  stripped), or any internal note of a ticket carrying ``[sync] engineering_tag`` (a macro adds it);
- with ``[sync] relay_public_replies``, every public reply (the agent's and the customer's).

Each linked issue gets one comment (``relay_comment.md.j2``, Markdown: the tracker turns it into its own rich text),
attributed (who wrote it, on which ticket, for which customer) and internal where the tracker can restrict it
(``Tracker.add_comment(internal=True)``). Exactly once: the comment is an intent keyed by (ticket comment, issue),
carrying a marker so that a write whose answer was lost is found on the issue (``Tracker.find_comment``) instead
of written twice. A snapshot per (ticket comment, issue) records the tracker's comment id and the fingerprints of
the texts relayed: the same comment seen again with a new text is an edit (a redaction, an edited note) and
updates the relayed copy (``Tracker.update_comment``, one intent per text); a text seen before is a duplicate or
an older delivery and writes nothing. The tracker's webhook for the relayed comment names cxbridge's integration
user as its author, so the router drops it: nothing echoes back to the ticket.

Attachments (of a relayed comment, and of the ticket's first message at escalation: ``upload_first_message``)
are uploaded to each issue (``Tracker.add_attachment``) when their type is one of ``[sync] attachment_types``
and their size at most ``[sync] attachment_max_bytes``, at most ``attachment_max_files`` of them; the others,
and any the helpdesk will not serve from its own origin, are listed in the comment as links to the helpdesk's
copy. A file is read from the helpdesk once per job whatever the number of issues, its name is sanitised, and
each upload is an intent keyed by (attachment, issue): an upload whose answer was lost is looked for on the
issue (same name and size, ``Tracker.list_attachments``) before it is sent again.

Several linked issues get their comments side by side (``once.by_system``, at most ``[sync] concurrency`` calls to
one tracker at a time); each issue's own writes keep their order (its uploads, then the comment that lists them).
The ticket and each file are still read once per job whatever the number of issues (under a lock).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
import logging
import re
import threading
import unicodedata
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from ..connectors import Helpdesk, Tracker
from ..errors import AmbiguousOutcome, AuthError, Conflict, RateLimited, Unavailable, VendorError
from ..models import Attachment, Comment, Link, Person, Ref, Ticket
from ..signals import TicketCommentAdded
from .once import by_system, marker_for, op_id, write_once
from .syncback import fingerprint

if TYPE_CHECKING:
    from .context import Context

log = logging.getLogger(__name__)

SNAPSHOT_KIND = "relay"
TEMPLATE = "relay_comment.md.j2"
ACTOR = "cxbridge"
FILENAME_MAX = 180
"""Longest attachment name sent to the tracker (characters, extension kept)."""
_UNSAFE = re.compile(r"[^\w.()+ -]+")
RETRYABLE = (RateLimited, Unavailable, AmbiguousOutcome, AuthError, Conflict)
"""Errors that retry the job; any other refusal of a file makes it a link instead."""


def safe_filename(name: str) -> str:
    """An attachment's name as sent to the tracker: no folders, no control or shell-special characters, no
    leading dots, at most ``FILENAME_MAX`` characters with the extension kept; ``attachment`` when nothing is left."""
    base = unicodedata.normalize("NFC", str(name)).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" ._")
    if len(base) > FILENAME_MAX:
        stem, dot, ext = base.rpartition(".")
        ext = ext[:16] if dot and stem else ""
        base = base[: FILENAME_MAX - len(ext) - (1 if ext else 0)].rstrip(" ._") + (f".{ext}" if ext else "")
    return base or "attachment"


def type_allowed(content_type: str, allowed: list[str]) -> bool:
    """Whether a content type (parameters ignored) is one of ``allowed`` (``type/subtype`` or ``type/*``)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return bool(kind) and any(fnmatch.fnmatchcase(kind, pattern.strip().lower()) for pattern in allowed)


class Files:
    """The attachments of one comment: read from the helpdesk (and downloaded) at most once per job."""

    def __init__(self, helpdesk: Helpdesk, ids: tuple[str, ...] | list[str], settings: Any) -> None:
        self.helpdesk = helpdesk
        self.ids = list(ids)
        self.settings = settings
        self._items: list[Attachment] | None = None
        self._content: dict[str, bytes | VendorError] = {}
        self._lock = threading.RLock()  # the issues' comments go out side by side: each file is read once

    def items(self) -> list[Attachment]:
        """The attachments' metadata (one read each, only when a comment is written)."""
        with self._lock:
            if self._items is None:
                limit = int(self.settings["attachment_max_files"])
                wanted = self.ids[:limit] if self.helpdesk.supports("get_attachment") else []
                self._items = [self.helpdesk.get_attachment(i) for i in wanted]
            return self._items

    @property
    def unlisted(self) -> int:
        """Attachments beyond ``attachment_max_files`` (or not readable here): counted, not fetched."""
        return len(self.ids) - len(self.items())

    def uploadable(self, attachment: Attachment) -> str | None:
        """Why the file is linked rather than uploaded, or None when it may be uploaded."""
        limit = int(self.settings["attachment_max_bytes"])
        if not type_allowed(attachment.content_type, list(self.settings["attachment_types"])):
            return f"type {attachment.content_type} is not uploaded"
        if attachment.size > limit or limit <= 0:
            return f"larger than {limit} bytes"
        if not self.helpdesk.supports("download_attachment"):
            return f"{self.helpdesk.name} cannot serve it"
        return None

    def content(self, attachment: Attachment) -> bytes:
        """The file's bytes, downloaded once (a refusal is remembered and raised again)."""
        key = attachment.ref.id
        with self._lock:
            if key not in self._content:
                try:
                    limit = int(self.settings["attachment_max_bytes"])
                    self._content[key] = self.helpdesk.download_attachment(attachment, max_bytes=limit)
                except RETRYABLE:
                    raise
                except VendorError as exc:
                    self._content[key] = exc
            found = self._content[key]
        if isinstance(found, VendorError):
            raise found
        return found


class Relay:
    """Relays ticket comments marked for engineering to every linked issue (see the module docstring)."""

    def __init__(self, rt: Context, *, crash_hook: Callable[[str], None] | None = None) -> None:
        self.rt = rt
        self.store = rt.store
        self.settings = rt.config.section("sync")
        self.crash_hook = crash_hook
        self.concurrency = int(self.settings["concurrency"])
        """Comments to one tracker at once (``[sync] concurrency``)."""

    def _point(self, name: str) -> None:
        if self.crash_hook is not None:
            self.crash_hook(name)

    def marked_text(self, signal: TicketCommentAdded) -> str | None:
        """The text to relay (the prefix stripped), or None when the comment is not for engineering."""
        text = signal.text.strip()
        if signal.public:
            return text if self.settings["relay_public_replies"] and text else None
        prefix = str(self.settings["engineering_prefix"] or "")
        if prefix and text.casefold().startswith(prefix.casefold()):
            return text[len(prefix) :].strip() or None
        tag = str(self.settings["engineering_tag"] or "")
        if tag and tag in signal.tags:
            return text or None
        return None

    def comment_added(self, system: str, signal: TicketCommentAdded, origin: str | None = None) -> str:
        """Relay one ticket comment to the linked issues; returns what was done."""
        ticket = Ref(system, "ticket", signal.ticket.id)
        if not self.settings["to_tracker"]:
            return f"ignored: comment on {ticket} ([sync] to_tracker is off)"
        text = self.marked_text(signal)
        if text is None:
            kind = "public reply" if signal.public else "internal note"
            return f"ignored: {kind} on {ticket} is not marked for engineering"
        links = self.store.links_for_ticket(ticket)
        if not links:
            return f"ignored: {ticket} is linked to no issue"
        helpdesk = self.rt.helpdesk(system)
        if signal.comment_id is None:
            signal = _identified(helpdesk, ticket.id, signal)
        comment_id = signal.comment_id or f"text-{fingerprint(text)[:16]}"
        files = Files(helpdesk, signal.attachments, self.settings)
        read: dict[str, Ticket] = {}
        reading = threading.Lock()

        def context() -> dict[str, Any]:
            with reading:  # one read of the ticket, only when something is written, whichever issue asks first
                if "ticket" not in read:
                    read["ticket"] = helpdesk.get_ticket(ticket.id)
            return _context(helpdesk, read["ticket"], signal, text)

        outcomes = by_system(
            [
                (link.issue.system, partial(self._relay_one, link, ticket, comment_id, text, context, files, origin))
                for link in links
            ],
            limit=self.concurrency,
        )
        written = sum(1 for o in outcomes if o != "unchanged")
        return f"relayed: {ticket} comment {comment_id} to {len(links)} issue(s): {written} write(s)"

    def _relay_one(
        self,
        link: Link,
        ticket: Ref,
        comment_id: str,
        text: str,
        context: Callable[[], dict[str, Any]],
        files: Files,
        origin: str | None,
    ) -> str:
        tracker = self.rt.connector(link.issue.system)
        if not isinstance(tracker, Tracker):
            return "unchanged"
        business_key = f"{ticket}|comment:{comment_id}|{link.issue}"
        snap = self.store.get_snapshot(SNAPSHOT_KIND, business_key) or {}
        fp = fingerprint(text)
        seen = [str(x) for x in snap.get("seen") or []]
        create = op_id(business_key, "relay.comment")
        marker = marker_for(create)
        cache: dict[str, str] = {}

        def body() -> str:
            if "text" not in cache:
                sent = self.send_files(tracker, link.issue, link.issue_key, files, origin, ticket)
                ctx = {**context(), "issue": {"key": link.issue_key}, "attachments": sent, "more": files.unlisted}
                rendered = self.rt.handoff.render(TEMPLATE, ctx)
                cache["text"] = rendered.rstrip() + f"\n\n(cxbridge {marker})"
            return cache["text"]

        tracker_comment = snap.get("comment_id")
        if not tracker_comment:
            outcome = write_once(
                self.store,
                create,
                "tracker.comment",
                business_key,
                lambda: {"comment_id": _add_internal(tracker, link.issue_key, body())},
                find=self._finder(tracker, link.issue_key, marker),
                point=self._point,
                payload={"marker": marker},
            )
            intent = self.store.get_intent(create)
            tracker_comment = (intent.result or {}).get("comment_id") if intent is not None else None
            self.store.put_snapshot(
                SNAPSHOT_KIND, business_key, {"comment_id": tracker_comment, "fp": fp, "seen": [*seen, fp]}
            )
            if outcome == "written":
                self._audit("relay.comment", link, ticket, origin, {"op_id": create, "comment": comment_id})
            return outcome
        if fp == snap.get("fp") or fp in seen:
            return "unchanged"  # a duplicate, or an older text delivered late: the copy holds a newer one
        if not tracker.supports("update_comment"):
            log.info("%s cannot edit comments: the edit of %s is not relayed", tracker.name, business_key)
            return "unchanged"
        edit = op_id(business_key, f"relay.edit.{fp}")
        outcome = write_once(
            self.store,
            edit,
            "tracker.comment_edit",
            business_key,
            lambda: _updated(tracker, link.issue_key, str(tracker_comment), body()),
            point=self._point,
        )
        self.store.put_snapshot(SNAPSHOT_KIND, business_key, {**snap, "fp": fp, "seen": [*seen, fp]})
        if outcome == "written":
            self._audit("relay.comment_edit", link, ticket, origin, {"op_id": edit, "comment": comment_id})
        return outcome

    def send_files(
        self, tracker: Tracker, issue: Ref, issue_key: str, files: Files, origin: str | None, ticket: Ref
    ) -> list[dict[str, Any]]:
        """Upload each file to the issue once (or list it as a link); what the comment says about each."""
        out: list[dict[str, Any]] = []
        for attachment in files.items():
            name = safe_filename(attachment.filename)
            entry: dict[str, Any] = {"name": name, "size": attachment.size, "url": attachment.url, "uploaded": False}
            reason = files.uploadable(attachment)
            if reason is None and not tracker.supports("add_attachment"):
                reason = f"{tracker.name} does not take attachments"
            if reason is not None:
                out.append({**entry, "reason": reason})
                continue
            business_key = f"{attachment.ref}|{issue}"
            oid = op_id(business_key, "relay.attachment")

            def write(a: Attachment = attachment, n: str = name) -> dict[str, Any]:
                added = tracker.add_attachment(issue_key, n, files.content(a), a.content_type)
                return {"id": added.ref.id, "size": added.size}

            def find(a: Attachment = attachment, n: str = name) -> dict[str, Any] | None:
                same = [x for x in tracker.list_attachments(issue_key) if x.filename == n and x.size == a.size]
                return {"id": same[0].ref.id, "size": same[0].size} if same else None

            try:
                outcome = write_once(
                    self.store, oid, "tracker.attachment", business_key, write, find=find, point=self._point
                )
            except RETRYABLE:
                raise
            except VendorError as exc:
                log.info("%s: %s stays a link: %s", issue_key, name, exc)
                out.append({**entry, "reason": str(exc)})
                continue
            if outcome == "written":
                self.store.audit(
                    actor=ACTOR,
                    action="relay.attachment",
                    target=str(issue),
                    result="written",
                    origin_event=origin,
                    ticket=ticket,
                    issue_key=issue_key,
                    details={"op_id": oid, "file": name},
                )
            out.append({**entry, "uploaded": True})
        return out

    def upload_first_message(
        self, helpdesk: Helpdesk, ticket: Ref, first: Comment, issue: Ref, issue_key: str, origin: str | None
    ) -> str:
        """At escalation: the attachments of the ticket's first message, uploaded to the issue once each."""
        if not first.attachments:
            return "none"
        tracker = self.rt.connector(issue.system)
        if not isinstance(tracker, Tracker):
            return "none"
        files = Files(helpdesk, first.attachments, self.settings)
        sent = self.send_files(tracker, issue, issue_key, files, origin, ticket)
        return f"{sum(1 for s in sent if s['uploaded'])} uploaded, {sum(1 for s in sent if not s['uploaded'])} linked"

    @staticmethod
    def _finder(tracker: Tracker, issue_key: str, marker: str) -> Callable[[], dict[str, Any] | None] | None:
        if not tracker.supports("find_comment"):
            return None

        def find() -> dict[str, Any] | None:
            found = tracker.find_comment(issue_key, marker)
            return None if found is None else {"comment_id": found}

        return find

    def _audit(self, action: str, link: Link, ticket: Ref, origin: str | None, details: dict[str, Any]) -> None:
        self.store.audit(
            actor=ACTOR,
            action=action,
            target=str(link.issue),
            result="written",
            origin_event=origin,
            ticket=ticket,
            issue_key=link.issue_key,
            details=details,
        )


def _add_internal(tracker: Tracker, issue_key: str, body: str) -> str:
    """``add_comment(internal=True)``, or plain for a tracker plugin written before comments could be internal."""
    if "internal" in inspect.signature(tracker.add_comment).parameters:
        return tracker.add_comment(issue_key, body, internal=True)
    return tracker.add_comment(issue_key, body)


def _updated(tracker: Tracker, issue_key: str, comment_id: str, body: str) -> dict[str, Any]:
    tracker.update_comment(issue_key, comment_id, body, internal=True)
    return {"comment_id": comment_id}


def _person(person: Person | None) -> dict[str, Any]:
    return {"name": person.name if person else None, "email": person.email if person else None}


def _context(helpdesk: Helpdesk, ticket: Ticket, signal: TicketCommentAdded, text: str) -> dict[str, Any]:
    """What ``relay_comment.md.j2`` sees: the comment, its author, the ticket and the customer."""
    author = signal.author
    requester = ticket.requester
    if (author is None or not (author.name or author.email)) and requester is not None:
        # an author known by id only: the requester when the ids agree (a customer's reply), or when a public
        # comment names nobody
        same = author is not None and author.ref is not None and requester.ref is not None
        if (same and author is not None and author.ref == requester.ref) or (author is None and signal.public):
            author = requester
    return {
        "comment": text,
        "public": signal.public,
        "author": _person(author),
        "ticket": {
            "system": ticket.ref.system,
            "id": ticket.ref.id,
            "url": helpdesk.ticket_url(ticket.ref.id),
            "subject": ticket.subject,
        },
        "customer": {"requester": _person(ticket.requester), "organization": ticket.organization},
    }


def _identified(helpdesk: Helpdesk, ticket_id: str, signal: TicketCommentAdded) -> TicketCommentAdded:
    """The signal with the comment's id and attachments, read from the ticket when the delivery lacks them (a
    trigger's body can carry the latest comment's text, but no placeholder gives its id or its files): the newest
    comment with the same text and visibility, else the signal as it was."""
    said = " ".join(signal.text.split())
    for comment in reversed(helpdesk.list_comments(ticket_id)):
        if comment.public == signal.public and " ".join(comment.body.split()) == said:
            return dataclasses.replace(signal, comment_id=comment.ref.id, attachments=tuple(comment.attachments))
    return signal
