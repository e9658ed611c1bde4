"""Decision rights: rules that let front-line agents act at once, with an audit trail instead of a queue.

CONTRACT (the escalation calls these; the policy engine fills them in):
- ``ActionRequest(action, value)``: what an agent asks for (``priority`` "Highest", ``credit`` Decimal("80"),
  ``skip_triage`` True, ``reopen`` True, ``public_reply`` True).
- ``Decision``: the outcome for one request, granted or refused, with the rule and the reason.
- ``decide_for_escalation(rt, actions, agent, ticket, customer, priority)`` -> ``(priority, decisions)``: evaluates
  every requested action; raises ``PolicyRefused`` when one is beyond every grant (nothing is written then).

Rules live in the configuration, in order::

    [[policies.rules]]
    name = "tier1-credits"
    when = "customer.tier in ['enterprise', 'strategic'] and agent.team == 'tier1'"
    grant = { credit_max = 100, currency = "USD", priority_max = "High", skip_triage = true }

    [policies.agents."sam@example.com"]
    team = "tier1"
    role = "agent"

``when`` is one Jinja2 expression, compiled in an ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``,
over three names only:

- ``ticket``: ``id``, ``system``, ``subject``, ``priority``, ``status``, ``tags`` (a list), ``organization``;
- ``customer``: ``known``, ``name``, ``domain``, ``tier``, ``arr`` (a Decimal, or none), ``currency``,
  ``renewal_date`` (``YYYY-MM-DD`` text, or none);
- ``agent``: ``email``, ``name``, ``known`` (true when a ``[policies.agents."<email>"]`` table exists) and every
  key of that table (``team``, ``role``... whatever the admin chooses). The email is matched without case.

A grant names bounded actions: ``priority_max`` (a ceiling in Lowest < Low < Medium < High < Highest),
``credit_max`` with its ``currency`` (compared exactly, as Decimals), and the switches ``skip_triage`` (the
created issue gets the label ``cxb-skip-triage``), ``reopen`` (reopen a done issue) and ``public_reply`` (send a
public reply without review).

A rule is checked when the configuration loads: a syntax error, an unknown grant key, a name other than
``ticket``/``customer``/``agent``, an attribute starting with ``_``, the ``attr`` filter, a ``format`` call, or a
sandbox violation while evaluating against a neutral sample context is a ``ConfigError`` naming the rule. At
evaluation, an undefined attribute or any error makes that one rule not apply (the explanation says why); it
never stops the decision.

Conditions are bounded like the templates (``cxbridge.handoff.BoundedSandbox``): ``MAX_RULE_SECONDS`` and
``MAX_RULE_OPERATIONS`` per evaluation, no value over ``handoff.MAX_SIZE`` characters or items, no ``%`` width
over it, no text or list repeated more than ``MAX_REPEAT`` times, no exponent over 64. Past a limit, the
condition is a sandbox violation: a ``ConfigError`` naming the rule at load, a rule that does not apply at
evaluation.

For each request, the first rule in config order whose condition is true and whose grant covers the value
grants it. Otherwise it is refused, naming a rule whose grant would cover the value and why it did not apply,
or saying that no rule grants it. Nothing is queued for a manager.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.environment
import jinja2.meta
import jinja2.nodes
import jinja2.parser
import jinja2.visitor
from jinja2.exceptions import SecurityError

from ..connectors import Helpdesk
from ..errors import ConfigError, CxbridgeError
from ..handoff import BoundedSandbox, LimitExceeded, bounded
from ..http.counter import tallies_calls
from ..models import Customer, Link, Person, Ref, Ticket
from .once import crm_note_once, marker_for, op_id, write_once
from .priority import Priority

if TYPE_CHECKING:
    from .context import Context

PRIORITY_ORDER = ("Lowest", "Low", "Medium", "High", "Highest")
ACTIONS = ("priority", "credit", "skip_triage", "reopen", "public_reply")
SWITCHES = ("skip_triage", "reopen", "public_reply")
GRANT_KEYS = ("priority_max", "credit_max", "currency", "skip_triage", "reopen", "public_reply")
RULE_KEYS = ("name", "when", "grant", "description")
NAMES = frozenset({"ticket", "customer", "agent"})
SKIP_TRIAGE_LABEL = "cxb-skip-triage"
"""The label an issue created under a granted ``skip_triage`` carries (a tracker board filters on it)."""
RESERVED_AGENT_KEYS = ("email", "known")
MAX_REPEAT = 10_000
"""The most times a condition may repeat a text or a list (``'x' * n``)."""
MAX_RULE_SECONDS = 0.5
"""How long one condition may run on one decision."""
MAX_RULE_OPERATIONS = 100_000
"""How many calls, attribute reads and operators one condition may take on one decision."""
MAX_HOLDERS_SHOWN = 5
"""How many of the agents holding the rule that would allow a refused request the refusal names."""

_SWITCH_WORDS = {
    "skip_triage": "Skip triage",
    "reopen": "Reopen the done issue",
    "public_reply": "Public reply without review",
}


# ---- requests and decisions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionRequest:
    """One action an agent asks to take on a ticket, with its value (a priority name, a credit amount)."""

    action: str
    value: Any = None


@dataclass(frozen=True)
class Money:
    """An amount in a currency (the currency may be unknown until the customer is read)."""

    amount: Decimal
    currency: str | None = None

    def __str__(self) -> str:
        text = f"{self.amount:f}"
        return f"{text} {self.currency}" if self.currency else text


@dataclass(frozen=True)
class Decision:
    """The outcome of one action request: granted under a rule, or refused with the rule that would allow it."""

    action: str
    value: Any
    granted: bool
    rule: str | None
    agent: str | None
    reason: str

    @property
    def summary(self) -> str:
        """The action in words: ``Credit of 80 USD``, ``Priority High``, ``Skip triage``."""
        return describe_action(self.action, self.value)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the audit, the handoff and ``--json`` output."""
        return {
            "action": self.action,
            "value": None if self.value is None or self.value is True else str(self.value),
            "summary": self.summary,
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


class DecisionImpossible(CxbridgeError):
    """A decision the ticket's systems cannot carry out (no linked issue, no public-reply API); nothing was
    decided or written."""


def describe_action(action: str, value: Any) -> str:
    """An action request in words, for notes, the handoff and refusals."""
    if action == "credit":
        return f"Credit of {value}"
    if action == "priority":
        return f"Priority {value}"
    return _SWITCH_WORDS.get(action, action)


def normalize_priority(value: Any) -> str:
    """The tracker priority name in its canonical spelling; ValueError for anything outside the order."""
    for name in PRIORITY_ORDER:
        if str(value).strip().lower() == name.lower():
            return name
    raise ValueError(f"{value!r} is not a priority (one of {', '.join(PRIORITY_ORDER)})")


def parse_money(value: Any, *, currency: str | None = None) -> Money:
    """``80``, ``"80"``, ``"80 EUR"`` or a Money, as an exact positive Money; ValueError otherwise."""
    if isinstance(value, Money):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an amount")
    text = str(value).strip()
    parts = text.split()
    if len(parts) == 2:
        if parts[0].replace(".", "", 1).isdigit():
            text, currency = parts[0], parts[1]
        else:
            currency, text = parts[0], parts[1]
    elif len(parts) != 1:
        raise ValueError(f"{value!r} is not an amount (e.g. 80 or '80 USD')")
    try:
        amount = Decimal(str(value) if isinstance(value, float) else text)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount (e.g. 80 or '80 USD')") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"{value!r}: an amount must be a positive number")
    return Money(amount, currency.upper() if currency else None)


def parse_action(name: str, value: Any = None) -> ActionRequest:
    """An agent's request from the command line (``credit``/``80``, ``priority``/``high``, ``skip-triage``).

    ``NAME=VALUE`` in ``name`` is split. Raises ``CxbridgeError`` for an unknown action or a bad value.
    """
    if value is None and "=" in name:
        name, value = name.split("=", 1)
    action = name.strip().lower().replace("-", "_")
    if action not in ACTIONS:
        raise CxbridgeError(f"unknown action {name!r} (known: {', '.join(ACTIONS)})")
    try:
        if action == "priority":
            if value is None:
                raise ValueError("priority needs a value (e.g. priority=High)")
            return ActionRequest(action, normalize_priority(value))
        if action == "credit":
            if value is None:
                raise ValueError("credit needs an amount (e.g. credit=80)")
            return ActionRequest(action, parse_money(value))
    except ValueError as exc:
        raise CxbridgeError(f"action {name}: {exc}") from None
    if value not in (None, True) and str(value).strip().lower() not in ("true", "yes", "1"):
        raise CxbridgeError(f"action {name}: takes no value (or true), got {value!r}")
    return ActionRequest(action, True)


# ---- grants and rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """The bounded actions a rule allows."""

    priority_max: str | None = None
    credit_max: Decimal | None = None
    currency: str | None = None
    skip_triage: bool = False
    reopen: bool = False
    public_reply: bool = False

    def grants(self, action: str) -> bool:
        """Whether this grant names the action at all."""
        if action == "priority":
            return self.priority_max is not None
        if action == "credit":
            return self.credit_max is not None
        return bool(getattr(self, action, False))

    def describe(self, action: str) -> str:
        """What the grant allows for one action, in words."""
        if action == "priority":
            return f"priority up to {self.priority_max}" if self.priority_max else "no priority"
        if action == "credit":
            if self.credit_max is None:
                return "no credit"
            return f"credit up to {Money(self.credit_max, self.currency)}"
        return _SWITCH_WORDS[action].lower() if self.grants(action) else f"no {action}"

    def covers(self, action: str, value: Any) -> tuple[bool, str]:
        """Whether the grant allows this value, and why (or why not) in words."""
        if not self.grants(action):
            return False, f"grants no {action.replace('_', ' ')}"
        if action == "priority":
            assert self.priority_max is not None
            ok = PRIORITY_ORDER.index(value) <= PRIORITY_ORDER.index(self.priority_max)
            return ok, f"{self.describe(action)}{'' if ok else f', not {value}'}"
        if action == "credit":
            assert self.credit_max is not None
            money: Money = value
            if money.currency and self.currency and money.currency != self.currency:
                return False, f"{self.describe(action)}, not in {money.currency}"
            ok = money.amount <= self.credit_max
            return ok, f"{self.describe(action)}{'' if ok else f', not {money}'}"
        return True, self.describe(action)


class _RuleEnvironment(BoundedSandbox):
    """The sandbox for conditions: the bounded sandbox of templates (time, operations and sizes, see
    ``cxbridge.handoff.BoundedSandbox``), which here also refuses repeating a string or list more than
    ``MAX_REPEAT`` times."""

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int) and count > MAX_REPEAT:
                    raise LimitExceeded(f"repeating a sequence {count} times is above the limit of {MAX_REPEAT}")
        return super().call_binop(context, operator_name, left, right)


