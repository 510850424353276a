"""The Strawberry GraphQL schema served at ``/graphql`` (CONTRACT §9).

``schema`` is the schema with introspection on, as exported to ``schema.graphql`` by
``make schema``; the router builds its own from the settings (``build_schema``).
"""

from datasaas.schema.build import GatewaySchema, build_schema

__all__ = ["GatewaySchema", "build_schema", "schema"]

schema = build_schema()
