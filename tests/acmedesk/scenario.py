"""The AcmeDesk scenario: run by tests/test_acmedesk.py in a subprocess where the plugin is installed with pip.

    python scenario.py WORKDIR

AcmeDesk (``[systems.acme] plugin = "acmedesk"``), HubSpot and Jira are emulated in process; cxbridge's real
webhook receiver listens on loopback and the emulators deliver their signed webhooks to it; jobs run with
``cxbridge.worker.drain``. Nothing here registers the plugin: cxbridge finds it through its entry point. Prints one
JSON line with what the emulators and the store hold after each step (the test asserts on it); a step that goes
wrong raises, and the process exits non-zero with the traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import requests
import tomlkit

from cxbridge.config import load_config
from cxbridge.plugins import build_plugins
from cxbridge.runtime import Runtime
from cxbridge.sandbox import WebhookTarget
from cxbridge.sandbox.modes import Vendors, mock_vendors, write_config
from cxbridge.webhooks.serve import RunningServer, serving
from cxbridge.worker import drain
from cxbridge.workflows.events import integration_user_ids
from cxbridge.workflows.impact import load_rollup
from cxbridge.workflows.reconcile import reconcile

ACME_SECRET = "whsec-acme-scenario"
JIRA_SECRET = "whsec-jira-scenario"
TAG = "escalated_to_engineering"
FIELDS = {
    "arr": "customfield_10100",
    "customers": "customfield_10101",
    "tickets": "customfield_10102",
    "renewal": "customfield_10103",
    "tier": "customfield_10104",
    "oldest": "customfield_10105",
}
SETTINGS: dict[str, Any] = {
    "escalation": {"helpdesk": "acme", "tracker": "jira", "crm": "hubspot", "tag": TAG},
    "impact": {"fields": FIELDS},
    "sync": {"status_map": {"done": "solved"}, "draft_reply_on": []},
}


def write_acme_config(vendors: Vendors, path: Path) -> Path:
    """The sandbox config, with the AcmeDesk emulator's table named ``acme`` (``plugin = "acmedesk"``)."""
    write_config(vendors, path, extra=SETTINGS)
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    systems: Any = doc["systems"]
    table = systems["acmedesk"]
    del systems["acmedesk"]
    table["plugin"] = "acmedesk"
    systems["acme"] = table
    webhooks: Any = doc["webhooks"]
    hook_secrets = webhooks["secrets"]
    hook_secrets["acme"] = hook_secrets["acmedesk"]
    del hook_secrets["acmedesk"]
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return path


