"""Decision rights: rules that let front-line agents act at once, with an audit trail instead of a queue.

CONTRACT (the escalation calls these; the policy engine fills them in):
- ``ActionRequest(action, value)``: what an agent asks for (``priority`` "Highest", ``credit`` Decimal("80"),
  ``skip_triage`` True, ``reopen`` True, ``public_reply`` True).
- ``Decision``: the outcome for one request, granted or refused, with the rule and the reason.
- ``decide_for_escalation(rt, req, ticket, customer, priority)`` -> ``(priority, decisions)``: evaluates every
  ``req.actions`` entry; raises ``PolicyRefused`` when one is beyond every grant (nothing is written then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import CxbridgeError

if TYPE_CHECKING:
    from .models import Customer, Ticket
    from .runtime import Runtime
    from .workflows.escalate import EscalationRequest
    from .workflows.priority import Priority


@dataclass(frozen=True)
class ActionRequest:
    """One action an agent asks to take on a ticket, with its value (a priority name, a credit amount)."""

    action: str
    value: Any = None


@dataclass(frozen=True)
class Decision:
    """The outcome of one action request: granted under a rule, or refused with the rule that would allow it."""

    action: str
    value: Any
    granted: bool
    rule: str | None
    agent: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the audit, the handoff and ``--json`` output."""
        return {
            "action": self.action,
            "value": None if self.value is None else str(self.value),
            "granted": self.granted,
            "rule": self.rule,
            "agent": self.agent,
            "reason": self.reason,
        }


class PolicyRefused(CxbridgeError):
    """An agent asked for an action beyond every grant; the message says why and which rule would allow it."""

    def __init__(self, message: str, decision: Decision) -> None:
        super().__init__(message)
        self.decision = decision


def decide_for_escalation(
    rt: Runtime,
    req: EscalationRequest,
    ticket: Ticket,
    customer: Customer,
    priority: Priority,
) -> tuple[Priority, list[Decision]]:
    """The priority to use and the decisions taken for the actions the escalating agent asked for."""
    if req.actions:
        raise PolicyRefused(
            "decision rights are not configured in this build",
            Decision(req.actions[0].action, req.actions[0].value, False, None, None, "no policy engine"),
        )
    return priority, []
