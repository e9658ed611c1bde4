"""What ``cxbridge doctor`` checks, in order, and the one line each check prints.

The checks never stop at the first problem: every invalid configuration key, every plugin that failed to load,
every system's login, every object the configuration names at the vendors (the plugins' ``Connector.diagnose``),
the webhooks ``serve`` will receive (a signing secret each, ``[webhooks] public_url``), the placeholders
``cxbridge init`` wrote, and the store are reported in one run. Each failed line names the object, gives the
vendor's own words where a vendor answered, and the fix.

``STEPS`` is the list of checks run once the configuration loaded, in order; a feature that adds checks (for
example the comparison of ``cxbridge setup``'s plan with what the vendors hold) appends a step to it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import provision
from .config import SystemConfig
from .connectors import (
    CREATE,
    CRM_ROLE,
    FINDING_FAILED,
    FINDING_OK,
    HELPDESK,
    MANUAL,
    OK,
    TRACKER,
    UPDATE,
    FieldNeed,
    Finding,
    Needs,
)
from .errors import AuthError, ConfigError, CxbridgeError, NotFound, RateLimited, Unavailable, VendorError
from .init_template import PLACEHOLDER_MARKER, PLACEHOLDER_VALUES
from .plugins import Plugins
from .redact import redact_line as scrub
from .runtime import Runtime
from .settings import IMPACT_KINDS, Config
from .store.preflight import NEW_STORE, check_store
from .webhooks.agent_auth import AgentApiSettings
from .webhooks.receiver import webhook_secrets

EXIT_OK = 0
"""Every check passed (skipped checks do not fail)."""
EXIT_FAILED = 1
"""At least one check failed; every failure is listed."""

_MARKS = {True: "✓", False: "✗", None: "-"}
_STATES = {True: FINDING_OK, False: FINDING_FAILED, None: "skipped"}


@dataclass
class Check:
    """One line of ``cxbridge doctor``: the object checked, whether it passed (None: skipped), why, and the fix."""

    item: str
    ok: bool | None
    detail: str
    fix: str = ""

    def line(self) -> str:
        """``✓ item: detail``, ``✗ item: detail — fix: ...`` or ``- item: detail`` (skipped)."""
        text = f"{_MARKS[self.ok]} {self.item}: {self.detail}"
        return f"{text} — fix: {self.fix}" if self.fix else text

    def as_dict(self) -> dict[str, Any]:
        """The check for ``doctor --json``: item, ok (true, false or null), state, detail, fix."""
        return {"item": self.item, "ok": self.ok, "state": _STATES[self.ok], "detail": self.detail, "fix": self.fix}


@dataclass
class Doctor:
    """What the steps read: the loaded configuration and plugins, and a runtime over them."""

    config: Config
    plugins: Plugins
    runtime: Runtime


Step = Callable[[Doctor], list[Check]]


# -- describing failures ---------------------------------------------------------------------------------------


def _secret_places(sc: SystemConfig) -> str:
    """Where the system's secrets come from, for a person: ``JIRA_API_TOKEN`` or ``the file /etc/x``."""
    places = []
    for secret in sc.secrets():
        kind, _, where = secret.source.partition(":")
        places.append(where if kind == "env" else f"the file {where}" if kind == "file" else secret.source)
    return " / ".join(places)


def _status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def describe_failure(exc: Exception, sc: SystemConfig) -> str:
    """Why a system's check failed and what to do about it, in one line."""
    if not isinstance(exc, CxbridgeError):
        return f"unexpected {type(exc).__name__}: {exc}"
    if not isinstance(exc, VendorError):
        return str(exc)
    head = _status_text(exc.status) if exc.status is not None else str(exc)
    if exc.vendor_message and exc.vendor_message not in head:
        head = f"{head} ({exc.vendor_message.rstrip('.')})"
    places = _secret_places(sc)
    hint = ""
    if isinstance(exc, AuthError):
        if exc.status == 403:
            where = f" in {places}" if places else ""
            hint = f"the credentials{where} are valid but lack a permission cxbridge needs"
        else:
            hint = f"check the token in {places}" if places else f"check the credentials in [systems.{sc.name}]"
    elif isinstance(exc, NotFound):
        hint = f"check base_url {sc.base_url}"
    elif isinstance(exc, RateLimited):
        hint = f"rate limited; try again in {exc.retry_after:g}s" if exc.retry_after else "rate limited; try again"
    elif isinstance(exc, Unavailable):
        hint = f"is {sc.base_url} reachable from here?"
    return f"{head}: {hint}" if hint else head


