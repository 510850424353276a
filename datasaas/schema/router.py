"""The ``/graphql`` router: GraphiQL in the browser, GraphQL over HTTP GET and POST.

HTTP statuses (the contract fixes 401/403 for ``/graphql`` like REST; the rest is GraphQL over
HTTP with ``application/json`` responses):

- 401 (with ``WWW-Authenticate: Bearer``) when any error is ``UNAUTHENTICATED``; otherwise 403
  when any error is ``FORBIDDEN``; otherwise 503 (with ``Retry-After``) when any error is
  ``SERVICE_UNAVAILABLE``. The body is the normal GraphQL response either way.
- 200 for every other executed request, errors included (``BAD_USER_INPUT``, parse and
  validation failures, ``INTERNAL_SERVER_ERROR``): they are in ``errors`` with ``extensions.code``,
  possibly beside partial ``data``.
- 400 when the HTTP request is not a GraphQL request at all (unreadable JSON, no query, a batch
  of more than ``MAX_BATCH_OPERATIONS`` operations, a mutation over GET) and 413 for a body over
  ``MAX_BODY_BYTES``: still a GraphQL error body, ``BAD_USER_INPUT`` with Strawberry's reason.
- 429 comes from the rate-limit middleware before this router.

JSON bodies are parsed with exact decimals (as the REST layer does), so a ``Decimal`` sent as a
JSON number keeps its digits.

Every executed operation needs a valid key, introspection included (the schema itself is public
in ``schema.graphql``); GraphiQL's page loads without one and completes once the key is set.
"""

from __future__ import annotations

from cross_web import HTTPException, StarletteRequestAdapter
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET

from datasaas.config import Settings
from datasaas.errors import ServiceUnavailable
from datasaas.explorers import graphiql_response
from datasaas.money import load_json_exact
from datasaas.schema.build import build_schema
from datasaas.schema.context import Context, get_context
from datasaas.schema.errors import BAD_USER_INPUT, SERVICE_UNAVAILABLE
from datasaas.schema.extensions import MAX_BATCH_OPERATIONS, MAX_QUERY_LENGTH

# A full batch of maximal documents, plus room for variables.
MAX_BODY_BYTES = MAX_BATCH_OPERATIONS * MAX_QUERY_LENGTH + 64 * 1024

DEMO_SITE_ID = "ds_demo"
MAX_SUBSCRIPTIONS_PER_CONNECTION = 20

EXAMPLE_QUERY = f"""# DataSaaS GraphQL. Set your key under "Headers" below:
#   {{"Authorization": "Bearer ds_live_..."}}
# then run this query (Ctrl-Enter).

query Overview {{
  goals(siteId: "{DEMO_SITE_ID}", limit: 10) {{
    name
    uniqueVisitors
    completionCount
    conversionRate
    completions(first: 3) {{
      totalCount
      edges {{ node {{ visitorId completedAt source country browser }} }}
    }}
  }}
  revenue(siteId: "{DEMO_SITE_ID}") {{
    totalRevenue
    mrr
    conversionRate
    currency
  }}
  revenueTimeseries(siteId: "{DEMO_SITE_ID}", granularity: DAY) {{
    period
    newRevenue
    refundRevenue
  }}
}}
"""
DEFAULT_HEADERS = '{"Authorization": "Bearer ds_live_..."}'

_STATUS_BY_CODE = (("UNAUTHENTICATED", 401), ("FORBIDDEN", 403), (SERVICE_UNAVAILABLE, 503))


def _error_codes(data: GraphQLHTTPResponse | list[GraphQLHTTPResponse]) -> set[str]:
    responses = data if isinstance(data, list) else [data]
    codes = set()
    for response in responses:
        for error in response.get("errors") or []:
            extensions = error.get("extensions") if isinstance(error, dict) else None
            if isinstance(extensions, dict):
                codes.add(str(extensions.get("code")))
    return codes


class BoundedBody(StarletteRequestAdapter):
    """Reads the request body, refusing (413) more than ``MAX_BODY_BYTES``, chunked or not."""

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self._stream = request.stream

    async def get_body(self) -> bytes:
        """The whole body, or 413 as soon as it is known to be too large."""
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise HTTPException(413, f"The body is over the {MAX_BODY_BYTES} byte limit.")
        body = bytearray()
        async for chunk in self._stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise HTTPException(413, f"The body is over the {MAX_BODY_BYTES} byte limit.")
        return bytes(body)


class GatewayGraphQLRouter(GraphQLRouter[Context, None]):
    """Strawberry's FastAPI router with our statuses, exact JSON numbers and GraphiQL defaults."""

    request_adapter_class = BoundedBody

    def decode_json(self, data: str | bytes) -> object:
        """Parse JSON with exact decimals; duplicate keys and NaN are refused."""
        try:
            body = load_json_exact(data)
        except ValueError as exc:
            raise HTTPException(400, f"Unable to parse request body as JSON: {exc}") from None
        for operation in body if isinstance(body, list) else [body]:
            if not isinstance(operation, dict):
                raise HTTPException(400, "Each operation must be a JSON object.")
            # An empty operationName is what form-built clients send for "none".
            if operation.get("operationName") == "":
                operation["operationName"] = None
        return body

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """Answer 401/403 for authentication/authorization errors, as REST does."""
        response = super().create_response(response_data, sub_response)
        codes = _error_codes(response_data)
        for code, status in _STATUS_BY_CODE:
            if code in codes:
                response.status_code = status
                if status == 401:
                    response.headers["WWW-Authenticate"] = "Bearer"
                if status == 503:
                    response.headers["Retry-After"] = str(ServiceUnavailable().retry_after)
                break
        return response

    async def run(  # type: ignore[override]
        self, request: Request, context: Context | None = None, root_value: None = None
    ) -> Response:
        """Answer refusals of the HTTP request itself as GraphQL errors, not plain text."""
        try:
            return await super().run(request, context=context or UNSET, root_value=root_value)
        except HTTPException as exc:
            return JSONResponse(
                {"errors": [{"message": exc.reason, "extensions": {"code": BAD_USER_INPUT}}]},
                status_code=exc.status_code,
            )

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        """GraphiQL from the app's own assets, opened on an example query and a header template."""
        return graphiql_response(
            endpoint=request.url.path, query=EXAMPLE_QUERY, headers=DEFAULT_HEADERS
        )


def create_graphql_router(settings: Settings) -> APIRouter:
    """Return the router serving ``/graphql``."""
    schema = build_schema(introspection=settings.graphql_introspection)
    return GatewayGraphQLRouter(
        schema,
        context_getter=get_context,
        graphql_ide="graphiql",
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
    )
