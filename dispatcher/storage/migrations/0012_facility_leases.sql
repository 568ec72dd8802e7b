-- Active/standby per facility: one lease row per facility (dispatcher/leadership/).
-- The daemon holding an unexpired lease is the facility's only dispatcher. ``token`` is
-- the fencing token: it grows by one with every new tenure (another holder, or the same
-- holder after its lease expired or was released), and every mission write the dispatch
-- engine makes checks it in the same transaction (dispatcher/storage/leases.py), so a
-- daemon that lost the lease cannot write any more. Expiry is judged by the database's
-- clock only (clock_timestamp()), never a daemon's: clock skew between machines does not
-- matter.
CREATE TABLE facility_leases (
    facility_id uuid PRIMARY KEY REFERENCES facilities (id) ON DELETE CASCADE,
    holder      text NOT NULL CHECK (length(holder) BETWEEN 1 AND 200),
    token       bigint NOT NULL CHECK (token > 0),
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
COMMENT ON TABLE facility_leases IS
    'Which fleetd daemon dispatches each facility (active/standby), with the fencing token '
    'of its tenure; expires_at by the database clock.';
