"""What the configuration may hold: ``ConfigKey`` specs for the core's sections, their checker and JSON Schema.

A leaf module (stdlib, ``cxbridge.errors``, ``cxbridge.secrets`` only): plugins describe their
``[systems.<name>]`` keys with the same ``ConfigKey``, ``cxbridge.config`` reads the file and runs the checker
below over it, and ``cxbridge.config.json_schema`` publishes the same specs as a JSON Schema.

The checker never stops at the first problem: it collects every one (file, full key path, what was expected,
what was found) in ``Problems``, which raises one ``ConfigError`` listing them all.
"""

from __future__ import annotations

import builtins
import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .errors import ConfigError
from .redact import redact_url
from .secrets import Secret
from .signals import STATUS_CATEGORIES as SIGNAL_STATUS_CATEGORIES

# The rollup values ``[impact] fields`` maps to tracker custom fields (``cxbridge.workflows.impact`` reads them).
IMPACT_VALUES = ("arr", "customers", "tickets", "renewal", "tier", "tier_rank", "oldest")
# What each rollup value is, for the tracker field that receives it (``cxbridge doctor`` checks the field's type).
IMPACT_KINDS = {
    "arr": "number",
    "customers": "number",
    "tickets": "number",
    "renewal": "date",
    "tier": "text",
    "tier_rank": "number",
    "oldest": "date",
}
# The tracker status categories sync back acts on (``[sync] status_map`` and ``draft_reply_on``): the signals'.
STATUS_CATEGORIES = SIGNAL_STATUS_CATEGORIES
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Resolutions that close a tracker issue without a fix (``[sync] not_fixed_resolutions``): Jira's defaults and
# the common additions of Jira Software and Service Management projects.
# Content types uploaded to the tracker by default (``[sync] attachment_types``): screenshots, logs, documents and
# the archives support attaches; anything else becomes a link to the helpdesk's copy.
ATTACHMENT_TYPES = (
    "image/*",
    "text/plain",
    "text/csv",
    "application/pdf",
    "application/json",
    "application/zip",
    "application/gzip",
    "application/x-har+json",
)
NOT_FIXED_RESOLUTIONS = ("Won't Do", "Won't Fix", "Duplicate", "Cannot Reproduce", "Incomplete", "Declined")


@dataclass(frozen=True)
class ConfigKey:
    """One key of the configuration: its type, default and purpose, and what its value may hold.

    ``type`` is the Python type (or a tuple of types) the TOML value must have; ``Secret`` stands for
    ``{ env = "NAME" }`` / ``{ file = "path" }``, read into a ``Secret``. ``required`` keys have no default.
    ``choices`` lists the values allowed. ``min`` / ``max`` bound a number's value (inclusive), a string's
    length, or a list's or table's number of entries; ``above`` is an exclusive lower bound for a number.
    ``items`` describes each element of a list. For a table: ``keys`` maps each known key to its ``ConfigKey``,
    ``values`` describes the value of every other key (or of every key, without ``keys``), and
    ``allow_unknown`` lets keys that neither describes through unchecked. A table with neither ``keys`` nor
    ``values`` is not looked into.
    """

    type: type | tuple[type, ...]
    required: bool = False
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    items: ConfigKey | None = None
    values: ConfigKey | None = None
    keys: Mapping[str, ConfigKey] | None = None
    min: float | None = None
    max: float | None = None
    above: float | None = None
    allow_unknown: bool = False

    @property
    def types(self) -> tuple[builtins.type, ...]:
        return self.type if isinstance(self.type, tuple) else (self.type,)


def type_name(t: type | tuple[type, ...]) -> str:
    """How a type is named in messages (``an integer``, ``a string or a list``)."""
    if isinstance(t, tuple):
        return " or ".join(type_name(x) for x in t)
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a table",
        Secret: 'a secret ({ env = "NAME" } or { file = "path" })',
    }.get(t, t.__name__)


def _str(strings: tuple[str, ...]) -> dict[str, ConfigKey]:
    return {s: ConfigKey(str) for s in strings}


