"""revenue rollup payer amounts

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
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


def downgrade() -> None:
    with op.batch_alter_table("revenue_rollup") as batch:
        batch.drop_column("payer_amounts")
