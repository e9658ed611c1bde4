"""``cxbridge setup`` in the core: a plugin brings its own provisioning (a toy system, not a built-in one), the
plan is printed and applied by the CLI, and what was learned is written back into the config with its comments."""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests.auth
from click.testing import CliRunner, Result

from cxbridge.cli import CliContext, cli
from cxbridge.plugins import Plugins, build_plugins
from cxbridge.provision import write_back
from cxbridge.sdk import (
    CREATE,
    MANUAL,
    OK,
    PRUNE,
    UPDATE,
    BearerAuth,
    ConfigKey,
    ConfigUpdate,
    Connector,
    Helpdesk,
    PlanItem,
    Secret,
    SetupContext,
    SystemConfig,
    VendorError,
    hookimpl,
)

SECRET = "s3cr3t-from-the-vendor"


class ToyVendor:
    """What the toy system holds at the vendor: its hooks and labels (a stand-in for any vendor's API)."""

    def __init__(self) -> None:
        self.hooks: dict[str, str] = {}
        self.labels: set[str] = {"obsolete"}
        self.writes = 0
        self.fail_label = False


VENDOR = ToyVendor()


class ToyConnector(Helpdesk):
    """A helpdesk of no real vendor that needs a webhook and a label, and has a leftover label to prune."""

    system: ClassVar[str] = "toydesk"
    cloud_domains: ClassVar[tuple[str, ...]] = (".toy.example",)
    config_keys: ClassVar[dict[str, ConfigKey]] = {
        "token": ConfigKey(Secret, required=True),
        "hook_id": ConfigKey(str),
    }

    @classmethod
    def make_auth(cls, config: Any) -> requests.auth.AuthBase:
        return BearerAuth(config.options["token"])

    def check(self) -> str:
        return "ok"

    def get_ticket(self, ticket_id: str) -> Any:
        raise NotImplementedError

    def list_comments(self, ticket_id: str) -> Any:
        raise NotImplementedError

    def record_escalation(self, ticket: Any, **kw: Any) -> bool:
        raise NotImplementedError

    def add_internal_note(self, ticket_id: str, body: str) -> None:
        raise NotImplementedError

    def ticket_url(self, ticket_id: str) -> str:
        return ticket_id

    def plan_setup(self, setup: SetupContext) -> list[PlanItem]:
        items = []
        hook = VENDOR.hooks.get("cxbridge")
        if hook is None:
            items.append(PlanItem(self.name, "hook", "cxbridge", CREATE, f"to {setup.webhook_url}"))
        elif hook != setup.webhook_url:
            items.append(PlanItem(self.name, "hook", "cxbridge", UPDATE, f"{hook} -> {setup.webhook_url}"))
        elif self.config.get("hook_id") != "hook-1":
            learned = [ConfigUpdate(("systems", self.name, "hook_id"), "hook-1")]
            items.append(PlanItem(self.name, "hook", "cxbridge", UPDATE, "write its id", learned=learned))
        else:
            items.append(PlanItem(self.name, "hook", "cxbridge", OK, vendor_id="hook-1"))
        tag = setup.escalation_tag
        action = OK if tag in VENDOR.labels else CREATE
        items.append(PlanItem(self.name, "label", tag, action))
        items.append(PlanItem(self.name, "setting", "SSO", MANUAL, "click Admin > SSO > allow the API user"))
        if "obsolete" in VENDOR.labels:
            items.append(PlanItem(self.name, "label", "obsolete", PRUNE, "cxbridge no longer uses it"))
        return items

    def apply_setup(self, item: PlanItem, setup: SetupContext) -> list[ConfigUpdate]:
        VENDOR.writes += 1
        if item.kind == "hook":
            VENDOR.hooks["cxbridge"] = setup.webhook_url
            return [
                ConfigUpdate(("systems", self.name, "hook_id"), "hook-1"),
                ConfigUpdate(("webhooks", "secrets", self.name), Secret(SECRET), secret=True),
            ]
        if VENDOR.fail_label:
            raise VendorError(self.name, "the vendor refused the label")
        if item.action == PRUNE:
            VENDOR.labels.discard(item.name)
        else:
            VENDOR.labels.add(item.name)
        return []


class ToyPlugin:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register(ToyConnector)


CONFIG = """\
# The admin's own words: keep them.
[cxbridge]
store = "cxbridge.db"  # next to this file

[webhooks]
public_url = "https://hooks.example.com"

[impact]
fields = { arr = "customfield_1" }  # inline on purpose

[systems.toy]
plugin = "toydesk"  # our helpdesk
base_url = "https://acme.toy.example"
token = { env = "TOY_TOKEN" }
"""


def plugins_factory(disabled: Sequence[str]) -> Plugins:
    return build_plugins(disabled, use_env=False, entry_points=list, extra=[("toy", ToyPlugin())])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    global VENDOR
    VENDOR = ToyVendor()
    path = tmp_path / "cxbridge.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def run(path: Path, *args: str) -> Result:
    obj = CliContext(path, environ={"TOY_TOKEN": "t"}, plugins_factory=plugins_factory)
    return CliRunner().invoke(cli, ["setup", *args], obj=obj)