# -- the configuration -----------------------------------------------------------------------------------------


def config_problems(exc: CxbridgeError) -> list[Check]:
    """A configuration that does not load: one line per problem (the loader lists them all)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(" problems:"):
        lines = lines[1:]
    return [Check("config", False, scrub(line)) for line in lines]


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
    else:
        yield path, value


def placeholder_checks(raw: dict[str, Any]) -> list[Check]:
    """A line per value still holding a placeholder that ``cxbridge init`` wrote (``YOURCOMPANY``, ``= 0``)."""
    checks: list[Check] = []
    for path, value in _walk(raw, ""):
        marked = isinstance(value, str) and PLACEHOLDER_MARKER in value.lower()
        if marked or (path in PLACEHOLDER_VALUES and value == PLACEHOLDER_VALUES[path] and type(value) is int):
            detail = f"{value!r} is the placeholder 'cxbridge init' wrote"
            checks.append(Check(f"config {path}", False, detail, "replace it with your account's own value"))
    return checks


def raw_config(path: Path) -> dict[str, Any] | None:
    """The configuration file as TOML, without any checking; None when it cannot be read or parsed."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


# -- the steps -------------------------------------------------------------------------------------------------


def plugin_checks(doctor: Doctor) -> list[Check]:
    """A line per enabled plugin that failed to load or register."""
    checks = []
    for info in sorted(doctor.plugins.infos.values(), key=lambda i: i.name):
        if info.enabled and info.error:
            fix = f"fix the plugin, or 'cxbridge plugins disable {info.name}'"
            checks.append(Check(f"plugin {info.name}", False, scrub(info.error), fix))
    return checks


def placeholders(doctor: Doctor) -> list[Check]:
    """The placeholders of ``cxbridge init`` left in the loaded configuration."""
    return placeholder_checks(doctor.config.raw)


def role_checks(doctor: Doctor) -> list[Check]:
    """Which system fills each role (a line only when ``[escalation]`` cannot tell)."""
    checks = []
    for key, role in (("helpdesk", HELPDESK), ("crm", CRM_ROLE), ("tracker", TRACKER)):
        try:
            doctor.runtime.role_system(key, role)
        except ConfigError as exc:
            checks.append(Check(f"escalation.{key}", False, scrub(str(exc))))
    return checks


def needs_of(doctor: Doctor, name: str) -> Needs:
    """What the core will ask of the system ``name``: its roles, and for the tracker the fields it fills."""
    roles = set()
    for key, role in (("helpdesk", HELPDESK), ("crm", CRM_ROLE), ("tracker", TRACKER)):
        try:
            if doctor.runtime.role_system(key, role) == name:
                roles.add(role)
        except ConfigError:
            continue
    if TRACKER not in roles:
        return Needs(roles=frozenset(roles))
    mapping = doctor.config.section("impact").get("fields") or {}
    fields = tuple(
        FieldNeed(str(fid), f"impact.fields.{value}", IMPACT_KINDS.get(str(value), "text"))
        for value, fid in mapping.items()
        if fid
    )
    escalation = doctor.config.section("escalation")
    priority = escalation.get("priority") or {}
    return Needs(
        roles=frozenset(roles),
        issue_fields=fields,
        sets_priority=any(priority.values()),
        create_fields=tuple(str(fid) for fid in escalation.get("fields") or {}),
    )


def _finding_check(system: str, finding: Finding) -> Check:
    ok = {FINDING_OK: True, FINDING_FAILED: False}.get(finding.state)
    return Check(f"{system} {finding.subject}", ok, scrub(finding.message), scrub(finding.fix))


def system_checks(doctor: Doctor) -> list[Check]:
    """Each enabled system: its login, then (when it passed) its plugin's deep checks of what the config names."""
    checks: list[Check] = []
    for sc in doctor.config.systems.values():
        if not sc.enabled:
            checks.append(Check(sc.name, None, "skipped: enabled = false"))
            continue
        try:
            connector = doctor.runtime.connector(sc.name)
            detail = connector.check()
        except Exception as exc:
            checks.append(Check(sc.name, False, scrub(describe_failure(exc, sc))))
            if doctor.plugins.connector(sc.plugin).supports("diagnose"):
                checks.append(Check(f"{sc.name} objects", None, "not checked: the login failed"))
            continue
        checks.append(Check(sc.name, True, scrub(detail or "ok")))
        try:
            findings = connector.diagnose(needs_of(doctor, sc.name))
        except Exception as exc:
            checks.append(Check(f"{sc.name} objects", False, scrub(describe_failure(exc, sc))))
            continue
        checks.extend(_finding_check(sc.name, f) for f in findings)
    return checks


