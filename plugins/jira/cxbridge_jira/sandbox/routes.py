"""The Jira REST routes the emulator answers: request parsing, the model call, the vendor-shaped answer.

Cloud answers ``/rest/api/2`` (wiki strings) and ``/rest/api/3`` (ADF); Data Center answers only
``/rest/api/2``. Search follows each deployment: Cloud ``/search/jql`` (``nextPageToken``, ``isLast``, no
``total``, bounded JQL only; the old ``/search`` answers 410 as Cloud does since its removal), Data Center
``/rest/api/2/search`` (``startAt``, ``maxResults``, ``total``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from cxbridge.sdk import Backend

from . import errors
from .errors import JiraFault
from .jql import JqlError, Query, parse
from .models import Deployment, Issue, JiraModel, Project, RemoteLink, User
from .render import Renderer, jira_time

API = "/rest/api/<any('2', '3', 'latest'):ver>"
MAX_SEARCH_JQL_ID_ONLY = 5000
MAX_SEARCH_JQL_FIELDS = 100
MAX_SEARCH_DC = 1000
MAX_COMMENTS = 5000

CLOUD_VERSION = ("1001.0.0-SNAPSHOT", [1001, 0, 0], 100295)
DC_VERSION = ("9.12.15", [9, 12, 15], 9120015)


def _rule(path: str, endpoint: str, *methods: str) -> Rule:
    return Rule(path, endpoint=endpoint, methods=list(methods))


def url_map() -> Map:
    """Every route, by endpoint name (a ``route_<endpoint>`` method on the backend)."""
    issue = f"{API}/issue/<issue_key>"
    return Map(
        [
            _rule(f"{API}/serverInfo", "server_info", "GET"),
            _rule(f"{API}/myself", "myself", "GET"),
            _rule(f"{API}/project", "projects", "GET"),
            _rule(f"{API}/project/<project_key>", "project", "GET"),
            _rule(f"{API}/issuetype", "issue_types", "GET"),
            _rule(f"{API}/priority", "priorities", "GET"),
            _rule(f"{API}/priority/<priority_id>", "priority", "GET"),
            _rule(f"{API}/field", "fields", "GET", "POST"),
            _rule(f"{API}/issue", "create_issue", "POST"),
            _rule(f"{API}/issue/createmeta/<project_key>/issuetypes", "create_meta_types", "GET"),
            _rule(f"{API}/issue/createmeta/<project_key>/issuetypes/<type_id>", "create_meta_fields", "GET"),
            _rule(f"{issue}/editmeta", "edit_meta", "GET"),
            _rule(f"{API}/user/search", "user_search", "GET"),
            _rule(f"{API}/issueLink", "issue_link", "POST"),
            _rule(issue, "issue", "GET", "PUT"),
            _rule(f"{issue}/transitions", "transitions", "GET", "POST"),
            _rule(f"{issue}/attachments", "attachments", "POST"),
            _rule(f"{API}/attachment/<attachment_id>", "attachment", "GET", "DELETE"),
            _rule(f"{API}/attachment/content/<attachment_id>", "attachment_content", "GET"),
            _rule(f"{issue}/comment", "comments", "GET", "POST"),
            _rule(f"{issue}/comment/<comment_id>", "comment", "GET", "PUT", "DELETE"),
            _rule(f"{issue}/remotelink", "remote_links", "GET", "POST", "DELETE"),
            _rule(f"{issue}/remotelink/<link_id>", "remote_link", "GET", "PUT", "DELETE"),
            _rule(f"{issue}/properties", "property_keys", "GET"),
            _rule(f"{issue}/properties/<property_key>", "property", "GET", "PUT", "DELETE"),
            _rule(f"{API}/project/<project_key>/versions", "project_versions", "GET"),
            _rule(f"{API}/version", "create_version", "POST"),
            _rule(f"{API}/version/<version_id>", "version", "GET", "PUT"),
            _rule(f"{API}/search/jql", "search_jql", "GET", "POST"),
            _rule(f"{API}/search/approximate-count", "approximate_count", "POST"),
            _rule(f"{API}/search", "search", "GET", "POST"),
            _rule("/rest/applinks/latest/listApplicationlinks", "application_links", "GET"),
            _rule("/rest/webhooks/1.0/webhook", "webhooks", "GET", "POST"),
            _rule("/rest/webhooks/1.0/webhook/<hook_id>", "webhook", "GET", "PUT", "DELETE"),
        ],
        strict_slashes=False,
    )


def _params(request: Request, name: str) -> list[str] | None:
    """A list query parameter, repeated (``?fields=a&fields=b``) and/or comma-separated."""
    values = request.args.getlist(name)
    if not values:
        return None
    return [v.strip() for raw in values for v in raw.split(",") if v.strip()]


def _body_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [str(v) for v in value]
    raise errors.bad_request("Expected a list of strings.")


def _int(value: Any, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.bad_request(f"The value '{value}' is not a valid number for '{name}'.") from None


class JiraRoutes(Backend):
    """Route handlers; ``JiraBackend`` supplies the state (``model``), the deployment and the caller."""

    model: JiraModel
    deployment: Deployment
    actor: User | None

    # -- helpers -------------------------------------------------------------------------------------------
    def url_map(self) -> Map:
        """The emulator's routes."""
        return url_map()

    def view(self, request: Request, ver: str) -> Renderer:
        """The renderer for this request; Data Center has no REST v3."""
        api = 2 if ver == "latest" else int(ver)
        if api == 3 and self.deployment == "datacenter":
            raise JiraFault(404, [f"null for uri: {request.base_url}"])
        return Renderer(self.model, request.host_url, api, self.deployment)

    def caller(self) -> User:
        """The authenticated user, else 401."""
        if self.actor is None:
            raise JiraFault(401, [errors.NOT_AUTHENTICATED])
        return self.actor

    @staticmethod
    def body(request: Request) -> Any:
        """The request's JSON body, or Jira's 400 for malformed JSON."""
        try:
            return Backend.read_json(request)
        except ValueError:
            raise errors.bad_request("Unexpected character in the request body: it is not valid JSON.") from None

    # -- site -----------------------------------------------------------------------------------------------
    def route_server_info(self, request: Request, ver: str) -> Response:
        """getServerInfo: version, deploymentType and the base URL the client called."""
        self.view(request, ver)
        version, numbers, build = CLOUD_VERSION if self.deployment == "cloud" else DC_VERSION
        return self.json(
            {
                "baseUrl": request.host_url.rstrip("/"),
                "version": version,
                "versionNumbers": numbers,
                "deploymentType": "Cloud" if self.deployment == "cloud" else "Server",
                "buildNumber": build,
                "buildDate": "2025-12-01T00:00:00.000+0000",
                "serverTime": jira_time(self.clock()),
                "scmInfo": "0000000000000000000000000000000000000000",
                "serverTitle": "cxbridge sandbox",
            }
        )

    def route_myself(self, request: Request, ver: str) -> Response:
        """getCurrentUser."""
        return self.json(self.view(request, ver).myself(self.caller()))

    def route_projects(self, request: Request, ver: str) -> Response:
        """getAllProjects (with issue types)."""
        view = self.view(request, ver)
        return self.json([view.project(p) for p in self.model.projects.values()])

    def route_project(self, request: Request, ver: str, project_key: str) -> Response:
        """getProject by key or id (with issue types)."""
        view = self.view(request, ver)
        project = self.model.project(project_key)
        if project is None:
            raise errors.not_found(f"No project could be found with key '{project_key}'.")
        return self.json(view.project(project))

    def route_issue_types(self, request: Request, ver: str) -> Response:
        """getIssueAllTypes."""
        view = self.view(request, ver)
        return self.json([view.issue_type(t) for t in self.model.issue_types.values()])

    def route_issue_link(self, request: Request, ver: str) -> Response:
        """linkIssues: 201 with an empty body."""
        self.view(request, ver)
        self.caller()
        self.model.link_issues(self.body(request))
        return Response(status=201)

    def route_user_search(self, request: Request, ver: str) -> Response:
        """findUsers: active users whose email or display name starts with ``query`` (a list, no envelope)."""
        view = self.view(request, ver)
        self.caller()
        query = request.args.get("query") or request.args.get("username") or ""
        users = self.model.users_matching(query)
        start = max(0, _int(request.args.get("startAt"), 0, "startAt"))
        size = min(1000, max(1, _int(request.args.get("maxResults"), 50, "maxResults")))
        return self.json([view.user(u) for u in users[start : start + size]])

    def route_priorities(self, request: Request, ver: str) -> Response:
        """getPriorities."""
        view = self.view(request, ver)
        return self.json([view.priority(p) for p in self.model.priorities.values()])

    def route_priority(self, request: Request, ver: str, priority_id: str) -> Response:
        """getPriority."""
        view = self.view(request, ver)
        priority = self.model.priorities.get(priority_id)
        if priority is None:
            raise errors.not_found(f"Cannot find priority with id '{priority_id}'.")
        return self.json(view.priority(priority))

    def route_fields(self, request: Request, ver: str) -> Response:
        """getFields: system and custom fields; POST createCustomField (administrators only)."""
        view = self.view(request, ver)
        if request.method == "POST":
            if not self.caller().admin:
                raise errors.forbidden("Only Jira administrators can create custom fields.")
            return self.json(view.field(self.model.create_field(self.body(request))), 201)
        return self.json([view.field(f) for f in self.model.fields.values()])

    # -- issues ---------------------------------------------------------------------------------------------
    def route_create_issue(self, request: Request, ver: str) -> Response:
        """createIssue: 201 CreatedIssue, or 400 ErrorCollection naming the fields."""
        view = self.view(request, ver)
        actor = self.caller()
        body = self.body(request)
        issue = self.model.create_issue(actor, body, view.api, self.deployment)
        if isinstance(body, dict) and isinstance(body.get("transition"), dict):
            self.model.do_transition(actor, issue, {"transition": body["transition"]}, view.api, self.deployment)
        return self.json({"id": issue.id, "key": issue.key, "self": f"{view.rest}/issue/{issue.id}"}, 201)

    def _meta_project(self, project_key: str) -> Project:
        self.caller()
        project = self.model.project(project_key)
        if project is None:
            raise errors.not_found(f"No project could be found with key '{project_key}'.")
        return project

    @staticmethod
    def _page(request: Request, items: list[Any], key: str) -> dict[str, Any]:
        """One offset page (``startAt``, ``maxResults`` up to 200) of ``items`` under ``key``."""
        start = max(0, _int(request.args.get("startAt"), 0, "startAt"))
        size = min(200, max(1, _int(request.args.get("maxResults"), 50, "maxResults")))
        return {key: items[start : start + size], "maxResults": size, "startAt": start, "total": len(items)}

    def route_create_meta_types(self, request: Request, ver: str, project_key: str) -> Response:
        """getCreateIssueMetaIssueTypes: the issue types a create in the project may use (a page)."""
        view = self.view(request, ver)
        project = self._meta_project(project_key)
        types = [view.issue_type(self.model.issue_types[i]) for i in project.issue_type_ids]
        return self.json(self._page(request, types, "issueTypes"))

    def route_create_meta_fields(self, request: Request, ver: str, project_key: str, type_id: str) -> Response:
        """getCreateIssueMetaIssueTypeId: the fields of the create screen for the project and issue type."""
        view = self.view(request, ver)
        project = self._meta_project(project_key)
        if type_id not in project.issue_type_ids:
            raise errors.not_found(f"Issue type with id '{type_id}' does not exist in project '{project.key}'.")
        fields = [view.field_meta(f, project, create=True) for f in self.model.screen_fields(project, create=True)]
        return self.json(self._page(request, fields, "fields" if self.deployment == "cloud" else "values"))

    def route_edit_meta(self, request: Request, ver: str, issue_key: str) -> Response:
        """getEditIssueMeta: the fields of the issue's edit screen, by id."""
        view = self.view(request, ver)
        self.caller()
        issue = self.model.issue(issue_key)
        project = self.model.projects[issue.project_id]
        screen = self.model.screen_fields(project, create=False)
        return self.json({"fields": {f.id: view.field_meta(f, project, create=False) for f in screen}})

    def route_issue(self, request: Request, ver: str, issue_key: str) -> Response:
        """getIssue (fields, properties, expand) and editIssue (204, or 200 with returnIssue)."""
        view = self.view(request, ver)
        actor = self.caller()
        issue = self.model.issue(issue_key)
        if request.method == "PUT":
            self.model.edit_issue(actor, issue, self.body(request), view.api, self.deployment)
            if request.args.get("returnIssue", "").lower() == "true":
                return self.json(self._issue_body(view, issue, request))
            return Response(status=204)
        return self.json(self._issue_body(view, issue, request))

    def _issue_body(self, view: Renderer, issue: Issue, request: Request) -> dict[str, Any]:
        fields = view.select_fields(_params(request, "fields"), "*all")
        expand = set(_params(request, "expand") or [])
        return view.issue(issue, fields, _params(request, "properties"), expand)

    def route_transitions(self, request: Request, ver: str, issue_key: str) -> Response:
        """getTransitions and doTransition (204)."""
        view = self.view(request, ver)
        actor = self.caller()
        issue = self.model.issue(issue_key)
        if request.method == "POST":
            self.model.do_transition(actor, issue, self.body(request), view.api, self.deployment)
            return Response(status=204)
        available = self.model.transitions_for(issue)
        wanted = request.args.get("transitionId")
        if wanted:
            available = [t for t in available if t.id == wanted]
        return self.json({"expand": "transitions", "transitions": [view.transition(t) for t in available]})

    # -- attachments ----------------------------------------------------------------------------------------
    def route_attachments(self, request: Request, ver: str, issue_key: str) -> Response:
        """addAttachment: multipart/form-data, every part named ``file``; 200 with the new attachments.

        Without ``X-Atlassian-Token: no-check`` Jira blocks the request (XSRF check, 403)."""
        view = self.view(request, ver)
        actor = self.caller()
        if request.headers.get("X-Atlassian-Token", "").lower() != "no-check":
            raise errors.forbidden("XSRF check failed")
        issue = self.model.issue(issue_key)
        if request.mimetype != "multipart/form-data":
            raise errors.JiraFault(415, ["The request must be multipart/form-data."])
        files = request.files.getlist("file")
        try:
            if not files:
                raise errors.bad_request("No files were attached: the form field must be named 'file'.")
            added = [
                self.model.add_attachment(
                    actor, issue, f.filename or "attachment", f.mimetype or "application/octet-stream", f.read()
                )
                for f in files
            ]
        finally:
            for f in request.files.values():
                f.close()
        return self.json([view.attachment(a) for a in added])

    def route_attachment(self, request: Request, ver: str, attachment_id: str) -> Response:
        """getAttachment (and removeAttachment, 204)."""
        view = self.view(request, ver)
        self.caller()
        issue, found = self.model.attachment(attachment_id)
        if request.method == "DELETE":
            issue.attachments.remove(found)
            return Response(status=204)
        return self.json({**view.attachment(found), "id": int(found.id)})  # AttachmentMetadata: an integer id

    def route_attachment_content(self, request: Request, ver: str, attachment_id: str) -> Response:
        """getAttachmentContent: the file's bytes."""
        self.caller()
        _, found = self.model.attachment(attachment_id)
        return Response(found.content, 200, content_type=found.mime_type)

    # -- comments -------------------------------------------------------------------------------------------
    def route_comments(self, request: Request, ver: str, issue_key: str) -> Response:
        """getComments (PageOfComments, offset paging) and addComment (201)."""
        view = self.view(request, ver)
        actor = self.caller()
        issue = self.model.issue(issue_key)
        if request.method == "POST":
            comment = self.model.add_comment(actor, issue, self.body(request), view.api)
            return self.json(view.comment(issue, comment), 201)
        start = max(0, _int(request.args.get("startAt"), 0, "startAt"))
        size = min(max(1, _int(request.args.get("maxResults"), 100, "maxResults")), MAX_COMMENTS)
        order = request.args.get("orderBy")
        if order not in (None, "created", "+created", "-created"):
            raise errors.bad_request(f"The orderBy value '{order}' is not valid: use created or -created.")
        comments = sorted(issue.comments, key=lambda c: (c.created, int(c.id)), reverse=order == "-created")
        page = comments[start : start + size]
        return self.json(
            {
                "startAt": start,
                "maxResults": size,
                "total": len(comments),
                "comments": [view.comment(issue, c) for c in page],
            }
        )

    def route_comment(self, request: Request, ver: str, issue_key: str, comment_id: str) -> Response:
        """getComment, updateComment (edit in place) and deleteComment."""
        view = self.view(request, ver)
        actor = self.caller()
        issue = self.model.issue(issue_key)
        comment = self.model.comment(issue, comment_id)
        if request.method == "PUT":
            self.model.update_comment(actor, issue, comment, self.body(request), view.api)
        elif request.method == "DELETE":
            self.model.delete_comment(actor, issue, comment)
            return Response(status=204)
        return self.json(view.comment(issue, comment))

    # -- remote links ---------------------------------------------------------------------------------------
    def route_remote_links(self, request: Request, ver: str, issue_key: str) -> Response:
        """getRemoteIssueLinks (all, or one by globalId), createOrUpdateRemoteIssueLink (201 new, 200 same
        globalId) and deleteRemoteIssueLinkByGlobalId."""
        view = self.view(request, ver)
        self.caller()
        issue = self.model.issue(issue_key)
        global_id = request.args.get("globalId")
        if request.method == "POST":
            link, created = self.model.upsert_remote_link(issue, self.body(request))
            return self.json({"id": link.id, "self": view.remote_link(issue, link)["self"]}, 201 if created else 200)
        if request.method == "DELETE":
            if not global_id:
                raise errors.bad_request("The globalId query parameter is required.")
            issue.remote_links.remove(self._link_by_global_id(issue, global_id))
            return Response(status=204)
        if global_id is not None:
            return self.json(view.remote_link(issue, self._link_by_global_id(issue, global_id)))
        return self.json([view.remote_link(issue, r) for r in issue.remote_links])

    @staticmethod
    def _link_by_global_id(issue: Issue, global_id: str) -> RemoteLink:
        found = next((r for r in issue.remote_links if r.global_id == global_id), None)
        if found is None:
            raise errors.not_found(f"No remote link with globalId '{global_id}' exists on this issue.")
        return found

    def route_remote_link(self, request: Request, ver: str, issue_key: str, link_id: str) -> Response:
        """getRemoteIssueLinkById, updateRemoteIssueLink (204), deleteRemoteIssueLinkById."""
        view = self.view(request, ver)
        self.caller()
        issue = self.model.issue(issue_key)
        link = self.model.remote_link(issue, link_id)
        if request.method == "PUT":
            self.model.replace_remote_link(issue, link, self.body(request))
            return Response(status=204)
        if request.method == "DELETE":
            issue.remote_links.remove(link)
            return Response(status=204)
        return self.json(view.remote_link(issue, link))

    # -- properties -----------------------------------------------------------------------------------------
    def route_property_keys(self, request: Request, ver: str, issue_key: str) -> Response:
        """getIssuePropertyKeys."""
        view = self.view(request, ver)
        self.caller()
        issue = self.model.issue(issue_key)
        return self.json(
            {"keys": [{"self": f"{view.rest}/issue/{issue.id}/properties/{k}", "key": k} for k in issue.properties]}
        )

    def route_property(self, request: Request, ver: str, issue_key: str, property_key: str) -> Response:
        """setIssueProperty (201 created, 200 replaced), getIssueProperty, deleteIssueProperty."""
        self.view(request, ver)
        self.caller()
        issue = self.model.issue(issue_key)
        if request.method == "PUT":
            created = self.model.set_property(issue, property_key, self.body(request))
            return Response(status=201 if created else 200)
        if property_key not in issue.properties:
            raise errors.not_found(f"The property with key '{property_key}' does not exist.")
        if request.method == "DELETE":
            del issue.properties[property_key]
            return Response(status=204)
        return self.json({"key": property_key, "value": issue.properties[property_key]})

    # -- search ---------------------------------------------------------------------------------------------
    def _query(self, jql: Any, actor: User) -> Query:
        if jql is not None and not isinstance(jql, str):
            raise errors.bad_request("The JQL query must be a string.")
        try:
            query = parse(jql or "")
            self.model.check_query(query, actor)
        except JqlError as exc:
            raise errors.bad_request(exc.message) from None
        return query

    def route_search_jql(self, request: Request, ver: str) -> Response:
        """Cloud searchAndReconsileIssuesUsingJql (GET and POST): token paging, no total."""
        if self.deployment != "cloud":
            raise JiraFault(404, [f"null for uri: {request.base_url}"])
        view = self.view(request, ver)
        actor = self.caller()
        if request.method == "POST":
            posted = self.body(request) or {}
            if not isinstance(posted, dict):
                raise errors.bad_request("Can not deserialize the request body.")
            jql, token = posted.get("jql"), posted.get("nextPageToken")
            fields, properties = _body_list(posted.get("fields")), _body_list(posted.get("properties"))
            expand, max_results = _body_list(posted.get("expand")), posted.get("maxResults")
            reconcile = posted.get("reconcileIssues") or []
        else:
            jql, token = request.args.get("jql"), request.args.get("nextPageToken")
            fields, properties = _params(request, "fields"), _params(request, "properties")
            expand, max_results = _params(request, "expand"), request.args.get("maxResults")
            reconcile = _params(request, "reconcileIssues") or []
        if len(reconcile) > 50:
            raise errors.bad_request("The reconcileIssues list can hold at most 50 issue ids.")
        query = self._query(jql, actor)
        if not query.bounded:
            raise errors.bad_request(errors.UNBOUNDED_JQL)
        if properties and len(properties) > 5:
            raise errors.bad_request("A maximum of 5 issue property keys can be specified.")
        selected = view.select_fields(fields, "id")
        id_only = set(selected) <= {"id", "key"}
        cap = MAX_SEARCH_JQL_ID_ONLY if id_only else MAX_SEARCH_JQL_FIELDS
        size = min(max(1, _int(max_results, 50, "maxResults")), cap)
        digest = hashlib.sha256((jql or "").encode("utf-8")).hexdigest()[:12]
        start = _read_token(token, digest) if token else 0
        issues = self.model.search(query, actor)
        page = issues[start : start + size]
        wanted_expand = set(expand or [])
        body: dict[str, Any] = {
            "issues": [view.issue(i, selected, properties, wanted_expand, id_only=id_only) for i in page],
        }
        if start + size < len(issues):
            body["nextPageToken"] = _make_token(start + size, digest)
        body["isLast"] = start + size >= len(issues)
        if "names" in wanted_expand:
            body["names"] = {n: self.model.fields[n].name for n in selected if n in self.model.fields}
        return self.json(body)

    def route_approximate_count(self, request: Request, ver: str) -> Response:
        """Cloud countIssues: how many issues a bounded query matches."""
        if self.deployment != "cloud":
            raise JiraFault(404, [f"null for uri: {request.base_url}"])
        self.view(request, ver)
        actor = self.caller()
        body = self.body(request) or {}
        query = self._query(body.get("jql") if isinstance(body, dict) else None, actor)
        if not query.bounded:
            raise errors.bad_request(errors.UNBOUNDED_JQL)
        return self.json({"count": len(self.model.search(query, actor))})

    def route_search(self, request: Request, ver: str) -> Response:
        """Data Center search (startAt, maxResults, total); 410 on Cloud, where it was removed."""
        if self.deployment == "cloud":
            raise errors.gone()
        view = self.view(request, ver)
        actor = self.caller()
        if request.method == "POST":
            posted = self.body(request) or {}
            if not isinstance(posted, dict):
                raise errors.bad_request("Can not deserialize the request body.")
            jql, start_raw, size_raw = posted.get("jql"), posted.get("startAt"), posted.get("maxResults")
            fields, properties = _body_list(posted.get("fields")), _body_list(posted.get("properties"))
            expand = _body_list(posted.get("expand"))
        else:
            jql, start_raw, size_raw = (
                request.args.get("jql"),
                request.args.get("startAt"),
                request.args.get("maxResults"),
            )
            fields, properties = _params(request, "fields"), _params(request, "properties")
            expand = _params(request, "expand")
        query = self._query(jql, actor)
        start = max(0, _int(start_raw, 0, "startAt"))
        size = min(max(0, _int(size_raw, 50, "maxResults")), MAX_SEARCH_DC)
        selected = view.select_fields(fields, "*navigable")
        issues = self.model.search(query, actor)
        page = issues[start : start + size]
        wanted_expand = set(expand or [])
        return self.json(
            {
                "expand": "schema,names",
                "startAt": start,
                "maxResults": size,
                "total": len(issues),
                "issues": [view.issue(i, selected, properties, wanted_expand) for i in page],
            }
        )

    # -- versions -------------------------------------------------------------------------------------------
    def route_project_versions(self, request: Request, ver: str, project_key: str) -> Response:
        """getProjectVersions: every version of the project, not paginated."""
        view = self.view(request, ver)
        self.caller()
        project = self.model.project(project_key)
        if project is None:
            raise errors.not_found(f"No project could be found with key '{project_key}'.")
        return self.json([view.version(v) for v in self.model.versions.values() if v.project_id == project.id])

    def route_create_version(self, request: Request, ver: str) -> Response:
        """createVersion (201)."""
        view = self.view(request, ver)
        version = self.model.create_version(self.caller(), self.body(request))
        return self.json(view.version(version), 201)

    def route_version(self, request: Request, ver: str, version_id: str) -> Response:
        """getVersion and updateVersion (200 with the version); ``released: true`` releases it."""
        view = self.view(request, ver)
        actor = self.caller()
        version = self.model.version(version_id)
        if request.method == "PUT":
            self.model.update_version(actor, version, self.body(request))
        return self.json(view.version(version))

    # -- integration plumbing -------------------------------------------------------------------------------
    def route_application_links(self, request: Request) -> Response:
        """The application links pycontribs lists before adding a remote link."""
        self.caller()
        return self.json({"list": []})

    def route_webhooks(self, request: Request) -> Response:
        """List or register admin webhooks (administrators only)."""
        view = Renderer(self.model, request.host_url, 2, self.deployment)
        actor = self.caller()
        if not actor.admin:
            raise errors.forbidden("You must be a Jira administrator to manage webhooks.")
        if request.method == "POST":
            hook = self.model.register_webhook(actor, self.body(request))
            return self.json(view.webhook(hook), 201)
        return self.json([view.webhook(h) for h in self.model.webhooks.values()])

    def route_webhook(self, request: Request, hook_id: str) -> Response:
        """Show or delete one admin webhook (administrators only)."""
        view = Renderer(self.model, request.host_url, 2, self.deployment)
        actor = self.caller()
        if not actor.admin:
            raise errors.forbidden("You must be a Jira administrator to manage webhooks.")
        hook = self.model.webhook(hook_id)
        if request.method == "DELETE":
            del self.model.webhooks[hook.id]
            return Response(status=204)
        if request.method == "PUT":
            hook = self.model.update_webhook(actor, hook, self.body(request))
        return self.json(view.webhook(hook))


def _make_token(offset: int, digest: str) -> str:
    raw = json.dumps({"o": offset, "q": digest}, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _read_token(token: Any, digest: str) -> int:
    try:
        text = str(token)
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if data["q"] != digest:
            raise ValueError("the token belongs to another query")
        return max(0, int(data["o"]))
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request("The provided next page token is invalid or expired.") from None