# Keys of [systems.<name>] that the core reads for every system, whatever the plugin.
COMMON_SYSTEM_KEYS: dict[str, ConfigKey] = {
    "plugin": ConfigKey(str, help="the plugin's system key; defaults to the table's name"),
    "base_url": ConfigKey(str, required=True, help="the vendor's base URL, https"),
    "sandbox": ConfigKey(bool, default=False, help="true when base_url is a cxbridge sandbox (allows http loopback)"),
    "timeout": ConfigKey((int, float), default=30, above=0, help="read timeout in seconds"),
    "connect_timeout": ConfigKey((int, float), default=5, above=0, help="connect timeout in seconds"),
    "max_retries": ConfigKey(int, default=4, min=0, help="retries for a request that may be retried"),
    "enabled": ConfigKey(bool, default=True, help="false keeps the table but does not use the system"),
}

_CATEGORY_MAP = {c: ConfigKey(str, help=f"the helpdesk status for the category {c}") for c in STATUS_CATEGORIES}

# What [[policies.rules]] hold (cxbridge.workflows.policy compiles them and checks the rest: conditions, priorities,
# currencies, duplicate names; its RULE_KEYS and GRANT_KEYS must match these, a test holds them to it).
POLICY_GRANT_KEYS: dict[str, ConfigKey] = {
    "priority_max": ConfigKey(str, help="the highest tracker priority the rule grants"),
    "credit_max": ConfigKey((int, float, str), min=0, help="the largest credit the rule grants (with currency)"),
    "currency": ConfigKey(str, min=1, help="the currency of credit_max, e.g. USD"),
    "skip_triage": ConfigKey(bool, help="the escalation may skip engineering triage"),
    "reopen": ConfigKey(bool, help="the agent may reopen a closed issue"),
    "public_reply": ConfigKey(bool, help="the agent may send the drafted public reply"),
}
POLICY_RULE_KEYS: dict[str, ConfigKey] = {
    "name": ConfigKey(str, required=True, min=1, help="the rule's name, unique"),
    "when": ConfigKey(str, required=True, min=1, help="a Jinja2 condition over ticket, customer and agent"),
    "grant": ConfigKey(dict, required=True, min=1, keys=POLICY_GRANT_KEYS, help="the bounded actions granted"),
    "description": ConfigKey(str, help="what the rule is for"),
}

FIELD_MAPPING_KEYS: dict[str, ConfigKey] = {
    "value": ConfigKey((str, int, float, bool, list), help="a constant value (a list for a multi-value field)"),
    "from": ConfigKey(
        str,
        min=1,
        help="where the value comes from: ticket.<subject|priority|status|type|tags|organization|requester_email>, "
        "ticket.custom.<field id>, customer.<name|domain|tier|arr|currency|owner|owner_email|renewal_date|"
        "lifecycle_stage>, agent.<email|name>",
    ),
    "map": ConfigKey(dict, values=ConfigKey((str, int, float, bool)), help="lookup table: source value -> value"),
    "default": ConfigKey((str, int, float, bool, list), help="the value when the source is empty or not in map"),
}
"""The keys of one ``[escalation.fields.<field>]`` table."""

CUSTOMER_MATCHES = ("email", "email_domain", "organization_domain", "organization_name")
"""How the escalation looks for the customer in the CRM (``[escalation] customer_match``, in this order by
default): the contact by the requester's email; the company by the email's domain; the company by the helpdesk
organization's domains; the company by the organization's name."""
FREE_MAIL_DOMAINS = (
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "web.de",
    "yandex.ru",
    "mail.ru",
    "qq.com",
    "163.com",
)
"""Webmail domains: a requester's address there says nothing about their company."""

