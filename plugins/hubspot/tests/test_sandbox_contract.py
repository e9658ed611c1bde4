"""The HubSpot emulator keeps the sandbox framework's contract (``cxbridge.testing.SandboxBackendContract``)."""

from __future__ import annotations

from cxbridge_hubspot.sandbox.backend import HubSpotBackend

from cxbridge.sdk import Backend
from cxbridge.testing import SandboxBackendContract


class TestHubSpotSandbox(SandboxBackendContract):
    backend_class = HubSpotBackend
    probe_path = "/crm/v3/objects/contacts"
    unauthenticated_body = {
        "status": "error",
        "category": "INVALID_AUTHENTICATION",
        "message": (
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
            "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
        ),
    }  # and a correlationId, new for every answer
    rate_limit_headers = ("X-HubSpot-RateLimit-Max", "X-HubSpot-RateLimit-Remaining")
    write_request = (
        "POST",
        "/crm/v3/objects/notes",
        {"properties": {"hs_timestamp": "2026-01-05T10:00:00Z", "hs_note_body": "applied"}},
    )

    def auth_headers(self, backend: Backend) -> dict[str, str]:
        return {"Authorization": f"Bearer {backend.credentials()['access_token']}"}
