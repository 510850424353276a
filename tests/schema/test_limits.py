"""Protection: hostile documents are refused before any resolver runs, quickly (CONTRACT §9).

"No resolver ran" is shown twice over: the app's engine executes no SQL statement at all (not
even the key lookup, which the root fields do first), and ``Context.authorize``, the first call
of every root field, is never reached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from graphql import build_schema, get_introspection_query, parse, validate
from strawberry.extensions import SchemaExtension

from datasaas.app import create_app
from datasaas.config import Settings
from datasaas.resolvers.sites import IssuedKey
from datasaas.schema import schema
from datasaas.schema.context import Context
from datasaas.schema.extensions import (
    PARSER_CACHE_SIZE,
    VALIDATION_CACHE_SIZE,
    AliasRule,
    CachedParser,
    CachedValidation,
    DepthRule,
)
from datasaas.schema.router import MAX_BODY_BYTES
from tests.factories import bearer
from tests.schema.conftest import GraphQL, StatementCounter

pytestmark = pytest.mark.usefixtures("key")


def introspection_chain(depth: int) -> str:
    """An ``ofType`` chain ``depth`` levels deep under ``__type``."""
    return '{ __type(name: "Goal") { ' + "ofType { " * (depth - 1) + "name" + " }" * depth + " }"


def fan_out(fragments: int, *, field: str = "name") -> str:
    """Fragments that each spread the next one twice: 2**fragments paths if walked naively."""
    chain = "\n".join(
        f"fragment F{i} on Goal {{ {field.format(i=i)} ...F{i + 1} ...F{i + 1} }}"
        for i in range(fragments)
    )
    return (
        '{ goals(siteId: "ds_test") { ...F0 } }\n'
        + chain
        + f"\nfragment F{fragments} on Goal {{ name }}"
    )


HOSTILE = {
    "depth-20": (
        '{ goals(siteId: "ds_test") { '
        + "completions { edges { node { " * 6
        + "visitorId"
        + " } } }" * 6
        + " } }",
        "GRAPHQL_VALIDATION_FAILED",
        "maximum depth of 10",
    ),
    "introspection-depth-20": (
        introspection_chain(20),
        "GRAPHQL_VALIDATION_FAILED",
        "maximum introspection depth of 15",
    ),
    "100-aliases": (
        "{ " + " ".join(f'a{i}: goals(siteId: "ds_test") {{ name }}' for i in range(100)) + " }",
        "GRAPHQL_VALIDATION_FAILED",
        "100 aliases",
    ),
    "circular-fragment": (
        '{ goals(siteId: "ds_test") { ...A } }\n'
        "fragment A on Goal { name ...B }\nfragment B on Goal { conversionRate ...A }",
        "GRAPHQL_VALIDATION_FAILED",
        "Cannot spread fragment 'A' within itself",
    ),
    "50KB-of-fields": (
        '{ goals(siteId: "ds_test") { ' + "name " * 10_000 + "} }",
        "GRAPHQL_PARSE_FAILED",
        "the limit is 32768",
    ),
    "50KB-string": (
        '{ goals(siteId: "' + "x" * 50_000 + '") { name } }',
        "GRAPHQL_PARSE_FAILED",
        "the limit is 32768",
    ),
    "2001-tokens": (
        '{ goals(siteId: "ds_test") { ' + "name " * 2_000 + "} }",
        "GRAPHQL_PARSE_FAILED",
        "more than 2000 tokens",
    ),
    "aliased-fragment-fan-out": (
        fan_out(150, field="a{i}: name"),
        "GRAPHQL_VALIDATION_FAILED",
        "over 10000 aliases",
    ),
    "nested-too-deep-to-parse": (
        "{" + " a {" * 600 + " b" + " }" * 600 + " }",
        "GRAPHQL_PARSE_FAILED",
        "nested too deeply",
    ),
}


@pytest.fixture
def resolver_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Site ids passed to ``Context.authorize``, which every root field calls first."""
    calls: list[str] = []
    original = Context.authorize

    async def recording(self: Context, site_id: str, *, write: bool = False) -> Any:
        calls.append(site_id)
        return await original(self, site_id, write=write)

    monkeypatch.setattr(Context, "authorize", recording)
    return calls


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_document_is_refused_before_any_resolver(
    graphql: GraphQL, sql: StatementCounter, resolver_calls: list[str], name: str
) -> None:
    document, reason, message = HOSTILE[name]
    sql.reset()
    answer = await graphql(document)
    assert answer.status == 200
    assert answer.data is None
    assert answer.errors, answer.body
    # The contract's closed list of codes; the kind of refusal is in extensions.reason.
    assert set(answer.codes) == {"BAD_USER_INPUT"}, answer.body
    assert reason in [e["extensions"].get("reason") for e in answer.errors], answer.body
    assert any(message in e["message"] for e in answer.errors), answer.body
    assert sql.count == 0, sql.statements
    assert resolver_calls == []


