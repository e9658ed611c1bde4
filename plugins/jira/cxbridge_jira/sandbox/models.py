"""The Jira emulator's state and rules: users, projects, workflow, fields, issues and what happens to them.

Nothing here knows about HTTP or JSON shapes (that is ``render.py`` and ``routes.py``); rules raise
``JiraFault`` with Jira's own error bodies. Every change that Jira would announce by webhook is queued as an
``Event`` in ``JiraModel.events`` for the backend to deliver.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from . import errors
from .adf import adf_problem, adf_to_text, adf_to_wiki, text_to_adf
from .jql import And, Clause, Empty, Func, JqlError, Node, Not, Or, Query, Value, parse_date, start_of_day

Deployment = Literal["cloud", "datacenter"]
DEPLOYMENTS: tuple[Deployment, ...] = ("cloud", "datacenter")

STATUS_CATEGORIES: dict[str, dict[str, Any]] = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
DONE_RESOLUTION = {"id": "10000", "name": "Done", "description": "Work has been completed on this issue."}
RESOLUTIONS: tuple[dict[str, str], ...] = (
    DONE_RESOLUTION,
    {"id": "10001", "name": "Won't Do", "description": "This issue won't be actioned."},
    {"id": "10002", "name": "Duplicate", "description": "The problem is a duplicate of an existing issue."},
    {"id": "10003", "name": "Cannot Reproduce", "description": "This issue could not be reproduced at this time."},
)
"""A new Jira Cloud site's resolutions (Settings > Issues > Resolutions); ``Done`` is the default."""
LINK_TYPES = (
    {"id": "10000", "name": "Blocks", "inward": "is blocked by", "outward": "blocks"},
    {"id": "10001", "name": "Cloners", "inward": "is cloned by", "outward": "clones"},
    {"id": "10002", "name": "Duplicate", "inward": "is duplicated by", "outward": "duplicates"},
    {"id": "10003", "name": "Relates", "inward": "relates to", "outward": "relates to"},
)
"""The default issue link types."""
MAX_PROPERTY_CHARS = 32_768
MAX_PROPERTY_KEY = 255
MAX_GLOBAL_ID = 255
MAX_SUMMARY = 255
SCREEN_SYSTEM_FIELDS = (
    "issuetype",
    "summary",
    "description",
    "priority",
    "labels",
    "components",
    "fixVersions",
    "assignee",
    "reporter",
)
"""The system fields on every screen of the emulator (the create screen has ``project`` too)."""
REQUIRED_SYSTEM_FIELDS = ("project", "issuetype", "summary", "reporter")
DEFAULTED_SYSTEM_FIELDS = ("reporter", "priority")
"""Fields Jira fills when a create leaves them out (the caller; the default priority)."""

ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
"""The site's attachment size limit (Jira's admin setting; 10 MB here, as a Data Center default)."""


# -- records ------------------------------------------------------------------------------------------------


@dataclass
class User:
    """A Jira user: Cloud knows them by ``account_id``, Data Center by ``name``/``key``."""

    account_id: str
    name: str
    key: str
    email: str
    display_name: str
    api_token: str
    personal_access_token: str
    admin: bool = False
    time_zone: str = "UTC"
    active: bool = True


@dataclass
class Status:
    """A workflow status and its category (``new``, ``indeterminate``, ``done``)."""

    id: str
    name: str
    description: str
    category: str


@dataclass
class Transition:
    """A workflow transition into ``to_status``: global (from any other status) unless ``from_statuses`` names
    the statuses it leaves from."""

    id: str
    name: str
    to_status: str
    from_statuses: tuple[str, ...] = ()

    @property
    def is_global(self) -> bool:
        return not self.from_statuses


@dataclass
class IssueType:
    """An issue type (Bug, Task)."""

    id: str
    name: str
    description: str
    subtask: bool = False
    hierarchy_level: int = 0
    avatar_id: int = 10300


@dataclass
class Priority:
    """A priority; ``id`` 1 is the highest."""

    id: str
    name: str
    description: str
    status_color: str
    icon: str


@dataclass
class FieldDef:
    """A field as ``GET /field`` lists it; ``kind`` drives validation and JQL (string, number, date, ...)."""

    id: str
    name: str
    custom: bool
    kind: str
    schema: dict[str, Any] | None
    clause_names: list[str]
    navigable: bool = True
    orderable: bool = True
    searchable: bool = True
    options: list[dict[str, str]] = field(default_factory=list, kw_only=True)
    """A select field's options (``{"id", "value"}``); kinds ``option`` (single) and ``options`` (multi)."""


@dataclass
class Component:
    """A project component."""

    id: str
    project_id: str
    name: str


@dataclass
class Project:
    """A project with its issue types; issue keys are ``<key>-<n>``."""

    id: str
    key: str
    name: str
    description: str
    lead_id: str
    issue_type_ids: list[str]
    next_number: int = 1
    required_fields: set[str] = field(default_factory=set)
    """Fields its field configuration makes required on create (beyond summary, issue type and project)."""
    off_create_screen: set[str] = field(default_factory=set)
    """Fields its create screen lacks: a create that sets one is refused."""
    off_edit_screen: set[str] = field(default_factory=set)
    """Fields its edit screen lacks: an edit that sets one is refused."""


@dataclass
class RichText:
    """A rich-text value in the form it was written: an ADF document (v3) or wiki text (v2)."""

    value: Any
    kind: Literal["adf", "wiki"]

    def as_adf(self) -> dict[str, Any]:
        """The value as an ADF document."""
        return self.value if self.kind == "adf" else text_to_adf(str(self.value))  # type: ignore[no-any-return]

    def as_wiki(self) -> str:
        """The value as wiki markup."""
        return str(self.value) if self.kind == "wiki" else adf_to_wiki(self.value)

    def as_text(self) -> str:
        """The value's plain text."""
        return str(self.value) if self.kind == "wiki" else adf_to_text(self.value)

    def for_api(self, api: int) -> Any:
        """The value as REST v``api`` shows it."""
        return self.as_adf() if api >= 3 else self.as_wiki()


@dataclass
class Comment:
    """A comment on an issue."""

    id: str
    issue_id: str
    author_id: str
    body: RichText
    created: float
    updated: float
    update_author_id: str
    visibility: dict[str, Any] | None = None
    properties: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Attachment:
    """A file uploaded to an issue (``POST .../attachments``)."""

    id: str
    issue_id: str
    author_id: str
    filename: str
    mime_type: str
    content: bytes = field(repr=False)
    created: float

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass
class IssueLink:
    """A link between two issues: ``inward_id`` [type's outward text] ``outward_id`` (``A duplicates B``)."""

    id: str
    type: dict[str, str]
    inward_id: str
    outward_id: str


@dataclass
class RemoteLink:
    """A remote issue link (to a helpdesk ticket, say); ``global_id`` makes create-or-update idempotent."""

    id: int
    issue_id: str
    global_id: str | None
    application: dict[str, Any] | None
    relationship: str | None
    object: dict[str, Any]


@dataclass
class ChangeItem:
    """One changed field in a changelog entry (spec ``ChangeDetails``)."""

    field: str
    fieldtype: str
    field_id: str
    from_: str | None
    from_string: str | None
    to: str | None
    to_string: str | None

    def as_dict(self) -> dict[str, Any]:
        """The item as Jira shows it in changelogs and webhooks."""
        return {
            "field": self.field,
            "fieldtype": self.fieldtype,
            "fieldId": self.field_id,
            "from": self.from_,
            "fromString": self.from_string,
            "to": self.to,
            "toString": self.to_string,
        }


@dataclass
class History:
    """A changelog entry: who changed what, when."""

    id: str
    author_id: str
    created: float
    items: list[ChangeItem]


@dataclass
class Issue:
    """An issue and everything attached to it."""

    id: str
    key: str
    project_id: str
    issuetype_id: str
    summary: str
    description: RichText | None
    status_id: str
    priority_id: str
    labels: list[str]
    created: float
    updated: float
    reporter_id: str
    creator_id: str
    assignee_id: str | None = None
    resolution: dict[str, str] | None = None
    resolution_date: float | None = None
    status_category_changed: float = 0.0
    custom: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)
    remote_links: list[RemoteLink] = field(default_factory=list)
    history: list[History] = field(default_factory=list)
    fix_version_ids: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    component_ids: list[str] = field(default_factory=list)

    @property
    def number(self) -> int:
        """The issue's number within its project (ENG-12 -> 12)."""
        return int(self.key.rsplit("-", 1)[1])


