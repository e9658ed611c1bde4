"""Which configured system fills each role when ``[escalation]`` names none: chosen by the plugins' roles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cxbridge.errors import ConfigError
from cxbridge.sandbox.modes import Vendors, mock_vendors
from cxbridge.testing import SandboxRuntimes


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with mock_vendors(["zendesk", "jira", "hubspot"], seed="demo") as v:
        yield v


def test_unnamed_roles_go_to_the_system_that_takes_them_first(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    """Two helpdesks (one a CRM first): the helpdesk role goes to the other; the CRM and tracker to the only ones."""
    rt = sandbox_runtime(vendors)
    assert rt.config.section("escalation")["helpdesk"] is None
    assert (rt.helpdesk().name, rt.tracker().name) == ("zendesk", "jira")
    crm = rt.crm()
    assert crm is not None
    assert crm.name == "hubspot"


def test_an_empty_crm_means_none(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    """``crm = ""`` keeps its meaning: escalations write no CRM note."""
    rt = sandbox_runtime(vendors, extra={"escalation": {"crm": ""}})
    assert rt.crm() is None


def test_a_named_system_wins(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    """HubSpot named as the helpdesk is the helpdesk, though it is a CRM first."""
    rt = sandbox_runtime(vendors, extra={"escalation": {"helpdesk": "hubspot"}})
    assert rt.helpdesk().name == "hubspot"


def test_ambiguous_roles_are_refused_with_the_candidates(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    """Two systems of the same plugin, neither named like it: the admin is asked to name one."""
    path = sandbox_runtime.config(vendors)
    text = path.read_text(encoding="utf-8").replace("[systems.zendesk]", "[systems.desk_eu]")
    text = text.replace("[systems.desk_eu]", '[systems.desk_eu]\nplugin = "zendesk"', 1)
    path.write_text(text + '\n[systems.desk_us]\nplugin = "zendesk"\n' + _zendesk_keys(text), encoding="utf-8")
    rt = sandbox_runtime.load(path)
    with pytest.raises(ConfigError, match=r"several systems can be the helpdesk \(desk_eu, desk_us\)"):
        rt.helpdesk()


def _zendesk_keys(text: str) -> str:
    """The keys of the (renamed) Zendesk table, for a second table of the same plugin."""
    section = text.split("[systems.desk_eu]", 1)[1].split("\n[", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.strip() and not line.startswith("plugin")) + "\n"


def test_roles_are_worked_out_once_and_a_refusal_is_raised_every_time(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Runtime answers a role from what it worked out the first time (the same connector, no second look at the
    systems); a configuration that names no system for a role is refused on every call, never remembered as one."""
    rt = sandbox_runtime(vendors)
    helpdesk, tracker = rt.helpdesk(), rt.tracker()
    looked: list[str] = []
    original = rt._role_system

    def counted(key: str, role: str) -> str:
        looked.append(key)
        return original(key, role)

    monkeypatch.setattr(rt, "_role_system", counted)
    assert (rt.helpdesk(), rt.tracker(), rt.role_system("helpdesk", "helpdesk")) == (helpdesk, tracker, "zendesk")
    assert looked == []
    rt.crm()
    rt.crm()
    assert looked == ["crm"]  # the CRM was not asked for before: worked out once
    several = sandbox_runtime(vendors, extra={"escalation": {"tracker": "nowhere"}})
    for _ in range(2):
        with pytest.raises(ConfigError):
            several.tracker()
