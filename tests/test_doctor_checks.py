"""``cxbridge doctor`` checks what escalations need, against the emulators: every problem in one run, each line naming
the object, the vendor's words and the fix; a correct sandbox configuration is all green."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from click.testing import CliRunner, Result
from cxbridge_jira.sandbox.models import FieldDef

from cxbridge.cli import CliContext, cli
from cxbridge.connectors import Finding, Needs
from cxbridge.plugins import build_plugins
from cxbridge.sandbox.modes import Vendors, mock_vendors, write_config
from cxbridge.sdk import WebhookTarget
from cxbridge.secrets import Secret
from cxbridge.settings import ConfigKey

PUBLIC_URL = "https://cxbridge.example.com"
IMPACT_FIELDS = {
    "arr": "customfield_10100",
    "customers": "customfield_10101",
    "tickets": "customfield_10102",
    "renewal": "customfield_10103",
    "tier": "customfield_10104",
    "oldest": "customfield_10105",
}


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with mock_vendors(seed="demo") as running:
        yield running


def configure(vendors: Vendors, path: Path, *, fields: dict[str, str] | None = None) -> Path:
    """The sandbox configuration as an admin finishes it: webhook secrets, public URL, impact fields, priorities."""
    for name in ("zendesk", "jira"):
        vendors[name].webhook_targets = [WebhookTarget(f"{PUBLIC_URL}/webhooks/{name}", f"{name}-hook-secret-1")]
    extra = {
        "webhooks": {"public_url": PUBLIC_URL},
        "impact": {"fields": fields if fields is not None else IMPACT_FIELDS},
        "escalation": {"helpdesk": "zendesk", "crm": "hubspot", "tracker": "jira", "priority": {"enterprise": {}}},
    }
    written = write_config(vendors, path, extra=extra)
    before = tomlkit.parse(written.read_text(encoding="utf-8"))
    # the webhooks and triggers 'cxbridge setup' registers; then the ids the test chose, right or wrong, are put back
    setup = CliRunner().invoke(cli, ["--config", str(written), "setup", "--apply"], obj=CliContext(environ={}))
    assert setup.exit_code == 0, setup.output

    def restore(doc: Any) -> None:
        doc["impact"]["fields"] = before["impact"]["fields"]
        doc["systems"]["zendesk"]["issue_key_field_id"] = before["systems"]["zendesk"]["issue_key_field_id"]

    edit(written, restore)
    return written


def edit(path: Path, change: Any) -> None:
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")


def doctor(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "doctor", *args], obj=CliContext(environ={}))


def key_field(vendors: Vendors) -> Any:
    """The sandbox's issue-key ticket field."""
    fields = vendors["zendesk"].model.ticket_fields.values()  # type: ignore[attr-defined]
    return next(f for f in fields if f.title == "Jira issue key")


def create_issue(vendors: Vendors) -> None:
    """One Bug in ENG, so the edit screen can be read (doctor reads it from an existing issue)."""
    backend = vendors["jira"]
    model = backend.model  # type: ignore[attr-defined]
    body = {"fields": {"project": {"key": "ENG"}, "issuetype": {"name": "Bug"}, "summary": "first"}}
    model.create_issue(backend.integration_user, body, 3, "cloud")  # type: ignore[attr-defined]


def test_a_correct_sandbox_config_is_all_green(vendors: Vendors, tmp_path: Path) -> None:
    create_issue(vendors)
    config = configure(vendors, tmp_path / "cxbridge.toml")
    result = doctor(config)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(line.startswith("✓ ") for line in lines), result.output
    for expected in (
        "✓ jira project ENG: Engineering",
        "✓ jira issue type Bug in ENG: id 10002",
        "✓ jira field customfield_10100 (impact.fields.arr): 'ARR at stake' (number)",
        "✓ jira create screen of ENG Bug: every required field is filled, every field set is on it",
        "✓ jira edit screen of ENG Bug: the impact fields are on it (read from ENG-1)",
        f"✓ zendesk ticket field {key_field(vendors).id} (issue_key_field_id): 'Jira issue key' (text, active)",
        "✓ hubspot company property tier (tier_property): Tier (string)",
        "✓ hubspot company property annualrevenue (arr_property): Annualrevenue (number)",
        "✓ hubspot company property renewal_date (renewal_date_property): Renewal date (date)",
        "✓ webhooks zendesk: signing secret from [webhooks] secrets.zendesk",
        f"✓ webhooks public_url: {PUBLIC_URL}",
    ):
        assert expected in lines, result.output


