"""Assembling the schema: root types, scalars, limits, error translation and logging."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import DisableIntrospection, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from datasaas.schema.errors import is_unexpected, translate
from datasaas.schema.extensions import (
    MAX_BATCH_OPERATIONS,
    AliasLimit,
    CachedParser,
    CachedValidation,
    DepthLimit,
    MaxQueryLength,
    RequireKey,
    TokenLimit,
)
from datasaas.schema.live import Subscription
from datasaas.schema.mutation import Mutation
from datasaas.schema.query import Query
from datasaas.schema.scalars import SCALAR_MAP
from datasaas.storage.faults import describe_error, is_unavailable

logger = logging.getLogger("datasaas")

# Order matters where hooks share a stage: the length check runs before the (cached) parser.
LIMITS: tuple[type[SchemaExtension], ...] = (
    MaxQueryLength,
    TokenLimit,
    CachedParser,
    CachedValidation,
    DepthLimit,
    AliasLimit,
    RequireKey,
)


class GatewaySchema(strawberry.Schema):
    """A Strawberry schema whose results carry ``extensions.code`` on every error."""

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Execute, then translate the errors once (see ``datasaas.schema.errors``)."""
        result = await super().execute(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            allowed_operation_types=allowed_operation_types,
            operation_extensions=operation_extensions,
        )
        if result.errors:
            result.errors = [translate(error) for error in result.errors]
        return result

    async def stream(
        self, query: str | None, *args: Any, **kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        """Stream (subscriptions over WebSocket), translating each result's errors likewise."""
        return _translated(await super().stream(query, *args, **kwargs))

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log unexpected errors with their traceback; refusals we meant to give are not logged."""
        for error in errors:
            if is_unexpected(error) and error.original_error is not None:
                if is_unavailable(error.original_error):
                    logger.warning(
                        "database unavailable in GraphQL %s: %s",
                        ".".join(map(str, error.path or [])) or "operation",
                        describe_error(error.original_error),
                    )
                    continue
                logger.error(
                    "unhandled error in GraphQL %s: %s",
                    ".".join(map(str, error.path or [])) or "operation",
                    error.message,
                    exc_info=error.original_error,
                )


async def _translated(source: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    try:
        async for result in source:
            if isinstance(result, ExecutionResult) and result.errors:
                result.errors = [translate(error) for error in result.errors]
            yield result
    finally:
        await source.aclose()


def build_schema(*, introspection: bool = True) -> GatewaySchema:
    """Build the schema; without introspection, field suggestions are off too."""
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = list(LIMITS)
    if not introspection:
        extensions.append(DisableIntrospection)
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(
            scalar_map=SCALAR_MAP,
            batching_config={"max_operations": MAX_BATCH_OPERATIONS},
            disable_field_suggestions=not introspection,
        ),
    )
