"""Schema extensions that bound the work one request may cause, all checked before execution.

Each is a class with a no-argument constructor, so Strawberry builds a fresh instance per
operation. The validation rules are module-level classes: the validation cache is keyed by the
rule classes, and a rule class made per request would never hit it.

Depth and aliases are measured here rather than with Strawberry's ``QueryDepthLimiter`` and
``MaxAliasesLimiter``: those walk every fragment spread anew, so a few hundred tokens of
fragments that each spread the next one twice take exponential time to validate. This walk
measures each fragment once. Depth counts fields that have a selection (``{ goals { name } }``
is 1 deep); introspection (``__schema``, ``__type``) gets its own, larger bound, enough for
GraphiQL's introspection query but not for ever deeper ``ofType`` chains.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)

from datasaas.schema.errors import BAD_USER_INPUT, PARSE_FAILED, VALIDATION_FAILED, with_code

MAX_QUERY_LENGTH = 32_768
MAX_TOKENS = 2_000
MAX_DEPTH = 10
MAX_INTROSPECTION_DEPTH = 15
MAX_ALIASES = 15
MAX_BATCH_OPERATIONS = 10
# Documents of at most MAX_TOKENS tokens: the caches hold some tens of MB at worst.
PARSER_CACHE_SIZE = 128
VALIDATION_CACHE_SIZE = 128


@dataclass(frozen=True, slots=True)
class _Shape:
    depth: int
    aliases: int


_LEAF = _Shape(0, 0)


class _DocumentShape:
    """Depth and alias counts of a document's selections, each fragment measured once."""

    def __init__(self, context: ValidationContext) -> None:
        definitions = context.document.definitions
        self.operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
        self._fragments = {
            d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._measured: dict[str, _Shape] = {}
        self._open: set[str] = set()

    def selections(self, selection_set: SelectionSetNode) -> _Shape:
        """The deepest field chain and the aliases below ``selection_set``."""
        depth = aliases = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                aliases += int(selection.alias is not None)
                if selection.selection_set is None:
                    continue
                inner = self.selections(selection.selection_set)
                depth = max(depth, 1 + inner.depth)
            elif isinstance(selection, InlineFragmentNode):
                inner = self.selections(selection.selection_set)
                depth = max(depth, inner.depth)
            elif isinstance(selection, FragmentSpreadNode):
                inner = self.fragment(selection.name.value)
                depth = max(depth, inner.depth)
            else:
                continue
            aliases += inner.aliases
        return _Shape(depth, aliases)

    def fragment(self, name: str) -> _Shape:
        """A fragment's shape; unknown and cyclic spreads count as empty (other rules say so)."""
        if name in self._measured:
            return self._measured[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in self._open:
            return _LEAF
        self._open.add(name)
        shape = self.selections(fragment.selection_set)
        self._open.discard(name)
        self._measured[name] = shape
        return shape

    def root_fields(self, selection_set: SelectionSetNode) -> Iterator[FieldNode]:
        """The operation's top-level fields, through fragments (each fragment expanded once)."""
        pending, expanded = [selection_set], set()
        while pending:
            for selection in pending.pop().selections:
                if isinstance(selection, FieldNode):
                    yield selection
                elif isinstance(selection, InlineFragmentNode):
                    pending.append(selection.selection_set)
                elif (
                    isinstance(selection, FragmentSpreadNode)
                    and selection.name.value not in expanded
                ):
                    expanded.add(selection.name.value)
                    fragment = self._fragments.get(selection.name.value)
                    if fragment is not None:
                        pending.append(fragment.selection_set)


def _operation_name(operation: OperationDefinitionNode) -> str:
    return operation.name.value if operation.name else "anonymous"


class DepthRule(ValidationRule):
    """Refuse operations nested deeper than ``MAX_DEPTH`` (``MAX_INTROSPECTION_DEPTH`` for
    introspection fields)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        shape = _DocumentShape(context)
        for operation in shape.operations:
            for field in shape.root_fields(operation.selection_set):
                if field.selection_set is None:
                    continue
                depth = 1 + shape.selections(field.selection_set).depth
                introspection = field.name.value.startswith("__")
                limit = MAX_INTROSPECTION_DEPTH if introspection else MAX_DEPTH
                if depth > limit:
                    kind = "introspection depth" if introspection else "depth"
                    self.report_error(
                        GraphQLError(
                            f"Operation '{_operation_name(operation)}' exceeds the maximum "
                            f"{kind} of {limit}: '{field.name.value}' is {depth} levels deep.",
                            field,
                        )
                    )
                    break


class AliasRule(ValidationRule):
    """Refuse documents with more than ``MAX_ALIASES`` aliases (fragments counted per spread)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        shape = _DocumentShape(context)
        total = sum(shape.selections(op.selection_set).aliases for op in shape.operations)
        if total > MAX_ALIASES:
            count = str(total) if total < 10_000 else "over 10000"
            self.report_error(
                GraphQLError(f"The document has {count} aliases; the maximum is {MAX_ALIASES}.")
            )


class MaxQueryLength(SchemaExtension):
    """Refuse a document longer than ``MAX_QUERY_LENGTH`` characters before parsing it."""

    def on_parse(self) -> Iterator[None]:
        """Check the length; the parser never sees an oversized document."""
        query = self.execution_context.query or ""
        if len(query) > MAX_QUERY_LENGTH:
            raise GraphQLError(
                f"The query is {len(query)} characters long; the limit is {MAX_QUERY_LENGTH}.",
                extensions={"code": BAD_USER_INPUT, "reason": PARSE_FAILED},
            )
        yield


class TokenLimit(MaxTokensLimiter):
    """At most ``MAX_TOKENS`` tokens per document (enforced by the parser)."""

    def __init__(self) -> None:
        super().__init__(max_token_count=MAX_TOKENS)


class CachedParser(ParserCache):
    """Parsed documents in a bounded LRU cache shared by all requests."""

    def __init__(self) -> None:
        super().__init__(maxsize=PARSER_CACHE_SIZE)


class CachedValidation(ValidationCache):
    """Validation results in a bounded LRU cache; validation errors get their error code."""

    def __init__(self) -> None:
        super().__init__(maxsize=VALIDATION_CACHE_SIZE)

    def on_validate(self) -> Iterator[None]:
        """Validate through the shared cache; errors are ``BAD_USER_INPUT`` (reason: validation)."""
        context = self.execution_context
        errors = self.cached_validate_document(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        # Copies, so the cached errors are never mutated by later processing.
        context.pre_execution_errors = [
            with_code(error, BAD_USER_INPUT, reason=VALIDATION_FAILED) for error in errors
        ]
        yield


class DepthLimit(AddValidationRules):
    """Operations may nest at most ``MAX_DEPTH`` levels (see ``DepthRule``)."""

    def __init__(self) -> None:
        super().__init__([DepthRule])


class AliasLimit(AddValidationRules):
    """At most ``MAX_ALIASES`` aliases per document (see ``AliasRule``)."""

    def __init__(self) -> None:
        super().__init__([AliasRule])


class RequireKey(SchemaExtension):
    """Every executed operation needs a valid key (CONTRACT §3), introspection included.

    Runs after parsing and validation, so a refused document costs no database work, and
    before any resolver; an invalid key ends the operation as ``UNAUTHENTICATED`` (HTTP 401).
    """

    async def on_execute(self) -> AsyncIterator[None]:
        """Authenticate the request's key once, through the context."""
        await self.execution_context.context.principal()
        yield