def test_the_edit_screen_waits_for_a_first_issue(vendors: Vendors, tmp_path: Path) -> None:
    """With no issue to read the edit screen from, that one check is skipped (not failed) and says when it runs."""
    result = doctor(configure(vendors, tmp_path / "cxbridge.toml"))
    assert result.exit_code == 0, result.output
    assert (
        "- jira edit screen of ENG Bug: no Bug in ENG yet to read it from; run doctor again after the first "
        "escalation" in result.stdout.splitlines()
    )


def test_every_problem_in_one_run(vendors: Vendors, tmp_path: Path) -> None:
    """The issue's list: missing project, missing issue type, a required field nobody fills, a missing custom field,
    a wrong Zendesk field id, a misspelled HubSpot property, a missing webhook secret, an init placeholder."""
    model = vendors["jira"].model  # type: ignore[attr-defined]
    model.fields["customfield_10200"] = FieldDef(
        "customfield_10200", "Team", True, "string", {"type": "string", "customId": 10200}, ["cf[10200]", "Team"]
    )
    model.project("ENG").required_fields.add("customfield_10200")
    config = configure(vendors, tmp_path / "cxbridge.toml", fields={**IMPACT_FIELDS, "arr": "customfield_19999"})

    def break_it(doc: Any) -> None:
        systems = doc["systems"]
        for name, change in (("jira_gone", {"project": "GONE"}), ("jira_notype", {"issue_type": "Epic"})):
            table = tomlkit.table()
            table.update({**systems["jira"], "plugin": "jira", **change})
            systems[name] = table
        systems["jira"]["site_url"] = "https://YOURCOMPANY.atlassian.net"
        systems["zendesk"]["issue_key_field_id"] = 999999
        systems["hubspot"]["tier_property"] = "teir"
        del doc["webhooks"]["secrets"]["zendesk"]

    edit(config, break_it)
    result = doctor(config)
    assert result.exit_code == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("✗ ")]
    expected = [
        "✗ config systems.jira.site_url: 'https://YOURCOMPANY.atlassian.net' is the placeholder 'cxbridge init' wrote"
        " — fix: replace it with your account's own value",
        "✗ jira required field Team (customfield_10200) of ENG Bug: Team is required. — fix: escalations do not fill "
        "it: map it in [escalation.fields], make it optional or give it a default value in the field configuration "
        "of ENG (Jira settings > Issues > Field configurations), or choose another issue_type",
        "✗ jira field customfield_19999 (impact.fields.arr): Jira has no field customfield_19999 — fix: run 'cxbridge "
        "setup --apply' to create it, or set impact.fields.arr to the id of an existing number field "
        "(GET /rest/api/3/field lists them)",
        "✗ zendesk ticket field 999999 (issue_key_field_id): 404 RecordNotFound: Not found — fix: set "
        "systems.zendesk.issue_key_field_id to the id of an active text ticket field (Admin Center > Objects and rules "
        "> Tickets > Fields), or run 'cxbridge setup --apply' to create one",
        "✗ hubspot company property teir (tier_property): 404 Unable to find property teir for object type 0-2 "
        "(OBJECT_NOT_FOUND) — fix: set systems.hubspot.tier_property to an existing company property's internal name "
        "(Settings > Properties), or run 'cxbridge setup --apply' to create it",
        "✗ jira_gone project GONE: 404 No project could be found with key 'GONE'. — fix: set systems.jira_gone.project "
        "to the key of an existing project, or give the integration user the Browse projects and Create issues "
        "permissions in it",
        "✗ jira_notype issue type Epic in ENG: ENG has no issue type 'Epic' (it has: Task, Bug) — fix: set "
        "systems.jira_notype.issue_type to one of them, or add Epic to the project's issue type scheme",
        "✗ webhooks zendesk: no signing secret: 'cxbridge serve' refuses to start without [webhooks] secrets.zendesk "
        '— fix: set [webhooks] secrets.zendesk = [{ env = "ZENDESK_WEBHOOK_SECRET" }] to the secret the vendor signs '
        "its deliveries with ('cxbridge setup --apply' writes it when it registers the webhook)",
    ]
    for line in expected:
        assert line in failed, result.output
    assert "✓ jira project ENG: Engineering" in result.stdout.splitlines()
    skipped = [line for line in result.stdout.splitlines() if line.startswith("- ")]
    assert "- jira_gone create screen of GONE Bug: not checked: the project or issue type is missing" in skipped

    as_json = json.loads(doctor(config, "--json").stdout)
    by_item = {c["item"]: c for c in as_json}
    assert by_item["hubspot company property teir (tier_property)"]["state"] == "failed"
    assert by_item["hubspot company property teir (tier_property)"]["fix"].startswith(
        "set systems.hubspot.tier_property"
    )
    assert by_item["jira project ENG"] == {
        "item": "jira project ENG",
        "ok": True,
        "state": "ok",
        "detail": "Engineering",
        "fix": "",
    }


