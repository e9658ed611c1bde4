"""The Jira connector keeps the Tracker contract (``cxbridge.testing.TrackerContract``) on its in-process emulator,
on Jira Cloud (ADF descriptions)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cxbridge_jira.connector import JiraConnector

from cxbridge.sdk import Event, Ref, Tracker
from cxbridge.testing import SandboxRuntimes, TrackerContract, mock_vendors


class TestJiraTracker(TrackerContract):
    project = "ENG"

    @pytest.fixture(autouse=True)
    def emulator(self, sandbox_runtimes: SandboxRuntimes) -> Iterator[None]:
        with mock_vendors(["jira"], seed="demo") as vendors:
            self.vendors = vendors
            self.rt = sandbox_runtimes(vendors)
            yield

    def make_connector(self) -> Tracker:
        connector = self.rt.connector("jira")
        assert isinstance(connector, JiraConnector)
        return connector

    def jira(self, connector: Tracker) -> JiraConnector:
        assert isinstance(connector, JiraConnector)
        return connector

    def seed_issue_done(self, connector: Tracker, key: str) -> None:
        self.jira(connector).transition_by_name(key, "Done")

    def seed_fix_version(self, connector: Tracker, key: str) -> str:
        jira = self.jira(connector)
        project: Any = jira.http.get(f"{jira.api}/project/{self.project}", op="seed").json()
        version = jira.http.post(
            f"{jira.api}/version",
            op="seed",
            json={"name": f"1.{uuid.uuid4().hex[:6]}", "projectId": project["id"]},
        ).json()
        jira.edit_fields(key, {"fixVersions": [{"id": str(version["id"])}]})
        return str(version["id"])

    def count_ticket_links(self, connector: Tracker, key: str) -> int | None:
        backend: Any = self.vendors["jira"]
        with backend.lock:
            return len(backend.model.issue(key).remote_links)

    def sample_events(self, connector: Tracker) -> list[Event]:
        payload = {
            "webhookEvent": "jira:issue_updated",
            "timestamp": 1767225600000,
            "user": {"accountId": "abc"},
            "issue": {
                "id": "10001",
                "key": "ENG-1",
                "fields": {
                    "summary": "Exports fail",
                    "status": {"name": "Done", "statusCategory": {"key": "done"}},
                    "updated": "2026-01-01T00:00:00.000+0000",
                },
            },
        }
        return [Event("d1", "jira", "jira:issue_updated", Ref("jira", "issue", "10001"), payload=payload)]