@dataclass
class AdminWebhook:
    """An admin webhook registered through ``/rest/webhooks/1.0/webhook``; its secret is write-once."""

    id: int
    name: str
    url: str
    events: list[str]
    jql: str
    exclude_body: bool
    enabled: bool
    secret: str
    last_updated: float
    last_updated_user_id: str


@dataclass
class Version:
    """A project version (a release); issues name it in their ``fixVersions``."""

    id: str
    project_id: str
    name: str
    description: str = ""
    released: bool = False
    archived: bool = False
    release_date: str | None = None
    start_date: str | None = None


@dataclass
class Event:
    """Something Jira announces by webhook: ``name`` is ``webhookEvent``, ``type_name`` the issue event type.

    Version events (``jira:version_released``...) carry ``version`` and an empty ``issue_id``.
    """

    name: str
    type_name: str | None
    issue_id: str
    actor_id: str
    at: float
    history: History | None = None
    comment: Comment | None = None
    version: Version | None = None


# -- the model ----------------------------------------------------------------------------------------------


class JiraModel:
    """One Jira site: its configuration, its issues and the rules for changing them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.users: dict[str, User] = {}
        self.statuses: dict[str, Status] = {}
        self.transitions: list[Transition] = []
        self.issue_types: dict[str, IssueType] = {}
        self.priorities: dict[str, Priority] = {}
        self.default_priority_id = "3"
        self.fields: dict[str, FieldDef] = {}
        self.projects: dict[str, Project] = {}
        self.issues: dict[str, Issue] = {}
        self.webhooks: dict[int, AdminWebhook] = {}
        self.versions: dict[str, Version] = {}
        self.components: dict[str, Component] = {}
        self.issue_links: dict[str, IssueLink] = {}
        self.events: list[Event] = []
        self._next_version_id = 10000
        self._next_issue_id = 10000
        self._next_comment_id = 10000
        self._next_attachment_id = 10000
        self.attachment_max_bytes = ATTACHMENT_MAX_BYTES
        self._next_link_id = 10000
        self._next_history_id = 10000
        self._next_webhook_id = 1

    # -- lookups -------------------------------------------------------------------------------------------
    def user_by_basic(self, email: str, token: str) -> User | None:
        """The user whose email and API token these are (Cloud basic auth)."""
        for user in self.users.values():
            if user.active and user.email.lower() == email.lower() and _same(user.api_token, token):
                return user
        return None

    def user_by_pat(self, token: str) -> User | None:
        """The user owning this personal access token (Data Center bearer auth)."""
        for user in self.users.values():
            if user.active and _same(user.personal_access_token, token):
                return user
        return None

    def user_by_email(self, email: str) -> User | None:
        """The user with this email address."""
        return next((u for u in self.users.values() if u.email.lower() == email.lower()), None)

    def find_user(self, ref: Any, deployment: Deployment) -> User | None:
        """A user named in a request body: ``{"accountId"}`` on Cloud, ``{"name"}`` or ``{"key"}`` on DC."""
        if not isinstance(ref, dict):
            return None
        if deployment == "cloud":
            wanted = ref.get("accountId") or ref.get("id")
            return self.users.get(str(wanted)) if wanted else None
        for user in self.users.values():
            if ref.get("name") and user.name == ref["name"]:
                return user
            if ref.get("key") and user.key == ref["key"]:
                return user
        return None

    def project(self, key_or_id: str) -> Project | None:
        """A project by key (case-insensitive) or id."""
        if key_or_id in self.projects:
            return self.projects[key_or_id]
        return next((p for p in self.projects.values() if p.key.lower() == key_or_id.lower()), None)

    def issue(self, key_or_id: str) -> Issue:
        """An issue by key (case-insensitive) or id, else Jira's 404."""
        found = self.issues.get(key_or_id)
        if found is None:
            wanted = key_or_id.upper()
            found = next((i for i in self.issues.values() if i.key == wanted), None)
        if found is None:
            raise errors.not_found()
        return found

    def status_of(self, issue: Issue) -> Status:
        """The issue's current status."""
        return self.statuses[issue.status_id]

    def transitions_for(self, issue: Issue) -> list[Transition]:
        """The transitions available from the issue's status: every global one that goes somewhere else, and every
        one that leaves from this very status."""
        return [
            t
            for t in self.transitions
            if (t.is_global and t.to_status != issue.status_id) or issue.status_id in t.from_statuses
        ]

    def screen_fields(self, project: Project, *, create: bool) -> list[FieldDef]:
        """The fields on the project's create (or edit) screen: the settable system fields and every custom field
        the screen has not left out (one screen for all of the project's issue types)."""
        names = [*SCREEN_SYSTEM_FIELDS, *(("project",) if create else ())]
        off = project.off_create_screen if create else project.off_edit_screen
        fields = [self.fields[n] for n in names if n in self.fields]
        fields.extend(f for f in self.custom_fields())
        return [f for f in fields if f.id not in off]

    def screen_problems(self, project: Project, names: Any, *, create: bool) -> dict[str, str]:
        """What Jira answers for fields set that are not on the screen, and, on create, required fields left out."""
        on_screen = {f.id for f in self.screen_fields(project, create=create)}
        problems = {
            n: errors.NOT_ON_SCREEN.format(field=n)
            for n in names
            if n in self.fields and n not in on_screen and n not in ("project", "issuetype")
        }
        if create:
            for fid in sorted(project.required_fields - set(names)):
                if fid in self.fields and fid in on_screen:
                    problems[fid] = f"{self.fields[fid].name} is required."
        return problems

    def custom_fields(self) -> list[FieldDef]:
        """Every custom field of the site."""
        return [f for f in self.fields.values() if f.custom]

    # -- ids -----------------------------------------------------------------------------------------------
    def _issue_id(self) -> str:
        self._next_issue_id += 1
        return str(self._next_issue_id - 1)

    def add_attachment(self, actor: User, issue: Issue, filename: str, mime_type: str, content: bytes) -> Attachment:
        """One uploaded file on the issue; beyond ``attachment_max_bytes`` Jira's 413."""
        if len(content) > self.attachment_max_bytes:
            raise errors.JiraFault(413, [f"The file is too large: the maximum is {self.attachment_max_bytes} bytes."])
        self._next_attachment_id += 1
        now = self.clock()
        attachment = Attachment(
            str(self._next_attachment_id - 1), issue.id, actor.account_id, filename, mime_type, content, now
        )
        issue.attachments.append(attachment)
        issue.updated = now
        item = ChangeItem("Attachment", "jira", "attachment", None, None, attachment.id, filename)
        issue.history.append(self._history(actor, [item]))
        return attachment

    def attachment(self, attachment_id: str) -> tuple[Issue, Attachment]:
        """An attachment by id with its issue, else Jira's 404."""
        for issue in self.issues.values():
            for found in issue.attachments:
                if found.id == attachment_id:
                    return issue, found
        raise errors.not_found(f"The attachment with id '{attachment_id}' does not exist")

    def _comment_id(self) -> str:
        self._next_comment_id += 1
        return str(self._next_comment_id - 1)

    def _link_id(self) -> int:
        self._next_link_id += 1
        return self._next_link_id - 1

    def _history(self, actor: User, items: list[ChangeItem]) -> History:
        self._next_history_id += 1
        return History(str(self._next_history_id - 1), actor.account_id, self.clock(), items)

    # -- issues --------------------------------------------------------------------------------------------
    def create_issue(self, actor: User, body: Any, api: int, deployment: Deployment) -> Issue:
        """Create an issue from an ``IssueUpdateDetails`` body (``fields``, ``update``, ``properties``)."""
        if not isinstance(body, dict) or not isinstance(body.get("fields", {}), dict):
            raise errors.bad_request("Can not deserialize the request body: 'fields' must be an object.")
        fields = dict(body.get("fields") or {})
        problems: dict[str, str] = {}
        project = None
        ref = fields.pop("project", None)
        if isinstance(ref, dict):
            project = self.project(str(ref.get("id") or ref.get("key") or ""))
        if project is None:
            problems["project"] = "Specify a valid project ID or key"
        issuetype = None
        ref = fields.pop("issuetype", None)
        if not isinstance(ref, dict) or not (ref.get("id") or ref.get("name")):
            problems["issuetype"] = "Specify an issue type"
        elif project is not None:
            issuetype = self._issue_type(ref, project)
            if issuetype is None:
                problems["issuetype"] = "Specify a valid issue type"
        summary = fields.pop("summary", None)
        if not isinstance(summary, str) or not summary.strip():
            problems["summary"] = "You must specify a summary of the issue."
        elif len(summary) > MAX_SUMMARY:
            problems["summary"] = "Summary must be less than 255 characters."
        values = self._validate_fields(fields, api, deployment, problems)
        if project is not None:
            self._check_components(values, project, problems)
            named = {*fields, *(("summary",) if summary is not None else ())}
            problems.update(self.screen_problems(project, named, create=True))
        properties = body.get("properties") or []
        if not isinstance(properties, list) or not all(isinstance(p, dict) and "key" in p for p in properties):
            problems["properties"] = "Properties must be a list of objects with a key and a value."
        else:
            for prop in properties:
                problem = _property_problem(str(prop.get("key")), prop.get("value"))
                if problem:
                    problems["properties"] = problem
        if problems:
            raise errors.field_errors(problems)
        assert project is not None
        assert issuetype is not None
        assert isinstance(summary, str)
        now = self.clock()
        issue = Issue(
            id=self._issue_id(),
            key=f"{project.key}-{project.next_number}",
            project_id=project.id,
            issuetype_id=issuetype.id,
            summary=summary,
            description=values.pop("description", None),
            status_id=self._initial_status(),
            priority_id=values.pop("priority", self.default_priority_id),
            labels=values.pop("labels", []),
            created=now,
            updated=now,
            reporter_id=actor.account_id,
            creator_id=actor.account_id,
            status_category_changed=now,
        )
        reporter = values.pop("reporter", None)
        if isinstance(reporter, User):
            issue.reporter_id = reporter.account_id
        assignee = values.pop("assignee", None)
        issue.assignee_id = assignee.account_id if isinstance(assignee, User) else None
        issue.fix_version_ids = list(values.pop("fixVersions", None) or [])
        issue.component_ids = list(values.pop("components", None) or [])
        issue.custom = {k: v for k, v in values.items() if k.startswith("customfield_")}
        issue.properties = {str(p["key"]): p.get("value") for p in properties}
        project.next_number += 1
        self.issues[issue.id] = issue
        self.events.append(Event("jira:issue_created", "issue_created", issue.id, actor.account_id, now))
        update = body.get("update") or {}
        if isinstance(update, dict) and update.get("comment"):
            for op in update["comment"]:
                if isinstance(op, dict) and isinstance(op.get("add"), dict):
                    self.add_comment(actor, issue, op["add"], api)
        return issue

    def _initial_status(self) -> str:
        return next(s.id for s in self.statuses.values() if s.category == "new")

    def _issue_type(self, ref: dict[str, Any], project: Project) -> IssueType | None:
        for type_id in project.issue_type_ids:
            it = self.issue_types[type_id]
            if ref.get("id") and str(ref["id"]) == it.id:
                return it
            if ref.get("name") and str(ref["name"]).lower() == it.name.lower():
                return it
        return None

    def _priority(self, ref: Any) -> Priority | None:
        if not isinstance(ref, dict):
            return None
        if ref.get("id") is not None:
            return self.priorities.get(str(ref["id"]))
        if ref.get("name"):
            return next((p for p in self.priorities.values() if p.name.lower() == str(ref["name"]).lower()), None)
        return None

    def _validate_fields(
        self, fields: dict[str, Any], api: int, deployment: Deployment, problems: dict[str, str]
    ) -> dict[str, Any]:
        """Check settable field values; returns them converted (RichText, priority id, User, ...)."""
        out: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "description":
                rich = _rich_text(value, api)
                if rich is False:
                    problems[name] = errors.MUST_BE_ADF if api >= 3 else errors.MUST_BE_STRING
                else:
                    out[name] = rich
            elif name == "summary":
                if not isinstance(value, str) or not value.strip():
                    problems[name] = "You must specify a summary of the issue."
                elif len(value) > MAX_SUMMARY:
                    problems[name] = "Summary must be less than 255 characters."
                else:
                    out[name] = value
            elif name == "priority":
                priority = self._priority(value)
                if priority is None:
                    problems[name] = "Specify the Priority (id or name) in the string format"
                else:
                    out[name] = priority.id
            elif name == "labels":
                problem = _labels_problem(value)
                if problem:
                    problems[name] = problem
                else:
                    out[name] = list(dict.fromkeys(value))
            elif name in {"assignee", "reporter"}:
                if value is None and name == "assignee":
                    out[name] = None
                    continue
                user = self.find_user(value, deployment)
                if user is None:
                    problems[name] = (
                        f"Specify a valid value for {name}"
                        if deployment == "cloud"
                        else f"User '{(value or {}).get('name', '')}' does not exist."
                    )
                else:
                    out[name] = user
            elif name == "fixVersions":
                ids, problem = self._version_ids(value)
                if problem:
                    problems[name] = problem
                else:
                    out[name] = ids
            elif name == "components":
                if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
                    problems[name] = "Components must be an array of components ({id} or {name})."
                else:
                    out[name] = value  # resolved against the project by _check_components
            elif name in self.fields and self.fields[name].custom:
                converted, problem = _custom_value(self.fields[name], value)
                if problem:
                    problems[name] = problem
                else:
                    out[name] = converted
            else:
                problems[name] = errors.NOT_ON_SCREEN.format(field=name)
        return out

    def _check_components(self, values: dict[str, Any], project: Project, problems: dict[str, str]) -> None:
        """Resolve ``components`` refs (``{id}`` or ``{name}``) to the project's component ids, in place."""
        refs = values.get("components")
        if refs is None:
            return
        ids: list[str] = []
        for ref in refs:
            found = next(
                (
                    c
                    for c in self.components.values()
                    if c.project_id == project.id
                    and ((ref.get("id") and str(ref["id"]) == c.id) or (ref.get("name") and ref["name"] == c.name))
                ),
                None,
            )
            if found is None:
                problems["components"] = f"Component name '{ref.get('name') or ref.get('id')}' is not valid"
                return
            ids.append(found.id)
        values["components"] = list(dict.fromkeys(ids))

    def add_component(self, project_key: str, name: str) -> Component:
        """A component of a project (what a project admin adds)."""
        project = self.project(project_key)
        if project is None:
            raise errors.not_found(f"No project could be found with key '{project_key}'.")
        existing = next((c for c in self.components.values() if c.project_id == project.id and c.name == name), None)
        if existing is not None:
            return existing
        component = Component(str(10000 + len(self.components)), project.id, name)
        self.components[component.id] = component
        return component

    def require_field(self, project_key: str, field_id: str) -> None:
        """Make a field required on the project's create screen (its field configuration)."""
        project = self.project(project_key)
        if project is None or field_id not in self.fields:
            raise errors.bad_request(f"cannot require {field_id} in {project_key}")
        project.required_fields.add(field_id)

    def link_issues(self, body: Any) -> IssueLink:
        """``POST /issueLink``: ``{type: {name|id}, inwardIssue: {key|id}, outwardIssue: {key|id}}``; the inward
        issue reads the type's outward text of the outward one (Duplicate: inward duplicates outward)."""
        if not isinstance(body, dict):
            raise errors.bad_request("Can not deserialize the request body.")
        raw_type = body.get("type")
        ref: dict[str, Any] = raw_type if isinstance(raw_type, dict) else {}
        link_type = next(
            (t for t in LINK_TYPES if ref.get("name") == t["name"] or str(ref.get("id", "")) == t["id"]), None
        )
        if link_type is None:
            raise errors.not_found(f"No issue link type with name '{ref.get('name') or ref.get('id')}' found.")
        ends = []
        for side in ("inwardIssue", "outwardIssue"):
            raw_end = body.get(side)
            end: dict[str, Any] = raw_end if isinstance(raw_end, dict) else {}
            ends.append(self.issue(str(end.get("key") or end.get("id") or "")))
        link = IssueLink(str(10000 + len(self.issue_links)), dict(link_type), ends[0].id, ends[1].id)
        self.issue_links[link.id] = link
        return link

    def users_matching(self, query: str) -> list[User]:
        """Active users whose email address or display name starts with ``query`` (Cloud's user search)."""
        text = query.strip().lower()
        if not text:
            return []
        return [
            u
            for u in self.users.values()
            if u.active and (u.email.lower().startswith(text) or u.display_name.lower().startswith(text))
        ]

    def edit_issue(self, actor: User, issue: Issue, body: Any, api: int, deployment: Deployment) -> None:
        """Apply ``fields`` (set) and ``update`` (add/remove/set operations); records a changelog entry."""
        if not isinstance(body, dict):
            raise errors.bad_request("Can not deserialize the request body.")
        fields = body.get("fields") or {}
        update = body.get("update") or {}
        if not isinstance(fields, dict) or not isinstance(update, dict):
            raise errors.bad_request("Can not deserialize the request body.")
        problems: dict[str, str] = {}
        comments: list[dict[str, Any]] = []
        sets: dict[str, Any] = dict(fields)
        labels = list(issue.labels)
        labels_touched = False
        for name, ops in update.items():
            if not isinstance(ops, list):
                problems[name] = "Operations must be an array."
                continue
            for op in ops:
                if not isinstance(op, dict) or len(op) != 1:
                    problems[name] = "Each operation must have exactly one verb (set, add, remove, edit)."
                    continue
                verb, value = next(iter(op.items()))
                if name == "comment" and verb == "add" and isinstance(value, dict):
                    comments.append(value)
                elif name == "labels" and verb in {"add", "remove", "set"}:
                    labels_touched = True
                    if verb == "set":
                        labels = list(value) if isinstance(value, list) else labels
                    elif verb == "add" and value not in labels:
                        labels.append(value)
                    elif verb == "remove" and value in labels:
                        labels.remove(value)
                elif verb == "set":
                    sets[name] = value
                else:
                    problems[name] = f"The operation '{verb}' is not supported for the field '{name}'."
        if labels_touched:
            if "labels" in sets:
                problems["labels"] = "Field 'labels' cannot be both set and updated in one request."
            sets["labels"] = labels
        if "issuetype" in sets:
            ref = sets.pop("issuetype")
            project = self.projects[issue.project_id]
            found = self._issue_type(ref, project) if isinstance(ref, dict) else None
            if found is None:
                problems["issuetype"] = "Specify a valid issue type"
            else:
                sets["_issuetype"] = found
        new_type = sets.pop("_issuetype", None)
        values = self._validate_fields(sets, api, deployment, problems)
        problems.update(self.screen_problems(self.projects[issue.project_id], sets, create=False))
        if problems:
            raise errors.field_errors(problems)
        items: list[ChangeItem] = []
        if isinstance(new_type, IssueType) and new_type.id != issue.issuetype_id:
            old = self.issue_types[issue.issuetype_id]
            items.append(ChangeItem("issuetype", "jira", "issuetype", old.id, old.name, new_type.id, new_type.name))
            issue.issuetype_id = new_type.id
        for name, value in values.items():
            item = self._apply(issue, name, value)
            if item is not None:
                items.append(item)
        now = self.clock()
        if items:
            issue.updated = now
            history = self._history(actor, items)
            issue.history.append(history)
            type_name = "issue_assigned" if all(i.field_id == "assignee" for i in items) else "issue_updated"
            self.events.append(Event("jira:issue_updated", type_name, issue.id, actor.account_id, now, history))
        for comment in comments:
            self.add_comment(actor, issue, comment, api)

    def _apply(self, issue: Issue, name: str, value: Any) -> ChangeItem | None:
        """Set one validated field; returns its changelog item, or None when the value did not change."""
        if name == "summary":
            if value == issue.summary:
                return None
            item = ChangeItem("summary", "jira", "summary", None, issue.summary, None, value)
            issue.summary = value
            return item
        if name == "description":
            old = issue.description.as_wiki() if issue.description else None
            new = value.as_wiki() if value else None
            issue.description = value
            return None if old == new else ChangeItem("description", "jira", "description", None, old, None, new)
        if name == "priority":
            if value == issue.priority_id:
                return None
            old_p, new_p = self.priorities[issue.priority_id], self.priorities[value]
            issue.priority_id = value
            return ChangeItem("priority", "jira", "priority", old_p.id, old_p.name, new_p.id, new_p.name)
        if name == "labels":
            if value == issue.labels:
                return None
            item = ChangeItem(
                "labels", "jira", "labels", None, " ".join(issue.labels) or None, None, " ".join(value) or None
            )
            issue.labels = value
            return item
        if name == "assignee":
            old_id = issue.assignee_id
            new_id = value.account_id if isinstance(value, User) else None
            if old_id == new_id:
                return None
            issue.assignee_id = new_id
            old_u = self.users.get(old_id) if old_id else None
            return ChangeItem(
                "assignee",
                "jira",
                "assignee",
                old_id,
                old_u.display_name if old_u else None,
                new_id,
                value.display_name if isinstance(value, User) else None,
            )
        if name == "reporter":
            if not isinstance(value, User) or value.account_id == issue.reporter_id:
                return None
            old_u = self.users[issue.reporter_id]
            issue.reporter_id = value.account_id
            return ChangeItem(
                "reporter",
                "jira",
                "reporter",
                old_u.account_id,
                old_u.display_name,
                value.account_id,
                value.display_name,
            )
        if name == "fixVersions":
            if value == issue.fix_version_ids:
                return None
            old_names = " ".join(self.versions[v].name for v in issue.fix_version_ids) or None
            new_names = " ".join(self.versions[v].name for v in value) or None
            issue.fix_version_ids = list(value)
            return ChangeItem("Fix Version", "jira", "fixVersions", None, old_names, None, new_names)
        old_value = issue.custom.get(name)
        if old_value == value:
            return None
        if value is None:
            issue.custom.pop(name, None)
        else:
            issue.custom[name] = value
        fdef = self.fields[name]
        return ChangeItem(fdef.name, "custom", name, None, _display(old_value), None, _display(value))

    def do_transition(self, actor: User, issue: Issue, body: Any, api: int, deployment: Deployment) -> None:
        """Move the issue along a transition (by id); sets or clears the resolution; records the change."""
        if not isinstance(body, dict) or not isinstance(body.get("transition"), dict):
            raise errors.bad_request("Missing 'transition' identifier")
        ref = body["transition"]
        wanted = str(ref.get("id", "")) if ref.get("id") is not None else None
        transition = None
        for t in self.transitions_for(issue):
            if (wanted is not None and t.id == wanted) or (wanted is None and ref.get("name") == t.name):
                transition = t
        if transition is None:
            shown = wanted if wanted is not None else str(ref.get("name", ""))
            raise errors.bad_request(f"Transition id '{shown}' is not valid for this issue.")
        fields = body.get("fields") or {}
        update = body.get("update") or {}
        if not isinstance(fields, dict) or not isinstance(update, dict):
            raise errors.bad_request("Can not deserialize the request body.")
        resolution = self._resolution_of(fields.get("resolution"))
        fields = {k: v for k, v in fields.items() if k != "resolution"}
        comments = [
            op["add"] for op in update.get("comment", []) if isinstance(op, dict) and isinstance(op.get("add"), dict)
        ]
        old = self.statuses[issue.status_id]
        new = self.statuses[transition.to_status]
        now = self.clock()
        items = [ChangeItem("status", "jira", "status", old.id, old.name, new.id, new.name)]
        if new.category == "done" and (issue.resolution is None or resolution is not None):
            chosen = resolution or DONE_RESOLUTION
            old_id, old_name = (issue.resolution or {}).get("id"), (issue.resolution or {}).get("name")
            issue.resolution = dict(chosen)
            issue.resolution_date = now
            items.append(ChangeItem("resolution", "jira", "resolution", old_id, old_name, chosen["id"], chosen["name"]))
        elif new.category != "done" and issue.resolution is not None:
            items.append(
                ChangeItem(
                    "resolution", "jira", "resolution", issue.resolution["id"], issue.resolution["name"], None, None
                )
            )
            issue.resolution = None
            issue.resolution_date = None
        if old.category != new.category:
            issue.status_category_changed = now
        issue.status_id = new.id
        if fields:
            problems: dict[str, str] = {}
            values = self._validate_fields(fields, api, deployment, problems)
            if problems:
                raise errors.field_errors(problems)
            items.extend(i for i in (self._apply(issue, k, v) for k, v in values.items()) if i is not None)
        issue.updated = now
        history = self._history(actor, items)
        issue.history.append(history)
        self.events.append(Event("jira:issue_updated", "issue_generic", issue.id, actor.account_id, now, history))
        for comment in comments:
            self.add_comment(actor, issue, comment, api)

    @staticmethod
    def _resolution_of(ref: Any) -> dict[str, str] | None:
        """The resolution a transition's ``fields.resolution`` names (``{"name"}`` or ``{"id"}``), else Jira's 400."""
        if ref is None:
            return None
        if isinstance(ref, dict):
            for known in RESOLUTIONS:
                if (ref.get("id") is not None and str(ref["id"]) == known["id"]) or ref.get("name") == known["name"]:
                    return known
        raise errors.field_errors({"resolution": "Resolution is not valid."})

    # -- comments ------------------------------------------------------------------------------------------
    def add_comment(self, actor: User, issue: Issue, body: Any, api: int) -> Comment:
        """Add a comment (``body`` is ADF in v3, a string in v2)."""
        if not isinstance(body, dict):
            raise errors.bad_request("Can not deserialize the request body.")
        rich = _comment_body(body.get("body"), api)
        visibility = body.get("visibility")
        properties = body.get("properties") or []
        now = self.clock()
        comment = Comment(
            id=self._comment_id(),
            issue_id=issue.id,
            author_id=actor.account_id,
            body=rich,
            created=now,
            updated=now,
            update_author_id=actor.account_id,
            visibility=dict(visibility) if isinstance(visibility, dict) else None,
            properties=[dict(p) for p in properties if isinstance(p, dict)],
        )
        issue.comments.append(comment)
        issue.updated = now
        self.events.append(Event("comment_created", None, issue.id, actor.account_id, now, comment=comment))
        self.events.append(
            Event("jira:issue_updated", "issue_commented", issue.id, actor.account_id, now, comment=comment)
        )
        return comment

    def comment(self, issue: Issue, comment_id: str) -> Comment:
        """A comment of the issue by id, else Jira's 404."""
        found = next((c for c in issue.comments if c.id == comment_id), None)
        if found is None:
            raise errors.not_found(f"Can not find a comment for the id: {comment_id}.")
        return found

    def update_comment(self, actor: User, issue: Issue, comment: Comment, body: Any, api: int) -> Comment:
        """Replace a comment's body (and visibility when given) in place."""
        if not isinstance(body, dict):
            raise errors.bad_request("Can not deserialize the request body.")
        comment.body = _comment_body(body.get("body"), api)
        if isinstance(body.get("visibility"), dict):
            comment.visibility = dict(body["visibility"])
        now = self.clock()
        comment.updated = now
        comment.update_author_id = actor.account_id
        issue.updated = now
        self.events.append(Event("comment_updated", None, issue.id, actor.account_id, now, comment=comment))
        self.events.append(
            Event("jira:issue_updated", "issue_comment_edited", issue.id, actor.account_id, now, comment=comment)
        )
        return comment

    def delete_comment(self, actor: User, issue: Issue, comment: Comment) -> None:
        """Remove a comment (announced as comment_deleted)."""
        issue.comments.remove(comment)
        now = self.clock()
        issue.updated = now
        self.events.append(Event("comment_deleted", None, issue.id, actor.account_id, now, comment=comment))

    # -- remote links --------------------------------------------------------------------------------------
    def upsert_remote_link(self, issue: Issue, body: Any) -> tuple[RemoteLink, bool]:
        """Create a remote link, or replace the one with the same ``globalId``; returns (link, created)."""
        if not isinstance(body, dict):
            raise errors.bad_request("Can not deserialize the request body.")
        values = _remote_link_values(body)
        global_id = values["global_id"]
        existing = next((r for r in issue.remote_links if global_id and r.global_id == global_id), None)
        if existing is not None:
            existing.application = values["application"]
            existing.relationship = values["relationship"]
            existing.object = values["object"]
            return existing, False
        link = RemoteLink(id=self._link_id(), issue_id=issue.id, **values)
        issue.remote_links.append(link)
        return link, True

    def replace_remote_link(self, issue: Issue, link: RemoteLink, body: Any) -> None:
        """Update a remote link by id (omitted fields become null)."""
        if not isinstance(body, dict):
            raise errors.bad_request("Can not deserialize the request body.")
        values = _remote_link_values(body)
        link.global_id = values["global_id"]
        link.application = values["application"]
        link.relationship = values["relationship"]
        link.object = values["object"]

    def remote_link(self, issue: Issue, link_id: str) -> RemoteLink:
        """A remote link of the issue by id, else 404."""
        found = next((r for r in issue.remote_links if str(r.id) == link_id), None)
        if found is None:
            raise errors.not_found(f"No remote link with id '{link_id}' exists on this issue.")
        return found

    # -- properties ----------------------------------------------------------------------------------------
    def set_property(self, issue: Issue, key: str, value: Any) -> bool:
        """Store an issue property; True when it was created, False when replaced."""
        problem = _property_problem(key, value)
        if problem:
            raise errors.bad_request(problem)
        created = key not in issue.properties
        issue.properties[key] = value
        return created

    # -- search --------------------------------------------------------------------------------------------
    def search(self, query: Query, actor: User) -> list[Issue]:
        """The issues matching a parsed query, in its order (newest first when it names none)."""
        now = self.clock()
        matched = [i for i in self.issues.values() if query.where is None or self.matches(query.where, i, actor, now)]
        matched.sort(key=lambda i: int(i.id), reverse=True)
        for name, desc in reversed(query.order):
            getter = self._sort_key(name)
            present = [i for i in matched if getter(i) is not None]
            absent = [i for i in matched if getter(i) is None]
            present.sort(key=lambda i: getter(i), reverse=desc)  # type: ignore[arg-type,return-value]
            matched = present + absent
        return matched

    def check_query(self, query: Query, actor: User) -> None:
        """Validate field names and values the way Jira does before running a query (400 on errors)."""
        if query.where is not None:
            self._check_node(query.where, actor)
        for name, _desc in query.order:
            self._sort_key(name)

    def _check_node(self, node: Node, actor: User) -> None:
        if isinstance(node, And | Or):
            for item in node.items:
                self._check_node(item, actor)
        elif isinstance(node, Not):
            self._check_node(node.item, actor)
        else:
            self._clause_test(node, actor, self.clock())

    def matches(self, node: Node, issue: Issue, actor: User, now: float) -> bool:
        """Whether an issue satisfies a query tree."""
        if isinstance(node, And):
            return all(self.matches(n, issue, actor, now) for n in node.items)
        if isinstance(node, Or):
            return any(self.matches(n, issue, actor, now) for n in node.items)
        if isinstance(node, Not):
            return not self.matches(node.item, issue, actor, now)
        return self._clause_test(node, actor, now)(issue)

    def _field_name(self, name: str) -> str:
        lowered = name.strip().lower()
        aliases = {"issuekey": "key", "issue": "key", "id": "key", "type": "issuetype"}
        if lowered in aliases:
            return aliases[lowered]
        m = re.fullmatch(r"cf\[(\d+)\]", lowered)
        if m:
            lowered = f"customfield_{m[1]}"
        if lowered.startswith("customfield_"):
            if lowered in self.fields:
                return lowered
        else:
            for fdef in self.custom_fields():
                if fdef.name.lower() == lowered:
                    return fdef.id
        if lowered in {
            "key",
            "project",
            "status",
            "statuscategory",
            "priority",
            "issuetype",
            "labels",
            "updated",
            "created",
            "resolutiondate",
            "resolution",
            "assignee",
            "reporter",
            "fixversion",
        }:
            return lowered
        if re.fullmatch(r"issue\.property\[[^\]]+\](\.[\w.-]+)?", name.strip(), re.IGNORECASE):
            return name.strip()
        raise JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")

    def _clause_test(self, clause: Clause, actor: User, now: float) -> Callable[[Issue], bool]:
        """Compile one clause into a predicate; raises JqlError for unknown fields and values."""
        name = self._field_name(clause.field)
        op = clause.op
        values = clause.values
        if name.lower().startswith("issue.property["):
            return self._property_test(name, op, values)
        if name in {"updated", "created", "resolutiondate"} or (
            name in self.fields and self.fields[name].kind == "date"
        ):
            return self._date_test(name, op, values, now)
        if name in self.fields and self.fields[name].kind == "number":
            return self._number_test(name, op, values)
        if op in {">", ">=", "<", "<="}:
            raise JqlError(f"The operator '{op}' is not supported by the '{clause.field}' field.")
        if name == "labels":
            wanted_labels = {v for v in values if isinstance(v, str)}
            if op in {"is", "is not"}:
                return lambda i: (not i.labels) == (op == "is")
            if op in {"=", "in"}:
                return lambda i: bool(wanted_labels & set(i.labels))
            return lambda i: bool(i.labels) and not (wanted_labels & set(i.labels))
        if name == "fixversion":
            if op in {"is", "is not"}:
                return lambda i: (not i.fix_version_ids) == (op == "is")
            wanted_versions: set[str] = set()
            for value in values:
                wanted_versions |= self._resolve_version(value)
            if op in {"=", "in"}:
                return lambda i: bool(wanted_versions & set(i.fix_version_ids))
            return lambda i: not (wanted_versions & set(i.fix_version_ids))
        resolvers: dict[str, Callable[[Value], set[str]]] = {
            "key": self._resolve_key,
            "project": self._resolve_project,
            "status": self._resolve_status,
            "statuscategory": self._resolve_category,
            "priority": self._resolve_priority,
            "issuetype": self._resolve_issuetype,
            "resolution": self._resolve_resolution,
            "assignee": lambda v: self._resolve_user(v, actor, "assignee"),
            "reporter": lambda v: self._resolve_user(v, actor, "reporter"),
        }
        getters: dict[str, Callable[[Issue], str | None]] = {
            "key": lambda i: i.id,
            "project": lambda i: i.project_id,
            "status": lambda i: i.status_id,
            "statuscategory": lambda i: self.statuses[i.status_id].category,
            "priority": lambda i: i.priority_id,
            "issuetype": lambda i: i.issuetype_id,
            "resolution": lambda i: (i.resolution or {}).get("id"),
            "assignee": lambda i: i.assignee_id,
            "reporter": lambda i: i.reporter_id,
        }
        if name in getters:
            get = getters[name]
            if op in {"is", "is not"}:
                return lambda i: (get(i) is None) == (op == "is")
            wanted: set[str | None] = set()
            for value in values:
                if isinstance(value, Empty):
                    wanted.add(None)
                else:
                    wanted |= resolvers[name](value)
            if op in {"=", "in"}:
                return lambda i: get(i) in wanted
            return lambda i: get(i) is not None and get(i) not in wanted
        # a custom string field
        if op in {"is", "is not"}:
            return lambda i: (i.custom.get(name) is None) == (op == "is")
        texts = {str(v).lower() for v in values if isinstance(v, str)}
        if op in {"=", "in"}:
            return lambda i: str(i.custom.get(name, "")).lower() in texts
        return lambda i: i.custom.get(name) is not None and str(i.custom[name]).lower() not in texts

    def _date_test(self, name: str, op: str, values: tuple[Value, ...], now: float) -> Callable[[Issue], bool]:
        def stamp(issue: Issue) -> float | None:
            if name == "updated":
                return issue.updated
            if name == "created":
                return issue.created
            if name == "resolutiondate":
                return issue.resolution_date
            raw = issue.custom.get(name)
            return _day_stamp(raw) if raw else None

        def value_of(v: Value) -> float | None:
            if isinstance(v, Empty):
                return None
            if isinstance(v, Func):
                if v.name == "now":
                    return now
                if v.name == "startofday":
                    return start_of_day(now)
                raise JqlError(f"Error in the JQL Query: the sandbox does not answer the function '{v.name}()'.")
            return parse_date(v, now)

        points = [value_of(v) for v in values]
        if op in {"is", "is not"}:
            return lambda i: (stamp(i) is None) == (op == "is")
        compare = _COMPARE.get(op)
        if compare is not None:
            point = points[0]
            if point is None:
                raise JqlError(f"The operator '{op}' does not support the value EMPTY.")
            return lambda i: (s := stamp(i)) is not None and compare(s, point)
        if op in {"in", "not in"}:
            return lambda i: (stamp(i) in points) == (op == "in")
        raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")

    def _number_test(self, name: str, op: str, values: tuple[Value, ...]) -> Callable[[Issue], bool]:
        numbers: list[float | None] = []
        for v in values:
            if isinstance(v, Empty):
                numbers.append(None)
                continue
            try:
                numbers.append(float(str(v)))
            except ValueError:
                raise JqlError(
                    f"The value '{v}' is not a valid number for the field '{self.fields[name].name}'."
                ) from None
        if op in {"is", "is not"}:
            return lambda i: (i.custom.get(name) is None) == (op == "is")
        compare = _COMPARE.get(op)
        if compare is not None:
            point = numbers[0]
            if point is None:
                raise JqlError(f"The operator '{op}' does not support the value EMPTY.")
            return lambda i: i.custom.get(name) is not None and compare(float(i.custom[name]), point)
        if op in {"in", "not in"}:
            return lambda i: (i.custom.get(name) in numbers) == (op == "in")
        raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")

    def _property_test(self, name: str, op: str, values: tuple[Value, ...]) -> Callable[[Issue], bool]:
        m = re.fullmatch(r"issue\.property\[([^\]]+)\](?:\.([\w.-]+))?", name, re.IGNORECASE)
        assert m is not None
        key, path = m[1], (m[2] or "")

        def lookup(issue: Issue) -> Any:
            value: Any = issue.properties.get(key)
            for part in [p for p in path.split(".") if p]:
                value = value.get(part) if isinstance(value, dict) else None
            return value

        texts = {str(v).lower() for v in values if isinstance(v, str)}
        if op in {"is", "is not"}:
            return lambda i: (lookup(i) is None) == (op == "is")
        if op in {"=", "in"}:
            return lambda i: lookup(i) is not None and _scalar(lookup(i)).lower() in texts
        if op in {"!=", "not in"}:
            return lambda i: lookup(i) is not None and _scalar(lookup(i)).lower() not in texts
        raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")

    def _resolve_key(self, value: Value) -> set[str]:
        text = _plain(value)
        if text in self.issues:
            return {text}
        found = next((i.id for i in self.issues.values() if i.key == text.upper()), None)
        if found is None:
            raise JqlError(f"An issue with key '{text}' does not exist for field 'key'.")
        return {found}

    def _resolve_project(self, value: Value) -> set[str]:
        text = _plain(value)
        project = self.project(text) or next(
            (p for p in self.projects.values() if p.name.lower() == text.lower()), None
        )
        if project is None:
            raise JqlError(f"The value '{text}' does not exist for the field 'project'.")
        return {project.id}

    def _resolve_status(self, value: Value) -> set[str]:
        text = _plain(value)
        found = {s.id for s in self.statuses.values() if s.id == text or s.name.lower() == text.lower()}
        if not found:
            raise JqlError(f"The value '{text}' does not exist for the field 'status'.")
        return found

    def _resolve_category(self, value: Value) -> set[str]:
        text = _plain(value).lower()
        found = {k for k, c in STATUS_CATEGORIES.items() if text in {k, str(c["id"]), str(c["name"]).lower()}}
        if not found:
            raise JqlError(f"The value '{_plain(value)}' does not exist for the field 'statusCategory'.")
        return found

    def _resolve_priority(self, value: Value) -> set[str]:
        text = _plain(value)
        found = {p.id for p in self.priorities.values() if p.id == text or p.name.lower() == text.lower()}
        if not found:
            raise JqlError(f"The value '{text}' does not exist for the field 'priority'.")
        return found

    def _resolve_issuetype(self, value: Value) -> set[str]:
        text = _plain(value)
        found = {t.id for t in self.issue_types.values() if t.id == text or t.name.lower() == text.lower()}
        if not found:
            raise JqlError(f"The value '{text}' does not exist for the field 'issuetype'.")
        return found

    def _resolve_resolution(self, value: Value) -> set[str]:
        text = _plain(value)
        if text.lower() == "unresolved":
            return set()
        found = {r["id"] for r in RESOLUTIONS if text.lower() in {r["name"].lower(), r["id"]}}
        if found:
            return found
        raise JqlError(f"The value '{text}' does not exist for the field 'resolution'.")

    def _resolve_version(self, value: Value) -> set[str]:
        text = _plain(value)
        found = {v.id for v in self.versions.values() if v.id == text or v.name.lower() == text.lower()}
        if not found:
            raise JqlError(f"The value '{text}' does not exist for the field 'fixVersion'.")
        return found

    def _resolve_user(self, value: Value, actor: User, field_name: str) -> set[str]:
        if isinstance(value, Func):
            if value.name == "currentuser":
                return {actor.account_id}
            raise JqlError(f"Error in the JQL Query: the sandbox does not answer the function '{value.name}()'.")
        text = _plain(value)
        for user in self.users.values():
            if text in {user.account_id, user.name, user.key} or text.lower() == user.email.lower():
                return {user.account_id}
        raise JqlError(f"The value '{text}' does not exist for the field '{field_name}'.")

    def _sort_key(self, name: str) -> Callable[[Issue], Any]:
        field_name = self._field_name(name)
        if field_name == "key":
            return lambda i: (self.projects[i.project_id].key, i.number)
        if field_name in {"updated", "created"}:
            return lambda i: getattr(i, field_name)
        if field_name == "resolutiondate":
            return lambda i: i.resolution_date
        if field_name == "priority":
            return lambda i: -int(i.priority_id)
        if field_name == "status":
            return lambda i: self.statuses[i.status_id].name
        if field_name == "project":
            return lambda i: self.projects[i.project_id].key
        if field_name == "issuetype":
            return lambda i: self.issue_types[i.issuetype_id].name
        if field_name in self.fields and self.fields[field_name].custom:
            kind = self.fields[field_name].kind
            if kind == "number":
                return lambda i: None if i.custom.get(field_name) is None else float(i.custom[field_name])
            if kind == "date":
                return lambda i: i.custom.get(field_name)
            return lambda i: None if i.custom.get(field_name) is None else str(i.custom[field_name]).lower()
        raise JqlError(f"Field '{name}' does not support sorting.")

    # -- versions ------------------------------------------------------------------------------------------
    def version(self, version_id: str) -> Version:
        """A version by id, else Jira's 404."""
        found = self.versions.get(str(version_id))
        if found is None:
            raise errors.not_found(f"Could not find version for id '{version_id}'")
        return found

    def _version_ids(self, value: Any) -> tuple[list[str], str | None]:
        """``fixVersions`` as set on an issue: ``[{"id"}|{"name"}]`` -> version ids, or a problem."""
        if value is None:
            return [], None
        if not isinstance(value, list):
            return [], "Fix versions must be an array of versions ({id} or {name})."
        ids: list[str] = []
        for ref in value:
            found = None
            if isinstance(ref, dict) and ref.get("id") is not None:
                found = self.versions.get(str(ref["id"]))
            elif isinstance(ref, dict) and ref.get("name"):
                found = next((v for v in self.versions.values() if v.name == str(ref["name"])), None)
            if found is None:
                return [], f"Version id or name '{_version_label(ref)}' is not valid"
            if found.id not in ids:
                ids.append(found.id)
        return ids, None

    def _version_fields(self, body: dict[str, Any], problems: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name.strip():
                problems["name"] = "You must specify a valid version name"
            elif len(name) > MAX_SUMMARY:
                problems["name"] = "The version name must not be longer than 255 characters."
            else:
                out["name"] = name.strip()
        for key in ("released", "archived"):
            if key in body and body[key] is not None:
                if not isinstance(body[key], bool):
                    problems[key] = f"'{key}' must be true or false."
                else:
                    out[key] = body[key]
        if "description" in body:
            out["description"] = str(body["description"] or "")
        for key, attr in (("releaseDate", "release_date"), ("startDate", "start_date")):
            if body.get(key) is not None:
                try:
                    out[attr] = date.fromisoformat(str(body[key])[:10]).isoformat()
                except ValueError:
                    problems[key] = f"The {key} must be a date in the format yyyy-mm-dd."
        return out

    def create_version(self, actor: User, body: Any) -> Version:
        """createVersion: ``name`` and ``projectId`` (or the deprecated ``project`` key) are required."""
        if not isinstance(body, dict):
            raise errors.bad_request("Can not deserialize the request body.")
        problems: dict[str, str] = {}
        project = None
        ref = body.get("projectId", body.get("project"))
        if ref is not None:
            project = self.project(str(ref))
        if project is None:
            problems["project"] = "Project must be specified to create a version."
        if "name" not in body:
            problems["name"] = "You must specify a valid version name"
        values = self._version_fields(body, problems)
        if project is not None and "name" in values:
            taken = any(v.project_id == project.id and v.name == values["name"] for v in self.versions.values())
            if taken:
                problems["name"] = "A version with this name already exists in this project."
        if problems:
            raise errors.field_errors(problems)
        assert project is not None
        version = Version(id=str(self._next_version_id), project_id=project.id, **values)
        self._next_version_id += 1
        self.versions[version.id] = version
        now = self.clock()
        self.events.append(Event("jira:version_created", None, "", actor.account_id, now, version=version))
        if version.released:
            self.events.append(Event("jira:version_released", None, "", actor.account_id, now, version=version))
        return version

    def update_version(self, actor: User, version: Version, body: Any) -> Version:
        """updateVersion: releasing a released version again is ignored (no second ``version_released``)."""
        if not isinstance(body, dict):
            raise errors.bad_request("Can not deserialize the request body.")
        problems: dict[str, str] = {}
        values = self._version_fields(body, problems)
        name = values.get("name")
        siblings = [v for v in self.versions.values() if v.project_id == version.project_id and v.id != version.id]
        if name and any(v.name == name for v in siblings):
            problems["name"] = "A version with this name already exists in this project."
        if problems:
            raise errors.field_errors(problems)
        was_released = version.released
        changed = False
        for attr, value in values.items():
            if getattr(version, attr) != value:
                setattr(version, attr, value)
                changed = True
        now = self.clock()
        if version.released and not was_released:
            if version.release_date is None:
                version.release_date = datetime.fromtimestamp(now, UTC).date().isoformat()
            name_ = "jira:version_released"
        elif was_released and not version.released:
            name_ = "jira:version_unreleased"
        elif changed:
            name_ = "jira:version_updated"
        else:
            return version
        self.events.append(Event(name_, None, "", actor.account_id, now, version=version))
        return version

    # -- custom fields (admin) -----------------------------------------------------------------------------
    def create_field(self, body: Any) -> FieldDef:
        """createCustomField: ``name``, ``type`` and an optional ``searcherKey`` valid for the type."""
        if not isinstance(body, dict):
            raise errors.bad_request("Can not deserialize the request body.")
        name, type_key = body.get("name"), body.get("type")
        if not isinstance(name, str) or not name.strip():
            raise errors.field_errors({"name": "You must specify a name for the custom field."})
        kind = FIELD_KINDS.get(str(type_key))
        if kind is None:
            raise errors.field_errors({"type": f"The custom field type '{type_key}' is not supported by the sandbox."})
        searcher = body.get("searcherKey")
        if searcher is not None and searcher not in FIELD_SEARCHERS[kind]:
            raise errors.field_errors({"searcherKey": f"The searcher '{searcher}' cannot be used with '{type_key}'."})
        numbers = [int(f.id.removeprefix("customfield_")) for f in self.fields.values() if f.custom]
        number = max([9999, *numbers]) + 1
        fid = f"customfield_{number}"
        schema = {"type": kind, "custom": str(type_key), "customId": number}
        created = FieldDef(fid, name.strip(), True, kind, schema, [f"cf[{number}]", name.strip()])
        created.searchable = searcher is not None
        self.fields[fid] = created
        for project in self.projects.values():  # a field made through the API is on no screen until placed
            project.off_create_screen.add(fid)
            project.off_edit_screen.add(fid)
        return created

    # -- admin webhooks ------------------------------------------------------------------------------------
    def register_webhook(self, actor: User, body: Any) -> AdminWebhook:
        """Register an admin webhook (name, url, events, filters, excludeBody, secret)."""
        if not isinstance(body, dict):
            raise errors.bad_request("Can not deserialize the request body.")
        problems: dict[str, str] = {}
        url = body.get("url")
        if not isinstance(url, str) or not re.match(r"https?://", url):
            problems["url"] = "The webhook URL must be an http(s) URL."
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            problems["name"] = "The webhook name must not be empty."
        events = body.get("events") or []
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            problems["events"] = "Events must be a list of event names."
        filters = body.get("filters") or {}
        jql = filters.get("issue-related-events-section", "") if isinstance(filters, dict) else ""
        hook_secret = body.get("secret") or ""
        if not isinstance(hook_secret, str):
            problems["secret"] = "The secret must be a string."  # noqa: S105 - an error message
        if problems:
            raise errors.field_errors(problems)
        from .jql import parse  # local: the model already imports the node types

        try:
            self.check_query(parse(str(jql or "")), actor)
        except JqlError as exc:
            raise errors.field_errors({"filters": exc.message}) from None
        hook = AdminWebhook(
            id=self._next_webhook_id,
            name=str(name),
            url=str(url),
            events=list(events),
            jql=str(jql or ""),
            exclude_body=bool(body.get("excludeBody", False)),
            enabled=bool(body.get("enabled", True)),
            secret=str(hook_secret),
            last_updated=self.clock(),
            last_updated_user_id=actor.account_id,
        )
        self._next_webhook_id += 1
        self.webhooks[hook.id] = hook
        return hook

    def update_webhook(self, actor: User, hook: AdminWebhook, body: Any) -> AdminWebhook:
        """Update an admin webhook: the body replaces its definition (a new secret when one is given)."""
        fresh = self.register_webhook(actor, body)
        del self.webhooks[fresh.id]
        self._next_webhook_id -= 1
        fresh.id = hook.id
        if not fresh.secret:
            fresh.secret = hook.secret
        self.webhooks[hook.id] = fresh
        return fresh

    def webhook(self, hook_id: str) -> AdminWebhook:
        """An admin webhook by id, else 404."""
        try:
            return self.webhooks[int(hook_id)]
        except (ValueError, KeyError):
            raise errors.not_found(f"Webhook with id '{hook_id}' does not exist.") from None


FIELD_KINDS = {
    "com.atlassian.jira.plugin.system.customfieldtypes:float": "number",
    "com.atlassian.jira.plugin.system.customfieldtypes:datepicker": "date",
    "com.atlassian.jira.plugin.system.customfieldtypes:textfield": "string",
}
"""The custom field types the sandbox creates, by Jira type key, and the value kind each holds."""
FIELD_SEARCHERS = {
    "number": {
        "com.atlassian.jira.plugin.system.customfieldtypes:exactnumber",
        "com.atlassian.jira.plugin.system.customfieldtypes:numberrange",
    },
    "date": {"com.atlassian.jira.plugin.system.customfieldtypes:daterange"},
    "string": {
        "com.atlassian.jira.plugin.system.customfieldtypes:textsearcher",
        "com.atlassian.jira.plugin.system.customfieldtypes:exacttextsearcher",
    },
}

# -- helpers --------------------------------------------------------------------------------------------------

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _same(a: str, b: str) -> bool:
    import hmac

    return bool(a) and hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _plain(value: Value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Func):
        raise JqlError(f"Error in the JQL Query: the sandbox does not answer the function '{value.name}()' here.")
    raise JqlError("The operator does not support the value EMPTY here.")


def _scalar(value: Any) -> str:
    return (
        json.dumps(value)
        if isinstance(value, dict | list)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


def _version_label(ref: Any) -> str:
    if isinstance(ref, dict):
        return str(ref.get("id") or ref.get("name") or "")
    return str(ref)


def _display(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _day_stamp(raw: str) -> float:
    return datetime.combine(date.fromisoformat(str(raw)[:10]), datetime.min.time(), UTC).timestamp()


def _rich_text(value: Any, api: int) -> RichText | Literal[False] | None:
    """A description value for API version ``api`` (None clears it); False when it has the wrong form."""
    if value is None:
        return None
    if api >= 3:
        return RichText(value, "adf") if adf_problem(value) is None else False
    return RichText(value, "wiki") if isinstance(value, str) else False


def _comment_body(value: Any, api: int) -> RichText:
    if value is None or value == "" or (isinstance(value, dict) and not value.get("content")):
        raise errors.field_errors({"comment": errors.COMMENT_EMPTY})
    rich = _rich_text(value, api)
    if not rich:
        raise errors.field_errors({"comment": errors.COMMENT_INVALID})
    return rich


def _labels_problem(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "Labels must be a list of strings."
    for label in value:
        if not label or re.search(r"\s", label):
            return f"The label '{label}' contains spaces which is invalid."
        if len(label) > 255:
            return "The label must not exceed 255 characters."
    return None


def _custom_value(fdef: FieldDef, value: Any) -> tuple[Any, str | None]:
    if value is None:
        return None, None
    if fdef.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, "Operation value must be a number"
        return float(value), None
    if fdef.kind == "date":
        if not isinstance(value, str):
            return None, f"Error parsing date string: {value}"
        try:
            return date.fromisoformat(value).isoformat(), None
        except ValueError:
            return None, f"Error parsing date string: {value}"
    if fdef.kind == "string":
        if not isinstance(value, str):
            return None, errors.MUST_BE_STRING
        if len(value) > 255:
            return None, "The entered text is too long. It exceeds the allowed limit of 255 characters."
        return value, None
    if fdef.kind in ("option", "options"):
        refs = value if fdef.kind == "options" else [value]
        if not isinstance(refs, list):
            return None, f"Specify the value for {fdef.name} in an array"
        chosen: list[dict[str, str]] = []
        for ref in refs:
            option = _option(fdef, ref)
            if option is None:
                wanted = ref.get("value") or ref.get("id") if isinstance(ref, dict) else ref
                return None, f"Option value '{wanted}' is not valid"
            chosen.append(option)
        return (chosen if fdef.kind == "options" else chosen[0]), None
    return None, errors.NOT_ON_SCREEN.format(field=fdef.id)


def _option(fdef: FieldDef, ref: Any) -> dict[str, str] | None:
    """The option a value names (``{"value"}`` or ``{"id"}``), or None."""
    if not isinstance(ref, dict):
        return None
    for option in fdef.options:
        if (ref.get("id") is not None and str(ref["id"]) == option["id"]) or (
            ref.get("value") is not None and str(ref["value"]) == option["value"]
        ):
            return dict(option)
    return None


def _property_problem(key: str, value: Any) -> str | None:
    if not key or len(key) > MAX_PROPERTY_KEY:
        return "The property key must be between 1 and 255 characters."
    if value is None:
        return "The property value must not be empty."
    try:
        encoded = json.dumps(value)
    except (TypeError, ValueError):
        return "The property value must be JSON."
    if len(encoded) > MAX_PROPERTY_CHARS:
        return f"The property value is too long: the limit is {MAX_PROPERTY_CHARS} characters."
    return None


def _remote_link_values(body: dict[str, Any]) -> dict[str, Any]:
    obj = body.get("object")
    problems: dict[str, str] = {}
    if not isinstance(obj, dict):
        problems["object"] = "'object' is required."
    else:
        if not isinstance(obj.get("url"), str) or not obj.get("url"):
            problems["url"] = "'url' is required."
        if not isinstance(obj.get("title"), str) or not obj.get("title"):
            problems["title"] = "'title' is required."
    global_id = body.get("globalId")
    if global_id is not None and (not isinstance(global_id, str) or len(global_id) > MAX_GLOBAL_ID):
        problems["globalId"] = "'globalId' must be a string of at most 255 characters."
    application = body.get("application")
    if application is not None and not isinstance(application, dict):
        problems["application"] = "'application' must be an object."
    relationship = body.get("relationship")
    if relationship is not None and not isinstance(relationship, str):
        problems["relationship"] = "'relationship' must be a string."
    if problems:
        raise errors.field_errors(problems)
    assert isinstance(obj, dict)
    return {
        "global_id": global_id or None,
        "application": application,
        "relationship": relationship,
        "object": dict(obj),
    }
