"""Jira-shaped JSON for the emulator's records, per API version (2 or 3) and deployment (Cloud or DC).

REST v3 shows rich text as ADF and v2 as wiki markup; Cloud names users by ``accountId`` and Data Center by
``name``/``key``. Every ``self`` link is built from the base URL the client called.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from .models import (
    DEFAULTED_SYSTEM_FIELDS,
    REQUIRED_SYSTEM_FIELDS,
    STATUS_CATEGORIES,
    AdminWebhook,
    Attachment,
    Comment,
    FieldDef,
    History,
    Issue,
    IssueType,
    JiraModel,
    Priority,
    Project,
    RemoteLink,
    Status,
    Transition,
    User,
    Version,
)

# Fields returned for "*navigable" (every field but the comment list).
NON_NAVIGABLE = {"comment"}


def jira_time(ts: float) -> str:
    """Jira's timestamp format: ``2024-05-01T10:15:30.123+0000`` (UTC)."""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


class Renderer:
    """Builds response bodies for one request: its base URL, API version and deployment."""

    def __init__(self, model: JiraModel, base: str, api: int, deployment: str) -> None:
        self.model = model
        self.base = base.rstrip("/")
        self.api = api
        self.deployment = deployment
        self.rest = f"{self.base}/rest/api/{api}"

    @property
    def cloud(self) -> bool:
        """True on Cloud (users by accountId), False on Data Center (users by name/key)."""
        return self.deployment == "cloud"

    # -- people ------------------------------------------------------------------------------------------------
    def avatars(self, seed: str) -> dict[str, str]:
        """Avatar URLs at the four sizes Jira lists."""
        return {f"{n}x{n}": f"{self.base}/secure/useravatar?size={n}&ownerId={quote(seed)}" for n in (16, 24, 32, 48)}

    def user(self, user: User | None) -> dict[str, Any] | None:
        """A user as issues, comments and changelogs show it (``UserDetails``)."""
        if user is None:
            return None
        if self.cloud:
            return {
                "self": f"{self.rest}/user?accountId={quote(user.account_id)}",
                "accountId": user.account_id,
                "emailAddress": user.email,
                "avatarUrls": self.avatars(user.account_id),
                "displayName": user.display_name,
                "active": user.active,
                "timeZone": user.time_zone,
                "accountType": "atlassian",
            }
        return {
            "self": f"{self.rest}/user?username={quote(user.name)}",
            "name": user.name,
            "key": user.key,
            "emailAddress": user.email,
            "avatarUrls": self.avatars(user.key),
            "displayName": user.display_name,
            "active": user.active,
            "timeZone": user.time_zone,
        }

    def myself(self, user: User) -> dict[str, Any]:
        """``GET /myself`` (``User``)."""
        body = self.user(user) or {}
        body.update(
            {
                "locale": "en_US",
                "groups": {"size": 1 if user.admin else 0, "items": []},
                "applicationRoles": {"size": 1, "items": []},
                "expand": "groups,applicationRoles",
            }
        )
        return body

    # -- configuration -----------------------------------------------------------------------------------------
    def category(self, key: str) -> dict[str, Any]:
        """A status category (``StatusCategory``)."""
        cat = STATUS_CATEGORIES[key]
        return {"self": f"{self.rest}/statuscategory/{cat['id']}", **cat}

    def status(self, status: Status) -> dict[str, Any]:
        """A status (``StatusDetails``)."""
        return {
            "self": f"{self.rest}/status/{status.id}",
            "description": status.description,
            "iconUrl": f"{self.base}/images/icons/statuses/generic.png",
            "name": status.name,
            "id": status.id,
            "statusCategory": self.category(status.category),
        }

    def priority(self, priority: Priority) -> dict[str, Any]:
        """A priority as ``GET /priority`` lists it."""
        return {
            "self": f"{self.rest}/priority/{priority.id}",
            "statusColor": priority.status_color,
            "description": priority.description,
            "iconUrl": f"{self.base}/images/icons/priorities/{priority.icon}.svg",
            "name": priority.name,
            "id": priority.id,
            "isDefault": priority.id == self.model.default_priority_id,
        }

    def priority_ref(self, priority: Priority) -> dict[str, Any]:
        """A priority as an issue's field shows it."""
        return {
            "self": f"{self.rest}/priority/{priority.id}",
            "iconUrl": f"{self.base}/images/icons/priorities/{priority.icon}.svg",
            "name": priority.name,
            "id": priority.id,
        }

    def issue_type(self, it: IssueType) -> dict[str, Any]:
        """An issue type (``IssueTypeDetails``)."""
        return {
            "self": f"{self.rest}/issuetype/{it.id}",
            "id": it.id,
            "description": it.description,
            "iconUrl": f"{self.base}/rest/api/2/universal_avatar/view/type/issuetype/avatar/{it.avatar_id}",
            "name": it.name,
            "subtask": it.subtask,
            "avatarId": it.avatar_id,
            "hierarchyLevel": it.hierarchy_level,
        }

    def project_ref(self, project: Project) -> dict[str, Any]:
        """A project as an issue's field shows it."""
        return {
            "self": f"{self.rest}/project/{project.id}",
            "id": project.id,
            "key": project.key,
            "name": project.name,
            "projectTypeKey": "software",
            "simplified": False,
            "avatarUrls": {
                f"{n}x{n}": f"{self.base}/secure/projectavatar?size={n}&pid={project.id}" for n in (16, 24, 32, 48)
            },
        }

    def project(self, project: Project) -> dict[str, Any]:
        """``GET /project/{key}`` (``Project``, with issue types)."""
        body = self.project_ref(project)
        body.update(
            {
                "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
                "description": project.description,
                "lead": self.user(self.model.users.get(project.lead_id)),
                "components": [],
                "issueTypes": [self.issue_type(self.model.issue_types[i]) for i in project.issue_type_ids],
                "assigneeType": "UNASSIGNED",
                "versions": [self.version(v) for v in self.model.versions.values() if v.project_id == project.id],
                "roles": {},
                "style": "classic",
                "isPrivate": False,
                "properties": {},
            }
        )
        return body

    def field(self, fdef: FieldDef) -> dict[str, Any]:
        """``GET /field`` entry (``FieldDetails``)."""
        body: dict[str, Any] = {
            "id": fdef.id,
            "key": fdef.id,
            "name": fdef.name,
            "custom": fdef.custom,
            "orderable": fdef.orderable,
            "navigable": fdef.navigable,
            "searchable": fdef.searchable,
            "clauseNames": list(fdef.clause_names),
        }
        if fdef.schema is not None:
            body["schema"] = dict(fdef.schema)
        return body

    def field_meta(self, fdef: FieldDef, project: Project, *, create: bool) -> dict[str, Any]:
        """A field of a create screen (``FieldCreateMetadata``, with ``fieldId``) or of an edit screen
        (``FieldMetadata``): whether it is required, whether Jira fills it when left out, the operations."""
        required = fdef.id in REQUIRED_SYSTEM_FIELDS or (create and fdef.id in project.required_fields)
        operations = ["add", "set", "remove"] if fdef.id in ("labels", "fixVersions") else ["set"]
        body: dict[str, Any] = {
            "required": required,
            "schema": dict(fdef.schema or {"type": "any"}),
            "name": fdef.name,
            "key": fdef.id,
            "hasDefaultValue": create and fdef.id in DEFAULTED_SYSTEM_FIELDS,
            "operations": operations,
        }
        if create:
            body["fieldId"] = fdef.id
        allowed = self.allowed_values(fdef, project)
        if allowed is not None:
            body["allowedValues"] = allowed
        return body

    def allowed_values(self, fdef: FieldDef, project: Project) -> list[dict[str, Any]] | None:
        """The values a field takes on the project's screens: components, versions, priorities, select options."""
        m = self.model
        if fdef.id == "components":
            return [
                {"self": f"{self.rest}/component/{c.id}", "id": c.id, "name": c.name}
                for c in m.components.values()
                if c.project_id == project.id
            ]
        if fdef.id == "fixVersions":
            return [self.version(v) for v in m.versions.values() if v.project_id == project.id]
        if fdef.id == "priority":
            return [self.priority_ref(p) for p in m.priorities.values()]
        if fdef.options:
            return [{"self": f"{self.rest}/customFieldOption/{o['id']}", **o} for o in fdef.options]
        return None

    def transition(self, t: Transition) -> dict[str, Any]:
        """A transition (``IssueTransition``) with its target status."""
        return {
            "id": t.id,
            "name": t.name,
            "to": self.status(self.model.statuses[t.to_status]),
            "hasScreen": False,
            "isGlobal": t.is_global,
            "isInitial": False,
            "isAvailable": True,
            "isConditional": False,
            "isLooped": False,
        }

    # -- issues ------------------------------------------------------------------------------------------------
    def field_value(self, issue: Issue, name: str) -> Any:
        """One issue field's value in this API version's representation."""
        m = self.model
        if name == "summary":
            return issue.summary
        if name == "description":
            return issue.description.for_api(self.api) if issue.description else None
        if name == "status":
            return self.status(m.statuses[issue.status_id])
        if name == "priority":
            return self.priority_ref(m.priorities[issue.priority_id])
        if name == "labels":
            return list(issue.labels)
        if name == "fixVersions":
            return [self.version(m.versions[v]) for v in issue.fix_version_ids if v in m.versions]
        if name == "issuelinks":
            out = []
            for link in m.issue_links.values():
                if issue.id not in (link.inward_id, link.outward_id):
                    continue
                other_side = "outwardIssue" if link.inward_id == issue.id else "inwardIssue"
                other = m.issues.get(link.outward_id if link.inward_id == issue.id else link.inward_id)
                if other is None:
                    continue
                out.append(
                    {
                        "id": link.id,
                        "self": f"{self.rest}/issueLink/{link.id}",
                        "type": {"self": f"{self.rest}/issueLinkType/{link.type['id']}", **link.type},
                        other_side: {
                            "id": other.id,
                            "key": other.key,
                            "self": f"{self.rest}/issue/{other.id}",
                            "fields": {"summary": other.summary},
                        },
                    }
                )
            return out
        if name == "components":
            return [
                {"self": f"{self.rest}/component/{c}", "id": c, "name": m.components[c].name}
                for c in issue.component_ids
                if c in m.components
            ]
        if name == "issuetype":
            return self.issue_type(m.issue_types[issue.issuetype_id])
        if name == "project":
            return self.project_ref(m.projects[issue.project_id])
        if name == "created":
            return jira_time(issue.created)
        if name == "updated":
            return jira_time(issue.updated)
        if name == "statuscategorychangedate":
            return jira_time(issue.status_category_changed)
        if name == "resolution":
            if issue.resolution is None:
                return None
            return {"self": f"{self.rest}/resolution/{issue.resolution['id']}", **issue.resolution}
        if name == "resolutiondate":
            return jira_time(issue.resolution_date) if issue.resolution_date is not None else None
        if name in {"reporter", "creator", "assignee"}:
            user_id = getattr(issue, f"{name}_id")
            return self.user(m.users.get(user_id)) if user_id else None
        if name == "attachment":
            return [self.attachment(a) for a in issue.attachments]
        if name == "comment":
            comments = [self.comment(issue, c) for c in issue.comments]
            return {
                "comments": comments,
                "self": f"{self.rest}/issue/{issue.id}/comment",
                "maxResults": len(comments),
                "total": len(comments),
                "startAt": 0,
            }
        return issue.custom.get(name)

    def field_names(self) -> list[str]:
        """Every field an issue has, in Jira's order (system fields, then custom fields by id)."""
        return [f.id for f in self.model.fields.values() if f.id != "issuekey"]

    def select_fields(self, requested: list[str] | None, default: str) -> list[str]:
        """Resolve a ``fields`` parameter (``*all``, ``*navigable``, names, ``-name``) into field ids."""
        names = self.field_names()
        items = [p.strip() for part in (requested or [default]) for p in str(part).split(",") if p.strip()]
        chosen: list[str] = []
        if items and all(i.startswith("-") for i in items):
            chosen = [n for n in names if n not in NON_NAVIGABLE]
        excluded: set[str] = set()
        for item in items:
            if item == "*all":
                chosen.extend(names)
            elif item == "*navigable":
                chosen.extend(n for n in names if n not in NON_NAVIGABLE)
            elif item.startswith("-"):
                excluded.add(item[1:])
            else:
                fid = self._field_id(item)
                if fid:
                    chosen.append(fid)
        return [n for n in dict.fromkeys(chosen) if n not in excluded]

    def _field_id(self, item: str) -> str | None:
        if item in {"id", "key"}:
            return item
        if item in self.model.fields:
            return item
        lowered = item.lower()
        for fdef in self.model.fields.values():
            if fdef.name.lower() == lowered or lowered in (c.lower() for c in fdef.clause_names):
                return fdef.id
        return None

    def issue(
        self,
        issue: Issue,
        fields: list[str],
        properties: list[str] | None = None,
        expand: set[str] | None = None,
        *,
        id_only: bool = False,
    ) -> dict[str, Any]:
        """An ``IssueBean`` with the chosen fields (and properties / expansions when asked)."""
        expand = expand or set()
        if id_only:
            body: dict[str, Any] = {"id": issue.id}
            if "key" in fields:
                body["key"] = issue.key
            return body
        body = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": issue.id,
            "self": f"{self.rest}/issue/{issue.id}",
            "key": issue.key,
            "fields": {name: self.field_value(issue, name) for name in fields if name not in {"id", "key"}},
        }
        if properties:
            body["properties"] = self.properties(issue, properties)
        if "names" in expand:
            body["names"] = {n: self.model.fields[n].name for n in body["fields"] if n in self.model.fields}
        if "transitions" in expand:
            body["transitions"] = [self.transition(t) for t in self.model.transitions_for(issue)]
        if "changelog" in expand:
            histories = [self.history(h) for h in issue.history]
            body["changelog"] = {
                "startAt": 0,
                "maxResults": len(histories),
                "total": len(histories),
                "histories": histories,
            }
        return body

    def properties(self, issue: Issue, requested: list[str]) -> dict[str, Any]:
        """The issue properties a ``properties`` parameter asks for (``*all``, keys, ``-key``)."""
        keys = [k.strip() for part in requested for k in part.split(",") if k.strip()]
        chosen = list(issue.properties) if "*all" in keys else [k for k in keys if not k.startswith("-")]
        excluded = {k[1:] for k in keys if k.startswith("-")}
        return {k: issue.properties[k] for k in chosen if k in issue.properties and k not in excluded}

    def history(self, history: History) -> dict[str, Any]:
        """A changelog entry (author, created, items)."""
        return {
            "id": history.id,
            "author": self.user(self.model.users.get(history.author_id)),
            "created": jira_time(history.created),
            "items": [i.as_dict() for i in history.items],
        }

    def comment(self, issue: Issue, comment: Comment) -> dict[str, Any]:
        """A ``Comment`` (body in ADF for v3, wiki text for v2)."""
        body: dict[str, Any] = {
            "self": f"{self.rest}/issue/{issue.id}/comment/{comment.id}",
            "id": comment.id,
            "author": self.user(self.model.users.get(comment.author_id)),
            "body": comment.body.for_api(self.api),
            "updateAuthor": self.user(self.model.users.get(comment.update_author_id)),
            "created": jira_time(comment.created),
            "updated": jira_time(comment.updated),
        }
        if self.cloud:
            body["jsdPublic"] = True
        if comment.visibility:
            body["visibility"] = dict(comment.visibility)
        if comment.properties:
            body["properties"] = [dict(p) for p in comment.properties]
        return body

    def attachment(self, attachment: Attachment) -> dict[str, Any]:
        """An ``Attachment`` as the upload's answer and the issue's ``attachment`` field show it."""
        return {
            "self": f"{self.rest}/attachment/{attachment.id}",
            "id": attachment.id,
            "filename": attachment.filename,
            "author": self.user(self.model.users.get(attachment.author_id)),
            "created": jira_time(attachment.created),
            "size": attachment.size,
            "mimeType": attachment.mime_type,
            "content": f"{self.rest}/attachment/content/{attachment.id}",
        }

    def remote_link(self, issue: Issue, link: RemoteLink) -> dict[str, Any]:
        """A ``RemoteIssueLink``."""
        body: dict[str, Any] = {"id": link.id, "self": f"{self.rest}/issue/{issue.key}/remotelink/{link.id}"}
        if link.global_id is not None:
            body["globalId"] = link.global_id
        if link.application is not None:
            body["application"] = dict(link.application)
        if link.relationship is not None:
            body["relationship"] = link.relationship
        body["object"] = dict(link.object)
        return body

    def version(self, version: Version) -> dict[str, Any]:
        """A project version (``Version``), as ``/version/{id}``, a project's list and ``fixVersions`` show it."""
        body: dict[str, Any] = {
            "self": f"{self.rest}/version/{version.id}",
            "id": version.id,
            "description": version.description,
            "name": version.name,
            "archived": version.archived,
            "released": version.released,
            "projectId": int(version.project_id) if version.project_id.isdigit() else version.project_id,
        }
        if version.release_date:
            body["releaseDate"] = version.release_date
            shown = datetime.fromisoformat(version.release_date)
            body["userReleaseDate"] = f"{shown.day}/{shown:%b}/{shown:%Y}"
            body["overdue"] = not version.released and version.release_date < datetime.now(UTC).date().isoformat()
        if version.start_date:
            body["startDate"] = version.start_date
        return body

    def webhook(self, hook: AdminWebhook) -> dict[str, Any]:
        """An admin webhook as ``/rest/webhooks/1.0/webhook`` shows it (never its secret)."""
        user = self.model.users.get(hook.last_updated_user_id)
        return {
            "self": f"{self.base}/rest/webhooks/1.0/webhook/{hook.id}",
            "name": hook.name,
            "url": hook.url,
            "events": list(hook.events),
            "filters": {"issue-related-events-section": hook.jql},
            "excludeBody": hook.exclude_body,
            "enabled": hook.enabled,
            "lastUpdated": int(hook.last_updated * 1000),
            "lastUpdatedUser": (user.account_id if self.cloud else user.key) if user else None,
            "lastUpdatedDisplayName": user.display_name if user else None,
        }