async def test_fragment_fan_out_is_measured_in_linear_time(graphql: GraphQL) -> None:
    # 2**150 paths through the fragments, but each is measured once; the document is valid.
    # Measured path by path this would never finish; the generous bound only turns such a hang
    # into a failure, it is not a speed assertion.
    answer = await asyncio.wait_for(graphql(fan_out(150)), timeout=60)
    assert answer.body == {"data": {"goals": []}}


RECURSIVE = build_schema("type Query { node: Node }  type Node { next: Node  name: String }")


def _chain(depth: int, root: str = "node") -> str:
    """``{ node { next { ... { name } } } }`` with ``depth`` levels of selections."""
    return "{ " + root + " { " + "next { " * (depth - 1) + "name" + " }" * depth + " }"


@pytest.mark.parametrize(("depth", "refused"), [(10, False), (11, True)])
def test_depth_limit_is_exactly_ten(depth: int, refused: bool) -> None:
    errors = validate(RECURSIVE, parse(_chain(depth)), [DepthRule])
    assert bool(errors) is refused
    # The same depth through fragments and inline fragments counts the same.
    body = _chain(depth).replace("{ node { ", "{ node { ...N } } fragment N on Node { ", 1)
    body = body[: -len(" } }")] + " }"
    assert bool(validate(RECURSIVE, parse(body), [DepthRule])) is refused


@pytest.mark.parametrize(("depth", "refused"), [(15, False), (16, True)])
def test_introspection_depth_limit_is_fifteen(depth: int, refused: bool) -> None:
    document = parse(introspection_chain(depth))
    assert bool(validate(schema._schema, document, [DepthRule])) is refused


@pytest.mark.parametrize(("aliases", "refused"), [(15, False), (16, True)])
def test_alias_limit_is_exactly_fifteen(aliases: int, refused: bool) -> None:
    fields = " ".join(f"a{i}: node {{ name }}" for i in range(aliases - 1))
    document = parse(f"{{ {fields} ...F }} fragment F on Query {{ last: node {{ name }} }}")
    assert bool(validate(RECURSIVE, document, [AliasRule])) is refused


async def test_standard_introspection_query_passes_the_limits(graphql: GraphQL) -> None:
    """What GraphiQL and client code generators send must keep working."""
    answer = await graphql(get_introspection_query(descriptions=True, input_value_deprecation=True))
    assert answer.errors == []
    names = {t["name"] for t in answer.data["__schema"]["types"]}
    assert {"Goal", "Decimal", "DateTime", "JSON", "CreatePaymentInput"} <= names


async def test_batches_are_capped_at_ten_operations(
    client: httpx.AsyncClient, key: IssuedKey
) -> None:
    operation = {"query": '{ revenue(siteId: "ds_test") { currency } }'}
    ten = await client.post("/graphql", json=[operation] * 10, headers=bearer(key))
    assert ten.status_code == 200
    assert [r["data"] for r in ten.json()] == [{"revenue": {"currency": "USD"}}] * 10
    eleven = await client.post("/graphql", json=[operation] * 11, headers=bearer(key))
    assert eleven.status_code == 400


async def test_oversized_bodies_are_refused_unread(
    client: httpx.AsyncClient, key: IssuedKey, sql: StatementCounter
) -> None:
    body = b'{"query": "{ __typename }", "variables": {"pad": "' + b"x" * MAX_BODY_BYTES + b'"}}'
    headers = {**bearer(key), "content-type": "application/json"}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    sql.reset()
    declared = await client.post("/graphql", content=body, headers=headers)
    chunked = await client.post("/graphql", content=chunks(), headers=headers)
    assert declared.status_code == chunked.status_code == 413
    assert sql.count == 0
    fits = b'{"query": "{ __typename }", "variables": {"pad": "' + b"x" * 60_000 + b'"}}'
    ok = await client.post("/graphql", content=fits, headers=headers)
    assert ok.json() == {"data": {"__typename": "Query"}}


def _cache_info(cached: Any) -> Any:
    return cached.cache_info()


def test_extensions_are_classes_with_bounded_caches() -> None:
    assert schema.extensions
    for extension in schema.extensions:
        assert isinstance(extension, type)
        assert issubclass(extension, SchemaExtension)
    assert _cache_info(CachedParser().cached_parse_document).maxsize == PARSER_CACHE_SIZE == 128
    validation = CachedValidation().cached_validate_document
    assert _cache_info(validation).maxsize == VALIDATION_CACHE_SIZE == 128


async def test_validation_is_cached_across_requests(graphql: GraphQL) -> None:
    document = '{ revenue(siteId: "ds_test") { currency mrr } } # cache probe'
    cache = CachedValidation().cached_validate_document
    await graphql(document)
    hits = _cache_info(cache).hits
    await graphql(document)
    assert _cache_info(cache).hits == hits + 1


