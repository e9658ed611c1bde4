"""The Zendesk connector keeps the Helpdesk contract (``cxbridge.testing.HelpdeskContract``) on its in-process
emulator; tickets are seeded through the emulator's API as an agent would create them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cxbridge.sdk import Event, Helpdesk, Ref
from cxbridge.testing import HelpdeskContract, SandboxRuntimes, mock_vendors


class TestZendeskHelpdesk(HelpdeskContract):
    statuses = ("pending", "open")

    @pytest.fixture(autouse=True)
    def emulator(self, sandbox_runtimes: SandboxRuntimes) -> Iterator[None]:
        with mock_vendors(["zendesk"]) as vendors:
            backend: Any = vendors["zendesk"]
            backend.incremental_delay = 0.0  # the export shows a ticket at once
            self.rt = sandbox_runtimes(vendors)
            yield

    def make_connector(self) -> Helpdesk:
        connector = self.rt.connector("zendesk")
        assert isinstance(connector, Helpdesk)
        return connector

    def seed_ticket(
        self, connector: Helpdesk, *, subject: str, description: str, requester_email: str, requester_name: str
    ) -> str:
        body = {
            "ticket": {
                "subject": subject,
                "comment": {"body": description},
                "requester": {"name": requester_name, "email": requester_email},
            }
        }
        created = connector.http.post("/api/v2/tickets", op="seed", json=body).json()
        return str(created["ticket"]["id"])

    def sample_events(self, connector: Helpdesk) -> list[Event]:
        payload = {
            "type": "zen:event-type:ticket.tags_changed",
            "detail": {"id": "4", "tags": ["billing", "escalated_to_engineering"]},
        }
        subject = Ref("zendesk", "ticket", "4")
        return [Event("z1", "zendesk", "ticket.tags_changed", subject, payload=payload)]
