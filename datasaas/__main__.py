"""Allow ``python -m datasaas``."""

from datasaas.cli import app

app()
