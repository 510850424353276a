"""billing intervals and provider on payments; existing recurring payments stay monthly

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import datasaas.storage.types
from datasaas.billing import BillingInterval, cover_end

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_payment = sa.table(
    "payment",
    sa.column("id", sa.BigInteger()),
    sa.column("payment_type", sa.String()),
    sa.column("paid_at", datasaas.storage.types.UTCDateTime()),
    sa.column("billing_interval", sa.String()),
    sa.column("billing_interval_count", sa.Integer()),
    sa.column("covers_until_at", datasaas.storage.types.UTCDateTime()),
)


def upgrade() -> None:
    with op.batch_alter_table("payment") as batch:
        batch.add_column(
            sa.Column("billing_interval", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True)
        )
        batch.add_column(sa.Column("billing_interval_count", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("covers_until_at", datasaas.storage.types.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "provider",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                server_default="api",
                nullable=False,
            )
        )
        batch.create_index(
            "ix_payment_site_id_covers_until_at", ["site_id", "covers_until_at"], unique=False
        )
    # Every recurring payment recorded so far was a monthly one (§6's rule): say so explicitly.
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_payment.c.id, _payment.c.paid_at).where(_payment.c.payment_type == "recurring")
    ).all()
    for payment_id, paid_at in rows:
        connection.execute(
            _payment.update()
            .where(_payment.c.id == payment_id)
            .values(
                billing_interval="month",
                billing_interval_count=1,
                covers_until_at=cover_end(paid_at, BillingInterval.MONTH, 1),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("payment") as batch:
        batch.drop_index("ix_payment_site_id_covers_until_at")
        batch.drop_column("provider")
        batch.drop_column("covers_until_at")
        batch.drop_column("billing_interval_count")
        batch.drop_column("billing_interval")