def test_fields_off_the_screens_or_of_the_wrong_type(vendors: Vendors, tmp_path: Path) -> None:
    """An impact field off the create or edit screen fails with Jira's own words; a text field for ARR fails."""
    model = vendors["jira"].model  # type: ignore[attr-defined]
    project = model.project("ENG")
    project.off_create_screen.add("customfield_10101")
    project.off_edit_screen.add("customfield_10102")
    create_issue(vendors)
    config = configure(vendors, tmp_path / "cxbridge.toml", fields={**IMPACT_FIELDS, "arr": "customfield_10104"})
    result = doctor(config)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert (
        "✗ jira field customfield_10101 on the create screen of ENG Bug: Field 'customfield_10101' cannot be set. It "
        "is not on the appropriate screen, or unknown. — fix: add it to the create screen of ENG for Bug (Project "
        "settings > Issues > Screens)"
    ) in lines
    assert any(
        line.startswith("✗ jira field customfield_10102 on the edit screen of ENG Bug: Field ") for line in lines
    )
    assert (
        "✗ jira field customfield_10104 (impact.fields.arr): 'Highest tier' is a string field; impact.fields.arr "
        "writes a number — fix: set impact.fields.arr to a number field, or run 'cxbridge setup --apply' to create one"
    ) in lines


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            {"active": False},
            "'Jira issue key' is inactive — fix: activate it in Admin Center > Objects and rules > Tickets > Fields",
        ),
        (
            {"type": "integer"},
            "'Jira issue key' is a integer field, not a text field — fix: set systems.zendesk.issue_key_field_id",
        ),
    ],
)
def test_an_unusable_ticket_field(vendors: Vendors, tmp_path: Path, change: dict[str, Any], line: str) -> None:
    field = key_field(vendors)
    for key, value in change.items():
        setattr(field, key, value)
    result = doctor(configure(vendors, tmp_path / "cxbridge.toml"))
    assert result.exit_code == 1
    prefix = f"✗ zendesk ticket field {field.id} (issue_key_field_id): "
    assert any(out.startswith(prefix + line) for out in result.stdout.splitlines()), result.output


