"""The Jira connector (Tracker role) for Jira Cloud (REST v3) and Jira Data Center (REST v2).

Every call is a documented Jira platform REST operation (``shared/specs/jira/jira-cloud-platform-v3...json``;
Data Center has the same operations under ``/rest/api/2`` with wiki-markup strings instead of ADF):

- ``GET /rest/api/{v}/myself`` (getCurrentUser) for ``check()``;
- ``POST /rest/api/{v}/issue`` (createIssue) with ``fields`` and ``properties`` in one call;
- ``GET /rest/api/{v}/issue/{key}`` (getIssue) with an explicit ``fields`` list;
- ``PUT /rest/api/{v}/issue/{key}`` (editIssue); ``GET``/``POST .../transitions`` (getTransitions,
  doTransition); ``POST .../comment`` (addComment), ``PUT .../comment/{id}`` (updateComment);
  ``POST .../remotelink`` (createOrUpdateRemoteIssueLink); ``PUT``/``GET .../properties/{key}``
  (setIssueProperty, getIssueProperty);
- search: Cloud ``POST /rest/api/3/search/jql`` (nextPageToken / isLast; the old ``/search`` is removed on
  Cloud), Data Center ``GET /rest/api/2/search`` (startAt / maxResults / total).

Rich text: Markdown becomes ADF nodes on Cloud (``adf.py``) and escaped wiki markup on Data Center
(``wiki.py``). Errors: Jira's ``ErrorCollection`` (``errorMessages`` + ``errors``) becomes one line.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import requests
import requests.auth
from urllib3 import encode_multipart_formdata

from cxbridge.sdk import (
    Attachment,
    BadReference,
    BasicAuth,
    BearerAuth,
    Comment,
    ConfigError,
    ConfigKey,
    ConfigUpdate,
    Event,
    Finding,
    Issue,
    IssueSpec,
    ManagedBlock,
    Needs,
    Page,
    Person,
    PlanItem,
    Ref,
    Secret,
    SetupContext,
    Signal,
    SystemConfig,
    TicketLink,
    Tracker,
    Triggers,
    VendorError,
    VersionReleased,
    check_base_url,
    json_object,
    parse_datetime,
)

from . import signals
from .adf import clean_text, markdown_to_adf
from .blocks import replace_adf, replace_wiki
from .setup import JiraSetup
from .wiki import markdown_to_wiki

if TYPE_CHECKING:
    from cxbridge.sdk import HttpClient

META_PAGE = 50
"""Fields per createmeta page (Jira's default page)."""
MAX_META_PAGES = 100

log = logging.getLogger(__name__)

CLOUD = "cloud"
DATACENTER = "datacenter"

ISSUE_FIELDS = ("summary", "status", "resolution", "priority", "labels", "fixVersions", "updated", "assignee")
"""The fields ``get_issue`` and the searches ask for (search/jql returns only ``id`` unless told)."""

SUMMARY_MAX = 255
"""Jira's limit on the summary field (characters)."""
GLOBAL_ID_MAX = 255
"""The spec's limit on a remote link's ``globalId``."""
PROPERTY_MAX = 32768
"""The spec's limit on an entity property value (bytes of JSON)."""
SEARCH_PAGE_SIZE = 100
MAX_SEARCH_PAGES = 100
"""A guard against a pagination loop: 10,000 issues under one marker label is never legitimate."""
CHANGED_OVERLAP = 60
"""Seconds a changed-issues scan reaches back before its mark: JQL dates have minute precision."""
INDEX_LAG = 300
"""Seconds an empty scan stays behind now: search reads an index that may lag behind writes."""
WIDEST_UTC_OFFSET = 14 * 3600
"""When the user's time zone is unknown, JQL dates are shifted back by the widest offset (UTC+14)."""

REMOTE_LINK_APPLICATION = {"type": "io.cxbridge", "name": "cxbridge"}
"""Default ``application`` of the remote links cxbridge writes.

Jira groups remote links by application name; the type is a namespaced identifier of the linking app. The
link targets tickets of whichever helpdesk is configured, so the default names cxbridge itself; callers pass
``application_name`` (e.g. ``"Zendesk"``) to show the helpdesk instead.
"""
REMOTE_LINK_RELATIONSHIP = "customer ticket"

_WHITESPACE = re.compile(r"\s+")


class JiraConnector(Tracker):
    """Creates and reads Jira issues, links them to tickets, comments and transitions them (Cloud and DC)."""

    system: ClassVar[str] = "jira"
    cloud_domains: ClassVar[tuple[str, ...]] = (".atlassian.net", "api.atlassian.com")
    primary_roles: ClassVar[frozenset[str]] = frozenset({"tracker"})
    template_aliases: ClassVar[Mapping[str, str]] = {
        "issue_summary.txt.j2": "jira_summary.txt.j2",
        "issue_description.md.j2": "jira_description.md.j2",
    }
    default_headers: ClassVar[Mapping[str, str]] = {"Accept": "application/json"}
    config_keys: ClassVar[Mapping[str, ConfigKey]] = {
        "deployment": ConfigKey(
            str,
            default=CLOUD,
            choices=(CLOUD, DATACENTER),
            help="cloud (REST v3, ADF, *.atlassian.net) or datacenter (REST v2, wiki markup, your own host)",
        ),
        "email": ConfigKey(str, help="Cloud: the Atlassian account email the API token belongs to"),
        "api_token": ConfigKey(Secret, help="Cloud: an Atlassian API token (with email)"),
        "personal_access_token": ConfigKey(Secret, help="Data Center: a personal access token"),
        "project": ConfigKey(str, required=True, help="key of the project escalations create issues in"),
        "issue_type": ConfigKey(str, default="Bug", help="issue type name for escalations"),
        "duplicate_resolutions": ConfigKey(
            list, default=["Duplicate"], help="resolution names that mean the issue duplicates another"
        ),
        "priorities": ConfigKey(
            dict, default={}, help="cxbridge priority name -> Jira priority name (unlisted names are sent as-is)"
        ),
        "internal_visibility": ConfigKey(
            str,
            default="",
            help='comments cxbridge relays from support are restricted to this role or group ("role:Developers", '
            '"group:jira-software-users"); empty: no restriction',
        ),
        "service_desk": ConfigKey(
            bool,
            default=False,
            help="a Jira Service Management project: relayed comments are internal (sd.public.comment property)",
        ),
        "site_url": ConfigKey(
            str,
            help="Cloud behind the api.atlassian.com gateway: https://<site>.atlassian.net, for browse links",
        ),
    }

    def __init__(self, config: SystemConfig, http: HttpClient) -> None:
        super().__init__(config, http)
        self.deployment = self.deployment_of(config)
        self.api = "/rest/api/3" if self.deployment == CLOUD else "/rest/api/2"
        self.browse_base = self._browse_base(config, http.base_url)
        self._wanted: tuple[str, ...] = ()
        self._myself_body: dict[str, Any] | None = None
        self._createmeta: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._users: dict[str, dict[str, str] | None] = {}

    # -- configuration -----------------------------------------------------------------------------------
    @classmethod
    def allows_any_https_host(cls, config: SystemConfig) -> bool:
        """Data Center runs on the admin's own https host; Cloud only on Atlassian's domains."""
        return cls.deployment_of(config) == DATACENTER

    @staticmethod
    def deployment_of(config: SystemConfig) -> str:
        """``cloud`` or ``datacenter`` from the config (``ConfigError`` for anything else)."""
        value = config.get("deployment", CLOUD) or CLOUD
        if value not in (CLOUD, DATACENTER):
            raise ConfigError(f"systems.{config.name}.deployment: expected cloud or datacenter, got {value!r}")
        return str(value)

    @classmethod
    def make_auth(cls, config: SystemConfig) -> requests.auth.AuthBase:
        """Cloud: Basic ``email:api_token``; Data Center: ``Authorization: Bearer <personal access token>``."""
        where = f"systems.{config.name}"
        if cls.deployment_of(config) == DATACENTER:
            pat = config.get("personal_access_token")
            if not isinstance(pat, Secret) or not pat:
                raise ConfigError(
                    f"{where}: missing key 'personal_access_token' (a secret, {{ env = \"NAME\" }}): "
                    "Jira Data Center authenticates with a personal access token"
                )
            return BearerAuth(pat)
        token = config.get("api_token")
        if not isinstance(token, Secret) or not token:
            raise ConfigError(
                f"{where}: missing key 'api_token' (a secret, {{ env = \"NAME\" }}): "
                "Jira Cloud authenticates with the account email and an API token"
            )
        email = config.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise ConfigError(f"{where}: missing key 'email': the Atlassian account email the API token belongs to")
        return BasicAuth(email, token)

    @staticmethod
    def _browse_base(config: SystemConfig, base_url: str) -> str:
        site = config.get("site_url")
        if site:
            if not isinstance(site, str):
                raise ConfigError(f"systems.{config.name}.site_url: expected a string")
            try:
                return check_base_url(config.name, site, sandbox=config.sandbox, cloud_domains=(".atlassian.net",))
            except ConfigError as exc:  # the check names base_url; this value is site_url
                where = f"systems.{config.name}"
                raise ConfigError(str(exc).replace(f"{where}.base_url", f"{where}.site_url")) from None
        return base_url

    @property
    def default_project(self) -> str | None:
        """The project key escalations create issues in."""
        value = self.config.get("project")
        return value if isinstance(value, str) and value else None

    @property
    def default_issue_type(self) -> str:
        """The issue type name escalations create."""
        value = self.config.get("issue_type")
        return value if isinstance(value, str) and value else "Bug"

    def jira_priority(self, name: str) -> str:
        """The Jira priority name for a cxbridge priority name (the ``priorities`` table, else unchanged)."""
        table = self.config.get("priorities") or {}
        mapped = table.get(name) if isinstance(table, dict) else None
        return mapped if isinstance(mapped, str) and mapped else name

    # -- errors ------------------------------------------------------------------------------------------
    @staticmethod
    def error_message(response: requests.Response) -> str | None:
        """Jira's ``ErrorCollection`` as one line: ``errorMessages`` then ``field: message`` for ``errors``."""
        body = json_object(response)
        if body is None:
            return None
        parts: list[str] = []
        messages = body.get("errorMessages")
        if isinstance(messages, list):
            parts.extend(m.strip() for m in messages if isinstance(m, str) and m.strip())
        errors = body.get("errors")
        if isinstance(errors, dict):
            for field_name, message in errors.items():
                if isinstance(message, str) and message.strip():
                    parts.append(f"{field_name}: {message.strip()}")
        if not parts and isinstance(body.get("message"), str) and body["message"].strip():
            parts.append(body["message"].strip())  # some gateway errors use {"message": ...}
        if not parts:
            return None
        return " ".join("; ".join(parts).split())

    # -- provisioning ----------------------------------------------------------------------------------------
    def plan_setup(self, setup: SetupContext) -> list[PlanItem]:
        """As the tracker: the impact custom fields, their place on the create screen, the admin webhook."""
        return JiraSetup(self).plan(setup)

    def apply_setup(self, item: PlanItem, setup: SetupContext) -> list[ConfigUpdate]:
        """Create a field (its id goes to ``[impact.fields]``) or the webhook (its new secret to a file)."""
        return JiraSetup(self).apply(item, setup)

    # -- rich text ---------------------------------------------------------------------------------------
    def rich_text(self, markdown: str) -> Any:
        """Markdown as Jira takes rich text: an ADF document on Cloud, a wiki-markup string on Data Center."""
        return markdown_to_adf(markdown) if self.deployment == CLOUD else markdown_to_wiki(markdown)

    # -- Tracker ------------------------------------------------------------------------------------------
    def check(self) -> str:
        """``GET /myself``: say who the credentials belong to."""
        body = self._json(self.http.get(f"{self.api}/myself", op="myself"))
        name = body.get("displayName") or body.get("name") or body.get("accountId") or "unknown user"
        return f"authenticated as {name}"

    def diagnose(self, needs: Needs) -> list[Finding]:
        """The project and issue type exist, every required create field is filled, the impact fields exist with
        the right type and are on the create and edit screens (``diagnose.py`` has the calls)."""
        from .diagnose import JiraDiagnosis  # it imports this module

        return JiraDiagnosis(self, needs).run()

    def create_issue(self, spec: IssueSpec) -> Issue:
        """One ``POST /issue`` with fields, labels, priority and entity properties; no read-back (call budget).

        ``spec.fields`` (custom fields) are sent as given, under the standard fields (which they cannot
        replace); on Cloud a textarea custom field needs an ADF value (``rich_text``). A read timeout or 5xx
        raises ``AmbiguousOutcome`` and is never retried here: the caller searches by its label.
        """
        summary = self.clean_summary(spec.summary)
        labels = [self.clean_label(label) for label in spec.labels]
        labels = [label for n, label in enumerate(labels) if label and label not in labels[:n]]
        fields: dict[str, Any] = dict(spec.fields)
        fields.update(
            {
                "project": {"key": spec.project},
                "issuetype": {"name": spec.issue_type},
                "summary": summary,
                "description": self.rich_text(spec.description),
                "labels": labels,
            }
        )
        if spec.priority:
            fields["priority"] = {"name": self.jira_priority(spec.priority)}
        body: dict[str, Any] = {"fields": fields}
        if spec.properties:
            body["properties"] = [
                {"key": key, "value": self._property_value(key, value)} for key, value in spec.properties.items()
            ]
        created = self._json(self.http.post(f"{self.api}/issue", op="issue.create", json=body, creates=True))
        issue_id, key = created.get("id"), created.get("key")
        if not issue_id or not isinstance(key, str) or not key:
            raise VendorError(self.name, f"{self.name}: create issue answered without an id and key")
        return Issue(
            ref=self.issue_ref(str(issue_id)),
            key=key,
            url=self.issue_url(key),
            summary=summary,
            labels=labels,
        )

    # -- the create screen: createmeta, field mapping ------------------------------------------------------
    def create_fields(self, project: str, issue_type: str) -> dict[str, dict[str, Any]]:
        """The fields of the create screen for a project and issue type, by field id (``FieldCreateMetadata``:
        ``required``, ``schema``, ``name``, ``hasDefaultValue``, ``allowedValues``), read once per connector:
        ``GET /issue/createmeta/{project}/issuetypes`` for the type's id, then
        ``GET /issue/createmeta/{project}/issuetypes/{id}`` (``startAt``/``maxResults`` pages). ``ConfigError``
        when the project does not offer the type."""
        cache_key = (project.upper(), issue_type.lower())
        if cache_key in self._createmeta:
            return self._createmeta[cache_key]
        base = f"{self.api}/issue/createmeta/{self._seg(project)}/issuetypes"
        types = self._pages(base, "createmeta.issuetypes", ("issueTypes", "values"))
        found = next((t for t in types if str(t.get("name", "")).lower() == issue_type.lower()), None)
        if found is None or found.get("id") is None:
            names = ", ".join(str(t.get("name")) for t in types) or "none"
            raise ConfigError(f"{self.name}: project {project} has no issue type {issue_type!r} (it has: {names})")
        fields = self.create_meta_fields(project, str(found["id"]))
        meta = {str(f.get("fieldId") or f.get("key")): f for f in fields if f.get("fieldId") or f.get("key")}
        self._createmeta[cache_key] = meta
        return meta

    def create_meta_fields(self, project: str, type_id: str) -> list[dict[str, Any]]:
        """Every field of the create screen of a project and issue type id (``fields`` on Cloud, ``values`` on Data
        Center), page by page (``GET /issue/createmeta/{project}/issuetypes/{id}``); not cached."""
        path = f"{self.api}/issue/createmeta/{self._seg(project)}/issuetypes/{self._seg(type_id)}"
        return self._pages(path, "issue.createmeta", ("fields", "results", "values"))

    def _pages(self, path: str, op: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start = 0
        for _ in range(MAX_META_PAGES):
            page = self._json(self.http.get(path, op=op, params={"startAt": start, "maxResults": META_PAGE}))
            chunk: list[Any] = next((page[k] for k in keys if isinstance(page.get(k), list)), [])
            items += [item for item in chunk if isinstance(item, dict)]
            start += len(chunk)
            total = page.get("total")
            if not chunk or page.get("isLast") is True or (isinstance(total, int) and start >= total):
                return items
        raise VendorError(self.name, f"{self.name}: {op} did not end in {MAX_META_PAGES} pages")

    OWN_CREATE_FIELDS = ("project", "issuetype", "summary", "description", "labels")
    """The fields ``create_issue`` always sends."""

    def unfilled_required_fields(self, project: str, issue_type: str, provided: Iterable[str]) -> list[str]:
        """Required fields of the create screen (without a default) that neither the create nor ``provided``
        fill: ``Component/s (components)``, one line each."""
        have = {*self.OWN_CREATE_FIELDS, *provided}
        return [
            f"{meta.get('name') or fid} ({fid})"
            for fid, meta in self.create_fields(project, issue_type).items()
            if meta.get("required") and not meta.get("hasDefaultValue") and fid not in have
        ]

    def prepare_create(self, spec: IssueSpec) -> list[str]:
        """``spec.mapped`` in Jira's form by each field's createmeta schema (components and versions by name,
        options by value, users by email through ``GET /user/search``, numbers, dates, text; ``labels`` join the
        spec's labels), and what the create would be refused for: a mapped field not on the create screen, a
        value not allowed, an unknown user, a required field not filled."""
        meta = self.create_fields(spec.project, spec.issue_type)
        problems: list[str] = []
        for fid, value in spec.mapped.items():
            field = meta.get(fid)
            if field is None:
                problems.append(f"{fid} is not on the create screen of {spec.project} {spec.issue_type}")
                continue
            if fid == "labels":
                spec.labels += [str(v) for v in (value if isinstance(value, list) else [value])]
                continue
            converted, problem = self._field_value(field, value)
            if problem:
                problems.append(f"{field.get('name') or fid} ({fid}): {problem}")
            else:
                spec.fields[fid] = converted
        provided = [*spec.fields, *(["priority"] if spec.priority else [])]
        problems += [
            f"{line} is required and not filled"
            for line in self.unfilled_required_fields(spec.project, spec.issue_type, provided)
        ]
        return problems

    def _field_value(self, field: dict[str, Any], value: Any) -> tuple[Any, str | None]:
        schema = field.get("schema") or {}
        kind, items = schema.get("type"), schema.get("items")
        allowed = field.get("allowedValues")
        if kind == "array":
            values = value if isinstance(value, list) else [value]
            out = []
            for one in values:
                converted, problem = self._single(str(items), one, allowed)
                if problem:
                    return None, problem
                out.append(converted)
            return out, None
        return self._single(str(kind), value[0] if isinstance(value, list) and len(value) == 1 else value, allowed)

    def _single(self, kind: str, value: Any, allowed: Any) -> tuple[Any, str | None]:
        if isinstance(value, list):
            return None, "takes one value, not a list"
        text = str(value)
        if kind in ("component", "version", "option", "priority"):
            attr = "value" if kind == "option" else "name"
            if isinstance(allowed, list) and not any(str(a.get(attr)) == text for a in allowed if isinstance(a, dict)):
                choices = ", ".join(str(a.get(attr)) for a in allowed if isinstance(a, dict)) or "none"
                return None, f"{text!r} is not allowed (allowed: {choices})"
            return {attr: text}, None
        if kind == "number":
            try:
                return float(text), None
            except ValueError:
                return None, f"{text!r} is not a number"
        if kind == "date":
            return (text[:10], None) if len(text) >= 10 and text[4] == "-" else (None, f"{text!r} is not a date")
        if kind == "user":
            user = self.user_by_email(text)
            return (user, None) if user is not None else (None, f"no {self.name} user has the email {text!r}")
        if kind in ("string", "any"):
            return text, None
        return None, f"fields of type {kind!r} cannot be mapped"

    def user_by_email(self, email: str) -> dict[str, str] | None:
        """``{"accountId"}`` (Cloud) or ``{"name"}`` (Data Center) of the user with this email, by
        ``GET /user/search`` (``query`` on Cloud, ``username`` on Data Center), once per email and connector."""
        wanted = email.strip().lower()
        if wanted in self._users:
            return self._users[wanted]
        param = "query" if self.deployment == CLOUD else "username"
        found = self._json_list(self.http.get(f"{self.api}/user/search", op="user.search", params={param: wanted}))
        ref: dict[str, str] | None = None
        for user in found:
            if str(user.get("emailAddress") or "").lower() != wanted:
                continue
            if self.deployment == CLOUD and user.get("accountId"):
                ref = {"accountId": str(user["accountId"])}
            elif user.get("name"):
                ref = {"name": str(user["name"])}
            break
        self._users[wanted] = ref
        return ref

    def duplicate_of(self, issue_key: str) -> str | None:
        """``GET /issue/{key}?fields=resolution,issuelinks``: when the resolution is one of
        ``duplicate_resolutions`` (default ``Duplicate``), the issue its ``Duplicate`` link says it duplicates (the
        link holding ``outwardIssue``: this issue "duplicates" that one); else None."""
        body = self._json(
            self.http.get(
                self._issue_path(issue_key), op="issue.duplicate_of", params={"fields": "resolution,issuelinks"}
            )
        )
        fields = body.get("fields") or {}
        resolution = (fields.get("resolution") or {}).get("name")
        wanted = {str(r).lower() for r in (self.config.get("duplicate_resolutions") or ["Duplicate"])}
        if not isinstance(resolution, str) or resolution.lower() not in wanted:
            return None
        for link in fields.get("issuelinks") or []:
            kind = link.get("type") or {} if isinstance(link, dict) else {}
            other = link.get("outwardIssue") if isinstance(link, dict) else None
            if (kind.get("name") == "Duplicate" or kind.get("outward") == "duplicates") and isinstance(other, dict):
                key = other.get("key")
                if isinstance(key, str) and key:
                    return key
        return None

    def get_issue(self, key_or_id: str) -> Issue:
        """The issue with its status (name and category key), priority, assignee, labels and fix versions."""
        wanted = ",".join(dict.fromkeys((*ISSUE_FIELDS, *self._wanted)))
        response = self.http.get(f"{self.api}/issue/{self._seg(key_or_id)}", op="issue.get", params={"fields": wanted})
        return self._issue(self._json(response))

    def want_fields(self, field_ids: Iterable[str]) -> None:
        """Ask ``get_issue`` for these fields too (e.g. ``description`` and the impact custom fields)."""
        self._wanted = tuple(dict.fromkeys((*self._wanted, *(str(f) for f in field_ids if f))))

    def search_by_label(self, label: str) -> list[Issue]:
        """Every issue carrying the label (JQL ``labels = "<label>"``, oldest first), following pagination."""
        jql = f"labels = {jql_string(self.clean_label(label))} ORDER BY created ASC"
        return list(self.search(jql))

    def search(self, jql: str) -> Iterator[Issue]:
        """Issues matching a bounded JQL query, page by page (Cloud ``search/jql``; DC ``search``)."""
        for raws, _ in self.search_pages(jql):
            for raw in raws:
                yield self._issue(raw)

    def search_pages(
        self, jql: str, *, fields: tuple[str, ...] = ISSUE_FIELDS, max_pages: int = MAX_SEARCH_PAGES
    ) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        """The raw ``IssueBean`` pages of a bounded JQL query with ``fields``, each with whether it was the last.

        Stops after ``max_pages`` pages (a guard against a pagination loop) with the last flag False.
        """
        if self.deployment == CLOUD:
            yield from self._search_cloud(jql, fields, max_pages)
        else:
            yield from self._search_dc(jql, fields, max_pages)

    def _search_cloud(
        self, jql: str, fields: tuple[str, ...], max_pages: int
    ) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        token: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            body: dict[str, Any] = {"jql": jql, "fields": list(fields), "maxResults": SEARCH_PAGE_SIZE}
            if token:
                body["nextPageToken"] = token
            page = self._json(self.http.post(f"{self.api}/search/jql", op="issue.search", json=body))
            raws = [raw for raw in page.get("issues") or [] if isinstance(raw, dict)]
            token = page.get("nextPageToken")
            last = page.get("isLast") is True or not isinstance(token, str) or not token or token in seen
            yield raws, last
            if last:
                return
            assert isinstance(token, str)
            seen.add(token)
        log.warning("%s: search stopped after %d pages: %s", self.name, max_pages, jql)

    def _search_dc(
        self, jql: str, fields: tuple[str, ...], max_pages: int
    ) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        start = 0
        for _ in range(max_pages):
            params = {
                "jql": jql,
                "startAt": start,
                "maxResults": SEARCH_PAGE_SIZE,
                "fields": ",".join(fields),
            }
            page = self._json(self.http.get(f"{self.api}/search", op="issue.search", params=params))
            raws = [raw for raw in page.get("issues") or [] if isinstance(raw, dict)]
            start += len(page.get("issues") or [])
            total = page.get("total")
            last = not raws or (isinstance(total, int) and start >= total)
            yield raws, last
            if last:
                return
        log.warning("%s: search stopped after %d pages: %s", self.name, max_pages, jql)

    def changed_issues(
        self, cursor: dict[str, Any] | None, *, since: float, now: float | None = None
    ) -> Iterator[Page]:
        """Issues updated since ``since`` (epoch seconds), or since a saved ``cursor``, one Page per search page.

        JQL ``updated >= "yyyy/MM/dd HH:mm" ORDER BY updated ASC`` through ``search_pages`` (Cloud
        ``search/jql`` + ``nextPageToken``, Data Center ``search`` + ``startAt``), asking for the fields the
        router reads (status with its category, updated, fixVersions, labels...). JQL dates are minutes in the
        searching user's time zone, so the mark is converted to the zone ``GET /myself`` names (read once per
        connector) and the scan reaches back ``CHANGED_OVERLAP`` seconds; repeats are deduplicated downstream.
        Each Page's cursor is ``{"updated": <epoch of the newest issue seen>}``; the last page's is
        ``INDEX_LAG`` seconds ago (or the scan's start, if later), so the next scan re-reads the minutes the
        search index may not hold yet. Each Issue carries its raw
        ``fields``. A scan longer than the page guard goes on with a new query from its mark.
        """
        saved = (cursor or {}).get("updated")
        mark = float(saved) if isinstance(saved, int | float) and not isinstance(saved, bool) else float(since)
        clock = time.time() if now is None else now
        zone = self.user_time_zone()
        first = mark
        while True:
            literal = _jql_minute(mark - CHANGED_OVERLAP, zone)
            jql = f"updated >= {jql_string(literal)} ORDER BY updated ASC"
            started = mark
            finished = False
            for raws, last in self.search_pages(jql):
                issues: list[Issue] = []
                for raw in raws:
                    issue = self._issue(raw)
                    if not issue.fields and isinstance(raw.get("fields"), dict):
                        issue.fields = raw["fields"]
                    if issue.updated_at is not None:
                        mark = max(mark, issue.updated_at.timestamp())
                    issues.append(issue)
                if last:
                    # the next scan re-reads the last few minutes, which the search index may not hold yet
                    mark = max(first, clock - INDEX_LAG)
                yield Page(issues, {"updated": mark}, last)
                finished = last
            if finished:
                return
            if mark <= started:
                log.warning("%s: changed issues: no progress past %s; stopping this scan", self.name, literal)
                return

    def user_time_zone(self) -> Any:
        """The ``tzinfo`` JQL dates are read in: the time zone of the user we search as (``GET /myself``).

        None when Jira names none or one Python does not know; callers then shift dates by the widest offset.
        """
        if not hasattr(self, "_time_zone"):
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            name = self._myself().get("timeZone")
            zone: Any = None
            if isinstance(name, str) and name:
                try:
                    zone = ZoneInfo(name)
                except (ZoneInfoNotFoundError, ValueError):
                    log.warning("%s: unknown user time zone %r; JQL dates shifted by 14 hours", self.name, name)
            self._time_zone = zone
        return self._time_zone

    def _myself(self) -> dict[str, Any]:
        """``GET /myself`` once per connector: the user the credentials act as (an error is not kept)."""
        if self._myself_body is None:
            self._myself_body = self._json(self.http.get(f"{self.api}/myself", op="myself"))
        return self._myself_body

    def upsert_remote_link(
        self,
        issue_key: str,
        *,
        global_id: str,
        url: str,
        title: str,
        summary: str | None = None,
        resolved: bool = False,
        application_name: str | None = None,
    ) -> str:
        """Create or update (same ``global_id``) the link from the issue to a ticket; returns the link id.

        Jira answers 201 when it created the link and 200 when it updated the one with this ``globalId``.
        """
        if not global_id or len(global_id) > GLOBAL_ID_MAX:
            raise ValueError(f"a remote link globalId must be 1 to {GLOBAL_ID_MAX} characters")
        obj: dict[str, Any] = {
            "url": url,
            "title": self._one_line(title, SUMMARY_MAX) or url,
            "status": {"resolved": bool(resolved)},
        }
        if summary:
            obj["summary"] = self._one_line(summary, SUMMARY_MAX)
        application = dict(REMOTE_LINK_APPLICATION)
        if application_name:
            application["name"] = application_name
        body = {
            "globalId": global_id,
            "application": application,
            "relationship": REMOTE_LINK_RELATIONSHIP,
            "object": obj,
        }
        response = self.http.post(
            f"{self._issue_path(issue_key)}/remotelink", op="issue.remotelink", json=body, ok=(200, 201)
        )
        link_id = self._json(response).get("id")
        if link_id is None:
            raise VendorError(self.name, f"{self.name}: remote link answered without an id")
        return str(link_id)

    def add_comment(self, issue_key: str, body: str, *, internal: bool = False) -> str:
        """A comment (Markdown -> ADF / wiki) on the issue; returns its id. Not retried on an unknown outcome.

        ``internal``: restricted by ``internal_visibility`` (the comment's ``visibility``) and, with
        ``service_desk``, marked internal for Jira Service Management (the ``sd.public.comment`` property).
        """
        response = self.http.post(
            f"{self._issue_path(issue_key)}/comment",
            op="issue.comment.add",
            json=self._comment_body(body, internal),
            creates=True,
        )
        return self._id(response, "comment")

    def update_comment(self, issue_key: str, comment_id: str, body: str, *, internal: bool = False) -> None:
        """Replace a comment's body (Markdown -> ADF / wiki), keeping it internal when it was."""
        self.http.put(
            f"{self._issue_path(issue_key)}/comment/{self._seg(comment_id)}",
            op="issue.comment.update",
            json=self._comment_body(body, internal),
        )

    def _comment_body(self, body: str, internal: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"body": self.rich_text(body)}
        if not internal:
            return out
        kind, _, value = str(self.config.get("internal_visibility") or "").partition(":")
        if kind in ("role", "group") and value:
            out["visibility"] = {"type": kind, "value": value}
        if self.config.get("service_desk"):
            out["properties"] = [{"key": "sd.public.comment", "value": {"internal": True}}]
        return out

    def comments(self, issue_key: str) -> Iterator[dict[str, Any]]:
        """The issue's comments (raw ``Comment`` beans), newest first, page by page (``startAt`` / ``total``)."""
        start = 0
        for _ in range(MAX_SEARCH_PAGES):
            params = {"startAt": start, "maxResults": SEARCH_PAGE_SIZE, "orderBy": "-created"}
            page = self._json(
                self.http.get(f"{self._issue_path(issue_key)}/comment", op="issue.comments", params=params)
            )
            raws = [c for c in page.get("comments") or [] if isinstance(c, dict)]
            yield from raws
            start += len(raws)
            total = page.get("total")
            if not raws or (isinstance(total, int) and start >= total):
                return

    def add_attachment(self, issue_key: str, filename: str, content: bytes, content_type: str) -> Attachment:
        """``POST .../attachments`` (addAttachment): multipart/form-data, the part named ``file``, with the header
        ``X-Atlassian-Token: no-check`` Jira requires. Not retried on an unknown outcome."""
        body, multipart_type = encode_multipart_formdata({"file": (filename, content, content_type)})
        response = self.http.post(
            f"{self._issue_path(issue_key)}/attachments",
            op="issue.attachment.add",
            data=body,
            headers={"X-Atlassian-Token": "no-check", "Content-Type": multipart_type},
            creates=True,
        )
        try:
            added = response.json()
        except ValueError:
            added = None
        first = added[0] if isinstance(added, list) and added and isinstance(added[0], dict) else None
        if first is None:
            raise VendorError(self.name, f"{self.name}: the upload of {filename} answered without the attachment")
        return self._attachment(first)

    def list_attachments(self, issue_key: str) -> list[Attachment]:
        """The issue's ``attachment`` field (``GET /issue/{key}?fields=attachment``)."""
        response = self.http.get(self._issue_path(issue_key), op="issue.get", params={"fields": "attachment"})
        fields = self._json(response).get("fields")
        raws = fields.get("attachment") if isinstance(fields, dict) else None
        return [self._attachment(raw) for raw in raws or [] if isinstance(raw, dict)]

    def _attachment(self, raw: dict[str, Any]) -> Attachment:
        size = raw.get("size")
        return Attachment(
            ref=Ref(self.name, "attachment", str(raw.get("id") or "")),
            filename=str(raw.get("filename") or ""),
            content_type=str(raw.get("mimeType") or ""),
            size=size if isinstance(size, int) and not isinstance(size, bool) else 0,
            url=str(raw.get("content") or ""),
        )

    def list_comments(self, issue_key: str) -> list[Comment]:
        """Every comment of the issue, oldest first, as plain text with its author, visibility and times."""
        out: list[Comment] = []
        for raw in self.comments(issue_key):
            author = raw.get("author")
            ident = signals.user_id(author)
            visibility: dict[str, Any] = raw["visibility"] if isinstance(raw.get("visibility"), dict) else {}
            kind, value = _str(visibility.get("type")), _str(visibility.get("value"))
            out.append(
                Comment(
                    ref=Ref(self.name, "comment", str(raw.get("id") or "")),
                    body=signals.plain_text(raw.get("body")).strip(),
                    public=not (kind and value),
                    author=Person(
                        name=signals.user_name(author),
                        email=_str((author or {}).get("emailAddress")) if isinstance(author, dict) else None,
                        ref=Ref(self.name, "user", ident) if ident else None,
                    ),
                    created_at=parse_datetime(raw.get("created")),
                    updated_at=parse_datetime(raw.get("updated")),
                    visibility=f"{kind}:{value}" if kind and value else None,
                )
            )
        out.reverse()
        return out

    def released_versions(self, *, since: float, issue_keys: Iterable[str] = ()) -> list[VersionReleased]:
        """``GET /project/{key}/versions`` (getProjectVersions) for the default project and those of
        ``issue_keys``: the versions released with a ``releaseDate`` on or after the day of ``since`` (UTC, a day
        earlier to cover every time zone), or released without one."""
        projects = dict.fromkeys(
            [p for p in (self.default_project, *(k.rsplit("-", 1)[0] for k in issue_keys if "-" in k)) if p]
        )
        first_day = (datetime.fromtimestamp(max(0.0, since), UTC) - timedelta(days=1)).date().isoformat()
        found: list[VersionReleased] = []
        for project in projects:
            response = self.http.get(f"{self.api}/project/{self._seg(project)}/versions", op="project.versions")
            try:
                versions = response.json()
            except ValueError:
                raise VendorError(self.name, f"{self.name}: the versions of {project} are not JSON") from None
            for raw in versions if isinstance(versions, list) else []:
                if not isinstance(raw, dict) or raw.get("released") is not True or raw.get("id") is None:
                    continue
                day = _str(raw.get("releaseDate"))
                if day is not None and day < first_day:
                    continue
                found.append(
                    VersionReleased(
                        tracker=self.name, version_id=str(raw["id"]), name=_str(raw.get("name")), release_date=day
                    )
                )
        return found

    def issue_url(self, key: str) -> str:
        """``{site}/browse/KEY``."""
        return f"{self.browse_base}/browse/{quote(key, safe='')}"

    def issue_ref(self, issue_id: str) -> Ref:
        """The reference of an issue of this system (by id: keys change when an issue moves project)."""
        return Ref(self.name, "issue", str(issue_id))

    # -- used by sync back and impact ------------------------------------------------------------------------
    def integration_user_id(self) -> str | None:
        """Who the credentials act as, as webhooks name the actor: ``accountId`` (Cloud), ``name`` (DC)."""
        body = self._myself()
        for key in ("accountId", "name", "key"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        return None

    def issues_with_fix_version(self, version_id: str) -> list[Issue]:
        """Every issue whose ``fixVersions`` holds the version (JQL ``fixVersion = <id>``, oldest first)."""
        if not str(version_id).isdigit():
            raise BadReference(f"not a Jira version id: {version_id!r}")
        return list(self.search(f"fixVersion = {version_id} ORDER BY created ASC"))

    def transition_by_name(self, issue_key: str, name: str) -> str:
        """Move the issue through the transition called ``name`` (or leading to the status ``name``).

        Reads the available transitions first (Jira transitions by id); returns the transition id used.
        Raises ``VendorError`` naming the available transitions when none matches.
        """
        path = f"{self._issue_path(issue_key)}/transitions"
        available = self._json(self.http.get(path, op="issue.transitions")).get("transitions") or []
        wanted = name.casefold()
        chosen = next((t for t in available if str(t.get("name", "")).casefold() == wanted), None)
        if chosen is None:
            chosen = next((t for t in available if str((t.get("to") or {}).get("name", "")).casefold() == wanted), None)
        if chosen is None or not chosen.get("id"):
            names = ", ".join(sorted(str(t.get("name")) for t in available if t.get("name"))) or "none"
            raise VendorError(
                self.name, f"{self.name}: no transition {name!r} available for {issue_key} (available: {names})"
            )
        self.http.post(path, op="issue.transition", json={"transition": {"id": str(chosen["id"])}})
        return str(chosen["id"])

    def reopen(self, issue_key: str) -> str:
        """Move a done issue back through the first transition whose target status is not in the done category.

        A transition named like "Reopen" is preferred, then one to an in-progress status, then one to a new one.
        Two calls: ``GET`` and ``POST /issue/{key}/transitions``; returns the target status's name.
        """
        path = f"{self._issue_path(issue_key)}/transitions"
        available = self._json(self.http.get(path, op="issue.transitions")).get("transitions") or []

        def category(t: dict[str, Any]) -> str:
            return str(((t.get("to") or {}).get("statusCategory") or {}).get("key", ""))

        def rank(t: dict[str, Any]) -> int:
            if "reopen" in str(t.get("name", "")).casefold():
                return 0
            return {"indeterminate": 1, "new": 2}.get(category(t), 9)

        candidates = sorted((t for t in available if t.get("id") and category(t) in ("new", "indeterminate")), key=rank)
        if not candidates:
            raise VendorError(self.name, f"{self.name}: no transition reopens {issue_key} (it has none out of done)")
        chosen = candidates[0]
        self.http.post(path, op="issue.transition", json={"transition": {"id": str(chosen["id"])}})
        return str((chosen.get("to") or {}).get("name") or chosen.get("name"))

    def set_priority(self, issue_key: str, priority: str) -> bool:
        """Set the issue's priority by name (through the ``priorities`` table); False when it has it already.

        Two calls: ``GET /issue/{key}?fields=priority`` (compare before write), then ``PUT /issue/{key}``
        (editIssue, 204) with ``fields.priority.name``. Jira refuses a name its priority scheme does not hold (400).
        """
        wanted = self.jira_priority(priority)
        current = self._json(
            self.http.get(self._issue_path(issue_key), op="issue.get", params={"fields": "priority"})
        ).get("fields")
        held = (current or {}).get("priority") if isinstance(current, dict) else None
        if isinstance(held, dict) and str(held.get("name") or "").casefold() == wanted.casefold():
            self.unchanged("set_priority", issue_key)
            return False
        self.http.put(self._issue_path(issue_key), op="issue.priority", json={"fields": {"priority": {"name": wanted}}})
        return True

    def find_comment(self, issue_key: str, marker: str) -> str | None:
        """A comment holding ``marker``, newest first (``comments``: ``GET /issue/{key}/comment?orderBy=-created``,
        startAt paging, 100 a page; at most ``MAX_SEARCH_PAGES`` pages); None when none holds it."""
        for comment in self.comments(issue_key):
            body = comment.get("body")
            # wiki markup (Data Center) escapes punctuation with backslashes; ADF holds the text as written
            text = body.replace("\\", "") if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
            if marker in text:
                return str(comment.get("id"))
        return None

    def edit_fields(self, issue_key: str, fields: dict[str, Any]) -> None:
        """Set fields on the issue (``PUT /issue/{key}``, 204); a concurrent update raises ``Conflict``."""
        self.http.put(self._issue_path(issue_key), op="issue.edit", json={"fields": fields})

    def write_impact(
        self,
        issue_key: str,
        *,
        fields: dict[str, Any],
        description: Any = None,
        add_labels: Iterable[str] = (),
        remove_labels: Iterable[str] = (),
    ) -> None:
        """One ``PUT /issue/{key}`` (editIssue, 204): ``fields`` (the impact custom fields, and ``description`` in
        the deployment's form, ADF or wiki, when given) and ``update.labels`` add/remove operations, so labels
        someone else set in the meantime are kept. Watchers are not emailed for a rollup (``notifyUsers=false``;
        Jira ignores the flag when the account may not suppress notifications)."""
        body_fields = dict(fields)
        if description is not None:
            body_fields["description"] = description
        operations = [{"add": self.clean_label(label)} for label in add_labels]
        operations += [{"remove": self.clean_label(label)} for label in remove_labels]
        body: dict[str, Any] = {"fields": body_fields}
        if operations:
            body["update"] = {"labels": operations}
        self.http.put(self._issue_path(issue_key), op="issue.impact", params={"notifyUsers": "false"}, json=body)

    def replace_block(self, description: Any, block: ManagedBlock) -> tuple[Any, bool]:
        """The description with the managed block spliced in: ADF nodes on Cloud, wiki lines on Data Center."""
        if self.deployment == CLOUD:
            return replace_adf(description, block)
        return replace_wiki(description, block)

    def open_issues(self, refs: list[Ref]) -> dict[Ref, Issue]:
        """The issues among ``refs`` not in the done category: one JQL search per 100 ids,
        ``id in (...) AND statusCategory != Done``."""
        found: dict[Ref, Issue] = {}
        ids = [r.id for r in refs if r.id.isdigit()]
        for start in range(0, len(ids), 100):
            chunk = ", ".join(ids[start : start + 100])
            for issue in self.search(f"id in ({chunk}) AND statusCategory != Done ORDER BY id ASC"):
                found[issue.ref] = issue
        return found

    @staticmethod
    def remote_link_global_id(link: TicketLink) -> str:
        """The ``globalId`` of the remote link to a ticket: ``system=<helpdesk base URL>&id=<ticket id>``."""
        return f"system={link.origin}&id={link.ticket.id}"

    def link_ticket(self, issue_key: str, link: TicketLink) -> str:
        """A remote link from the issue to the ticket, keyed by ``remote_link_global_id`` (so a second post
        updates it), with ``object.status.resolved`` from ``link.resolved``; returns the link id."""
        return self.upsert_remote_link(
            issue_key,
            global_id=self.remote_link_global_id(link),
            url=link.url,
            title=link.title,
            summary=link.summary,
            resolved=link.resolved,
        )

    def unlink_ticket(self, issue_key: str, link: TicketLink) -> bool:
        """Delete the remote link to the ticket by its ``globalId``; False when the issue had none."""
        return self.delete_remote_link(issue_key, self.remote_link_global_id(link))

    def interpret(self, event: Event, triggers: Triggers) -> list[Signal]:
        """Issue updates, comments and released versions as neutral signals (``cxbridge_jira.signals``)."""
        return signals.interpret(self.name, event)

    def delete_remote_link(self, issue_key: str, global_id: str) -> bool:
        """``DELETE /issue/{key}/remotelink?globalId=`` (deleteRemoteIssueLinkByGlobalId, 204); False on 404
        (the issue has no link with that global id, e.g. deleted already)."""
        if not global_id or len(global_id) > GLOBAL_ID_MAX:
            raise ValueError(f"a remote link globalId must be 1 to {GLOBAL_ID_MAX} characters")
        response = self.http.delete(
            f"{self._issue_path(issue_key)}/remotelink",
            op="issue.remotelink.delete",
            params={"globalId": global_id},
            ok=(204, 404),
        )
        return response.status_code == 204

    def set_property(self, issue_key: str, prop: str, value: Any) -> bool:
        """Store a JSON value as an entity property of the issue; True when created, False when updated."""
        response = self.http.put(
            f"{self._issue_path(issue_key)}/properties/{self._seg(prop)}",
            op="issue.property.set",
            json=self._property_value(prop, value),
            ok=(200, 201),
        )
        return response.status_code == 201

    def get_property(self, issue_key: str, prop: str) -> Any:
        """An entity property's value, or None when the issue has no such property."""
        response = self.http.get(
            f"{self._issue_path(issue_key)}/properties/{self._seg(prop)}", op="issue.property.get", ok=(200, 404)
        )
        if response.status_code == 404:
            return None
        return self._json(response).get("value")

    # -- helpers ------------------------------------------------------------------------------------------
    @staticmethod
    def clean_summary(summary: str) -> str:
        """A summary Jira accepts: one line, no control characters, at most 255 characters."""
        return JiraConnector._one_line(summary, SUMMARY_MAX) or "(no summary)"

    @staticmethod
    def clean_label(label: str) -> str:
        """A label Jira accepts: no whitespace (Jira refuses labels with spaces), at most 255 characters."""
        return _WHITESPACE.sub("_", clean_text(label).strip())[:255]

    @staticmethod
    def _one_line(text: str, limit: int) -> str:
        flat = " ".join(clean_text(text or "").split())
        return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"

    def _property_value(self, key: str, value: Any) -> Any:
        encoded = json.dumps(value, separators=(",", ":"))
        if value is None or value == "" or len(encoded.encode("utf-8")) > PROPERTY_MAX:
            raise ValueError(f"the issue property {key!r} must be non-empty JSON of at most {PROPERTY_MAX} bytes")
        return value

    def _issue_path(self, key: str) -> str:
        return f"{self.api}/issue/{self._seg(key)}"

    @staticmethod
    def _seg(value: str) -> str:
        """One URL path segment (issue keys, ids, property keys), percent-encoded."""
        text = str(value)
        if not text or text in (".", ".."):
            raise BadReference(f"not a valid path segment: {text!r}")
        return quote(text, safe="")

    def _json_list(self, response: requests.Response) -> list[dict[str, Any]]:
        try:
            body = response.json()
        except ValueError:
            raise VendorError(
                self.name, f"{self.name}: {response.status_code} answer is not JSON", status=response.status_code
            ) from None
        if not isinstance(body, list):
            raise VendorError(self.name, f"{self.name}: expected a JSON array", status=response.status_code)
        return [item for item in body if isinstance(item, dict)]

    def _json(self, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise VendorError(
                self.name, f"{self.name}: {response.status_code} answer is not JSON", status=response.status_code
            ) from None
        if not isinstance(body, dict):
            raise VendorError(
                self.name,
                f"{self.name}: {response.status_code} answer is not a JSON object",
                status=response.status_code,
            )
        return body

    def _id(self, response: requests.Response, what: str) -> str:
        ident = self._json(response).get("id")
        if ident is None or ident == "":
            raise VendorError(self.name, f"{self.name}: the new {what} came back without an id")
        return str(ident)

    def _issue(self, raw: dict[str, Any]) -> Issue:
        """An ``IssueBean`` as an Issue."""
        fields: dict[str, Any] = raw["fields"] if isinstance(raw.get("fields"), dict) else {}
        key = str(raw.get("key") or "")
        status: dict[str, Any] = fields["status"] if isinstance(fields.get("status"), dict) else {}
        category = status.get("statusCategory")
        priority = fields.get("priority")
        assignee = fields.get("assignee")
        resolution = fields.get("resolution")
        versions = fields.get("fixVersions") if isinstance(fields.get("fixVersions"), list) else []
        return Issue(
            ref=self.issue_ref(str(raw.get("id") or "")),
            key=key,
            url=self.issue_url(key) if key else "",
            summary=str(fields.get("summary") or ""),
            status=_str(status.get("name")),
            status_category=_str(category.get("key")) if isinstance(category, dict) else None,
            priority=_str(priority.get("name")) if isinstance(priority, dict) else None,
            assignee=_user(assignee),
            labels=[str(x) for x in fields.get("labels") or [] if isinstance(x, str)],
            fix_versions=[str(v["name"]) for v in versions or [] if isinstance(v, dict) and v.get("name")],
            updated_at=parse_datetime(fields.get("updated")),
            status_category_changed_at=parse_datetime(fields.get("statuscategorychangedate")),
            resolution=_str(resolution.get("name")) if isinstance(resolution, dict) else None,
            description=fields.get("description"),
            fields=fields,
        )


def jql_string(value: str) -> str:
    """A JQL string literal: double-quoted, with backslashes and quotes escaped, on one line."""
    text = clean_text(value).replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{text}"'


def _jql_minute(epoch: float, zone: Any) -> str:
    """An instant as a JQL date (``yyyy/MM/dd HH:mm``) in ``zone``, rounded down to the minute.

    With no known zone, the widest UTC offset is taken off, so the date is never later than the instant
    whatever zone Jira reads it in.
    """
    instant = datetime.fromtimestamp(max(0.0, epoch), UTC)
    local = instant.astimezone(zone) if zone is not None else instant - timedelta(seconds=WIDEST_UTC_OFFSET)
    return local.strftime("%Y/%m/%d %H:%M")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _user(user: Any) -> str | None:
    """A user's display name (Cloud and DC), else its accountId (Cloud) or name (DC)."""
    if not isinstance(user, dict):
        return None
    for key in ("displayName", "accountId", "name"):
        if isinstance(user.get(key), str) and user[key]:
            return str(user[key])
    return None
