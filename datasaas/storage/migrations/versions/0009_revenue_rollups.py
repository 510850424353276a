"""revenue rollups

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 06:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "revenue_rollup",
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("span", sa.Integer(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("new_minor", sa.BigInteger(), nullable=False),
        sa.Column("refund_minor", sa.BigInteger(), nullable=False),
        sa.Column("payers", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["site.id"],
            name=op.f("fk_revenue_rollup_site_id_site"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", "span", "period", name=op.f("pk_revenue_rollup")),
    )


def downgrade() -> None:
    op.drop_table("revenue_rollup")