def _decimal(value: Any) -> Decimal:
    return Decimal(value)


_ENV = _RuleEnvironment(undefined=jinja2.StrictUndefined)
_ENV.filters["decimal"] = _decimal
_ENV.bound_filters()


def _static_check(expr: jinja2.nodes.Node) -> None:
    """Refuse, before anything runs, what a condition never needs and sandbox escapes are made of."""
    kinds = (jinja2.nodes.Getattr, jinja2.nodes.Getitem, jinja2.nodes.Filter, jinja2.nodes.Call, jinja2.nodes.Const)
    for node in [expr, *expr.find_all(kinds)]:
        if isinstance(node, jinja2.nodes.Getattr) and node.attr.startswith("_"):
            raise SecurityError(f"the attribute {node.attr!r} is not allowed")
        if (
            isinstance(node, jinja2.nodes.Getitem)
            and isinstance(node.arg, jinja2.nodes.Const)
            and isinstance(node.arg.value, str)
            and node.arg.value.startswith("_")
        ):
            raise SecurityError(f"the item {node.arg.value!r} is not allowed")
        if isinstance(node, jinja2.nodes.Const) and isinstance(node.value, str) and "__" in node.value:
            raise SecurityError(f"the text {node.value!r} is not allowed (no dunder names in a condition)")
        if isinstance(node, jinja2.nodes.Filter) and node.name == "attr":
            raise SecurityError("the attr filter is not allowed in a condition")
        if (
            isinstance(node, jinja2.nodes.Call)
            and isinstance(node.node, jinja2.nodes.Getattr)
            and node.node.attr in ("format", "format_map")
        ):
            raise SecurityError(f"calling {node.node.attr}() is not allowed in a condition")


