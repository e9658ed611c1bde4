"""Jira's deep checks for ``cxbridge doctor`` (``JiraConnector.diagnose``): what escalations need exists and is usable.

Every call is a documented read (``shared/specs/jira/jira-cloud-platform-v3...json``; Data Center has the same
operations under ``/rest/api/2``):

- ``GET /project/{projectIdOrKey}`` (getProject): the configured project, with its issue types;
- ``GET /issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}`` (getCreateIssueMetaIssueTypeId): the
  fields on the create screen of that project and issue type, which are required and which have a default;
- ``GET /field`` (getFields): the custom fields ``[impact.fields]`` names, and their types;
- ``POST /search/jql`` (Cloud) or ``GET /search`` (DC) for one issue of the project and type, then
  ``GET /issue/{key}/editmeta`` (getEditIssueMeta): whether the impact fields are on the edit screen.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cxbridge.sdk import CxbridgeError, FieldNeed, Finding, Needs

from .connector import JiraConnector, jql_string

FILLED_ALWAYS = ("project", "issuetype", "summary", "description", "labels")
"""The fields every escalation's create sets."""
FILLED_BY_JIRA = ("reporter",)
"""Required fields Jira fills itself when a create leaves them out (the reporter is the caller)."""
NOT_ON_SCREEN = "Field '{field}' cannot be set. It is not on the appropriate screen, or unknown."
"""Jira's words when a create or edit sets a field that is not on the screen (what the escalation would get)."""
SCHEMA_TYPES = {"number": ("number",), "date": ("date", "datetime"), "text": ("string",)}
"""The Jira field schema types that hold each kind of value cxbridge writes."""
SCREENS = "Project settings > Issues > Screens"


