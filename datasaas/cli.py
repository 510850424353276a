"""The ``datasaas`` command line: serve, migrate, sites, keys and demo data."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from datasaas.config import DEMO_SITE_ID, get_settings
from datasaas.errors import DomainError
from datasaas.resolvers import providers as provider_resolvers
from datasaas.resolvers import sites as site_resolvers
from datasaas.resolvers.sites import Scope
from datasaas.storage.engine import Database
from datasaas.storage.migrate import upgrade
from datasaas.storage.models import Site

T = TypeVar("T")

app = typer.Typer(help="DataSaaS goals & revenue gateway.", no_args_is_help=True)
sites_app = typer.Typer(help="Manage sites.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(sites_app, name="sites")
app.add_typer(keys_app, name="keys")
providers_app = typer.Typer(
    help="Connect payment providers (Stripe, LemonSqueezy, Polar) by their webhook secret.",
    no_args_is_help=True,
)
app.add_typer(providers_app, name="providers")

console = Console()
err_console = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL (default: $DATASAAS_DATABASE_URL or ./data/datasaas.db).",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _url(database_url: str | None) -> str:
    if database_url:
        # Child processes (uvicorn workers) read the same setting from the environment.
        os.environ["DATASAAS_DATABASE_URL"] = database_url
        get_settings.cache_clear()
    return get_settings().database_url


def _run(database_url: str | None, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` against a migrated database and turn domain errors into a clean exit."""

    async def main() -> T:
        database = Database(_url(database_url))
        try:
            await upgrade(database)
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except DomainError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Apply pending database migrations and exit."""

    async def work(_database: Database) -> None:
        return None

    _run(database_url, work)
    console.print("Database is up to date.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create the demo site if none exists.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Apply pending migrations, then serve the API."""
    import uvicorn

    from datasaas.dashboard import dashboard_url
    from datasaas.demo import ensure_demo
    from datasaas.server import GatewayHttpProtocol

    dashboard = dashboard_url(host=host, port=port)

    async def work(database: Database) -> None:
        if demo and not await ensure_demo(database, console=console, dashboard_url=dashboard):
            # Keys are shown once, on the run that created them; say how to get another.
            console.print(
                "The database already has sites. Get a key with: "
                f"[bold]datasaas keys create --site {DEMO_SITE_ID} --scope read_write[/bold]"
            )

    _run(database_url, work)
    console.print(
        f"Serving on http://{host}:{port}  (GraphiQL: /graphql, Swagger UI: /docs, ReDoc: /redoc)"
    )
    console.print(f"Dashboard: {dashboard}", soft_wrap=True)
    uvicorn.run(
        "datasaas.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=get_settings().log_level,
        proxy_headers=False,
        # Header size and header read time are bounded by our protocol (datasaas.server).
        http=GatewayHttpProtocol,
        timeout_keep_alive=5,
    )