def compile_condition(source: str) -> Callable[..., Any]:
    """Compile one condition; raises TemplateSyntaxError, SecurityError or NameError (names outside the three)."""
    parser = jinja2.parser.Parser(_ENV, source, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        raise jinja2.TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
    template = jinja2.nodes.Template([jinja2.nodes.Output([expr])])
    template.set_environment(_ENV)
    # every name is read (an expression assigns nothing); globals such as range or lipsum are refused too
    used = jinja2.meta.find_undeclared_variables(template) | {
        n.name for n in [expr, *expr.find_all(jinja2.nodes.Name)] if isinstance(n, jinja2.nodes.Name)
    }
    unknown = used - NAMES
    if unknown:
        names = ", ".join(sorted(unknown))
        raise NameError(f"unknown name{'s' if len(unknown) > 1 else ''} {names} (only ticket, customer, agent)")
    _static_check(expr)
    exact = _ExactNumbers().visit(expr)
    body = [jinja2.nodes.Assign(jinja2.nodes.Name("result", "store"), exact, lineno=1)]
    return jinja2.environment.TemplateExpression(_ENV.from_string(jinja2.nodes.Template(body, lineno=1)), False)


class _ExactNumbers(jinja2.visitor.NodeTransformer):
    """Number literals with a fraction become Decimals, so ``customer.arr > 479999.99`` compares exactly."""

    def visit_Const(self, node: jinja2.nodes.Const, *args: Any, **kwargs: Any) -> jinja2.nodes.Node:
        if isinstance(node.value, float):
            literal = jinja2.nodes.Const(repr(node.value), lineno=node.lineno)
            return jinja2.nodes.Filter(literal, "decimal", [], [], None, None, lineno=node.lineno)
        return node


@dataclass(frozen=True)
class Outcome:
    """A condition's value for one context: true, false, undefined (a missing attribute) or an error."""

    state: str
    detail: str = ""

    @property
    def applies(self) -> bool:
        return self.state == "true"


@dataclass(frozen=True)
class Rule:
    """One decision-rights rule: a name, a condition and what it grants."""

    name: str
    when: str
    grant: Grant
    description: str = ""
    condition: Callable[..., Any] = field(repr=False, compare=False, default=lambda **_: True)

    def evaluate(self, context: Mapping[str, Any]) -> Outcome:
        """The condition against one context; an undefined value or an error means the rule does not apply."""
        try:
            with bounded(MAX_RULE_SECONDS, MAX_RULE_OPERATIONS):
                return Outcome("true") if bool(self.condition(**context)) else Outcome("false")
        except SecurityError as exc:
            return Outcome("error", f"not allowed: {exc}")
        except jinja2.UndefinedError as exc:
            return Outcome("undefined", exc.message or "undefined value")
        except Exception as exc:  # a type error on real data: the rule does not apply, the decision goes on
            return Outcome("error", f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class RuleCheck:
    """How one rule answered one request: its condition's outcome and whether its grant covers the value."""

    rule: str
    when: str
    condition: Outcome
    covers: bool
    grant: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "when": self.when,
            "condition": self.condition.state,
            "condition_detail": self.condition.detail or None,
            "covers": self.covers,
            "grant": self.grant,
        }


@dataclass
class Explanation:
    """A decision and the rule-by-rule checks behind it."""

    request: ActionRequest
    decision: Decision
    checks: list[RuleCheck]
    would_allow: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.as_dict(),
            "would_allow": self.would_allow,
            "rules": [c.as_dict() for c in self.checks],
        }