# The core's own sections: section -> key -> ConfigKey (nested tables described by keys/values/items).
CORE_SECTIONS: dict[str, dict[str, ConfigKey]] = {
    "cxbridge": {
        "store": ConfigKey(
            str,
            default="cxbridge.db",
            min=1,
            help="path of the SQLite store, relative to the config file, or a postgresql:// URL (no password in it)",
        ),
        "store_password": ConfigKey(
            Secret, help="the password of a postgresql:// store (or leave it to libpq: PGPASSWORD, ~/.pgpass)"
        ),
        "template_dirs": ConfigKey(
            list, default=[], items=ConfigKey(str, min=1), help="folders searched for templates before the defaults"
        ),
        "log_level": ConfigKey(str, default="INFO", choices=LOG_LEVELS, help="the log level"),
        "inbox_retention_days": ConfigKey(
            int,
            default=7,
            min=3,
            help="days a webhook delivery is remembered (deduplication); longer than the vendors' retry horizons",
        ),
        "job_retention_days": ConfigKey(
            int, default=7, min=1, help="days a finished job is kept before it is purged (dead ones are kept)"
        ),
    },
    "plugins": {
        "disabled": ConfigKey(list, default=[], items=ConfigKey(str), help="plugin names not to load"),
    },
    "escalation": {
        "helpdesk": ConfigKey(
            str, help="the [systems.*] name that holds the tickets; unset: the one system that is a helpdesk"
        ),
        "crm": ConfigKey(str, help='the [systems.*] name of the CRM; unset: the one system that is a CRM; "" for none'),
        "tracker": ConfigKey(
            str, help="the [systems.*] name of the issue tracker; unset: the one system that is a tracker"
        ),
        "tag": ConfigKey(str, default="escalated_to_engineering", help="tag an agent adds to escalate a ticket"),
        "default_tier": ConfigKey(str, default="standard", help="tier assumed for a customer without one"),
        "search_grace_seconds": ConfigKey(
            int, default=300, min=0, help="how long an ambiguous issue create is searched for before creating again"
        ),
        "priority": ConfigKey(
            dict,
            default={},
            values=ConfigKey(dict, values=ConfigKey(str), help="ticket priority -> tracker priority"),
            help="tier -> ticket priority -> tracker priority",
        ),
        "customer_match": ConfigKey(
            list,
            default=list(CUSTOMER_MATCHES),
            items=ConfigKey(str, choices=CUSTOMER_MATCHES),
            help="how the customer is looked for in the CRM, in order, until one matches",
        ),
        "free_mail_domains": ConfigKey(
            list,
            default=list(FREE_MAIL_DOMAINS),
            items=ConfigKey(str, min=1),
            help="email domains never taken for a company's (webmail providers)",
        ),
        "fields": ConfigKey(
            dict,
            default={},
            values=ConfigKey(dict, keys=FIELD_MAPPING_KEYS, help="how one tracker field is filled"),
            help="tracker field id (components, fixVersions, assignee, customfield_10200...) -> how it is filled",
        ),
    },
    "webhooks": {
        "host": ConfigKey(str, default="127.0.0.1", min=1, help="the address 'cxbridge serve' listens on"),
        "port": ConfigKey(int, default=8787, min=1, max=65535, help="the port 'cxbridge serve' listens on"),
        "workers": ConfigKey(int, default=2, min=1, help="worker threads of 'cxbridge serve'"),
        "public_url": ConfigKey(str, default="", help="the URL vendors call, for signatures over the URI"),
        "public_urls": ConfigKey(
            dict,
            default={},
            values=ConfigKey(str),
            help="system -> the full URL that vendor calls, when a proxy rewrites the path",
        ),
        "secrets": ConfigKey(
            dict,
            default={},
            values=ConfigKey((list, Secret), items=ConfigKey(Secret), help="the active signing secrets"),
            help="system -> list of active signing secrets",
        ),
        "tolerance_seconds": ConfigKey(
            int, default=300, min=0, help="deliveries signed longer ago than this are refused"
        ),
        "request_timeout_seconds": ConfigKey(
            int,
            default=10,
            min=1,
            max=300,
            help="a request's headers and body must all arrive within this, else 408 and the connection is closed",
        ),
        "idle_timeout_seconds": ConfigKey(
            int, default=10, min=1, max=3600, help="a connection with no request arriving is closed after this"
        ),
        "connection_limit": ConfigKey(
            int,
            default=2000,
            min=10,
            max=100_000,
            help="connections served at once; more wait in the listen backlog until a deadline frees a slot",
        ),
        "threads": ConfigKey(
            int, default=8, min=1, max=256, help="HTTP threads of 'cxbridge serve' answering complete requests"
        ),
    },
    "agent_api": {
        "app_public_keys": ConfigKey(
            list,
            default=[],
            items=ConfigKey(Secret),
            help="PEM public key(s) of the helpdesk app (RS256 signed page requests); unset: no /agent/ API",
        ),
        "issuer": ConfigKey(str, default="", help="the helpdesk account's URL: the iss a signed request must name"),
        "audience": ConfigKey(str, default="", help="the app installation's URL: the aud a signed request must carry"),
        "session_secrets": ConfigKey(
            list,
            default=[],
            items=ConfigKey(Secret),
            help="HMAC keys of cxbridge's agent sessions (32+ characters; the first signs, all verify)",
        ),
        "session_minutes": ConfigKey(int, default=60, min=1, max=720, help="how long an agent session lasts"),
        "app_dir": ConfigKey(str, default="", help="the built app's folder; its assets/ are served at /agent/"),
        "origins": ConfigKey(
            list, default=[], items=ConfigKey(str, min=1), help="browser origins CORS allows; default: the issuer's"
        ),
        "max_body": ConfigKey(int, default=65536, min=1024, max=1048576, help="largest request body in bytes (413)"),
    },
    "sync": {
        "carry_duplicates": ConfigKey(
            bool,
            default=True,
            help="an issue closed as a duplicate of another hands its tickets over to that issue",
        ),
        "status_map": ConfigKey(
            dict,
            default={},
            keys=_CATEGORY_MAP,
            values=ConfigKey(dict, keys=_CATEGORY_MAP, help="a system's own map: category -> status"),
            help="tracker status category -> helpdesk status, or system name -> (category -> status)",
        ),
        "comment_prefix": ConfigKey(str, default="[support]", help="marks a tracker comment meant for support"),
        "integration_users": ConfigKey(
            dict,
            default={},
            values=ConfigKey((str, int, list), items=ConfigKey((str, int))),
            help="system -> the integration user's id (or a list of ids), for echo suppression",
        ),
        "lookback_hours": ConfigKey(
            int,
            default=24,
            min=0,
            help="how far back 'cxbridge sync' looks on its first run (no checkpoint, no --since)",
        ),
        "comment_visibility": ConfigKey(
            list,
            default=[],
            items=ConfigKey(str),
            help="tracker comment visibility groups/roles whose comments go to support",
        ),
        "draft_reply_on": ConfigKey(
            list,
            default=[],
            items=ConfigKey(str, min=1),
            help="status categories (new, indeterminate, done) or resolution names (Done, Fixed...) that draft "
            "a reply for the agent",
        ),
        "not_fixed_resolutions": ConfigKey(
            list,
            default=list(NOT_FIXED_RESOLUTIONS),
            items=ConfigKey(str, min=1),
            help="resolutions that close an issue without a fix (templates read issue.fixed as false)",
        ),
        "crm_notes": ConfigKey(bool, default=True, help="false: sync back writes no CRM notes"),
        "concurrency": ConfigKey(
            int,
            default=4,
            min=1,
            max=16,
            help="sync back and the relay: writes to one system going out at once (per ticket, issue or company; "
            "1: one after the other)",
        ),
        "to_tracker": ConfigKey(
            bool, default=True, help="support -> engineering: notes (and replies) on linked tickets reach the issues"
        ),
        "to_helpdesk": ConfigKey(
            bool,
            default=True,
            help="engineering -> support: status changes, comments and releases reach the linked tickets",
        ),
        "engineering_prefix": ConfigKey(
            str, default="[engineering]", help="an internal note starting with this is relayed to the linked issues"
        ),
        "engineering_tag": ConfigKey(
            str,
            default="",
            help="a ticket carrying this tag (a macro adds it) has every internal note relayed; empty: prefix only",
        ),
        "relay_public_replies": ConfigKey(
            bool, default=False, help="also relay the public replies (agent's and customer's) of linked tickets"
        ),
        "attachment_max_bytes": ConfigKey(
            int,
            default=10 * 1024 * 1024,
            min=0,
            help="attachments up to this size are uploaded to the issue; larger ones become links (0: links only)",
        ),
        "attachment_types": ConfigKey(
            list,
            default=list(ATTACHMENT_TYPES),
            items=ConfigKey(str, min=1),
            help="content types uploaded (type/subtype, or type/* for a family); others become links",
        ),
        "attachment_max_files": ConfigKey(
            int, default=10, min=0, help="attachments handled per comment; more are listed by name only"
        ),
    },
    "decisions": {
        "tag_prefix": ConfigKey(
            str, default="cxb_decide_", help='tags starting with this ask for a decision (a macro adds one); "": off'
        ),
        "tag_actions": ConfigKey(
            dict,
            default={},
            keys={
                a: ConfigKey(str, help=f"what follows the prefix for {a} ({{value}} stands for the value); '': off")
                for a in ("credit", "priority", "reopen", "public_reply")
            },
            help="action -> the rest of its tag, e.g. credit = 'credit_{value}' (unset actions keep the default)",
        ),
        "macros": ConfigKey(
            list,
            default=[],
            items=ConfigKey(str, min=1),
            help="decisions 'cxbridge setup' offers as helpdesk macros and has the helpdesk deliver: what follows "
            "tag_prefix, e.g. 'credit_50' (a macro only where some policy rule grants it)",
        ),
        "reply_words": ConfigKey(
            str,
            default="latest_note",
            choices=("latest_note", "none"),
            help="public_reply from a tag: the agent's own words are their latest internal note, or none",
        ),
    },
    "impact": {
        "fields": ConfigKey(
            dict,
            default={},
            keys={v: ConfigKey(str, help=f"the tracker field that receives {v}") for v in IMPACT_VALUES},
            help="rollup value -> tracker custom field id",
        ),
        "tiers": ConfigKey(
            list,
            default=["strategic", "enterprise", "growth", "standard"],
            items=ConfigKey(str, min=1),
            help="customer tiers, highest first (a tier not listed ranks below every listed one)",
        ),
        "arr_currency": ConfigKey(
            str, default="", help="currency of the ARR number field; empty: the currency with the largest sum"
        ),
        "top_customers": ConfigKey(
            int,
            default=10,
            min=1,
            help="customers listed in the impact section, by ARR; the others are summed up as 'and N more'",
        ),
        "tickets_per_customer": ConfigKey(
            int, default=5, min=1, help="tickets listed per customer in the impact section ('and N more' after)"
        ),
    },
    "policies": {
        "rules": ConfigKey(
            list,
            default=[],
            items=ConfigKey(dict, keys=POLICY_RULE_KEYS),
            help="decision-rights rules: [[policies.rules]] name, when, grant",
        ),
        "agents": ConfigKey(
            dict,
            default={},
            values=ConfigKey(
                dict,
                values=ConfigKey((str, int, float, bool, list), items=ConfigKey(str)),
                help="attributes rules read as agent.* (team, role...)",
            ),
            help='agent email -> attributes rules read as agent.* ([policies.agents."<email>"])',
        ),
    },
}


