"""revenue rollup payer amounts, dimension snapshots, completion levels

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows cached before this revision have none and are rebuilt when a read (or the
    # warm-up) needs them; the column is derived data, like the rest of the row.
    with op.batch_alter_table("revenue_rollup") as batch:
        batch.add_column(sa.Column("payer_amounts", sa.LargeBinary(), nullable=True))
    op.create_table(
        "dimension_snapshot",
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("dimension", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("high", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["site.id"],
            name=op.f("fk_dimension_snapshot_site_id_site"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", "dimension", name=op.f("pk_dimension_snapshot")),
    )

    op.create_table(
        "completion_level",
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("span", sa.Integer(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("levels", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["site.id"],
            name=op.f("fk_completion_level_site_id_site"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", "span", "period", name=op.f("pk_completion_level")),
    )


def downgrade() -> None:
    op.drop_table("completion_level")
    op.drop_table("dimension_snapshot")
    with op.batch_alter_table("revenue_rollup") as batch:
        batch.drop_column("payer_amounts")