def _grant_from(raw: Any, where: str) -> Grant:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}.grant: expected a table naming at least one of {', '.join(GRANT_KEYS)}")
    unknown = sorted(set(raw) - set(GRANT_KEYS))
    if unknown:
        raise ConfigError(f"{where}.grant: unknown key {unknown[0]!r} (known: {', '.join(GRANT_KEYS)})")
    priority_max = None
    if "priority_max" in raw:
        try:
            priority_max = normalize_priority(raw["priority_max"])
        except ValueError as exc:
            raise ConfigError(f"{where}.grant.priority_max: {exc}") from None
    credit_max = None
    currency = raw.get("currency")
    if currency is not None and (not isinstance(currency, str) or not currency.strip()):
        raise ConfigError(f"{where}.grant.currency: expected a currency code such as 'USD'")
    if "credit_max" in raw:
        value = raw["credit_max"]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{where}.grant.credit_max: expected an amount, got {value!r}")
        try:
            credit_max = Decimal(str(value))
        except InvalidOperation:
            raise ConfigError(f"{where}.grant.credit_max: expected an amount, got {value!r}") from None
        if not credit_max.is_finite() or credit_max < 0:
            raise ConfigError(f"{where}.grant.credit_max: expected an amount of 0 or more, got {value!r}")
        if currency is None:
            raise ConfigError(f'{where}.grant: credit_max needs a currency (e.g. currency = "USD")')
    elif currency is not None:
        raise ConfigError(f"{where}.grant: currency without credit_max")
    switches: dict[str, bool] = {}
    for key in SWITCHES:
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"{where}.grant.{key}: expected true or false, got {raw[key]!r}")
            switches[key] = raw[key]
    return Grant(
        priority_max=priority_max,
        credit_max=credit_max,
        currency=currency.strip().upper() if isinstance(currency, str) else None,
        **switches,
    )


def _sample_value(value: Any) -> Any:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return 0
    if isinstance(value, list):
        return []
    return ""


def sample_context(agents: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """A neutral context every rule is evaluated against at load, to catch sandbox violations early."""
    agent: dict[str, Any] = {"email": "agent@example.invalid", "name": "", "known": True}
    for table in (agents or {}).values():
        for key, value in table.items():
            agent.setdefault(key, _sample_value(value))
    return {
        "ticket": {
            "id": "0",
            "system": "helpdesk",
            "subject": "",
            "priority": "normal",
            "status": "open",
            "tags": [],
            "organization": "",
        },
        "customer": {
            "known": True,
            "name": "",
            "domain": "",
            "tier": "standard",
            "arr": Decimal("0"),
            "currency": "USD",
            "renewal_date": "2026-01-01",
        },
        "agent": agent,
    }


class Policies:
    """The compiled rules and agent tables of one configuration."""

    def __init__(self, rules: Sequence[Rule], agents: Mapping[str, Mapping[str, Any]]) -> None:
        self.rules = list(rules)
        self.agents = {email.lower(): dict(table) for email, table in agents.items()}

    def agent_context(self, email: str | None, name: str | None = None) -> dict[str, Any]:
        """What a rule sees as ``agent``: email, name, known, and the attributes of the agent's table."""
        table = self.agents.get((email or "").lower())
        context: dict[str, Any] = {"email": email, "name": name, "known": table is not None}
        if table:
            context.update(table)
            context["email"], context["known"] = email, True
            if name and not table.get("name"):
                context["name"] = name
        return context

    def holders(self, rule_name: str, ticket: Ticket, customer: Customer) -> list[str]:
        """The agents of ``[policies.agents]`` for whom the rule's condition holds on this ticket (who to ask)."""
        rule = next((r for r in self.rules if r.name == rule_name), None)
        if rule is None:
            return []
        return sorted(
            email
            for email in self.agents
            if rule.evaluate(rule_context(ticket, customer, self.agent_context(email))).applies
        )

    def decide(
        self,
        request: ActionRequest,
        ticket: Ticket,
        customer: Customer,
        agent: Person,
    ) -> Explanation:
        """Check every rule for one request; the first that applies and covers the value grants it.

        The request is normalized first (``parse_action``): an unknown action or a bad value is a CxbridgeError.
        """
        request = parse_action(request.action, request.value)
        value = request.value
        if request.action == "credit":
            money = parse_money(value)
            if money.currency is None:
                money = Money(money.amount, (customer.currency or "").upper() or None)
            value = money
        context = rule_context(ticket, customer, self.agent_context(agent.email, agent.name))
        who = agent.email or agent.name or "an unnamed agent"
        words = describe_action(request.action, value)
        checks: list[RuleCheck] = []
        granted: RuleCheck | None = None
        for rule in self.rules:
            covers, why = rule.grant.covers(request.action, value)
            outcome = rule.evaluate(context)
            checks.append(RuleCheck(rule.name, rule.when, outcome, covers, why))
            if granted is None and covers and outcome.applies:
                granted = checks[-1]
        if request.action == "credit" and isinstance(value, Money) and value.currency is None and granted:
            # neither the request nor the CRM names a currency: the amount is read in the grant's currency
            grant_currency = next(r.grant.currency for r in self.rules if r.name == granted.rule)
            value = Money(value.amount, grant_currency)
            words = describe_action(request.action, value)
        if granted is not None:
            decision = Decision(
                request.action, value, True, granted.rule, who, f"{words} granted by {who} under rule {granted.rule}"
            )
            return Explanation(request, decision, checks)
        candidate = next((c for c in checks if c.covers), None)
        if candidate is None:
            would = None
            reason = f"no rule grants {request.action.replace('_', ' ')} {value if value is not True else ''}".rstrip()
        else:
            would = candidate.rule
            why = {
                "false": "its condition is false",
                "undefined": f"its condition is undefined ({candidate.condition.detail})",
                "error": f"its condition failed ({candidate.condition.detail})",
            }[candidate.condition.state]
            reason = f"rule {candidate.rule} ({candidate.grant}) would allow it, but {why}: {candidate.when}"
            holders = self.holders(candidate.rule, ticket, customer)
            shown = ", ".join(holders[:MAX_HOLDERS_SHOWN]) + (
                f" and {len(holders) - MAX_HOLDERS_SHOWN} more" if len(holders) > MAX_HOLDERS_SHOWN else ""
            )
            reason += f"; held by {shown}" if holders else "; no listed agent holds it on this ticket"
        decision = Decision(
            request.action, value, False, None, who, f"{words} refused for {who} on {ticket.ref}: {reason}"
        )
        return Explanation(request, decision, checks, would_allow=would)


def compile_policies(section: Mapping[str, Any], where: str = "<config>") -> Policies:
    """Check and compile the ``[policies]`` section; any broken rule is a ConfigError naming it."""
    agents_raw = section.get("agents") or {}
    if not isinstance(agents_raw, dict):
        raise ConfigError(f"{where}: policies.agents: expected one table per agent email")
    agents: dict[str, dict[str, Any]] = {}
    for email, table in agents_raw.items():
        awhere = f"{where}: policies.agents.{email!r}"
        if not isinstance(table, dict):
            raise ConfigError(f"{awhere}: expected a table of attributes (team, role...)")
        for key, value in table.items():
            if key in RESERVED_AGENT_KEYS:
                raise ConfigError(f"{awhere}.{key}: {key} is set by cxbridge, not in the table")
            ok = isinstance(value, str | int | float | bool) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            if not ok:
                raise ConfigError(f"{awhere}.{key}: expected text, a number, true/false or a list of text")
        if email.lower() in agents:
            raise ConfigError(f"{awhere}: the agent is listed twice")
        agents[email.lower()] = dict(table)
    rules_raw = section.get("rules") or []
    if not isinstance(rules_raw, list):
        raise ConfigError(f"{where}: policies.rules: expected [[policies.rules]] tables")
    sample = sample_context(agents)
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(rules_raw):
        rwhere = f"{where}: policies.rules[{index}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{rwhere}: expected a table with name, when and grant")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{rwhere}: every rule needs a name")
        rwhere = f"{where}: policies rule {name!r}"
        unknown = sorted(set(raw) - set(RULE_KEYS))
        if unknown:
            raise ConfigError(f"{rwhere}: unknown key {unknown[0]!r} (known: {', '.join(RULE_KEYS)})")
        if name in seen:
            raise ConfigError(f"{rwhere}: two rules have this name")
        seen.add(name)
        when = raw.get("when")
        if not isinstance(when, str) or not when.strip():
            raise ConfigError(f"{rwhere}: 'when' must be a condition such as \"agent.team == 'tier1'\"")
        grant = _grant_from(raw.get("grant"), rwhere)
        try:
            condition = compile_condition(when)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"{rwhere}: syntax error in the condition {when!r}: {exc.message}") from None
        except SecurityError as exc:
            raise ConfigError(f"{rwhere}: the condition {when!r} is not allowed: {exc}") from None
        except NameError as exc:
            raise ConfigError(f"{rwhere}: the condition {when!r} uses an {exc}") from None
        rule = Rule(name, when, grant, str(raw.get("description") or ""), condition)
        outcome = rule.evaluate(sample)
        if outcome.state == "error" and outcome.detail.startswith("not allowed"):
            raise ConfigError(f"{rwhere}: the condition {when!r} is {outcome.detail}")
        rules.append(rule)
    return Policies(rules, agents)


