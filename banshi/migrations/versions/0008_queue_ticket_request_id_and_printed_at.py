"""queue tickets: the kiosk's request id (retries get the same ticket) and when it printed

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('queue_tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('printed_at', sa.DateTime(timezone=True), nullable=True))
        # NULLs are distinct: tickets issued without a request id never clash
        batch_op.create_unique_constraint(
            batch_op.f('uq_queue_tickets_request_id'), ['request_id', 'day']
        )


def downgrade() -> None:
    with op.batch_alter_table('queue_tickets', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_queue_tickets_request_id'), type_='unique')
        batch_op.drop_column('printed_at')
        batch_op.drop_column('request_id')
