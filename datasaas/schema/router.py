"""The ``/graphql`` router (GraphiQL in the browser)."""

from __future__ import annotations

from fastapi import APIRouter

from datasaas.config import Settings


def create_graphql_router(settings: Settings) -> APIRouter:
    """Return the router serving ``/graphql``."""
    return APIRouter()