def _served(doctor: Doctor) -> list[str]:
    """The systems ``cxbridge serve`` receives webhooks for: every enabled one whose plugin verifies them."""
    verifiers = doctor.plugins.webhook_verifiers()
    return [name for name, sc in doctor.config.systems.items() if sc.enabled and sc.plugin in verifiers]


def webhook_checks(doctor: Doctor) -> list[Check]:
    """For ``serve``: a signing secret for every system it receives, and the public URL the vendors call."""
    served = _served(doctor)
    if not served:
        return []
    checks: list[Check] = []
    for name in served:
        secrets, key = webhook_secrets(doctor.config, name)
        if secrets:
            checks.append(Check(f"webhooks {name}", True, f"signing secret from {key}"))
        else:
            checks.append(
                Check(
                    f"webhooks {name}",
                    False,
                    f"no signing secret: 'cxbridge serve' refuses to start without {key}",
                    f'set {key} = [{{ env = "{name.upper()}_WEBHOOK_SECRET" }}] to the secret the vendor signs '
                    "its deliveries with ('cxbridge setup --apply' writes it when it registers the webhook)",
                )
            )
    section = doctor.config.section("webhooks")
    public_url = str(section.get("public_url") or "")
    per_system = section.get("public_urls") or {}
    without = [n for n in served if not per_system.get(n)]
    if not public_url and without:
        checks.append(
            Check(
                "webhooks public_url",
                False,
                f"[webhooks] public_url is not set: the vendors cannot be pointed at 'cxbridge serve' "
                f"({', '.join(without)}), and signatures over the URL cannot be checked",
                "set [webhooks] public_url to the https URL of the TLS proxy in front of 'cxbridge serve' "
                "(e.g. https://cxbridge.example.com)",
            )
        )
    elif public_url:
        checks.append(_url_check("webhooks public_url", public_url))
    for name in served:
        if per_system.get(name):
            checks.append(_url_check(f"webhooks public_urls.{name}", str(per_system[name])))
    return checks


def _url_check(item: str, url: str) -> Check:
    problem = _url_problem(url)
    return Check(item, False, f"{url}: {problem}", _URL_FIX) if problem else Check(item, True, url)


_URL_FIX = "use the https URL the vendors call (your TLS proxy), without a query or fragment"


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "not an http(s) URL"
    if parts.query or parts.fragment:
        return "has a query or fragment"
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not loopback:
        return "vendors deliver webhooks over https only"
    return None


def setup_checks(doctor: Doctor) -> list[Check]:
    """What ``cxbridge setup --plan`` shows, as checks (webhooks registered and pointing at the public URL,
    triggers, fields, properties): a failed line per object not already right, with the fix ``run 'cxbridge
    setup --apply'`` (or, for a manual item, the click the plan names); else one passing line per system. It is
    the plan itself: the doctor compares nothing on its own."""
    checks: list[Check] = []
    rt = doctor.runtime
    for name in provision.provisioned_systems(rt):
        try:
            items = provision.plan(rt, [name])
        except (AuthError, Unavailable) as exc:
            checks.append(Check(f"{name} setup", None, f"not checked: {scrub(str(exc))}"))
            continue
        except CxbridgeError as exc:
            checks.append(Check(f"{name} setup", False, scrub(f"cannot compare with what cxbridge needs: {exc}")))
            continue
        wrong = [i for i in items if i.action in (CREATE, UPDATE, MANUAL) and not i.optional]
        for item in wrong:
            said = {CREATE: "missing", UPDATE: "not as cxbridge needs it", MANUAL: "needs the admin"}[item.action]
            detail = f"{said}: {item.detail}" if item.detail else said
            fix = "do that, then run 'cxbridge doctor' again" if item.action == MANUAL else _SETUP_FIX
            checks.append(Check(f"{item.system} {item.kind} {item.name!r}", False, scrub(detail), fix))
        if not wrong:
            count = sum(1 for i in items if i.action == OK)
            detail = f"{count} objects as cxbridge needs them"
            better = [i for i in items if i.action == UPDATE and i.optional]
            if better:  # working as they are: 'setup --apply' improves them
                said = "; ".join(f"{i.kind} {i.name!r}: {i.detail}" for i in better)
                detail += f", {len(better)} working that 'cxbridge setup --apply' would improve ({said})"
            checks.append(Check(f"{name} setup", True, scrub(detail)))
    return checks