# -- checking ---------------------------------------------------------------------------------------------------


class Problems:
    """Every problem found in one file, each a line ``<file>: <key path>: <what was expected, what was found>``."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.lines: list[str] = []

    def add(self, path: str, message: str) -> None:
        """A problem at ``path`` (``webhooks.port``); an empty path speaks of the whole file."""
        self.lines.append(f"{self.where}: {path}: {message}" if path else f"{self.where}: {message}")

    def add_error(self, exc: ConfigError) -> None:
        """A ConfigError whose message already names the file and the key."""
        self.lines.append(str(exc))

    def __len__(self) -> int:
        return len(self.lines)

    def error(self) -> ConfigError | None:
        """One ConfigError listing every problem (one alone keeps its one-line message), or None."""
        if not self.lines:
            return None
        if len(self.lines) == 1:
            return ConfigError(self.lines[0])
        return ConfigError(f"{self.where}: {len(self.lines)} problems:\n" + "\n".join(self.lines))

    def raise_if_any(self) -> None:
        error = self.error()
        if error is not None:
            raise error


SecretReader = Callable[[Any, str], Secret]
"""Reads ``{ env = ... }`` / ``{ file = ... }`` at a place (``<file>: <key path>``); raises ConfigError."""


def _refuse_secret(value: Any, where: str) -> Secret:
    raise ConfigError(f"{where}: secrets cannot be read here")


def _is_a(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, tuple(t for t in types if t is not Secret))


def _size(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str | list | dict):
        return len(value)
    return None


def _bounds_problem(value: Any, spec: ConfigKey) -> str | None:
    size = _size(value)
    if size is None or (spec.min is None and spec.max is None and spec.above is None):
        return None
    low_ok = (spec.min is None or size >= spec.min) and (spec.above is None or size > spec.above)
    high_ok = spec.max is None or size <= spec.max
    if low_ok and high_ok:
        return None
    if isinstance(value, int | float):
        what = "an integer" if isinstance(value, int) and float not in spec.types else "a number"
        if spec.above is not None:
            bound = f"above {spec.above:g}"
        elif spec.min is not None and spec.max is not None:
            bound = f"from {spec.min:g} to {spec.max:g}"
        elif spec.min is not None:
            bound = f"of {spec.min:g} or more"
        else:
            bound = f"of {spec.max:g} or less"
        return f"expected {what} {bound}, got {value!r}"
    nouns: dict[type, str] = {str: "characters", list: "items", dict: "keys"}
    noun = nouns[type(value)]
    if isinstance(value, str) and spec.min == 1 and spec.max is None:
        return f"expected a non-empty string, got {value!r}"
    if spec.min is not None and size < spec.min:
        return f"expected at least {spec.min:g} {noun}, got {len(value)}"
    return f"expected at most {spec.max:g} {noun}, got {len(value)}"


class Checker:
    """Checks values against ``ConfigKey`` specs, adding every problem to ``problems`` (it never raises)."""

    def __init__(self, problems: Problems, read_secret: SecretReader = _refuse_secret) -> None:
        self.problems = problems
        self.read_secret = read_secret

    def value(self, value: Any, spec: ConfigKey, path: str) -> Any:
        """The checked value (secrets read, nested tables checked); problems are added, never raised."""
        types = spec.types
        if Secret in types and not (isinstance(value, list) and list in types):
            try:
                return self.read_secret(value, f"{self.problems.where}: {path}")
            except ConfigError as exc:
                self.problems.add_error(exc)
                return value
        if not _is_a(value, types):
            self.problems.add(path, f"expected {type_name(spec.type)}, got {type(value).__name__} {value!r}")
            return value
        if spec.choices is not None and value not in spec.choices:
            self.problems.add(path, f"expected one of {', '.join(map(str, spec.choices))}, got {value!r}")
            return value
        bounds = _bounds_problem(value, spec)
        if bounds is not None:
            self.problems.add(path, bounds)
            return value
        if isinstance(value, list) and spec.items is not None:
            return [self.value(item, spec.items, f"{path}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict) and (spec.keys is not None or spec.values is not None):
            return self.table(
                value, spec.keys or {}, path, values=spec.values, allow_unknown=spec.allow_unknown, fill=False
            )
        return value

    def table(
        self,
        table: Mapping[str, Any],
        keys: Mapping[str, ConfigKey],
        path: str,
        *,
        values: ConfigKey | None = None,
        allow_unknown: bool = False,
        fill: bool = True,
    ) -> dict[str, Any]:
        """The checked table: known keys first (with their defaults, all of them with ``fill``, else only those
        that have one), then the other keys, checked against ``values``."""
        out: dict[str, Any] = {}
        for key, spec in keys.items():
            if key in table:
                out[key] = self.value(table[key], spec, f"{path}.{key}")
            elif spec.required:
                purpose = f"; {spec.help}" if spec.help else ""
                self.problems.add(path, f"missing required key {key!r} ({type_name(spec.type)}{purpose})")
            elif fill or spec.default is not None:
                out[key] = copy.deepcopy(spec.default)
        for key, value in table.items():
            if key in keys:
                continue
            if values is not None:
                if keys and not _is_a(value, values.types) and Secret not in values.types:
                    known = ", ".join(sorted(keys))
                    self.problems.add(
                        f"{path}.{key}",
                        f"expected {type_name(values.type)} ({values.help}) or one of the keys {known}, "
                        f"got {type(value).__name__} {value!r}",
                    )
                    out[key] = value
                else:
                    out[key] = self.value(value, values, f"{path}.{key}")
            elif allow_unknown:
                out[key] = value
            else:
                self.problems.add(path, f"unknown key {key!r} (known: {', '.join(sorted(keys))})")
        return out


# -- JSON Schema --------------------------------------------------------------------------------------------------

SECRET_SCHEMA: dict[str, Any] = {
    "description": 'a secret, never written inline: { env = "NAME" } or { file = "path" }',
    "oneOf": [
        {
            "type": "object",
            "properties": {"env": {"type": "string", "minLength": 1, "description": "an environment variable"}},
            "required": ["env"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"file": {"type": "string", "minLength": 1, "description": "a file holding the secret"}},
            "required": ["file"],
            "additionalProperties": False,
        },
    ],
}
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}
SECRET_REF = "#/$defs/secret"  # noqa: S105 -- a JSON pointer to the schema of a secret, not one
_BOUND_KINDS = {int: "number", float: "number", str: "string", list: "array", dict: "object"}


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def key_schema(spec: ConfigKey) -> dict[str, Any]:
    """The JSON Schema of one key's value (secrets refer to ``#/$defs/secret``)."""
    types = spec.types
    plain = [t for t in types if t is not Secret]
    schema: dict[str, Any] = {}
    if spec.help:
        schema["description"] = spec.help
    json_types = sorted({_JSON_TYPES.get(t, "object") for t in plain} - ({"integer"} if float in plain else set()))
    if plain:
        schema["type"] = json_types[0] if len(json_types) == 1 else json_types
    if spec.choices is not None:
        schema["enum"] = list(spec.choices)
    bounds = {
        "number": ("minimum", "maximum"),
        "string": ("minLength", "maxLength"),
        "array": ("minItems", "maxItems"),
        "object": ("minProperties", "maxProperties"),
    }
    kinds = {_BOUND_KINDS[t] for t in plain if t in _BOUND_KINDS}
    for kind in sorted(kinds):
        low, high = bounds[kind]
        if spec.min is not None:
            schema[low] = _number(spec.min)
        if spec.max is not None:
            schema[high] = _number(spec.max)
    if spec.above is not None:
        schema["exclusiveMinimum"] = _number(spec.above)
    if list in plain and spec.items is not None:
        schema["items"] = key_schema(spec.items)
    if dict in plain:
        if spec.keys is not None:
            schema["properties"] = {k: key_schema(v) for k, v in spec.keys.items()}
            required = [k for k, v in spec.keys.items() if v.required]
            if required:
                schema["required"] = required
        if spec.values is not None:
            schema["additionalProperties"] = key_schema(spec.values)
        elif spec.keys is not None and not spec.allow_unknown:
            schema["additionalProperties"] = False
    if spec.default is not None:
        schema["default"] = copy.deepcopy(spec.default)
    if Secret in types:
        if not plain:
            return {**schema, "$ref": SECRET_REF}
        return {"anyOf": [{k: v for k, v in schema.items() if k != "description"}, {"$ref": SECRET_REF}]} | (
            {"description": spec.help} if spec.help else {}
        )
    return schema


