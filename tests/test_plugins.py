"""The plugin manager: entry points, built-in vs third-party, load errors, enable/disable, safe hook calls."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest

import cxbridge
from cxbridge.errors import PluginError
from cxbridge.hookspecs import hookimpl
from cxbridge.plugins import ALLOWLIST_ENV, build_plugins

BUILTINS = {"zendesk", "jira", "hubspot"}


class Site:
    """A folder on sys.path where tests install real distributions (``*.dist-info`` + modules)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def module_name(self, stem: str) -> str:
        name = f"cxbt_{stem}_{uuid.uuid4().hex[:8]}"
        self.modules.append(name)
        return name

    def install(self, dist: str, version: str, plugins: dict[str, str]) -> dict[str, str]:
        """Install the distribution ``dist``: one module per plugin (name -> source); returns name -> module."""
        modules: dict[str, str] = {}
        for plugin_name, source in plugins.items():
            module = self.module_name(plugin_name.replace("-", "_"))
            (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            modules[plugin_name] = module
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
        lines = "".join(f"{name} = {module}\n" for name, module in modules.items())
        (info / "entry_points.txt").write_text(f"[cxbridge]\n{lines}", encoding="utf-8")
        return modules


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A fresh site folder on sys.path; the modules imported from it are forgotten afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    s = Site(root)
    yield s
    for name in s.modules:
        sys.modules.pop(name, None)


GOOD_PLUGIN = """
    from cxbridge.hookspecs import hookimpl

    @hookimpl
    def handoff_context(context):
        return {"acme": "hello"}
"""

RAISING_PLUGIN = """
    raise RuntimeError("boom at import")
"""

MISSPELLED_PLUGIN = """
    from cxbridge.hookspecs import hookimpl

    @hookimpl
    def register_conectors(register):
        pass
"""


def test_builtins_are_found_through_entry_points() -> None:
    """The three built-in plugins come from the cxbridge distribution's entry points, like any plugin."""
    plugins = build_plugins(use_env=False)
    for name in BUILTINS:
        info = plugins.infos[name]
        assert info.builtin
        assert info.distribution == "cxbridge"
        assert info.version == cxbridge.__version__
        assert info.module == f"cxbridge_{name}.plugin"
        assert info.enabled
        assert "register_connectors" in info.hooks
        assert info.as_dict()["kind"] == "built-in"


def test_a_separately_installed_distribution_is_third_party(site: Site) -> None:
    """A plugin from another distribution is found via importlib.metadata and listed as third-party."""
    modules = site.install("cxbridge-acme", "1.2.3", {"acme": GOOD_PLUGIN})
    plugins = build_plugins(use_env=False)
    info = plugins.infos["acme"]
    assert not info.builtin
    assert info.as_dict()["kind"] == "third-party"
    assert (info.distribution, info.version) == ("cxbridge-acme", "1.2.3")
    assert info.module == modules["acme"]
    assert info.loaded
    assert info.hooks == ["handoff_context"]
    assert plugins.handoff_context({"ticket": {}}) == {"acme": "hello"}
    assert set(plugins.infos) >= BUILTINS


def test_a_plugin_whose_import_raises_is_listed_with_its_error_and_the_others_load(site: Site) -> None:
    """A broken plugin is reported, not fatal."""
    site.install("cxbridge-mixed", "0.1", {"broken": RAISING_PLUGIN, "fine": GOOD_PLUGIN})
    plugins = build_plugins(use_env=False)
    broken = plugins.infos["broken"]
    assert broken.enabled
    assert not broken.loaded
    assert broken.error == "import failed: RuntimeError: boom at import"
    assert broken.hooks == []
    assert plugins.infos["fine"].loaded
    assert plugins.handoff_context({}) == {"acme": "hello"}
    for name in BUILTINS:
        assert plugins.infos[name].error is None or "import failed" not in plugins.infos[name].error


def test_a_misspelled_hook_implementation_fails_that_plugin_at_once(site: Site) -> None:
    """check_pending catches a hookimpl that matches no hook; the plugin is unregistered, the others load."""
    site.install("cxbridge-typo", "0.1", {"typo": MISSPELLED_PLUGIN, "fine": GOOD_PLUGIN})
    plugins = build_plugins(use_env=False)
    typo = plugins.infos["typo"]
    assert typo.error is not None
    assert typo.error.startswith("unknown hook:")
    assert "register_conectors" in typo.error
    assert plugins.pm.get_plugin("typo") is None
    assert plugins.infos["fine"].loaded


def test_disabled_in_the_config_is_never_imported(site: Site) -> None:
    """A disabled plugin is blocked before its module is imported (its import would raise)."""
    modules = site.install("cxbridge-bad", "0.1", {"bad": RAISING_PLUGIN})
    plugins = build_plugins(["bad"], use_env=False)
    info = plugins.infos["bad"]
    assert not info.enabled
    assert info.error is None
    assert modules["bad"] not in sys.modules
    assert info.as_dict()["enabled"] is False


def test_the_allowlist_env_blocks_everything_it_does_not_name(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """CXBRIDGE_LOAD_PLUGINS loads only the plugins it names; the others are not imported."""
    modules = site.install("cxbridge-two", "0.1", {"bad": RAISING_PLUGIN, "fine": GOOD_PLUGIN})
    monkeypatch.setenv(ALLOWLIST_ENV, "fine, jira")
    plugins = build_plugins()
    assert not plugins.infos["bad"].enabled
    assert plugins.infos["bad"].error is None
    assert modules["bad"] not in sys.modules
    assert plugins.infos["fine"].loaded
    assert plugins.infos["jira"].enabled
    assert not plugins.infos["zendesk"].enabled
    assert not plugins.infos["hubspot"].enabled


def test_an_empty_allowlist_loads_no_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """CXBRIDGE_LOAD_PLUGINS set but empty means: no plugins at all."""
    monkeypatch.setenv(ALLOWLIST_ENV, "")
    plugins = build_plugins()
    assert set(plugins.infos) >= BUILTINS
    assert not any(info.enabled for info in plugins.infos.values())
    assert plugins.pm.get_plugins() == set()


def test_use_env_false_ignores_the_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedding code can ignore the environment."""
    monkeypatch.setenv(ALLOWLIST_ENV, "")
    plugins = build_plugins(use_env=False)
    assert all(plugins.infos[name].enabled for name in BUILTINS)


def test_each_build_is_a_fresh_manager(connectors_plugin: Callable[..., object], make_connector: Any) -> None:
    """No global state: a plugin registered in one build is absent from the next."""
    first = build_plugins(use_env=False, entry_points=list, extra=[("fake", connectors_plugin(make_connector("fake")))])
    second = build_plugins(use_env=False, entry_points=list)
    assert set(first.connectors()) == {"fake"}
    assert second.connectors() == {}
    assert first.pm is not second.pm


def test_an_extra_plugin_can_be_disabled_by_name(connectors_plugin: Callable[..., object], make_connector: Any) -> None:
    """In-memory plugins obey the disabled list too."""
    plugins = build_plugins(
        ["fake"], use_env=False, entry_points=list, extra=[("fake", connectors_plugin(make_connector("fake")))]
    )
    assert not plugins.infos["fake"].enabled
    assert plugins.connectors() == {}


def test_a_failing_hook_implementation_is_recorded_and_the_others_still_register(
    connectors_plugin: Callable[..., object], make_connector: Any
) -> None:
    """pluggy would abandon the whole hook call; the manager calls each implementation on its own."""

    class Exploding:
        @hookimpl
        def register_connectors(self, register: Any) -> None:
            raise ValueError("no connector today")

    good = make_connector("good")
    plugins = build_plugins(
        use_env=False, entry_points=list, extra=[("a-explodes", Exploding()), ("b-good", connectors_plugin(good))]
    )
    assert plugins.connectors() == {"good": good}
    assert plugins.infos["a-explodes"].error == "register_connectors failed: ValueError: no connector today"
    assert plugins.infos["b-good"].error is None


def test_registering_something_that_is_not_a_connector_is_the_plugin_s_error(
    connectors_plugin: Callable[..., object],
) -> None:
    """register() refuses a class that is not a Connector; the plugin carries the error."""
    plugins = build_plugins(use_env=False, entry_points=list, extra=[("odd", connectors_plugin(dict))])
    assert plugins.connectors() == {}
    error = plugins.infos["odd"].error
    assert error is not None
    assert "is not a Connector subclass" in error


def test_two_plugins_claiming_one_system_is_reported(
    connectors_plugin: Callable[..., object], make_connector: Any
) -> None:
    """The plugin called second to claim a system key gets the error; the one called first keeps it.

    pluggy calls the most recently registered plugin first.
    """
    earlier, later = make_connector("same"), make_connector("same")
    plugins = build_plugins(
        use_env=False,
        entry_points=list,
        extra=[("earlier", connectors_plugin(earlier)), ("later", connectors_plugin(later))],
    )
    assert plugins.connector("same") is later
    assert plugins.infos["later"].error is None
    error = plugins.infos["earlier"].error
    assert error is not None
    assert "two connectors claim the system 'same'" in error


def test_an_unknown_system_names_the_known_ones(connectors_plugin: Callable[..., object], make_connector: Any) -> None:
    """connector() says which systems exist."""
    plugins = build_plugins(use_env=False, entry_points=list, extra=[("a", connectors_plugin(make_connector("a")))])
    with pytest.raises(PluginError, match=r"no enabled plugin provides the system 'nope' \(known: a\)"):
        plugins.connector("nope")


def test_an_unknown_system_says_when_its_plugin_is_disabled_or_broken(
    connectors_plugin: Callable[..., object], make_connector: Any
) -> None:
    """When the plugin of the same name is disabled or failed, the error says so."""

    class Broken:
        @hookimpl
        def register_connectors(self, register: Any) -> None:
            raise ImportError("No module named 'broken.connector'")

    plugins = build_plugins(
        ["off"],
        use_env=False,
        entry_points=list,
        extra=[("off", connectors_plugin(make_connector("off"))), ("broken", Broken())],
    )
    with pytest.raises(PluginError, match="the plugin 'off' is disabled"):
        plugins.connector("off")
    with pytest.raises(PluginError, match=r"the plugin 'broken' failed: register_connectors failed: ImportError"):
        plugins.connector("broken")


def test_plugins_add_commands_but_cannot_take_core_names() -> None:
    """register_commands adds commands; a reserved name (present or planned) stays the core's."""
    core_doctor = click.Command("doctor")

    class Commands:
        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            cli.add_command(click.Command("hello"))
            cli.add_command(click.Command("doctor"))
            cli.add_command(click.Command("serve"))

    group = click.Group("cxbridge", commands={"doctor": core_doctor})
    plugins = build_plugins(use_env=False, entry_points=list, extra=[("cmds", Commands())])
    plugins.add_commands(group, reserved={"doctor", "serve"})
    assert set(group.commands) == {"doctor", "hello"}
    assert group.commands["doctor"] is core_doctor


def test_handoff_context_never_overwrites_and_skips_a_failing_plugin() -> None:
    """Existing names win, then the plugin called first (the last registered); raising or non-dict: skipped."""

    class Earlier:
        @hookimpl
        def handoff_context(self, context: dict[str, Any]) -> dict[str, Any]:
            return {"usage": 2, "health": "green"}

    class Later:
        @hookimpl
        def handoff_context(self, context: dict[str, Any]) -> dict[str, Any]:
            context["ticket"] = "tampered"
            return {"ticket": "replaced", "usage": 1}

    class NotADict:
        @hookimpl
        def handoff_context(self, context: dict[str, Any]) -> Any:
            return ["not", "a", "dict"]

    class Raising:
        @hookimpl
        def handoff_context(self, context: dict[str, Any]) -> None:
            raise KeyError("customer")

    plugins = build_plugins(
        use_env=False,
        entry_points=list,
        extra=[("earlier", Earlier()), ("list", NotADict()), ("raising", Raising()), ("later", Later())],
    )
    context = {"ticket": "T-1"}
    assert plugins.handoff_context(context) == {"usage": 1, "health": "green"}
    assert context == {"ticket": "T-1"}
    assert plugins.infos["raising"].error == "handoff_context failed: KeyError: 'customer'"