def policies_for(rt: Context) -> Policies:
    """The compiled policies of a runtime's configuration."""
    where = str(rt.config.path) if rt.config.path else "<config>"
    return compile_policies(rt.config.section("policies"), where)


def rule_context(ticket: Ticket, customer: Customer, agent: Mapping[str, Any]) -> dict[str, Any]:
    """The names a condition sees: allowlisted fields of the ticket and the customer, and the agent."""
    return {
        "ticket": {
            "id": ticket.ref.id,
            "system": ticket.ref.system,
            "subject": ticket.subject,
            "priority": ticket.priority,
            "status": ticket.status,
            "tags": list(ticket.tags),
            "organization": ticket.organization,
        },
        "customer": {
            "known": customer.known,
            "name": customer.name,
            "domain": customer.domain,
            "tier": customer.tier,
            "arr": customer.arr,
            "currency": customer.currency,
            "renewal_date": customer.renewal_date,
        },
        "agent": dict(agent),
    }


# ---- the escalation's decisions -------------------------------------------------------------------------


def _agent_of(person: Person | None, request: ActionRequest, ticket: Ticket) -> Person:
    if person is None or not (person.email or person.name):
        decision = Decision(request.action, request.value, False, None, None, "no agent named")
        raise PolicyRefused(
            f"{describe_action(request.action, request.value)} refused on {ticket.ref}: decisions belong to a named "
            "agent (pass --agent EMAIL)",
            decision,
        )
    return person


def decide_for_escalation(
    rt: Context,
    actions: Sequence[ActionRequest],
    escalating_agent: Person | None,
    ticket: Ticket,
    customer: Customer,
    priority: Priority,
) -> tuple[Priority, list[Decision]]:
    """The priority to use and the decisions taken for the actions the escalating agent asked for.

    A granted ``priority`` replaces the table's priority, its reason saying who decided under which rule.
    The first refused request raises ``PolicyRefused`` before anything is written.
    """
    if not actions:
        return priority, []
    policies = policies_for(rt)
    decisions: list[Decision] = []
    for request in actions:
        agent = _agent_of(escalating_agent, request, ticket)
        decision = policies.decide(request, ticket, customer, agent).decision
        if not decision.granted:
            raise PolicyRefused(decision.reason, decision)
        decisions.append(decision)
    chosen = priority
    for decision in decisions:
        if decision.action == "priority":
            chosen = Priority(
                value=str(decision.value),
                reason=(
                    f"decided by {decision.agent} under rule {decision.rule}; the priority table gave {priority.value}"
                ),
            )
    return chosen, decisions


def issue_labels(decisions: Sequence[Decision]) -> list[str]:
    """Labels the created issue carries for granted decisions (``cxb-skip-triage``)."""
    return [SKIP_TRIAGE_LABEL for d in decisions if d.granted and d.action == "skip_triage"][:1]


# ---- cxbridge act ---------------------------------------------------------------------------------------

