"""``datasaas webhooks add|list|remove|deliveries`` (CONTRACT §14)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from datasaas.cli import DatabaseUrl, JsonFlag, _run, console
from datasaas.resolvers import live as live_resolvers
from datasaas.storage.engine import Database

webhooks_app = typer.Typer(
    help="Outbound webhooks: signed (Standard Webhooks) POSTs of goal and payment events.",
    no_args_is_help=True,
)


def _endpoint(endpoint: Any) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "site_id": endpoint.site_id,
        "url": endpoint.url,
        "events": endpoint.events.split(","),
        "created_at": endpoint.created_at.isoformat(),
    }


@webhooks_app.command("add")
def webhooks_add(
    site: Annotated[str, typer.Option("--site", help="Site id.")],
    url: Annotated[str, typer.Option("--url", help="The receiver's http(s) URL.")],
    events: Annotated[
        str,
        typer.Option(
            "--events", help="Comma-separated: goal.completed,payment.created,payment.refunded"
        ),
    ],
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Register a receiver; prints its whsec_ signing secret once."""

    async def work(database: Database) -> dict[str, Any]:
        async with database.write() as session:
            issued = await live_resolvers.add_webhook(session, site_id=site, url=url, events=events)
            return {**_endpoint(issued.endpoint), "secret": issued.secret}

    row = _run(database_url, work)
    if as_json:
        typer.echo(json.dumps(row))
        return
    console.print(f"Webhook {row['id']} for {row['site_id']} -> {row['url']}")
    console.print(f"  events: {', '.join(row['events'])}")
    console.print(f"  signing secret (shown once): {row['secret']}")


@webhooks_app.command("list")
def webhooks_list(
    site: Annotated[str | None, typer.Option("--site", help="Only this site.")] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List receivers (never their secrets)."""

    async def work(database: Database) -> list[dict[str, Any]]:
        async with database.read() as session:
            return [_endpoint(e) for e in await live_resolvers.list_webhooks(session, site_id=site)]

    rows = _run(database_url, work)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("id", "site_id", "url", "events", "created_at")
    for row in rows:
        table.add_row(
            row["id"], row["site_id"], row["url"], ",".join(row["events"]), row["created_at"]
        )
    console.print(table)


@webhooks_app.command("remove")
def webhooks_remove(
    webhook_id: Annotated[str, typer.Argument(help="The webhook id (wh_...).")],
    database_url: DatabaseUrl = None,
) -> None:
    """Remove a receiver; its pending deliveries are dropped."""

    async def work(database: Database) -> None:
        async with database.write() as session:
            await live_resolvers.remove_webhook(session, endpoint_id=webhook_id)

    _run(database_url, work)
    console.print(f"Removed {webhook_id}")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    webhook_id: Annotated[str, typer.Argument(help="The webhook id (wh_...).")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Latest deliveries.")] = 50,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The latest deliveries of a receiver with every attempt and its status."""

    async def work(database: Database) -> list[dict[str, Any]]:
        async with database.read() as session:
            logs = await live_resolvers.deliveries(session, endpoint_id=webhook_id, limit=limit)
        return [
            {
                "id": d.id,
                "webhook_id": d.webhook_id,
                "type": d.type,
                "status": d.status,
                "attempts": d.attempts,
                "created_at": d.created_at.isoformat(),
                "next_attempt_at": d.next_attempt_at.isoformat(),
                "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
                "log": [
                    {
                        "attempted_at": a.attempted_at.isoformat(),
                        "status_code": a.status_code,
                        "error": a.error,
                        "duration_ms": a.duration_ms,
                    }
                    for a in d.log
                ],
            }
            for d in logs
        ]

    rows = _run(database_url, work)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("webhook-id", "type", "status", "attempts", "last", "created_at")
    for row in rows:
        last = row["log"][-1] if row["log"] else None
        outcome = (last["error"] or str(last["status_code"])) if last else "-"
        table.add_row(
            row["webhook_id"],
            row["type"],
            row["status"],
            str(row["attempts"]),
            outcome,
            row["created_at"],
        )
    console.print(table)