_SETUP_FIX = "run 'cxbridge setup --apply'"


def store_checks(doctor: Doctor) -> list[Check]:
    """The store: refused (read-only, empty, corrupt, not cxbridge's, newer; for PostgreSQL also the server
    unreachable, a standby, a missing privilege), present (with PostgreSQL's server and schema version), or nothing
    when new."""
    try:
        detail = check_store(doctor.config.store_location(), doctor.config.store_password())
    except CxbridgeError as exc:
        return [Check("store", False, scrub(str(exc)))]
    return [] if detail.endswith(NEW_STORE) else [Check("store", True, detail)]


def agent_api_checks(doctor: Doctor) -> list[Check]:
    """For the helpdesk sidebar app (``[agent_api]``): the settings complete, each public key an RSA key (the
    helpdesk signs the app's page request RS256), the built app's page and SDK under ``app_dir``."""
    section = doctor.config.section("agent_api")
    if not section.get("app_public_keys"):
        return []
    try:
        settings = AgentApiSettings.from_section(section)
    except ConfigError as exc:
        return [Check("agent_api", False, str(exc), "complete [agent_api] (docs/agent-app.md)")]
    if settings is None:
        return []
    checks: list[Check] = []
    for index, key in enumerate(settings.app_public_keys):
        try:
            loaded = serialization.load_pem_public_key(key.reveal().encode())
        except ValueError:
            loaded = None
        if isinstance(loaded, rsa.RSAPublicKey):
            checks.append(Check(f"agent_api app_public_keys[{index}]", True, f"an RSA public key from {key.source}"))
        else:
            checks.append(
                Check(
                    f"agent_api app_public_keys[{index}]",
                    False,
                    f"{key.source} holds no PEM RSA public key: no signed page request could be verified",
                    "set it to the app's public key (the helpdesk's PEM for the installed app)",
                )
            )
    folder = Path(settings.app_dir) / "assets" if settings.app_dir else None
    missing = [n for n in ("iframe.html", "app.js", "zaf_sdk.js") if folder is None or not (folder / n).is_file()]
    if missing:
        checks.append(
            Check(
                "agent_api app_dir",
                False,
                f"the built app's {', '.join(missing)} not found under {folder or '(app_dir unset)'}: "
                "the sidebar cannot open",
                "build the helpdesk app (docs/agent-app.md) and set [agent_api] app_dir to the built app's folder",
            )
        )
    else:
        checks.append(Check("agent_api app_dir", True, f"the app's page and scripts in {folder}"))
    return checks


STEPS: list[Step] = [
    plugin_checks,
    placeholders,
    role_checks,
    system_checks,
    webhook_checks,
    agent_api_checks,
    setup_checks,
    store_checks,
]
"""The checks run once the configuration loaded, in order."""


def run_checks(path: Path, load_config: Callable[[], Config], load_plugins: Callable[[], Plugins]) -> list[Check]:
    """Every check, in order: the configuration (each problem a line), then ``STEPS``.

    When the configuration does not load, its problems and the placeholders left in the file are reported and
    nothing else can be checked.
    """
    try:
        config = load_config()
    except CxbridgeError as exc:
        checks = config_problems(exc)
        raw = raw_config(path)
        if raw is not None:
            checks.extend(placeholder_checks(raw))
        return checks
    count = len(config.systems)
    checks = [Check("config", True, f"{config.path} ({count} system{'s' if count != 1 else ''})")]
    plugins = load_plugins()
    plugins.connectors()  # the registration hooks run now, so a plugin that fails shows in plugin_checks
    plugins.webhook_verifiers()
    doctor = Doctor(config, plugins, Runtime(config, plugins))
    for step in STEPS:
        checks.extend(step(doctor))
    return checks


def exit_code(checks: list[Check]) -> int:
    """``EXIT_FAILED`` when any check failed, else ``EXIT_OK``."""
    return EXIT_FAILED if any(c.ok is False for c in checks) else EXIT_OK