TRACKER_ACTIONS = ("reopen", "priority")
"""Decisions carried out on the issue(s) the ticket is linked to (and announced there)."""
PUBLIC_REPLY_TEMPLATE = "public_reply.txt.j2"
"""The template (the admin's folders first) of the public reply a granted ``public_reply`` posts."""


@dataclass
class ActResult:
    """What ``cxbridge act`` did: the decision, the writes, the API calls, the request id to retry with."""

    ticket: Ref
    decision: Decision
    explanation: Explanation | None
    request_id: str
    writes: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    issue_keys: list[str] = field(default_factory=list)
    outcome: str = ""
    """What was decided and done, in words (the text of the ticket's note, without its marker)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ticket": str(self.ticket),
            "request_id": self.request_id,
            "decision": self.decision.as_dict(),
            "would_allow": self.explanation.would_allow if self.explanation else None,
            "issue_keys": self.issue_keys,
            "outcome": self.outcome,
            "writes": self.writes,
            "calls": self.calls,
        }


def read_subject(rt: Context, ticket_id: str, helpdesk: str | None = None) -> tuple[Ticket, Customer]:
    """The ticket (one call, with its requester and organization) and its customer from the CRM, if any."""
    ticket = rt.helpdesk(helpdesk).get_ticket(ticket_id)
    crm = rt.crm()
    email = ticket.requester.email if ticket.requester else None
    customer = crm.find_customer(email) if crm is not None and email else Customer.unknown()
    return ticket, customer


def explain(
    rt: Context, ticket_id: str, request: ActionRequest, agent: Person, *, helpdesk: str | None = None
) -> Explanation:
    """The decision for one request on one ticket, rule by rule (reads the ticket and the customer)."""
    ticket, customer = read_subject(rt, ticket_id, helpdesk)
    return policies_for(rt).decide(request, ticket, customer, agent)


def act_op_id(ticket: Ref, request: ActionRequest, agent: str, request_id: str, step: str) -> str:
    """The deterministic id of one step of one ``act`` request (ticket, action, value, agent, request id)."""
    return op_id(f"{ticket}|{request.action}|{request.value}|{agent.lower()}|{request_id}", step)


def _issues_for(rt: Context, ticket: Ticket, request: ActionRequest) -> list[Link]:
    """The links of the ticket a tracker decision acts on (one per issue); CxbridgeError when it cannot act."""
    if request.action not in TRACKER_ACTIONS:
        return []
    words = describe_action(request.action, request.value)
    links = list({link.issue: link for link in rt.store.links_for_ticket(ticket.ref)}.values())
    if not links:
        raise DecisionImpossible(
            f"{words} on {ticket.ref}: the ticket is linked to no issue, so there is nothing to change; escalate it "
            "first (a priority can also be given to the escalation). Nothing was decided."
        )
    tracker = rt.tracker()
    method = "reopen" if request.action == "reopen" else "set_priority"
    if not tracker.supports(method):
        raise DecisionImpossible(
            f"{words} on {ticket.ref}: the tracker {tracker.name} cannot do it. Nothing was decided."
        )
    return links


def _check_possible(rt: Context, helpdesk: Helpdesk, ticket: Ticket, request: ActionRequest) -> list[Link]:
    """Refuse, before any policy check or write, a decision this ticket's systems cannot carry out."""
    if request.action == "public_reply" and not helpdesk.supports("add_public_reply"):
        raise DecisionImpossible(
            f"Public reply on {ticket.ref}: {helpdesk.name} offers no API that sends a reply the customer sees, so "
            f"cxbridge cannot send it; reply in {helpdesk.name} itself. Nothing was decided."
        )
    return _issues_for(rt, ticket, request)


def _once_audit(store: Any, oid: str, ticket: Ref, **row: Any) -> str:
    """One audit row per operation id: a repeat of the same request writes none."""
    intent = store.begin_intent(oid, "policy.audit", business_key=str(ticket), payload={})
    if intent.state == "done":
        return "unchanged"
    written = store.audit(ticket=ticket, **row)
    store.mark_intent(oid, "done", result={"audit_id": written})
    return "written"


def _result_of(store: Any, oid: str) -> dict[str, Any]:
    """What a done write recorded on its intent (empty when nothing was recorded)."""
    intent = store.get_intent(oid)
    result = intent.result if intent is not None else None
    return dict(result) if isinstance(result, dict) else {}