class JiraDiagnosis:
    """One run of the checks; each method returns its findings and never raises a vendor error."""

    def __init__(self, connector: JiraConnector, needs: Needs) -> None:
        self.jira = connector
        self.needs = needs
        self.project = connector.default_project or ""
        self.issue_type = connector.default_issue_type
        self.where = f"systems.{connector.name}"

    def run(self) -> list[Finding]:
        """Every check in order; a missing project or issue type skips what depends on it."""
        findings: list[Finding] = []
        project = self.check_project(findings)
        type_id = self.check_issue_type(project, findings) if project is not None else None
        known = self.check_fields(findings)
        if type_id is None:
            findings.append(
                Finding.skipped(
                    f"create screen of {self.project} {self.issue_type}",
                    "not checked: the project or issue type is missing",
                )
            )
            return findings
        self.check_create_screen(type_id, known, findings)
        self.check_edit_screen(known, findings)
        return findings

    # -- project and issue type ----------------------------------------------------------------------------
    def check_project(self, findings: list[Finding]) -> dict[str, Any] | None:
        subject = f"project {self.project}"
        try:
            path = f"{self.jira.api}/project/{self.jira._seg(self.project)}"
            body = self.jira._json(self.jira.http.get(path, op="project.get"))
        except CxbridgeError as exc:
            findings.append(
                Finding.from_error(
                    subject,
                    exc,
                    f"set {self.where}.project to the key of an existing project, or give the integration user the "
                    "Browse projects and Create issues permissions in it",
                )
            )
            return None
        findings.append(Finding.ok(subject, str(body.get("name") or self.project)))
        return body

    def check_issue_type(self, project: dict[str, Any], findings: list[Finding]) -> str | None:
        subject = f"issue type {self.issue_type} in {self.project}"
        types = [t for t in project.get("issueTypes") or [] if isinstance(t, dict)]
        wanted = self.issue_type.lower()
        found = next((t for t in types if str(t.get("name", "")).lower() == wanted), None)
        if found is None or not found.get("id"):
            names = ", ".join(str(t.get("name")) for t in types if not t.get("subtask")) or "none"
            findings.append(
                Finding.failed(
                    subject,
                    f"{self.project} has no issue type {self.issue_type!r} (it has: {names})",
                    f"set {self.where}.issue_type to one of them, or add {self.issue_type} to the project's issue "
                    "type scheme",
                )
            )
            return None
        findings.append(Finding.ok(subject, f"id {found['id']}"))
        return str(found["id"])

    # -- fields ---------------------------------------------------------------------------------------------
    def check_fields(self, findings: list[Finding]) -> set[str]:
        """The impact fields exist and hold the kind of value written; returns the ids that exist."""
        if not self.needs.issue_fields:
            return set()
        try:
            response = self.jira.http.get(f"{self.jira.api}/field", op="field.list")
            listed = response.json()
        except (CxbridgeError, ValueError) as exc:
            for need in self.needs.issue_fields:
                findings.append(Finding.skipped(self.field_subject(need), f"the field list could not be read: {exc}"))
            return set()
        by_id = {str(f.get("id")): f for f in listed if isinstance(f, dict)} if isinstance(listed, list) else {}
        known: set[str] = set()
        for need in self.needs.issue_fields:
            subject = self.field_subject(need)
            field = by_id.get(need.field_id)
            if field is None:
                findings.append(
                    Finding.failed(
                        subject,
                        f"Jira has no field {need.field_id}",
                        f"run 'cxbridge setup --apply' to create it, or set {need.purpose} to the id of an existing "
                        f"{need.kind} field (GET {self.jira.api}/field lists them)",
                    )
                )
                continue
            known.add(need.field_id)
            schema = field.get("schema") if isinstance(field.get("schema"), dict) else {}
            kind = str(schema.get("type") or "") if schema else ""
            if kind not in SCHEMA_TYPES.get(need.kind, (kind,)):
                findings.append(
                    Finding.failed(
                        subject,
                        f"{field.get('name')!r} is a {kind or 'untyped'} field; {need.purpose} writes a {need.kind}",
                        f"set {need.purpose} to a {need.kind} field, or run 'cxbridge setup --apply' to create one",
                    )
                )
                continue
            findings.append(Finding.ok(subject, f"{field.get('name')!r} ({kind})"))
        return known

    @staticmethod
    def field_subject(need: FieldNeed) -> str:
        return f"field {need.field_id} ({need.purpose})"

    def filled(self) -> list[str]:
        """The fields an escalation's create sets: always, the priority when mapped, the impact fields and the
        fields ``[escalation.fields]`` maps."""
        fields = list(FILLED_ALWAYS)
        if self.needs.sets_priority:
            fields.append("priority")
        fields.extend(n.field_id for n in self.needs.issue_fields)
        fields.extend(f for f in self.needs.create_fields if f not in fields)
        return fields

    def create_meta(self, type_id: str) -> list[dict[str, Any]]:
        """Every field of the create screen (``fields`` on Cloud, ``values`` on Data Center), page by page."""
        return self.jira.create_meta_fields(self.project, type_id)

    def check_create_screen(self, type_id: str, known: set[str], findings: list[Finding]) -> None:
        screen = f"create screen of {self.project} {self.issue_type}"
        try:
            meta = self.create_meta(type_id)
        except CxbridgeError as exc:
            findings.append(
                Finding.from_error(
                    screen,
                    exc,
                    f"give the integration user the Create issues permission in {self.project}",
                )
            )
            return
        on_screen = {str(f.get("fieldId") or f.get("key")): f for f in meta}
        filled = self.filled()
        missing = [
            f
            for fid, f in on_screen.items()
            if f.get("required") is True
            and not f.get("hasDefaultValue")
            and fid not in filled
            and fid not in FILLED_BY_JIRA
        ]
        for field in missing:
            fid = str(field.get("fieldId") or field.get("key"))
            findings.append(
                Finding.failed(
                    f"required field {field.get('name')} ({fid}) of {self.project} {self.issue_type}",
                    f"{field.get('name')} is required.",
                    "escalations do not fill it: map it in [escalation.fields], make it optional or give it a "
                    f"default value in the field configuration of {self.project} (Jira settings > Issues > Field "
                    "configurations), or choose another issue_type",
                )
            )
        absent = self.not_on(on_screen, [f for f in filled if f not in ("project", "issuetype")], known)
        for fid in absent:
            findings.append(
                Finding.failed(
                    f"field {fid} on the {screen}",
                    NOT_ON_SCREEN.format(field=fid),
                    f"add it to the create screen of {self.project} for {self.issue_type} ({SCREENS})",
                )
            )
        if not missing and not absent:
            findings.append(Finding.ok(screen, "every required field is filled, every field set is on it"))

    def not_on(self, screen: dict[str, Any], fields: Iterable[str], known: set[str]) -> list[str]:
        """The fields set that the screen lacks (impact fields that do not exist are reported elsewhere)."""
        impact = {n.field_id for n in self.needs.issue_fields}
        return [f for f in fields if f not in screen and (f not in impact or f in known)]

    def check_edit_screen(self, known: set[str], findings: list[Finding]) -> None:
        impact = [n.field_id for n in self.needs.issue_fields if n.field_id in known]
        if not impact:
            return
        screen = f"edit screen of {self.project} {self.issue_type}"
        jql = (
            f"project = {jql_string(self.project)} AND issuetype = {jql_string(self.issue_type)} ORDER BY created DESC"
        )
        try:
            sample = next(
                (raw for raws, _ in self.jira.search_pages(jql, fields=("summary",), max_pages=1) for raw in raws),
                None,
            )
            if sample is None:
                findings.append(
                    Finding.skipped(
                        screen,
                        f"no {self.issue_type} in {self.project} yet to read it from; run doctor again after the first "
                        "escalation",
                    )
                )
                return
            key = str(sample.get("key") or sample.get("id"))
            path = f"{self.jira.api}/issue/{self.jira._seg(key)}/editmeta"
            meta = self.jira._json(self.jira.http.get(path, op="issue.editmeta"))
        except CxbridgeError as exc:
            fix = f"give the integration user the Edit issues permission in {self.project}"
            findings.append(Finding.from_error(screen, exc, fix))
            return
        fields = meta.get("fields")
        if not isinstance(fields, dict):
            fields = {}
        absent = [fid for fid in impact if fid not in fields]
        for fid in absent:
            findings.append(
                Finding.failed(
                    f"field {fid} on the {screen}",
                    NOT_ON_SCREEN.format(field=fid),
                    f"add it to the edit screen of {self.project} for {self.issue_type} ({SCREENS}): the impact "
                    "rollup edits it as tickets join",
                )
            )
        if not absent:
            findings.append(Finding.ok(screen, f"the impact fields are on it (read from {key})"))
