"""The HubSpot connector keeps the CRM and the Helpdesk contracts (``cxbridge.testing.CRMContract``,
``HelpdeskContract``) on its in-process emulator; records are seeded through the emulator's CRM API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cxbridge_hubspot.connector import HubSpotConnector

from cxbridge.sdk import CRM, Connector, Event, Helpdesk, Ref
from cxbridge.testing import CRMContract, HelpdeskContract, SandboxRuntimes, mock_vendors

CONTACT_TO_COMPANY = 1
TICKET_TO_CONTACT = 16


def _association(to_id: str, type_id: int) -> dict[str, Any]:
    return {"to": {"id": to_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}


class TestHubSpotConnector(CRMContract, HelpdeskContract):
    statuses = ("2", "3")  # pipeline stages of the default ticket pipeline
    escalation_tag = "escalated_to_engineering"

    @pytest.fixture(autouse=True)
    def emulator(self, sandbox_runtimes: SandboxRuntimes) -> Iterator[None]:
        with mock_vendors(["hubspot"]) as vendors:
            self.rt = sandbox_runtimes(vendors)
            yield

    def make_connector(self) -> Connector:
        connector = self.rt.connector("hubspot")
        assert isinstance(connector, HubSpotConnector)
        return connector

    def _create(self, connector: Connector, object_type: str, properties: dict[str, str], *assoc: Any) -> str:
        body = {"properties": properties, "associations": list(assoc)}
        return str(connector.http.post(f"/crm/v3/objects/{object_type}", op="seed", json=body).json()["id"])

    def seed_customer(self, connector: CRM, *, email: str, company: str) -> None:
        company_id = self._create(connector, "companies", {"name": company, "domain": "globex.example"})
        self._create(connector, "contacts", {"email": email}, _association(company_id, CONTACT_TO_COMPANY))

    def seed_ticket(
        self, connector: Helpdesk, *, subject: str, description: str, requester_email: str, requester_name: str
    ) -> str:
        first, _, last = requester_name.partition(" ")
        contact = self._create(connector, "contacts", {"email": requester_email, "firstname": first, "lastname": last})
        properties = {"subject": subject, "content": description, "hs_pipeline": "0", "hs_pipeline_stage": "1"}
        return self._create(connector, "tickets", properties, _association(contact, TICKET_TO_CONTACT))

    def sample_events(self, connector: Connector) -> list[Event]:
        payload = {"propertyName": "cxbridge_escalate", "propertyValue": "true"}
        return [Event("h1", "hubspot", "ticket.propertyChange", Ref("hubspot", "ticket", "77"), payload=payload)]
