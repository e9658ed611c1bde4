"""The ``cxbridge`` command line: every click command of the core lives in this package, one module per family.

- ``group``: the ``cxbridge`` group (global options, one-line errors, plugin commands) and ``main``
- ``context``: ``CliContext`` (config path, environment, Config and Plugins loaded lazily), ``load_runtime``
- ``admin``: init, plugins list|enable|disable, config schema
- ``doctor``: doctor (the checks themselves are ``cxbridge.doctor``)
- ``escalate``: escalate, links, unlink
- ``impact``: impact
- ``policy``: act, policy check|rules, audit
- ``queue``: serve, sync, worker, dead-letters list|show|replay
- ``sandbox``: sandbox serve, demo
- ``setup``: setup --plan | --apply (vendor-side provisioning)

A plugin's command takes the core's context with ``pass_cli`` (``obj.config()``, ``obj.plugins()``,
``obj.echo()``). Nothing outside this package imports it, and nothing outside it imports click (the hook
specification types ``register_commands`` only).
"""

from .context import CliContext, cli_context, pass_cli
from .group import cli, main

__all__ = ["CliContext", "cli", "cli_context", "main", "pass_cli"]
