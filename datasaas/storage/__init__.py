"""Storage: SQLModel tables, engine and sessions, migrations, and every SQL query of the service."""