def test_a_new_system_brings_its_own_plan(config: Path) -> None:
    """The plan lists create, manual and prune items of a plugin the core knows nothing of; nothing is written."""
    result = run(config, "--plan")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "toy:",
        "  + create hook 'cxbridge': to https://hooks.example.com/webhooks/toy",
        "  + create label 'escalated_to_engineering'",
        "  ! manual setting 'SSO': click Admin > SSO > allow the API user",
        "  - prune  label 'obsolete': cxbridge no longer uses it",
        "Plan: 2 to create, 0 to update, 1 to prune (with --prune), 1 manual, 0 already right.",
    ]
    assert VENDOR.writes == 0
    assert run(config, "--plan", "--detailed-exitcode").exit_code == 2
    assert config.read_text(encoding="utf-8") == CONFIG


def test_apply_writes_back_and_a_second_apply_changes_nothing(config: Path) -> None:
    """Apply creates (never prunes without --prune), writes the id and the secret file, keeps every comment."""
    result = run(config, "--apply")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert VENDOR.labels == {"obsolete", "escalated_to_engineering"}
    text = config.read_text(encoding="utf-8")
    for comment in ("# The admin's own words: keep them.", "# next to this file", "# our helpdesk", "# inline on"):
        assert comment in text
    written = tomllib.loads(text)
    assert written["systems"]["toy"]["hook_id"] == "hook-1"
    assert written["webhooks"]["secrets"]["toy"] == [{"file": "toy.webhook.secret"}]
    secret_file = config.parent / "toy.webhook.secret"
    assert secret_file.read_text(encoding="utf-8") == SECRET
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert "Still to do:" in result.output
    assert "! manual setting 'SSO'" in result.output
    writes = VENDOR.writes
    again = run(config, "--apply")
    assert again.exit_code == 0, again.output
    assert VENDOR.writes == writes
    assert config.read_text(encoding="utf-8") == text
    pruned = run(config, "--apply", "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert VENDOR.labels == {"escalated_to_engineering"}
    assert "- pruned toy label 'obsolete'" in pruned.output


def test_a_failed_item_is_reported_and_the_others_still_apply(config: Path) -> None:
    """One object the vendor refuses: exit 1 with the vendor's words; the webhook's id and secret are written."""
    VENDOR.fail_label = True
    result = run(config, "--apply")
    assert result.exit_code == 1
    assert "✗ toy label 'escalated_to_engineering': the vendor refused the label" in result.output
    assert tomllib.loads(config.read_text(encoding="utf-8"))["systems"]["toy"]["hook_id"] == "hook-1"


def test_write_back_creates_tables_reuses_secret_files_and_skips_equal_values(tmp_path: Path) -> None:
    """A missing table is added as [a.b]; an inline table gets the key; an existing { file } reference is rewritten
    in place (0600); a value already there is not written again."""
    path = tmp_path / "c.toml"
    own = tmp_path / "keep" / "hook.secret"
    own.parent.mkdir()
    own.write_text("old", encoding="utf-8")
    path.write_text(
        f'# top\n[impact]\nfields = {{ arr = "cf_1" }}  # inline\n\n[webhooks.secrets]\nzd = [{{ file = "{own}" }}]\n',
        encoding="utf-8",
    )
    changed = write_back(
        path,
        [
            ConfigUpdate(("impact", "fields", "tier"), "cf_2"),
            ConfigUpdate(("impact", "fields", "arr"), "cf_1"),
            ConfigUpdate(("systems", "zd", "issue_key_field_id"), 42),
            ConfigUpdate(("webhooks", "secrets", "zd"), Secret("new-secret"), secret=True),
        ],
    )
    assert changed == ["impact.fields.tier", "systems.zd.issue_key_field_id", "webhooks.secrets.zd"]
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# top\n")
    assert "\n[systems.zd]\nissue_key_field_id = 42\n" in text
    assert "[systems]\n" not in text
    assert "# inline" in text
    assert tomllib.loads(text)["impact"]["fields"] == {"arr": "cf_1", "tier": "cf_2"}
    assert tomllib.loads(text)["systems"]["zd"]["issue_key_field_id"] == 42
    assert tomllib.loads(text)["webhooks"]["secrets"]["zd"] == [{"file": str(own)}]
    assert own.read_text(encoding="utf-8") == "new-secret"
    assert stat.S_IMODE(own.stat().st_mode) == 0o600
    assert write_back(path, [ConfigUpdate(("webhooks", "secrets", "zd"), Secret("new-secret"), secret=True)]) == []
    assert "new-secret" not in repr(ConfigUpdate(("webhooks", "secrets", "zd"), Secret("new-secret"), secret=True))


def test_the_default_is_nothing_to_provision() -> None:
    """A connector that does not override the methods plans nothing, and applying refuses; ``supports`` tells."""
    config = SystemConfig(
        name="toy", plugin="toydesk", base_url="https://acme.toy.example", options={"token": Secret("t")}
    )
    toy = ToyConnector.from_config(config)
    setup = SetupContext(webhook_url="")
    assert Connector.plan_setup(toy, setup) == []
    with pytest.raises(NotImplementedError, match="provisions nothing"):
        Connector.apply_setup(toy, PlanItem("toy", "label", "x", CREATE), setup)
    assert ToyConnector.supports("plan_setup")
    with pytest.raises(ValueError, match="unknown plan action"):
        PlanItem("toy", "label", "x", "destroy")
