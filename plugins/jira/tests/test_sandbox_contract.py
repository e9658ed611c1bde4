"""The Jira emulator keeps the sandbox framework's contract (``cxbridge.testing.SandboxBackendContract``)."""

from __future__ import annotations

import base64

from cxbridge_jira.sandbox.backend import JiraBackend

from cxbridge.sdk import Backend
from cxbridge.testing import SandboxBackendContract


class TestJiraSandbox(SandboxBackendContract):
    backend_class = JiraBackend
    probe_path = "/rest/api/3/myself"
    unauthenticated_body = {
        "errorMessages": ["You are not authenticated. Authentication required to perform this operation."],
        "errors": {},
    }
    rate_limit_headers = ("X-RateLimit-Limit", "X-RateLimit-Remaining")
    write_request = (
        "POST",
        "/rest/api/3/issue",
        {"fields": {"project": {"key": "ENG"}, "issuetype": {"name": "Bug"}, "summary": "Checkout fails"}},
    )

    def auth_headers(self, backend: Backend) -> dict[str, str]:
        creds = backend.credentials()  # a Cloud site: Basic email:api_token
        basic = base64.b64encode(f"{creds['email']}:{creds['api_token']}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