def table_schema(
    keys: Mapping[str, ConfigKey], *, allow_unknown: bool = False, description: str = ""
) -> dict[str, Any]:
    """The JSON Schema of a table with these keys (``required`` ones listed)."""
    schema: dict[str, Any] = {"type": "object"}
    if description:
        schema["description"] = description
    schema["properties"] = {k: key_schema(v) for k, v in keys.items()}
    required = [k for k, v in keys.items() if v.required]
    if required:
        schema["required"] = required
    schema["additionalProperties"] = allow_unknown
    return schema


# -- the loaded configuration ------------------------------------------------------------------------------


@dataclass
class SystemConfig:
    """One ``[systems.<name>]`` table: the common keys plus the plugin's own, validated."""

    name: str
    plugin: str
    base_url: str
    sandbox: bool = False
    timeout: float = 30.0
    connect_timeout: float = 5.0
    max_retries: int = 4
    enabled: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """A plugin-specific option."""
        return self.options.get(key, default)

    def secrets(self) -> list[Secret]:
        """Every secret of this system (for redaction)."""
        return [v for v in self.options.values() if isinstance(v, Secret)]


@dataclass
class Config:
    """The whole validated configuration."""

    path: Path | None
    sections: dict[str, dict[str, Any]]
    systems: dict[str, SystemConfig]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def section(self, name: str) -> dict[str, Any]:
        """A core section with its defaults filled in."""
        return self.sections[name]

    @property
    def disabled_plugins(self) -> list[str]:
        return list(self.sections["plugins"]["disabled"])

    def store_location(self) -> Path | str:
        """Where the store lives: a SQLite file path (relative paths are relative to the config file), or a
        database URL (``postgresql://...``) as a string. A ``sqlite:///path`` URL is returned as its path."""
        try:
            return store_location(self.sections["cxbridge"]["store"], self.path.parent if self.path else None)
        except ConfigError as exc:
            raise ConfigError(f"{self._where()}: {exc}") from None

    def store_password(self) -> Secret | None:
        """The password of a PostgreSQL store (``store_password``), None when unset."""
        value = self.sections["cxbridge"].get("store_password")
        return value if isinstance(value, Secret) else None

    def store_path(self) -> Path:
        """Where the SQLite store lives; a ConfigError when ``[cxbridge] store`` is a database URL."""
        location = self.store_location()
        if isinstance(location, str):
            raise ConfigError(
                f"{self._where()}: cxbridge.store: {redact_url(location)} is a database URL, not a SQLite file path"
            )
        return location

    def template_dirs(self) -> list[Path]:
        base = self.path.parent if self.path is not None else Path.cwd()
        return [p if p.is_absolute() else base / p for p in map(Path, self.sections["cxbridge"]["template_dirs"])]

    def system(self, name: str) -> SystemConfig:
        if name not in self.systems:
            known = ", ".join(sorted(self.systems)) or "none"
            raise ConfigError(f"{self._where()}: no [systems.{name}] table (configured: {known})")
        return self.systems[name]

    def all_secrets(self) -> list[Secret]:
        out = [s for sc in self.systems.values() for s in sc.secrets()]
        password = self.store_password()
        if password is not None:
            out.append(password)
        for values in self.sections["webhooks"]["secrets"].values():
            out.extend(v for v in values if isinstance(v, Secret))
        for key in ("app_public_keys", "session_secrets"):
            out.extend(v for v in self.sections["agent_api"][key] if isinstance(v, Secret))
        return out

    def _where(self) -> str:
        return str(self.path) if self.path else "<config>"


