-- 0004_event_stream: what the live event stream (dispatcher/storage/event_stream.py) needs.
--
-- Depends on 0001_core (vehicle_events) and 0003_missions (mission_events).
--
-- 1. txid: the 64-bit id of the transaction that inserted each event row.
--
--    fleet_event_seq values are handed out at INSERT time, but transactions commit in
--    another order: a reader that remembers "last seq seen" and asks for `seq > last`
--    skips a row whose transaction took a lower seq and committed later. The stream reads
--    instead in (txid, seq) order and only rows with txid below the oldest transaction
--    still running (pg_snapshot_xmin of its own snapshot): every such transaction has
--    finished, and any row committed later carries a txid at or above that horizon, so it
--    sorts after everything already sent. See event_stream.py for the full argument.
--
--    An explicit xid8 column rather than the xmin system column: xmin is a 32-bit xid
--    that wraps around (and is frozen), so it cannot be compared or indexed as a stable
--    ordering key; xid8 (epoch + xid) never wraps. pg_current_xact_id() is the top-level
--    transaction's id (assigned on first use), also from inside a subtransaction. Writers
--    never set this column: the default does.
ALTER TABLE vehicle_events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE mission_events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
COMMENT ON COLUMN vehicle_events.txid IS
    'Inserting transaction (pg_current_xact_id()); the live event stream orders by (txid, seq).';
COMMENT ON COLUMN mission_events.txid IS
    'Inserting transaction (pg_current_xact_id()); the live event stream orders by (txid, seq).';

CREATE INDEX vehicle_events_stream ON vehicle_events (txid, seq);
CREATE INDEX vehicle_events_facility_stream ON vehicle_events (facility_id, txid, seq);
CREATE INDEX mission_events_stream ON mission_events (txid, seq);
CREATE INDEX mission_events_facility_stream ON mission_events (facility_id, txid, seq);

-- 2. Wake-ups: one NOTIFY per inserting statement on channel fleet_events, payload the
--    stream kind ('vehicle' or 'mission'). Delivered at commit (never for a rollback), and
--    PostgreSQL folds identical notifications of one transaction into one. Listeners
--    treat it as a hint only ("something new may be readable") and poll as a fallback.
CREATE OR REPLACE FUNCTION fleet_events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fleet_events', TG_ARGV[0]);
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION fleet_events_notify() IS
    'AFTER INSERT statement trigger: NOTIFY fleet_events, <kind> for the live event stream.';

CREATE TRIGGER vehicle_events_notify AFTER INSERT ON vehicle_events
    FOR EACH STATEMENT EXECUTE FUNCTION fleet_events_notify('vehicle');
CREATE TRIGGER mission_events_notify AFTER INSERT ON mission_events
    FOR EACH STATEMENT EXECUTE FUNCTION fleet_events_notify('mission');