def test_every_invalid_key_is_its_own_line(tmp_path: Path) -> None:
    """A configuration with several problems: one line each, and the placeholders in the file still reported."""
    config = tmp_path / "cxbridge.toml"
    config.write_text(
        '[webhooks]\nport = 0\nthreads = "x"\n[cxbridge]\nlog_level = "LOUD"\n'
        '[systems.jira]\nbase_url = "https://YOURCOMPANY.atlassian.net"\n',
        encoding="utf-8",
    )
    result = doctor(config)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"✗ config: {config}: cxbridge.log_level: expected one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'",
        f"✗ config: {config}: webhooks.port: expected an integer from 1 to 65535, got 0",
        f"✗ config: {config}: webhooks.threads: expected an integer, got str 'x'",
    ]
    assert any(line.startswith("✗ config: ") and "systems.jira" in line for line in lines[3:])
    assert lines[-1] == (
        "✗ config systems.jira.base_url: 'https://YOURCOMPANY.atlassian.net' is the placeholder 'cxbridge init' wrote "
        "— fix: replace it with your account's own value"
    )


def test_a_priority_mapping_needs_the_priority_on_the_create_screen(vendors: Vendors, tmp_path: Path) -> None:
    """Escalations set the priority only when [escalation.priority] maps a tier; then it must be on the screen."""
    vendors["jira"].model.project("ENG").off_create_screen.add("priority")  # type: ignore[attr-defined]
    unmapped = doctor(configure(vendors, tmp_path / "a" / "cxbridge.toml"))
    assert unmapped.exit_code == 0, unmapped.output

    config = configure(vendors, tmp_path / "b" / "cxbridge.toml")
    edit(config, lambda doc: doc["escalation"]["priority"].update({"enterprise": {"urgent": "Highest"}}))
    mapped = doctor(config)
    assert mapped.exit_code == 1
    assert (
        "✗ jira field priority on the create screen of ENG Bug: Field 'priority' cannot be set. It is not on the "
        "appropriate screen, or unknown. — fix: add it to the create screen of ENG for Bug (Project settings > "
        "Issues > Screens)"
    ) in mapped.stdout.splitlines()


def test_jira_data_center_reads_the_same_objects_through_rest_v2(vendors: Vendors, tmp_path: Path) -> None:
    """On Data Center the create screen's page lists its fields under ``values``; the checks read the same."""
    jira = vendors["jira"]
    jira.set_deployment("datacenter")  # type: ignore[attr-defined]
    jira.model.project("ENG").required_fields.add("customfield_10104")  # type: ignore[attr-defined]
    config = configure(vendors, tmp_path / "cxbridge.toml", fields={"arr": "customfield_10100"})
    result = doctor(config)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "✓ jira project ENG: Engineering" in lines
    assert "✓ jira field customfield_10100 (impact.fields.arr): 'ARR at stake' (number)" in lines
    assert any(line.startswith("✗ jira required field Highest tier (customfield_10104) of ENG Bug") for line in lines)
    assert any("/rest/api/2/" in call.path for call in jira.calls)


def test_hubspot_as_the_helpdesk_checks_its_ticket_properties(vendors: Vendors, tmp_path: Path) -> None:
    config = configure(vendors, tmp_path / "cxbridge.toml")

    def hubspot_helpdesk(doc: Any) -> None:
        doc["escalation"]["helpdesk"] = "hubspot"
        doc["systems"]["hubspot"]["issue_key_property"] = "cxbridge_issue_kye"

    edit(config, hubspot_helpdesk)
    lines = doctor(config).stdout.splitlines()
    assert "✓ hubspot ticket property cxbridge_escalate (escalate_property): Cxbridge escalate (bool)" in lines
    assert any(
        line.startswith("✗ hubspot ticket property cxbridge_issue_kye (issue_key_property): 404 ") for line in lines
    )
    assert "✓ hubspot company property tier (tier_property): Tier (string)" in lines


