"""Jira's own error answers: the ErrorCollection body and the statuses and messages Jira uses with it.

Every REST error from Jira is ``{"errorMessages": [...], "errors": {field: message}}`` (spec schema
``ErrorCollection``). Messages below are the ones Jira Cloud sends for the same situations, where known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cxbridge.sdk import VendorFault

ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."
NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
AUTH_FAILED_TEXT = "Client must be authenticated to access this resource."
SEARCH_REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
UNBOUNDED_JQL = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
NOT_ON_SCREEN = "Field '{field}' cannot be set. It is not on the appropriate screen, or unknown."
MUST_BE_ADF = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
MUST_BE_STRING = "Operation value must be a string"
COMMENT_INVALID = "Comment body is not valid!"
COMMENT_EMPTY = "Comment body can not be empty!"


def error_collection(messages: list[str] | None = None, errors: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ErrorCollection body."""
    return {"errorMessages": list(messages or []), "errors": dict(errors or {})}


class JiraFault(VendorFault):
    """A Jira error answer: ``status`` with an ErrorCollection body."""

    def __init__(
        self,
        status: int,
        messages: list[str] | None = None,
        errors: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, error_collection(messages, errors), headers)


def bad_request(message: str | None = None, **errors: str) -> JiraFault:
    """400 with a general message and/or per-field errors."""
    return JiraFault(400, [message] if message else [], errors)


def field_errors(errors: Mapping[str, str]) -> JiraFault:
    """400 with per-field errors (what issue create/edit validation answers)."""
    return JiraFault(400, [], errors)


def not_found(message: str = ISSUE_NOT_FOUND) -> JiraFault:
    """404 with Jira's message (for an issue: it does not exist or you may not see it)."""
    return JiraFault(404, [message])


def forbidden(message: str) -> JiraFault:
    """403 with a message."""
    return JiraFault(403, [message])


def gone(message: str = SEARCH_REMOVED) -> JiraFault:
    """410: a removed Cloud endpoint."""
    return JiraFault(410, [message])
