"""What a fresh sandbox Jira site holds, and the named data sets loaded on top of it.

A fresh site (``new_site``) has the integration user (a site admin whose credentials the sandbox config
uses), the default priorities, the To Do -> In Progress -> Done workflow and the system fields. ``demo`` adds
the Engineering project (ENG) with Bug and Task, the customer-impact custom fields and Eve Engineer, whose
credentials let tests and the demo act as the engineer.
"""

from __future__ import annotations

import uuid

from .models import FieldDef, IssueType, JiraModel, Priority, Project, Status, Transition, User

INTEGRATION_EMAIL = "cxbridge@cxbridge.example"
ENGINEER_EMAIL = "eve@cxbridge.example"
DEFAULT_PROJECT = "ENG"
DEFAULT_ISSUE_TYPE = "Bug"

CUSTOM_FIELD_TYPES = {
    "number": ({"type": "number", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float"}),
    "date": ({"type": "date", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:datepicker"}),
    "string": ({"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textfield"}),
    "option": ({"type": "option", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:select"}),
    "options": (
        {"type": "array", "items": "option", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:multiselect"}
    ),
}
DEMO_COMPONENTS = ("Backend", "Frontend", "Exports")
"""The Engineering project's components."""
SEVERITY_FIELD = (10107, "Customer severity", ("Sev 1", "Sev 2", "Sev 3"))
"""A single-select custom field (id number, name, options) an admin may make required on the Bug screen."""

# The customer-impact fields the impact rollup writes (ids as a Jira Cloud site would number them).
IMPACT_FIELDS: list[tuple[int, str, str]] = [
    (10100, "ARR at stake", "number"),
    (10101, "Customers", "number"),
    (10102, "Tickets", "number"),
    (10103, "Soonest renewal", "date"),
    (10104, "Highest tier", "string"),
    (10105, "Oldest open ticket", "date"),
    (10106, "Highest tier rank", "number"),
]


def account_id(email: str) -> str:
    """A Cloud-style account id, stable for an email address."""
    return "712020:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{email}"))


def make_user(email: str, display_name: str, name: str, key_number: int, *, admin: bool = False) -> User:
    """A user with deterministic sandbox credentials (API token for Cloud, PAT for Data Center)."""
    return User(
        account_id=account_id(email),
        name=name,
        key=f"JIRAUSER{key_number}",
        email=email,
        display_name=display_name,
        api_token=f"sandbox-jira-api-token-{name}",
        personal_access_token=f"sandbox-jira-pat-{name}",
        admin=admin,
    )


def new_site(model: JiraModel) -> None:
    """Fill an empty model with what every new Jira site has."""
    integration = make_user(INTEGRATION_EMAIL, "cxbridge integration", "cxbridge", 10000, admin=True)
    model.users[integration.account_id] = integration
    for status in (
        Status("10000", "To Do", "The work has not started.", "new"),
        Status("10001", "In Progress", "The work is being done.", "indeterminate"),
        Status("10002", "Done", "The work is complete.", "done"),
    ):
        model.statuses[status.id] = status
    model.transitions = [
        Transition("11", "To Do", "10000"),
        Transition("21", "In Progress", "10001"),
        Transition("31", "Done", "10002"),
        # the workflow's own way back from Done (not global): what a reopen decision takes
        Transition("41", "Reopen", "10000", from_statuses=("10002",)),
    ]
    for priority in (
        Priority("1", "Highest", "This problem will block progress.", "#d04437", "highest"),
        Priority("2", "High", "Serious problem that could block progress.", "#f15C75", "high"),
        Priority("3", "Medium", "Has the potential to affect progress.", "#f79232", "medium"),
        Priority("4", "Low", "Minor problem or easily worked around.", "#707070", "low"),
        Priority("5", "Lowest", "Trivial problem with little or no impact on progress.", "#999999", "lowest"),
    ):
        model.priorities[priority.id] = priority
    model.default_priority_id = "3"

    def system(
        fid: str,
        name: str,
        schema: dict[str, str] | None,
        clauses: list[str],
        *,
        orderable: bool = True,
        navigable: bool = True,
    ) -> None:
        model.fields[fid] = FieldDef(
            fid, name, False, "system", schema, clauses, orderable=orderable, navigable=navigable
        )

    system("issuekey", "Key", None, ["id", "issue", "issuekey", "key"], orderable=False)
    system("summary", "Summary", {"type": "string", "system": "summary"}, ["summary"])
    system("description", "Description", {"type": "string", "system": "description"}, ["description"])
    system("issuetype", "Issue Type", {"type": "issuetype", "system": "issuetype"}, ["issuetype", "type"])
    system("project", "Project", {"type": "project", "system": "project"}, ["project"])
    system("status", "Status", {"type": "status", "system": "status"}, ["status"], orderable=False)
    system("priority", "Priority", {"type": "priority", "system": "priority"}, ["priority"])
    system("labels", "Labels", {"type": "array", "items": "string", "system": "labels"}, ["labels"])
    system(
        "fixVersions", "Fix versions", {"type": "array", "items": "version", "system": "fixVersions"}, ["fixVersion"]
    )
    system("components", "Component/s", {"type": "array", "items": "component", "system": "components"}, ["component"])
    system(
        "issuelinks", "Linked Issues", {"type": "array", "items": "issuelinks", "system": "issuelinks"}, ["issueLink"]
    )
    system("assignee", "Assignee", {"type": "user", "system": "assignee"}, ["assignee"])
    system("reporter", "Reporter", {"type": "user", "system": "reporter"}, ["reporter"])
    system("creator", "Creator", {"type": "user", "system": "creator"}, ["creator"], orderable=False)
    system("created", "Created", {"type": "datetime", "system": "created"}, ["created", "createdDate"], orderable=False)
    system("updated", "Updated", {"type": "datetime", "system": "updated"}, ["updated", "updatedDate"], orderable=False)
    system("resolution", "Resolution", {"type": "resolution", "system": "resolution"}, ["resolution"])
    system(
        "resolutiondate",
        "Resolved",
        {"type": "datetime", "system": "resolutiondate"},
        ["resolutiondate", "resolved"],
        orderable=False,
    )
    system(
        "statuscategorychangedate",
        "Status Category Changed",
        {"type": "datetime", "system": "statuscategorychangedate"},
        ["statusCategoryChangedDate"],
        orderable=False,
    )
    system(
        "attachment", "Attachment", {"type": "array", "items": "attachment", "system": "attachment"}, ["attachments"]
    )
    system("comment", "Comment", {"type": "comments-page", "system": "comment"}, ["comment"], navigable=False)


def _issue_types(model: JiraModel) -> None:
    for it in (
        IssueType("10001", "Task", "A small, distinct piece of work.", avatar_id=10318),
        IssueType("10002", "Bug", "A problem or error.", avatar_id=10303),
    ):
        model.issue_types.setdefault(it.id, it)


def seed_demo(model: JiraModel) -> None:
    """The demo data set: project ENG (Bug, Task), the impact custom fields, and Eve Engineer."""
    eve = make_user(ENGINEER_EMAIL, "Eve Engineer", "eve", 10001)
    model.users.setdefault(eve.account_id, eve)
    _issue_types(model)
    if model.project(DEFAULT_PROJECT) is None:
        project = Project(
            "10000",
            DEFAULT_PROJECT,
            "Engineering",
            "Where engineering tracks escalated problems.",
            eve.account_id,
            ["10001", "10002"],
        )
        model.projects[project.id] = project
    for number, name, kind in IMPACT_FIELDS:
        fid = f"customfield_{number}"
        schema = {**CUSTOM_FIELD_TYPES[kind], "customId": number}
        model.fields.setdefault(fid, FieldDef(fid, name, True, kind, schema, [f"cf[{number}]", name]))
    for component in DEMO_COMPONENTS:
        model.add_component(DEFAULT_PROJECT, component)
    number, name, options = SEVERITY_FIELD
    fid = f"customfield_{number}"
    schema = {**CUSTOM_FIELD_TYPES["option"], "customId": number}
    model.fields.setdefault(
        fid,
        FieldDef(
            fid,
            name,
            True,
            "option",
            schema,
            [f"cf[{number}]", name],
            options=[{"id": str(number * 10 + n), "value": v} for n, v in enumerate(options)],
        ),
    )


def seed_empty(model: JiraModel) -> None:
    """A site as its admin has it before ``cxbridge setup``: the integration user and the Engineering project
    (ENG) with Bug and Task, and nothing cxbridge provisions (no custom fields, no webhooks)."""
    _issue_types(model)
    integration = next(u for u in model.users.values() if u.email == INTEGRATION_EMAIL)
    if model.project(DEFAULT_PROJECT) is None:
        model.projects["10000"] = Project(
            "10000",
            DEFAULT_PROJECT,
            "Engineering",
            "Where engineering tracks escalated problems.",
            integration.account_id,
            ["10001", "10002"],
        )


SEEDS = {"empty": seed_empty, "demo": seed_demo}
