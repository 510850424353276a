"""The Strawberry GraphQL schema served at ``/graphql``."""
