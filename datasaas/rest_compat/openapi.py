"""Post-processing of ``/openapi.json`` so that it tells the truth about every route.

FastAPI documents what the route declarations say; this adds what lives outside them: no 422
(validation errors are 400 here), 503 when the database is unreachable, and ``/graphql`` as it
really answers (GraphiQL's HTML page on GET from a browser, GraphQL JSON bodies otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from datasaas.kit.errors import ErrorEnvelope

GRAPHQL_PATH = "/graphql"
UNAVAILABLE = "Database unreachable (`service_unavailable`); retry later"

_GRAPHQL_ERROR = {
    "type": "object",
    "required": ["message"],
    "properties": {
        "message": {"type": "string"},
        "locations": {"type": "array", "items": {"type": "object"}},
        "path": {"type": "array", "items": {"type": ["string", "integer"]}},
        "extensions": {
            "type": "object",
            "properties": {"code": {"type": "string", "examples": ["UNAUTHENTICATED"]}},
        },
    },
}
_GRAPHQL_RESPONSE = {
    "type": "object",
    "properties": {
        "data": {"type": ["object", "null"]},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/GraphQLError"}},
        "extensions": {"type": "object"},
    },
}
_GRAPHQL_REQUEST = {
    "type": "object",
    "required": ["query"],
    "properties": {
        "query": {
            "type": "string",
            "minLength": 1,
            "examples": ['{ revenue(siteId: "ds_demo") { mrr } }'],
        },
        "variables": {"type": ["object", "null"]},
        "operationName": {"type": ["string", "null"]},
    },
}
_GRAPHQL_STATUSES = {
    "200": "Executed; field errors, if any, are in `errors` with `extensions.code`",
    "400": "Not a GraphQL request (unreadable JSON, no query, too large a batch, a mutation "
    "over GET): `BAD_USER_INPUT`",
    "401": "Missing, malformed, unknown or revoked key: `UNAUTHENTICATED`",
    "403": "Key of another site, or a read key on a mutation: `FORBIDDEN`",
    "413": "Body over the size limit",
    "429": "Rate limited: `RATE_LIMITED`",
    "503": UNAVAILABLE,
}


def _graphql_json(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/GraphQLResponse"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _graphql_paths() -> dict[str, Any]:
    post_responses = {status: _graphql_json(text) for status, text in _GRAPHQL_STATUSES.items()}
    get_responses = {s: r for s, r in post_responses.items() if s != "413"}
    get_responses["200"] = {
        "description": "GraphiQL for a browser (`Accept: text/html`, no `query`); otherwise the "
        "GraphQL response",
        "content": {
            "text/html": {"schema": {"type": "string"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/GraphQLResponse"}},
        },
    }
    query_parameters = [
        {
            "name": "query",
            "in": "query",
            "required": False,
            "description": "Without it, a browser gets GraphiQL",
            "schema": {"type": "string", "minLength": 1},
        },
        {
            "name": "variables",
            "in": "query",
            "required": False,
            "description": "A JSON object",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        {"name": "operationName", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
    common = {"tags": ["graphql"], "security": [{"bearer": []}]}
    return {
        "get": {
            **common,
            # GraphiQL's page needs no key; running a query does (401 without one).
            "security": [{}, {"bearer": []}],
            "summary": "GraphiQL, or a query over GET",
            "operationId": "graphql_get",
            "parameters": query_parameters,
            "responses": get_responses,
        },
        "post": {
            **common,
            "summary": "Run a GraphQL operation",
            "operationId": "graphql_post",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/GraphQLRequest"}}
                },
            },
            "responses": post_responses,
        },
    }


def _drop_null(parameter: dict[str, Any]) -> None:
    """``anyOf: [X, null]`` becomes X: a query or header value is never JSON null."""
    schema = parameter.get("schema", {})
    variants = schema.get("anyOf")
    if isinstance(variants, list):
        kept = [v for v in variants if v != {"type": "null"}]
        if len(kept) == 1:
            del schema["anyOf"]
            schema.update(kept[0])


def _finish(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(
        GraphQLError=_GRAPHQL_ERROR,
        GraphQLResponse=_GRAPHQL_RESPONSE,
        GraphQLRequest=_GRAPHQL_REQUEST,
    )
    schemas.setdefault("ErrorEnvelope", ErrorEnvelope.model_json_schema())
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer ds_live_...`",
    }
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                _drop_null(parameter)
                optional_query = parameter["in"] == "query" and not parameter.get("required")
                if path.startswith("/api/v1/") and optional_query:
                    parameter["allowEmptyValue"] = True  # `end=` counts as absent
            responses = operation.get("responses", {})
            responses.pop("422", None)
            if path.startswith("/api/v1/"):
                operation.setdefault("security", [{"bearer": []}])
                responses.setdefault("503", {"description": UNAVAILABLE, "content": envelope})
    schema.setdefault("paths", {})[GRAPHQL_PATH] = _graphql_paths()
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once, then cached)."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    cached: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not cached:
            cached.update(_finish(generate()))
        return cached

    app.openapi = openapi  # type: ignore[method-assign]
