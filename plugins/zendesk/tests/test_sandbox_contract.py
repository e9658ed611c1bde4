"""The Zendesk emulator keeps the sandbox framework's contract (``cxbridge.testing.SandboxBackendContract``)."""

from __future__ import annotations

import base64

from cxbridge_zendesk.sandbox.backend import ZendeskBackend

from cxbridge.sdk import Backend
from cxbridge.testing import SandboxBackendContract


class TestZendeskSandbox(SandboxBackendContract):
    backend_class = ZendeskBackend
    probe_path = "/api/v2/users/me.json"
    unauthenticated_body = {"error": "Couldn't authenticate you"}
    rate_limit_headers = ("X-Rate-Limit", "X-Rate-Limit-Remaining")
    write_request = ("PUT", "/api/v2/tickets/1.json", {"ticket": {"comment": {"body": "applied", "public": False}}})

    def auth_headers(self, backend: Backend) -> dict[str, str]:
        creds = backend.credentials()
        basic = base64.b64encode(f"{creds['email']}/token:{creds['api_token']}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