@tallies_calls
def act_on_ticket(
    rt: Context,
    ticket_id: str,
    request: ActionRequest,
    agent: Person,
    *,
    note: str | None = None,
    request_id: str | None = None,
    helpdesk: str | None = None,
    reply: str | None = None,
    announce_on_ticket: bool = True,
    origin_event: str | None = None,
) -> ActResult:
    """Decide one request and, when granted, carry it out at once and record it.

    Carried out: ``reopen`` moves every linked issue out of the done category (the tracker's own transition),
    ``priority`` sets every linked issue's priority (also after escalation), ``public_reply`` posts a public reply
    rendered from ``public_reply.txt.j2`` with the agent's own words (``reply``), ``credit`` is handed to the
    plugins (the ``decision_applied`` hook; cxbridge has no billing system). Recorded: an internal note on the
    ticket (unless ``announce_on_ticket`` is false: the caller writes the outcome itself, from ``outcome``), a
    comment on each issue changed, a note on the CRM timeline, one audit row with the agent, the rule and the
    ticket. ``helpdesk`` names the ``[systems.*]`` table holding the ticket (default: the helpdesk).

    Every write goes through an intent keyed by ticket, action, value, agent and ``request_id``: running the
    same request again (same id) completes what is missing and repeats nothing. A refusal is audited once and
    raised as ``PolicyRefused``; a decision the systems cannot carry out (no linked issue, no public-reply API)
    raises ``CxbridgeError`` before anything is decided or written.
    """
    store = rt.store
    rid = request_id or uuid.uuid4().hex
    who = agent.email or agent.name or ""
    request = parse_action(request.action, request.value)
    helpdesk_conn = rt.helpdesk(helpdesk)
    ticket, customer = read_subject(rt, ticket_id, helpdesk)
    links = _check_possible(rt, helpdesk_conn, ticket, request)

    def step(name: str) -> str:
        return act_op_id(ticket.ref, request, who, rid, name)

    done = store.get_intent(step("decide"))
    explanation: Explanation | None = None
    if done is not None and done.state == "done" and done.result:
        decision = _decision_from(done.result)
    else:
        explanation = policies_for(rt).decide(request, ticket, customer, agent)
        decision = explanation.decision
        if not decision.granted:
            _once_audit(
                store,
                step("refusal"),
                ticket.ref,
                actor=who or "agent",
                action=f"act.{request.action}",
                target=str(ticket.ref),
                result="refused",
                origin_event=origin_event,
                issue_key=links[0].issue_key if links else None,
                details={**decision.as_dict(), "would_allow": explanation.would_allow, "request_id": rid},
            )
            raise PolicyRefused(decision.reason, decision)
        store.begin_intent(step("decide"), "policy.decide", business_key=str(ticket.ref), payload={"request_id": rid})
        store.mark_intent(step("decide"), "done", result=decision.as_dict() | {"raw_value": _raw(decision.value)})
    result = ActResult(ticket.ref, decision, explanation, rid, issue_keys=[link.issue_key for link in links])
    lines = [f"{decision.summary} granted by {decision.agent} under rule {decision.rule}."]
    lines += _carry_out(rt, result, ticket, customer, helpdesk_conn, links, step, reply)
    if note:
        lines.append(note)
    result.outcome = "\n".join(lines)
    _announce(rt, result, ticket, customer, helpdesk_conn, links, step, announce_on_ticket)
    result.writes["audit"] = _once_audit(
        store,
        step("audit"),
        ticket.ref,
        actor=who or "agent",
        action=f"act.{request.action}",
        target=str(ticket.ref),
        result="granted",
        policy=decision.rule,
        origin_event=origin_event,
        issue_key=links[0].issue_key if links else None,
        details={
            **decision.as_dict(),
            "request_id": rid,
            "note": note,
            "issue_keys": result.issue_keys,
            "outcome": result.outcome,
            "writes": dict(result.writes),
        },
    )
    result.writes["plugins"] = _hand_over(rt, result, ticket, customer, step)
    return result


def _carry_out(
    rt: Context,
    result: ActResult,
    ticket: Ticket,
    customer: Customer,
    helpdesk: Helpdesk,
    links: Sequence[Link],
    step: Callable[[str], str],
    reply: str | None,
) -> list[str]:
    """Apply a granted decision where it lives (the issues, the ticket); returns what was done, a line each."""
    store, decision, business_key = rt.store, result.decision, str(ticket.ref)
    lines: list[str] = []
    if decision.action in TRACKER_ACTIONS:
        tracker = rt.tracker()
        for link in links:
            key, oid = link.issue_key, step(f"{decision.action}|{link.issue}")
            if decision.action == "reopen":

                def reopen(key: str = key) -> dict[str, Any]:
                    issue = tracker.get_issue(key)
                    if issue.status_category != "done":
                        return {"moved": False, "status": issue.status}
                    return {"moved": True, "status": tracker.reopen(key)}

                def reopened(key: str = key) -> dict[str, Any] | None:
                    issue = tracker.get_issue(key)
                    return None if issue.status_category == "done" else {"moved": True, "status": issue.status}

                result.writes[f"reopen {key}"] = write_once(
                    store, oid, "tracker.reopen", business_key, reopen, find=reopened
                )
                done = _result_of(store, oid)
                if not done.get("moved"):
                    result.writes[f"reopen {key}"] = "unchanged: not done"
                lines.append(
                    f"{key} reopened: now {done.get('status')}."
                    if done.get("moved")
                    else f"{key} was not done ({done.get('status')}): left as it is."
                )
            else:
                value = str(decision.value)

                def prioritize(key: str = key, value: str = value) -> dict[str, Any]:
                    return {"changed": tracker.set_priority(key, value)}

                # compare-before-write: a rerun after an unconfirmed edit reads the issue again and writes at most once
                result.writes[f"priority {key}"] = write_once(store, oid, "tracker.priority", business_key, prioritize)
                done = _result_of(store, oid)
                if not done.get("changed"):
                    result.writes[f"priority {key}"] = "unchanged: had it already"
                lines.append(
                    f"{key} priority set to {value}." if done.get("changed") else f"{key} already had priority {value}."
                )
    elif decision.action == "public_reply":
        oid = step("reply")
        marker = marker_for(oid)
        context = {
            "ticket": {"id": ticket.ref.id, "system": ticket.ref.system, "subject": ticket.subject},
            "customer": {"known": customer.known, "name": customer.name},
            "agent": {"name": None, "email": decision.agent},
            "words": (reply or "").strip() or None,
            "decision": decision.as_dict(),
        }
        text = rt.handoff.render(PUBLIC_REPLY_TEMPLATE, context)

        def send() -> dict[str, Any]:
            helpdesk.add_public_reply(ticket.ref.id, text, marker=marker)
            return {"marker": marker}

        def sent() -> dict[str, Any] | None:
            return {"marker": marker} if helpdesk.has_public_reply(ticket.ref.id, marker) else None

        result.writes["public_reply"] = write_once(
            store, oid, "helpdesk.reply", business_key, send, find=sent, payload={"marker": marker}
        )
        lines.append("Public reply sent to the customer" + (" with the agent's words." if reply else "."))
    elif decision.action == "credit":
        lines.append("cxbridge has no billing system: the credit is recorded here and handed to the plugins.")
    return lines


