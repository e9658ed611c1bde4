"""``cxbridge impact``: the customer impact report, per issue or ranked by ARR (table, JSON or CSV)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import click

from ..errors import CxbridgeError
from ..workflows import impact as rollup
from .context import load_runtime

CSV_COLUMNS = (
    "rank",
    "issue",
    "customers",
    "tickets",
    "arr",
    "arr_unknown",
    "renewal",
    "tier",
    "oldest_open_ticket",
)


def _money(arr: dict[str, str]) -> str:
    """Per-currency sums as one cell: ``630000 USD; 12000 EUR`` (exact), or ``unknown``."""
    return "; ".join(f"{amount} {currency}" for currency, amount in arr.items()) or "unknown"


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    oldest = row.get("oldest_open_ticket")
    return {
        "rank": row.get("rank", ""),
        "issue": row["issue"],
        "customers": row["customers"],
        "tickets": row["tickets"],
        "arr": _money(row["arr"]),
        "arr_unknown": ", ".join(row["arr_unknown"]),
        "renewal": row["renewal"] or "",
        "tier": row["tier"] or "",
        "oldest_open_ticket": f"{oldest['ref']} ({(oldest['opened'] or '')[:10]})" if oldest else "",
    }


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(_flat(row))
    return out.getvalue()


def _table(rows: list[dict[str, Any]]) -> str:
    headers = ("#", "issue", "customers", "tickets", "ARR at stake", "renewal", "tier", "oldest open ticket")
    cells = [
        (
            str(f["rank"]),
            str(f["issue"]),
            str(f["customers"]),
            str(f["tickets"]),
            f["arr"] + (f" (+ unknown: {f['arr_unknown']})" if f["arr_unknown"] else ""),
            f["renewal"] or "-",
            f["tier"] or "-",
            f["oldest_open_ticket"] or "-",
        )
        for f in map(_flat, rows)
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _issue_text(row: dict[str, Any]) -> str:
    f = _flat(row)
    lines = [
        f"{row['issue']}: {row['customers']} customers, {row['tickets']} tickets",
        f"  ARR at stake: {f['arr']}" + (f" (unknown for {f['arr_unknown']})" if f["arr_unknown"] else ""),
        f"  soonest renewal: {row['renewal'] or '-'}" + (f" ({row['renewal_company']})" if row["renewal"] else ""),
        f"  highest tier: {row['tier'] or '-'}",
        f"  oldest open ticket: {f['oldest_open_ticket'] or '-'}",
        "customers:",
    ]
    for c in row["companies"]:
        arr = f"{c['arr']} {c['currency']}" if c["arr"] is not None else "ARR unknown"
        lines.append(
            f"  {c['name'] or c['ref']}  tier {c['tier'] or '-'}  {arr}  renewal {c['renewal_date'] or '-'}  "
            f"tickets {', '.join(c['tickets'])}"
        )
    lines.append("tickets:")
    for t in row["ticket_list"]:
        who = t["company"] or "customer unknown"
        lines.append(
            f"  {t['ref']}  {t['status'] or '-'}  opened {(t['opened'] or '-')[:10]}  {who}  {t['subject'] or ''}"
        )
    return "\n".join(lines)


@click.command()
@click.argument("issue_key", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (money as exact strings, per currency).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, one row per issue.")
@click.option("--top", type=click.IntRange(min=1), metavar="N", help="Only the N issues with the most ARR at stake.")
@click.option(
    "--refresh",
    is_flag=True,
    help="Re-read the linked companies from the CRM and the tickets from the helpdesk, then update the issue(s).",
)
@click.pass_context
def impact(
    ctx: click.Context, issue_key: str | None, as_json: bool, as_csv: bool, top: int | None, refresh: bool
) -> None:
    """Customer impact: for one issue its customers and tickets; without a key, the open issues ranked by ARR.

    Computed from cxbridge's store (links and the last CRM and helpdesk snapshots); which issues are open
    comes from one JQL search. ARR is summed exactly per currency and never across currencies.
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv are exclusive")
    runtime = load_runtime(ctx)
    try:
        if issue_key:
            links = runtime.store.links_for_issue_key(issue_key)
            if not links:
                raise CxbridgeError(f"nothing is linked to {issue_key}")
            written: bool | None = None
            if refresh:
                rollup.refresh_customers(runtime, links)
                written = rollup.refresh_by_key(runtime, issue_key)
            rows = [rollup.issue_row(runtime, links, key=issue_key)]
            if written is not None:
                rows[0]["written"] = written
        else:
            if refresh:
                links = runtime.store.all_links()
                rollup.refresh_customers(runtime, links)
            rows = rollup.ranking(runtime, top=top)
            if refresh:
                for row in rows:
                    row["written"] = rollup.refresh_by_key(runtime, str(row["issue"]))
    finally:
        runtime.close()
    if as_json:
        click.echo(json.dumps(rows[0] if issue_key else rows, indent=2, default=str))
    elif as_csv:
        click.echo(_csv(rows), nl=False)
    elif issue_key:
        click.echo(_issue_text(rows[0]))
    elif not rows:
        click.echo("no open issue has linked tickets")
    else:
        click.echo(_table(rows))