_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")


def _inline_password(url: str) -> bool:
    """Whether a database URL carries a password (in its userinfo or as a ``password=`` parameter)."""
    parts = urlsplit(url)
    try:
        in_userinfo = parts.password is not None
    except ValueError:  # an unparsable port: not ours to judge here
        in_userinfo = False
    return in_userinfo or any(k.lower() == "password" for k, _ in parse_qsl(parts.query))


def store_location(value: str, base: Path | None) -> Path | str:
    """``[cxbridge] store`` as a file path (relative to ``base``) or, for ``scheme://...``, the URL itself.

    ``sqlite:///relative.db`` and ``sqlite:////abs/path.db`` (the SQLAlchemy spellings) give the file's path.
    """
    match = _URL.match(value)
    if match is None:
        p = Path(value)
    elif match["scheme"].lower() == "sqlite":
        rest = value[match.end() :]
        if not rest.startswith("/") or len(rest) < 2:
            raise ConfigError(f"cxbridge.store: {redact_url(value)}: expected sqlite:///path/to/file.db")
        p = Path(rest[1:])
    else:
        if _inline_password(value):
            raise ConfigError(
                f"cxbridge.store: {redact_url(value)}: a password is never written inline; remove it from the URL "
                'and set store_password = { env = "NAME" } (or { file = "path" })'
            )
        return value
    if not p.is_absolute() and base is not None:
        p = base / p
    return p