def _announce(
    rt: Context,
    result: ActResult,
    ticket: Ticket,
    customer: Customer,
    helpdesk: Helpdesk,
    links: Sequence[Link],
    step: Callable[[str], str],
    on_ticket: bool,
) -> None:
    """The decision on the ticket (an internal note), on each issue it changed (a comment), on the CRM timeline."""
    store, decision, business_key = rt.store, result.decision, str(ticket.ref)
    crm = rt.crm()
    # a CRM that is the ticket's own helpdesk puts its note on the ticket too: one note there, not two
    one_timeline = crm is not None and customer.known and crm.name == helpdesk.name
    if on_ticket and not one_timeline:
        note_id = step("note")
        marker = marker_for(note_id)

        def write_note() -> dict[str, Any]:
            helpdesk.add_internal_note(ticket.ref.id, f"{result.outcome}\n\ncxbridge: {marker}")
            return {}

        def find_note() -> dict[str, Any] | None:
            found = any(marker in c.body for c in helpdesk.list_comments(ticket.ref.id))
            return {"found": True} if found else None

        result.writes["ticket_note"] = write_once(
            store, note_id, "helpdesk.note", business_key, write_note, find=find_note
        )
    if links:
        tracker = rt.tracker()
        where = f"{ticket.ref.system} #{ticket.ref.id}" + (f" ({customer.name})" if customer.known else "")
        for link in links:
            oid = step(f"comment|{link.issue}")
            marker = marker_for(oid)
            body = f"{result.outcome}\n\nDecided on {where}: {ticket.url}\n\n(cxbridge {marker})"

            def comment(key: str = link.issue_key, body: str = body) -> dict[str, Any]:
                return {"id": tracker.add_comment(key, body)}

            def commented(key: str = link.issue_key, marker: str = marker) -> dict[str, Any] | None:
                found = tracker.find_comment(key, marker)
                return None if found is None else {"id": found}

            result.writes[f"issue_comment {link.issue_key}"] = write_once(
                store,
                oid,
                "tracker.comment",
                business_key,
                comment,
                find=commented if tracker.supports("find_comment") else None,
            )
    if crm is not None and customer.known:
        paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in result.outcome.splitlines()[1:] if line)
        body = (
            f"<p><strong>{html.escape(decision.summary)}</strong> granted by {html.escape(str(decision.agent))} "
            f"under rule {html.escape(str(decision.rule))}, on ticket "
            f'<a href="{html.escape(ticket.url)}">{html.escape(ticket.ref.system)} #{html.escape(ticket.ref.id)}</a>.'
            f"</p>{paragraphs}"
        )
        result.writes["crm_note"] = crm_note_once(
            store, crm, customer, step("crm"), business_key, lambda: body, ticket=ticket.ref
        )
    else:
        result.writes["crm_note"] = "skipped: customer unknown to the CRM" if crm else "skipped: no CRM"


def decision_payload(result: ActResult, ticket: Ticket, customer: Customer, key: str) -> dict[str, Any]:
    """What the ``decision_applied`` hook receives for a recorded decision (JSON-ready)."""
    decision = result.decision
    money = decision.value if isinstance(decision.value, Money) else None
    return {
        "key": key,
        "action": decision.action,
        "value": decision.as_dict()["value"],
        "amount": str(money.amount) if money else None,
        "currency": money.currency if money else None,
        "summary": decision.summary,
        "agent": decision.agent,
        "rule": decision.rule,
        "ticket": str(ticket.ref),
        "issue_keys": list(result.issue_keys),
        "customer": {
            "name": customer.name if customer.known else None,
            "company": str(customer.company_ref) if customer.company_ref else None,
        },
        "request_id": result.request_id,
    }


def _hand_over(rt: Context, result: ActResult, ticket: Ticket, customer: Customer, step: Callable[[str], str]) -> str:
    """The ``decision_applied`` hook, once per decision; a plugin's failure is reported and retried on a rerun."""
    oid = step("plugins")
    payload = decision_payload(result, ticket, customer, oid)

    def hand() -> dict[str, Any]:
        failures = rt.decision_applied(payload)
        if failures:
            raise CxbridgeError("; ".join(failures))
        return {}

    try:
        done = write_once(rt.store, oid, "plugins.decision", str(ticket.ref), hand)
        return "handed over" if done == "written" else done
    except CxbridgeError as exc:
        return f"failed: {exc} (run the same request again to retry)"


def _raw(value: Any) -> Any:
    if isinstance(value, Money):
        return {"amount": str(value.amount), "currency": value.currency}
    return value


def _decision_from(data: Mapping[str, Any]) -> Decision:
    raw = data.get("raw_value")
    value: Any = Money(Decimal(raw["amount"]), raw["currency"]) if isinstance(raw, dict) else raw
    return Decision(
        str(data["action"]), value, bool(data["granted"]), data.get("rule"), data.get("agent"), str(data["reason"])
    )


def audit_rows(entries: Sequence[Any]) -> Iterator[dict[str, Any]]:
    """Audit entries as JSON-ready rows."""
    from datetime import UTC, datetime

    for e in entries:
        yield {
            "id": e.id,
            "at": datetime.fromtimestamp(e.at, UTC).isoformat(timespec="seconds"),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "result": e.result,
            "policy": e.policy,
            "ticket": str(e.ticket) if e.ticket else None,
            "issue_key": e.issue_key,
            "origin_event": e.origin_event,
            "details": e.details,
        }
