"""Root mutation fields: the two REST writes, refused input reported as ``userErrors``.

Each write runs in one transaction. ``InvalidInput`` and ``Conflict`` from the resolver are let
out of the transaction (so it rolls back and nothing is stored) and only then turned into
``userErrors``; every other error is a top-level GraphQL error.
"""

from __future__ import annotations

from functools import partial

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.errors import Conflict, InvalidInput, NotFound
from datasaas.resolvers import goals as goal_resolvers
from datasaas.resolvers import payments as payment_resolvers
from datasaas.resolvers.goals import GOAL_FIELDS, GoalIn
from datasaas.resolvers.payments import PAYMENT_FIELDS, PaymentIn, PaymentResult
from datasaas.resolvers.sites import require_site
from datasaas.schema.context import Context
from datasaas.schema.errors import field_path
from datasaas.schema.types import (
    CreateGoalInput,
    CreateGoalPayload,
    CreatePaymentInput,
    CreatePaymentPayload,
    DeletePaymentPayload,
    Payment,
    UserError,
    given,
)
from datasaas.storage.payments import LedgerRow


def user_errors(exc: InvalidInput | Conflict) -> list[UserError]:
    """Return the ``userErrors`` for a refused input; field paths start at ``input``.

    An error without field details is about the input as a whole.
    """
    code = "CONFLICT" if isinstance(exc, Conflict) else "INVALID"
    if not exc.details:
        return [UserError(field=None, message=exc.message, code=code)]
    errors = []
    for detail in exc.details:
        path = field_path(detail.field)
        # A conflict's own message names what it conflicts with; keep it.
        message = (
            exc.message if isinstance(exc, Conflict) else f"{'.'.join(path)}: {detail.message}"
        )
        errors.append(UserError(field=["input", *path], message=message, code=code))
    return errors


async def resolve_create_goal(
    info: strawberry.Info[Context], site_id: str, input: CreateGoalInput
) -> CreateGoalPayload:
    """Store one completion, or report why the input was refused."""
    await info.context.authorize(site_id, write=True)
    goal = GoalIn(**{field: given(getattr(input, field)) for field in GOAL_FIELDS})
    try:
        completion = goal_resolvers.validate_goal(site_id, goal)
        result = await info.context.database.submit_batched(goal_resolvers.record_goals, completion)
    except (InvalidInput, Conflict) as exc:
        return CreateGoalPayload(created=False, goal_name=None, user_errors=user_errors(exc))
    return CreateGoalPayload(created=result.created, goal_name=result.goal_name, user_errors=[])


async def resolve_create_payment(
    info: strawberry.Info[Context], site_id: str, input: CreatePaymentInput
) -> CreatePaymentPayload:
    """Store one payment, or report why the input was refused."""
    await info.context.authorize(site_id, write=True)
    payment = PaymentIn(**{field: given(getattr(input, field)) for field in PAYMENT_FIELDS})
    try:

        async def write(session: AsyncSession) -> tuple[PaymentResult, LedgerRow]:
            site = await require_site(session, site_id)
            result = await payment_resolvers.record_payment(session, site=site, payment=payment)
            return result, await payment_resolvers.ledger_entry(session, payment=result.payment)

        result, row = await info.context.database.submit(write)
    except (InvalidInput, Conflict) as exc:
        return CreatePaymentPayload(
            created=False,
            transaction_id=None,
            payment=None,
            user_errors=user_errors(exc),
        )
    return CreatePaymentPayload(
        created=result.created,
        transaction_id=result.payment.transaction_id,
        payment=Payment.from_row(row),
        user_errors=[],
    )


async def resolve_delete_payment(
    info: strawberry.Info[Context], site_id: str, transaction_id: str
) -> DeletePaymentPayload:
    """Delete one payment, or report why not (NOT_FOUND, CONFLICT while refunds name it)."""
    await info.context.authorize(site_id, write=True)
    try:
        deleted = await info.context.database.submit(
            partial(
                payment_resolvers.delete_payment, site_id=site_id, transaction_id=transaction_id
            )
        )
    except NotFound as exc:
        error = UserError(field=["transactionId"], message=exc.message, code="NOT_FOUND")
        return DeletePaymentPayload(deleted=False, transaction_id=None, user_errors=[error])
    except (InvalidInput, Conflict) as exc:
        code = "CONFLICT" if isinstance(exc, Conflict) else "INVALID"
        error = UserError(field=["transactionId"], message=exc.message, code=code)
        return DeletePaymentPayload(deleted=False, transaction_id=None, user_errors=[error])
    return DeletePaymentPayload(deleted=True, transaction_id=deleted.transaction_id, user_errors=[])


@strawberry.type
class Mutation:
    """Writes; they need a Read & Write key of the site."""

    create_goal: CreateGoalPayload = strawberry.mutation(
        resolver=resolve_create_goal,
        description="Record a server-side goal completion for a visitor.",
    )
    create_payment: CreatePaymentPayload = strawberry.mutation(
        resolver=resolve_create_payment,
        description=(
            "Record a payment and attribute it to a visitor; an identical replay of a "
            "transaction id returns `created: false` with the stored payment."
        ),
    )
    delete_payment: DeletePaymentPayload = strawberry.mutation(
        resolver=resolve_delete_payment,
        description=(
            "Delete a payment and every number derived from it; refunds naming it must be "
            "deleted first."
        ),
    )
