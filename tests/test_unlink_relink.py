"""A ticket unlinked from an issue and joined to it again gets its remote link back (the undone intent is forgotten)."""

from __future__ import annotations

import pytest

from cxbridge.models import Ref
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows import impact
from cxbridge.workflows.escalate import Escalation, EscalationRequest

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def test_unlink_then_join_again_restores_the_remote_link(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    rt = sandbox_runtime(vendors)
    try:

        def links(key: str) -> int:
            issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)
            return len(issue["remoteLinks"])

        key = Escalation(rt).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
        Escalation(rt).run(EscalationRequest(ticket_id="2", link_key=key, note="Same bug."))
        assert links(key) == 2
        result = impact.unlink(rt, Ref("zendesk", "ticket", "2"), key)
        assert result.remote_link == "deleted"
        assert links(key) == 1
        assert len(rt.store.links_for_issue_key(key)) == 1
        again = Escalation(rt).run(EscalationRequest(ticket_id="2", link_key=key, note="Back again."))
        assert again.writes["remote_link"] == "written"
        assert links(key) == 2
        assert len(rt.store.links_for_issue_key(key)) == 2
        # and a rerun of the join writes nothing more
        assert Escalation(rt).run(EscalationRequest(ticket_id="2", link_key=key)).writes["remote_link"] == "unchanged"
        assert links(key) == 2
    finally:
        rt.close()