class Scenario:
    def __init__(self, vendors: Vendors, rt: Runtime, server: RunningServer) -> None:
        self.vendors = vendors
        self.rt = rt
        self.server = server
        self.acme = vendors["acmedesk"]
        self.jira = vendors["jira"]
        self.drained: list[dict[str, Any]] = []

    # -- people -------------------------------------------------------------------------------------------
    def alex(self, ticket_id: int, body: dict[str, Any]) -> None:
        """Alex Agent updates an AcmeDesk ticket through its API."""
        token = self.acme.credentials()["agent_token"]
        r = requests.patch(
            f"{self.acme.base_url}/api/tickets/{ticket_id}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text

    def eve(self, method: str, path: str, body: Any = None) -> requests.Response:
        """Eve, an engineer, works in Jira."""
        creds = self.jira.credentials()
        r = requests.request(
            method,
            f"{self.jira.base_url}/rest/api/2{path}",
            json=body,
            auth=(creds["engineer_email"], creds["engineer_api_token"]),
            timeout=10,
        )
        assert r.status_code < 300, r.text
        return r

    def move(self, key: str, status: str) -> None:
        transitions = self.eve("GET", f"/issue/{key}/transitions").json()["transitions"]
        chosen = next(t for t in transitions if t["to"]["name"] == status)
        self.eve("POST", f"/issue/{key}/transitions", {"transition": {"id": chosen["id"]}})

    # -- cxbridge -----------------------------------------------------------------------------------------
    def settle(self) -> dict[str, int]:
        """Let every webhook reach the receiver and drain the queue, until cxbridge's own writes stop echoing."""
        total = {"done": 0, "retried": 0, "dead": 0}
        for _ in range(10):
            assert self.vendors.wait_for_webhooks(20), "an emulator's webhooks were not all attempted"
            report = drain(self.rt, timeout=60)
            assert not report.dead, report.as_dict()
            assert not report.timed_out, report.as_dict()
            for key in total:
                total[key] += getattr(report, key)
            if report.done == 0:  # nothing ran, so nothing cxbridge wrote can be echoing back
                self.drained.append(total)
                return total
        raise AssertionError("the queue did not settle")

    def redeliver(self, backend_name: str, index: int, endpoint: str) -> dict[str, Any]:
        """POST an emulator's earlier delivery to the receiver again, as the vendor's retry would."""
        sent = self.vendors[backend_name].webhooks_sent[index]
        r = requests.post(
            self.server.webhook_url(endpoint), data=sent["body"].encode("utf-8"), headers=sent["headers"], timeout=10
        )
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    # -- what the emulators hold --------------------------------------------------------------------------
    def tickets(self) -> dict[int, dict[str, Any]]:
        return {t["id"]: t for t in self.acme.state()["tickets"]}

    def issues(self) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = self.jira.state()["issues"]
        return issues

    def notes_by_ticket(self, text: str = "") -> dict[str, int]:
        """cxbridge's internal notes on each AcmeDesk ticket (containing ``text``)."""
        return {
            str(tid): sum(
                1 for c in t["comments"] if not c["public"] and c["author"]["id"] == 900 and text in c["body"]
            )
            for tid, t in self.tickets().items()
        }

    def crm_notes(self, text: str = "") -> int:
        notes = self.vendors["hubspot"].state()["objects"]["notes"]
        return sum(1 for n in notes if text in (n["properties"].get("hs_note_body") or ""))

    def snapshot(self) -> dict[str, Any]:
        """Everything a repeated delivery must leave as it is."""
        return {
            "acme": self.acme.state()["tickets"],
            "jira": [(i["key"], i["fields"]["status"]["name"], len(i["remoteLinks"])) for i in self.issues()],
            "hubspot": self.crm_notes(),
            "links": len(self.rt.store.links_for_issue_key("ENG-1")),
        }


def run(workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    plugins = build_plugins()
    info = plugins.infos["acmedesk"]
    out["plugin"] = {
        "loaded": info.loaded,
        "builtin": info.builtin,
        "distribution": info.distribution,
        "error": info.error,
        "module_file": sys.modules["cxbridge_acmedesk"].__file__,
    }
    with mock_vendors(["acmedesk", "hubspot", "jira"], seed="demo") as vendors:
        # secrets first: the config's [webhooks] secrets are the emulators' targets' secrets
        vendors["acmedesk"].webhook_targets = [WebhookTarget(url="http://127.0.0.1:9/", secret=ACME_SECRET)]
        vendors["jira"].webhook_targets = [WebhookTarget(url="http://127.0.0.1:9/", secret=JIRA_SECRET)]
        path = write_acme_config(vendors, workdir / "cxbridge.toml")
        config = load_config(path, plugins=plugins)
        rt = Runtime(config, plugins)
        try:
            with serving(rt, workers=0) as server:
                vendors["acmedesk"].webhook_targets[0].url = server.webhook_url("acme")
                vendors["jira"].webhook_targets[0].url = server.webhook_url("jira")
                s = Scenario(vendors, rt, server)
                out["config_systems"] = {n: sc.plugin for n, sc in config.systems.items()}
                out["steps"] = steps(s)
        finally:
            rt.close()
    return out


def steps(s: Scenario) -> dict[str, Any]:
    rt, acme = s.rt, s.acme
    result: dict[str, Any] = {}

    # (a) Alex tags ticket 1 (Ada, Acme): AcmeDesk's signed webhook -> receiver -> worker -> escalation
    first_hook = len(acme.webhooks_sent)
    s.alex(1, {"add_tags": [TAG]})
    jobs = s.settle()
    issues = s.issues()
    key = issues[0]["key"] if issues else None
    t1 = s.tickets()[1]
    result["a"] = {
        "jobs": jobs,
        "issues": [i["key"] for i in issues],
        "remote_links": [r["object"]["url"] for r in issues[0]["remoteLinks"]] if issues else [],
        "description_has_customer": "Acme Corp" in str(issues[0]["fields"].get("description")) if issues else False,
        "ticket_tags": t1["tags"],
        "ticket_issue_key": t1["custom_fields"]["issue_key"],
        "notes": s.notes_by_ticket(),
        "notes_with_key": s.notes_by_ticket(str(key)),
        "crm_notes_with_key": s.crm_notes(str(key)),
        "audit": [e.action for e in rt.store.audit_entries(issue_key=str(key))],
        "deliveries": [json.loads(d["body"])["event"] for d in acme.webhooks_sent[first_hook:]],
        "note_actors": [json.loads(d["body"])["actor"]["id"] for d in acme.webhooks_sent[first_hook:]],
        "integration_user": sorted(integration_user_ids(rt, "acme")),  # learned from GET /api/me: echoes
    }
    # the same delivery again (AcmeDesk retrying): acknowledged as a duplicate, nothing changes
    before = s.snapshot()
    again = s.redeliver("acmedesk", first_hook, "acme")
    s.settle()
    result["a_duplicate"] = {"answer": again, "unchanged": s.snapshot() == before}

    # (b) ticket 2 (Grace, Globex): Alex types the key and tags it, but the webhook is lost; the poll finds it
    targets, acme.webhook_targets = acme.webhook_targets, []
    s.alex(2, {"custom_fields": {"issue_key": key}, "add_tags": [TAG]})
    acme.webhook_targets = targets
    unannounced = s.settle()  # no webhook announced ticket 2: nothing to do yet
    polled = reconcile(rt)
    jobs = s.settle()
    repoll = reconcile(rt)
    result["b"] = {
        "before_poll": unannounced,
        "streams": {f"{x.system}/{x.stream}": [x.enqueued, x.error] for x in polled.streams},
        "jobs": jobs,
        "issues": [i["key"] for i in s.issues()],
        "ticket2_tags": s.tickets()[2]["tags"],
        "notes_with_key": s.notes_by_ticket(str(key)),
        "crm_notes_with_key": s.crm_notes(str(key)),
        "repoll": {f"{x.system}/{x.stream}": x.enqueued for x in repoll.streams},
    }

    # (c) ticket 3 (Ada again): Alex types the key and tags it; the webhook carries the key, the ticket joins
    s.alex(3, {"custom_fields": {"issue_key": key}, "add_tags": [TAG]})
    jobs = s.settle()
    issue = s.issues()[0]
    result["c"] = {
        "jobs": jobs,
        "issues": [i["key"] for i in s.issues()],
        "remote_links": len(issue["remoteLinks"]),
        "linked": sorted(str(x.ticket) for x in rt.store.links_for_issue_key(str(key))),
        "notes_with_key": s.notes_by_ticket(str(key)),
        "crm_notes_with_key": s.crm_notes(str(key)),
        "impact_fields": {name: issue["fields"].get(fid) for name, fid in FIELDS.items()},
    }

    # (d) Eve moves the issue to Done and comments for support; Jira's webhooks reach the receiver
    notes_before = s.notes_by_ticket()
    crm_before = s.crm_notes()
    jira_hook = len(s.jira.webhooks_sent)
    s.move(str(key), "Done")
    jobs_done = s.settle()
    after_done = s.notes_by_ticket()
    s.eve("POST", f"/issue/{key}/comment", {"body": "[support] The fix is deployed; exports finish in seconds."})
    s.eve("POST", f"/issue/{key}/comment", {"body": "Root cause: the CSV writer flushed per row."})
    jobs_comment = s.settle()
    after_comment = s.notes_by_ticket()
    before = s.snapshot()
    transition = next(
        i
        for i, d in enumerate(s.jira.webhooks_sent)
        if i >= jira_hook and json.loads(d["body"]).get("webhookEvent") == "jira:issue_updated"
    )
    again = s.redeliver("jira", transition, "jira")
    s.settle()
    result["d"] = {
        "jobs": [jobs_done, jobs_comment],
        "status_notes": {t: after_done[t] - notes_before[t] for t in after_done},
        "comment_notes": {t: after_comment[t] - after_done[t] for t in after_comment},
        "support_text": s.notes_by_ticket("exports finish in seconds"),
        "engineering_text": s.notes_by_ticket("flushed per row"),
        "statuses": {str(t): v["status"] for t, v in s.tickets().items()},
        "crm_notes_added": s.crm_notes() - crm_before,
        "duplicate": {"answer": again, "unchanged": s.snapshot() == before},
    }

    # (e) the customer impact of the issue, from the store (and as written on the issue)
    rollup = load_rollup(rt, rt.store.links_for_issue_key(str(key)))
    result["e"] = {
        "customers": rollup.customers,
        "tickets": len(rollup.tickets),
        "arr": {cur: str(v) for cur, v in rollup.arr.items()},
        "companies": sorted(c.name or "" for c in rollup.companies),
        "issue_fields": {name: s.issues()[0]["fields"].get(fid) for name, fid in FIELDS.items()},
    }
    result["issue_key"] = key
    result["queue"] = rt.store.queue_depth()
    return result


def main() -> int:
    workdir = Path(sys.argv[1])
    workdir.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(workdir), sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
