"""``cxbridge store migrate`` and ``cxbridge store copy``: bring a store to this version's schema, and move an
installation from its SQLite file to a PostgreSQL database."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import CxbridgeError
from ..redact import redact_url
from ..store import open_store
from ..store.copy import copy_sqlite_to_postgres
from ..store.preflight import check_store, store_file
from .context import CliContext, pass_cli


@click.group("store")
def store_group() -> None:
    """Migrate the store, or copy a SQLite store into PostgreSQL."""


@store_group.command("migrate")
@pass_cli
def store_migrate(obj: CliContext) -> None:
    """Apply the pending schema migrations to the configured store, once, and print its schema version.

    Safe while other processes start: each migration is applied by one of them, under a lock. 'cxbridge serve'
    and 'cxbridge worker' migrate at start too; run this first to migrate before a rolling upgrade.
    """
    config = obj.config()
    location = config.store_location()
    password = config.store_password()
    before = check_store(location, password)
    with open_store(location, password=password) as store:
        version = store.schema_version()
    obj.echo(f"before: {before}")
    obj.echo(f"now: schema version {version}")


@store_group.command("copy")
@click.option("--from", "source", required=True, metavar="sqlite:PATH", help="The SQLite store to copy from.")
@click.option("--to", "target", required=True, metavar="URL", help="The PostgreSQL store to copy into (empty).")
@click.option(
    "--password-env",
    metavar="NAME",
    help="Read the target's password from this environment variable (else libpq's PGPASSWORD or ~/.pgpass).",
)
@pass_cli
def store_copy(obj: CliContext, source: str, target: str, password_env: str | None) -> None:
    """Copy every link, intent, inbox row, job, dead letter, audit row, snapshot and checkpoint from a SQLite store
    into an empty PostgreSQL store, keeping ids and states; queued jobs then run once on the new store.

    Stop 'cxbridge serve' and the workers first (the copy holds the SQLite file's write lock while it reads), then
    point [cxbridge] store at the new database.
    """
    text = source.removeprefix("sqlite:") if source.startswith("sqlite:") and "://" not in source else source
    path = store_file(text)
    if path is None:
        raise CxbridgeError(f"--from {redact_url(source)}: expected sqlite:PATH (a SQLite store file)")
    if not target.lower().startswith(("postgresql://", "postgres://")):
        raise CxbridgeError(f"--to {redact_url(target)}: expected a postgresql:// URL")
    password = None
    if password_env:
        if password_env not in os.environ:
            raise CxbridgeError(f"--password-env {password_env}: the environment variable is not set")
        password = os.environ[password_env]
    report = copy_sqlite_to_postgres(Path(path), target, password=password)
    obj.echo(f"{path} -> {redact_url(target)}: {report.line()}")