def test_objects_are_not_checked_when_the_login_fails(vendors: Vendors, tmp_path: Path) -> None:
    config = configure(vendors, tmp_path / "cxbridge.toml")
    (tmp_path / "jira.api_token.secret").write_text("not-the-token", encoding="utf-8")
    lines = doctor(config).stdout.splitlines()
    assert any(line.startswith("✗ jira: 401 Unauthorized") for line in lines)
    assert "- jira objects: not checked: the login failed" in lines
    assert not any(line.startswith(("✓ jira project", "✗ jira project")) for line in lines)


def test_a_plugins_findings_become_lines_and_a_failing_diagnose_is_one(
    tmp_path: Path, make_connector: Any, connectors_plugin: Any
) -> None:
    """The core prints what any plugin's ``diagnose`` returns (vendor-neutral), secrets scrubbed; a diagnose that
    raises is one failed line and does not hide the other systems."""
    token = "acme-secret-token-31337"
    keys = {"token": ConfigKey(Secret, required=True)}
    seen: list[Needs] = []

    class Acme(make_connector("acme", config_keys=keys)):  # type: ignore[misc]
        def diagnose(self, needs: Needs) -> list[Finding]:
            seen.append(needs)
            return [
                Finding.ok("widget 1", "fine"),
                Finding.failed("widget 2", f"Gone (token {token}).", "recreate it"),
                Finding.skipped("widget 3", "nothing to read it from yet"),
            ]

    class Broken(make_connector("broken", config_keys=keys)):  # type: ignore[misc]
        def diagnose(self, needs: Needs) -> list[Finding]:
            raise RuntimeError("boom")

    assert Acme.supports("diagnose")
    assert not make_connector("plain").supports("diagnose")
    config = tmp_path / "cxbridge.toml"
    config.write_text(
        "".join(
            f'[systems.{n}]\nbase_url = "https://{n}.example.com"\ntoken = {{ env = "TOKEN" }}\n'
            for n in ("acme", "broken")
        ),
        encoding="utf-8",
    )
    plugins = [("fakes", connectors_plugin(Acme, Broken))]
    obj = CliContext(
        config,
        environ={"TOKEN": token},
        plugins_factory=lambda d: build_plugins(d, use_env=False, entry_points=list, extra=plugins),
    )
    result = CliRunner().invoke(cli, ["doctor"], obj=obj)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1:] == [
        "✓ acme: authenticated to https://acme.example.com",
        "✓ acme widget 1: fine",
        "✗ acme widget 2: Gone (token ***). — fix: recreate it",
        "- acme widget 3: nothing to read it from yet",
        "✓ broken: authenticated to https://broken.example.com",
        "✗ broken objects: unexpected RuntimeError: boom",
    ]
    assert seen == [Needs(roles=frozenset())]


def test_an_escalation_trigger_an_earlier_version_provisioned_is_not_called_broken(
    vendors: Vendors, tmp_path: Path
) -> None:
    """The escalation trigger sending the earlier body (without the requester's email) works: doctor stays green
    and says that 'cxbridge setup --apply' would improve it; 'setup --plan' lists the update."""
    from cxbridge_zendesk.triggers import EARLIER_ESCALATION_BODIES

    create_issue(vendors)
    config = configure(vendors, tmp_path / "cxbridge.toml")
    triggers = vendors["zendesk"].model.triggers.values()  # type: ignore[attr-defined]
    escalate = next(t for t in triggers if t.title == "cxbridge: escalate")
    escalate.actions[0]["value"] = [escalate.actions[0]["value"][0], EARLIER_ESCALATION_BODIES[0]]
    result = doctor(config)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(line.startswith(("✓ ", "- ")) for line in lines), result.output
    (line,) = [line for line in lines if line.startswith("✓ zendesk setup")]
    assert "'cxbridge setup --apply' would improve" in line
    assert "trigger 'cxbridge: escalate'" in line
    plan = CliRunner().invoke(cli, ["--config", str(config), "setup", "--plan"], obj=CliContext(environ={}))
    assert "cxbridge: escalate" in plan.output
    assert "{{ticket.requester.email}}" in plan.output
