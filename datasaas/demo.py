"""The demo site: created on an empty database by ``serve --demo`` and filled by ``datasaas demo``."""

from __future__ import annotations

from rich.console import Console

from datasaas.resolvers import sites as site_resolvers
from datasaas.resolvers.sites import Scope
from datasaas.storage import sites as site_store
from datasaas.storage.engine import Database

DEMO_SITE_ID = "ds_demo"
DEMO_DOMAIN = "demo.example.com"


async def ensure_demo(database: Database, *, console: Console) -> bool:
    """Create the demo site with two keys when the database holds no site; print the keys."""
    async with database.write() as session:
        if await site_store.has_sites(session):
            return False
        await site_resolvers.create_site(
            session, name="Demo", domain=DEMO_DOMAIN, site_id=DEMO_SITE_ID
        )
        read = await site_resolvers.create_key(
            session, site_id=DEMO_SITE_ID, scope=Scope.READ, name="demo read"
        )
        write = await site_resolvers.create_key(
            session, site_id=DEMO_SITE_ID, scope=Scope.READ_WRITE, name="demo read & write"
        )
    console.print(f"Created demo site [bold]{DEMO_SITE_ID}[/bold] ({DEMO_DOMAIN})")
    console.print(f"  read key:         [bold green]{read.secret}[/bold green]")
    console.print(f"  read & write key: [bold green]{write.secret}[/bold green]")
    return True
