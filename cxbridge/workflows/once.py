"""Write to another system at most once per operation id: the intent protocol the workflows share.

An intent row keyed by a deterministic ``op_id`` is committed before the write and marked ``done`` after it,
so a rerun after the write makes no call. When an earlier attempt may have written without being confirmed
(state ``sending`` or ``ambiguous``: a crash, a timeout), a ``find`` callable looks for the effect by the
marker it carries before anything is written again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import AmbiguousOutcome, VendorError

if TYPE_CHECKING:
    from ..connectors import CRM
    from ..models import Customer, Ref
    from ..store import Store

NAMESPACE = uuid.UUID("6f1c2d7e-9a4b-5c3d-8e2f-0a1b2c3d4e5f")


def op_id(business_key: str, operation: str) -> str:
    """The deterministic id of one external write (``business_key`` names what it is about)."""
    return str(uuid.uuid5(NAMESPACE, f"{business_key}|{operation}"))


Write = Callable[[], dict[str, Any]]
Find = Callable[[], dict[str, Any] | None]


def marker_for(oid: str) -> str:
    """The short marker an effect carries so that it can be found again (``cxb-`` and 12 hex digits)."""
    return "cxb-" + oid[:13].replace("-", "")


def write_once(
    store: Store,
    oid: str,
    kind: str,
    business_key: str,
    write: Write,
    *,
    find: Find | None = None,
    point: Callable[[str], None] | None = None,
    payload: dict[str, Any] | None = None,
) -> str:
    """Run ``write`` once for ``oid``; returns ``written``, or ``unchanged`` when it was done (or found) before.

    ``point`` is called with ``<kind>.sent`` right after the write (tests crash there).
    """
    intent = store.begin_intent(oid, kind, business_key=business_key, payload=payload or {})
    if intent.state == "done":
        return "unchanged"
    if intent.state in ("sending", "ambiguous") and find is not None:
        found = find()
        if found is not None:
            store.mark_intent(oid, "done", result=found)
            return "unchanged"
    store.mark_intent(oid, "sending")
    try:
        outcome = write()
    except AmbiguousOutcome:
        store.mark_intent(oid, "ambiguous", error=f"{kind} not confirmed")
        raise
    except VendorError as exc:
        store.mark_intent(oid, "failed", error=str(exc))
        raise
    if point is not None:
        point(f"{kind}.sent")
    store.mark_intent(oid, "done", result=outcome)
    return "written"


def crm_note_once(
    store: Store,
    crm: CRM,
    customer: Customer,
    oid: str,
    business_key: str,
    render: Callable[[], str],
    *,
    ticket: Ref | None = None,
    point: Callable[[str], None] | None = None,
) -> str:
    """One note on the customer's CRM timeline (and ``ticket``'s, when given) per ``oid``, found again by its marker.

    ``render`` is called only when the note is about to be written.
    """
    marker = marker_for(oid)

    def write() -> dict[str, Any]:
        return {"ref": str(crm.add_note(customer, render(), marker=marker, ticket=ticket))}

    def find() -> dict[str, Any] | None:
        ref = crm.find_note(customer, marker)
        return None if ref is None else {"ref": str(ref)}

    return write_once(store, oid, "crm.note", business_key, write, find=find, point=point, payload={"marker": marker})
