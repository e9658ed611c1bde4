"""The vendor emulators from the command line: ``sandbox serve``, and ``demo`` (the whole story on them)."""

from __future__ import annotations

import secrets as pysecrets
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..demo import run_demo
from ..errors import CxbridgeError
from ..sandbox import Latency, RateLimit, WebhookTarget
from ..sandbox.modes import serve_vendors
from ..sandbox.modes import write_config as write_sandbox_config


@click.group()
def sandbox() -> None:
    """Run the vendor emulators (Zendesk, Jira, HubSpot) for demos, tests and plugin development."""


@sandbox.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--zendesk-port", type=int, default=0, help="Port for Zendesk (0: a free one).")
@click.option("--jira-port", type=int, default=0, help="Port for Jira (0: a free one).")
@click.option("--hubspot-port", type=int, default=0, help="Port for HubSpot (0: a free one).")
@click.option("--seed", type=click.Choice(["demo", "empty"]), default="demo", show_default=True)
@click.option("--webhook-target", metavar="URL", help="Deliver the emulators' webhooks to this URL.")
@click.option(
    "--rate-limit",
    "rate_limits",
    multiple=True,
    metavar="SYSTEM=N/PERIOD",
    help="Enforce a limit, e.g. zendesk=700/min (repeatable).",
)
@click.option(
    "--latency",
    "latencies",
    multiple=True,
    metavar="[SYSTEM=]MS[+JITTER]",
    help="Answer each vendor call after MS milliseconds plus up to JITTER more, e.g. 150+50 (every system) or "
    "jira=300 (repeatable).",
)
@click.option(
    "--write-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a cxbridge config that points at the emulators.",
)
def sandbox_serve(
    host: str,
    zendesk_port: int,
    jira_port: int,
    hubspot_port: int,
    seed: str,
    webhook_target: str | None,
    rate_limits: tuple[str, ...],
    latencies: tuple[str, ...],
    write_config: Path | None,
) -> None:
    """Serve the emulators on loopback ports until interrupted; print their URLs and credentials."""
    vendors = serve_vendors(
        host=host,
        ports={"zendesk": zendesk_port, "jira": jira_port, "hubspot": hubspot_port},
        seed=seed,
    )
    try:
        for spec in rate_limits:
            system, _, limit = spec.partition("=")
            if system not in vendors.backends:
                raise CxbridgeError(f"--rate-limit {spec}: unknown system {system!r}")
            try:
                vendors[system].rate_limit = RateLimit.parse(limit)
            except ValueError as exc:
                raise CxbridgeError(f"--rate-limit {spec}: {exc}") from None
        for spec in latencies:
            system, _, given = spec.rpartition("=")
            if system and system not in vendors.backends:
                raise CxbridgeError(f"--latency {spec}: unknown system {system!r}")
            try:
                latency = Latency.parse(given)
            except ValueError as exc:
                raise CxbridgeError(f"--latency {spec}: {exc}") from None
            for name in [system] if system else list(vendors.backends):
                vendors[name].latency = latency
        webhook_secrets: dict[str, str] = {}
        if webhook_target:
            for name, backend in vendors.backends.items():
                webhook_secrets[name] = pysecrets.token_urlsafe(24)
                backend.webhook_targets = [
                    WebhookTarget(url=f"{webhook_target.rstrip('/')}/{name}", secret=webhook_secrets[name])
                ]
        for name, backend in vendors.backends.items():
            click.echo(f"{name:8} {backend.base_url}")
            for key, value in backend.credentials().items():
                click.echo(f"         {key}: {value}")
        if write_config:
            extra: dict[str, Any] = {}
            if webhook_target:  # the URL each emulator calls, as the vendors' webhooks are told in production
                urls = {name: target.url for name, b in vendors.backends.items() for target in b.webhook_targets[:1]}
                extra["webhooks"] = {"public_urls": urls}
            write_sandbox_config(vendors, write_config, extra=extra)
            click.echo(f"config written to {write_config}")
        click.echo("Serving; Ctrl-C to stop.")
        sys.stdout.flush()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        vendors.stop()


@click.command()
@click.option("--keep-running", is_flag=True, help="Leave the sandbox up after the story and print its URLs.")
def demo(keep_running: bool) -> None:
    """Play the whole story on the built-in sandbox: escalation, a second ticket joining, the summary."""
    run_demo(click.echo, keep_running=keep_running)
