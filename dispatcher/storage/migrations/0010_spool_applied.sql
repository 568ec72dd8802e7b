-- Rows the local spool wrote to PostgreSQL (dispatcher/storage/spool.py). Each spooled
-- row has an id; the flusher inserts it here in the same transaction as the row itself,
-- so a row flushed twice (the daemon killed between the commit and the truncation of
-- the spool file) is stored once.
CREATE TABLE spool_applied (
    id uuid PRIMARY KEY,
    kind text NOT NULL,
    spooled_at timestamptz NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
