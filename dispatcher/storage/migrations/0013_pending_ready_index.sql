-- The alert watch asks twice a second which pending missions have waited too long for a
-- vehicle (dispatcher/alerting/store.py). Without an index that read scanned the whole
-- missions table, every mission ever made, twice a second; this one holds the pending
-- missions only, by the time their rider is ready (a booked mission's window start), so
-- the read finds the late ones (usually none) directly.
CREATE INDEX missions_pending_ready
    ON missions ((GREATEST(created_at, COALESCE(window_start, created_at))))
    WHERE status = 'pending';