async def test_unexpected_errors_are_masked_and_logged(
    graphql: GraphQL, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("connection string postgres://secret")

    monkeypatch.setattr("datasaas.resolvers.revenue.revenue_summary", broken)
    with caplog.at_level(logging.ERROR, logger="datasaas"):
        answer = await graphql('{ revenue(siteId: "ds_test") { mrr } }')
    assert answer.status == 200
    assert answer.errors == [
        {
            "message": "Internal server error.",
            "locations": [{"line": 1, "column": 3}],
            "path": ["revenue"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
    ]
    assert "secret" not in str(answer.body)
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None
    assert "secret" in str(record.exc_info[1])


async def test_refusals_are_not_logged_as_errors(
    graphql: GraphQL, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        await graphql('{ goals(siteId: "ds_other") { name } }')
        await graphql('{ goals(siteId: "ds_test", timezone: "Mars/Base") { name } }')
        await graphql("{ nope }")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# ---------------------------------------------------------------- introspection off


@pytest.fixture
async def closed_app(database_url: str) -> AsyncIterator[FastAPI]:
    """The app with ``DATASAAS_GRAPHQL_INTROSPECTION=false``."""
    application = create_app(Settings(database_url=database_url, graphql_introspection=False))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def closed(closed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``closed_app``."""
    transport = httpx.ASGITransport(app=closed_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_without_introspection_there_are_no_schema_hints(
    closed: httpx.AsyncClient, key: IssuedKey
) -> None:
    schema_query = await closed.post(
        "/graphql", json={"query": "{ __schema { types { name } } }"}, headers=bearer(key)
    )
    typo = await closed.post(
        "/graphql", json={"query": '{ goals(siteId: "ds_test") { nam } }'}, headers=bearer(key)
    )
    works = await closed.post(
        "/graphql", json={"query": '{ goals(siteId: "ds_test") { name } }'}, headers=bearer(key)
    )
    errors = schema_query.json()["errors"]
    assert {e["extensions"]["code"] for e in errors} == {"BAD_USER_INPUT"}
    assert {e["extensions"]["reason"] for e in errors} == {"GRAPHQL_VALIDATION_FAILED"}
    assert "introspection has been disabled" in errors[0]["message"]
    [error] = typo.json()["errors"]
    assert "Cannot query field 'nam'" in error["message"]
    assert "Did you mean" not in error["message"]
    assert works.json() == {"data": {"goals": []}}


async def test_with_introspection_typos_get_suggestions(graphql: GraphQL) -> None:
    answer = await graphql('{ goals(siteId: "ds_test") { nam } }')
    assert "Did you mean 'name'?" in answer.errors[0]["message"]


# ------------------------------------------------------------------------ GET
# (GraphiQL itself: tests/test_explorers.py)


async def test_queries_work_over_get(client: httpx.AsyncClient, key: IssuedKey) -> None:
    response = await client.get(
        "/graphql",
        params={"query": '{ revenue(siteId: "ds_test") { currency } }'},
        headers=bearer(key),
    )
    assert response.json() == {"data": {"revenue": {"currency": "USD"}}}
    mutation = await client.get(
        "/graphql",
        params={
            "query": 'mutation { createGoal(siteId: "ds_test", input: {name: "a", '
            'visitorId: "v"}) { created } }'
        },
        headers=bearer(key),
    )
    assert mutation.status_code == 400


# ------------------------------------------------------------------ query arguments


@pytest.mark.parametrize(
    "arguments",
    [
        'timezone: "Mars/Base"',
        'start: "2026-13-01"',
        'end: "99999-01-01"',
        'start: "2026-03-05", end: "2026-03-01"',
        'start: "2020-01-01", end: "2026-03-01", granularity: HOUR',
    ],
)
async def test_bad_arguments_are_bad_user_input_with_the_rest_message(
    graphql: GraphQL, client: httpx.AsyncClient, key: IssuedKey, arguments: str
) -> None:
    answer = await graphql(f'{{ revenueTimeseries(siteId: "ds_test", {arguments}) {{ period }} }}')
    params = {}
    for part in arguments.split(", "):
        name, value = (piece.strip().strip('"') for piece in part.split(":", 1))
        params[name] = value.lower() if name == "granularity" else value
    rest = await client.get(
        "/api/v1/revenue/timeseries", params={"site_id": "ds_test", **params}, headers=bearer(key)
    )
    assert rest.status_code == 400
    assert answer.status == 200
    assert answer.codes == ["BAD_USER_INPUT"]
    assert answer.errors[0]["message"] == rest.json()["error"]["message"]
    assert answer.errors[0]["path"] == ["revenueTimeseries"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("limit: 0", "limit: must be an integer from 1 to 1000"),
        ("limit: 1001", "limit: must be an integer from 1 to 1000"),
        ("offset: -1", "offset: must be an integer >= 0"),
    ],
)
async def test_bad_page_arguments_are_bad_user_input(
    graphql: GraphQL, arguments: str, message: str
) -> None:
    answer = await graphql(f'{{ goals(siteId: "ds_test", {arguments}) {{ name }} }}')
    assert answer.codes == ["BAD_USER_INPUT"]
    assert answer.errors[0]["message"] == message
    assert answer.errors[0]["extensions"]["details"] == [
        {"field": arguments.split(":")[0], "message": message.split(": ", 1)[1]}
    ]