@sites_app.command("create")
def sites_create(
    name: Annotated[str, typer.Option(help="Display name.")],
    domain: Annotated[str, typer.Option(help="The site's domain, e.g. example.com.")],
    site_id: Annotated[str | None, typer.Option("--id", help="Site id (ds_...).")] = None,
    currency: Annotated[str, typer.Option(help="Reporting currency (ISO 4217).")] = "USD",
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a site."""

    async def work(database: Database) -> dict[str, str]:
        async with database.write() as session:
            site = await site_resolvers.create_site(
                session, name=name, domain=domain, site_id=site_id, currency=currency
            )
            return _site_dict(site)

    site = _run(database_url, work)
    if as_json:
        typer.echo(json.dumps(site))
    else:
        console.print(
            f"Created site [bold]{site['id']}[/bold] ({site['domain']}, {site['currency']})"
        )


def _site_dict(site: Site) -> dict[str, str]:
    return {
        "id": site.id,
        "name": site.name,
        "domain": site.domain,
        "currency": site.currency,
        "created_at": site.created_at.isoformat(),
    }


@sites_app.command("list")
def sites_list(as_json: JsonFlag = False, database_url: DatabaseUrl = None) -> None:
    """List sites."""

    async def work(database: Database) -> list[dict[str, str]]:
        async with database.read() as session:
            return [_site_dict(s) for s in await site_resolvers.list_sites(session)]

    rows = _run(database_url, work)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("id", "name", "domain", "currency", "created_at")
    for row in rows:
        table.add_row(row["id"], row["name"], row["domain"], row["currency"], row["created_at"])
    console.print(table)


@keys_app.command("create")
def keys_create(
    site: Annotated[str, typer.Option("--site", help="Site id.")],
    scope: Annotated[Scope, typer.Option("--scope", help="read or read_write.")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key and print its secret (shown only this once)."""

    async def work(database: Database) -> dict[str, str]:
        async with database.write() as session:
            issued = await site_resolvers.create_key(session, site_id=site, scope=scope, name=name)
            return {
                "id": issued.key.id,
                "site_id": issued.key.site_id,
                "scope": issued.key.scope,
                "key": issued.secret,
            }

    key = _run(database_url, work)
    if as_json:
        typer.echo(json.dumps(key))
    else:
        console.print(f"Created {key['scope']} key [bold]{key['id']}[/bold] for {key['site_id']}")
        console.print(f"Secret (shown once): [bold green]{key['key']}[/bold green]")


@keys_app.command("list")
def keys_list(
    site: Annotated[str, typer.Option("--site", help="Site id.")],
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List a site's API keys (never their secrets)."""

    async def work(database: Database) -> list[dict[str, str | None]]:
        async with database.read() as session:
            keys = await site_resolvers.list_keys(session, site_id=site)
            return [
                {
                    "id": k.id,
                    "site_id": k.site_id,
                    "scope": k.scope,
                    "name": k.name,
                    "prefix": k.prefix,
                    "created_at": k.created_at.isoformat(),
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
                for k in keys
            ]

    rows = _run(database_url, work)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("scope", "name", "prefix", "created_at", "revoked_at")
    # The id is what `keys revoke` takes: never shortened, whatever the terminal's width.
    table.add_column(
        "id", no_wrap=True, min_width=max((len(r["id"] or "") for r in rows), default=2)
    )
    table.columns.insert(0, table.columns.pop())
    for row in rows:
        table.add_row(
            row["id"],
            row["scope"],
            row["name"] or "",
            f"{row['prefix']}…",
            row["created_at"],
            row["revoked_at"] or "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke an API key; it stops working at once."""

    async def work(database: Database) -> None:
        async with database.write() as session:
            await site_resolvers.revoke_key(session, key_id=key_id)

    _run(database_url, work)
    console.print(f"Revoked {key_id}")


ProviderOption = Annotated[
    str, typer.Option("--provider", help="stripe, lemonsqueezy or polar.", show_default=False)
]


@providers_app.command("set")
def providers_set(
    site: Annotated[str, typer.Option("--site", help="Site id.")],
    provider: ProviderOption,
    secret: Annotated[
        str,
        typer.Option(
            "--secret",
            help="The webhook signing secret from the provider's dashboard (whsec_... for "
            "Stripe and Polar). Stored for verification; never printed.",
        ),
    ],
    database_url: DatabaseUrl = None,
) -> None:
    """Connect a provider to a site (or replace its secret) and print the webhook URL."""

    async def work(database: Database) -> str:
        async with database.write() as session:
            config = await provider_resolvers.set_provider(
                session, site_id=site, provider=provider, secret=secret
            )
            return config.provider

    name = _run(database_url, work)
    console.print(f"Connected {name} to {site}. Point its webhooks at:")
    console.print(f"  https://YOUR_HOST/api/webhooks/{name}/{site}")


@providers_app.command("list")
def providers_list(
    site: Annotated[str, typer.Option("--site", help="Site id.")],
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List the providers connected to a site (never their secrets)."""

    async def work(database: Database) -> list[dict[str, str]]:
        async with database.read() as session:
            return [
                {
                    "site_id": c.site_id,
                    "provider": c.provider,
                    "webhook_path": f"/api/webhooks/{c.provider}/{c.site_id}",
                    "created_at": c.created_at.isoformat(),
                    "updated_at": c.updated_at.isoformat(),
                }
                for c in await provider_resolvers.list_providers(session, site_id=site)
            ]

    rows = _run(database_url, work)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("provider", "webhook_path", "created_at", "updated_at")
    for row in rows:
        table.add_row(row["provider"], row["webhook_path"], row["created_at"], row["updated_at"])
    console.print(table)


@providers_app.command("remove")
def providers_remove(
    site: Annotated[str, typer.Option("--site", help="Site id.")],
    provider: ProviderOption,
    database_url: DatabaseUrl = None,
) -> None:
    """Disconnect a provider: its webhooks for this site are refused (404) from now on."""

    async def work(database: Database) -> None:
        async with database.write() as session:
            await provider_resolvers.remove_provider(session, site_id=site, provider=provider)

    _run(database_url, work)
    console.print(f"Removed {provider} from {site}")


@app.command()
def demo(
    site: Annotated[str, typer.Option("--site", help="Site id to fill.")] = DEMO_SITE_ID,
    visitors: Annotated[int, typer.Option(min=1, help="Visitors to generate.")] = 2000,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Days of history.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 42,
    database_url: DatabaseUrl = None,
) -> None:
    """Generate realistic traffic, goals and payments ending now."""
    from datasaas.demo import generate

    async def work(database: Database) -> None:
        await generate(
            database, site_id=site, visitors=visitors, days=days, seed=seed, console=console
        )

    _run(database_url, work)


from datasaas.cli_webhooks import webhooks_app  # noqa: E402  (uses the helpers above)

app.add_typer(webhooks_app, name="webhooks")
