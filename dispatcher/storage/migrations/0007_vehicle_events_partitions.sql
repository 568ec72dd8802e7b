-- 0007: vehicle_events gets a retention, like telemetry: daily range partitions on `at`,
-- created ahead and dropped after database.vehicle_events_retention_days by
-- dispatcher/storage/partitions.py (issue 13 item 9). Dropping a partition is not a DELETE,
-- so the append-only triggers still refuse every UPDATE, DELETE and TRUNCATE of rows.
--
-- The existing rows move into one partition, vehicle_events_legacy, covering everything
-- before tomorrow (UTC); it is dropped as a whole once tomorrow is past the retention.
--
-- Depends on 0001 (vehicle_events), 0004 (txid, stream indexes, NOTIFY trigger), 0006
-- (fleetd_runtime). The primary key becomes (seq, at): a partitioned table's unique keys
-- must include the partition key; seq stays unique (one sequence hands it out).

ALTER TABLE vehicle_events RENAME TO vehicle_events_old;
ALTER INDEX vehicle_events_pkey RENAME TO vehicle_events_old_pkey;
ALTER INDEX vehicle_events_vehicle RENAME TO vehicle_events_old_vehicle;
ALTER INDEX vehicle_events_facility RENAME TO vehicle_events_old_facility;
ALTER INDEX vehicle_events_stream RENAME TO vehicle_events_old_stream;
ALTER INDEX vehicle_events_facility_stream RENAME TO vehicle_events_old_facility_stream;

CREATE TABLE vehicle_events (
    seq         bigint NOT NULL DEFAULT nextval('fleet_event_seq'),
    vehicle_id  uuid NOT NULL REFERENCES vehicles (id),
    facility_id uuid NOT NULL REFERENCES facilities (id),
    event       text NOT NULL CHECK (event IN (
                    'went_online', 'went_offline', 'registered', 'status_changed',
                    'error_raised', 'error_cleared')),
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    at          timestamptz NOT NULL DEFAULT now(),
    txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (seq, at)
) PARTITION BY RANGE (at);
COMMENT ON TABLE vehicle_events IS
    'Append-only history of vehicle liveness, registration, status and errors. seq comes '
    'from fleet_event_seq, shared with mission_events. Daily partitions '
    'vehicle_events_pYYYYMMDD, dropped after database.vehicle_events_retention_days.';
COMMENT ON COLUMN vehicle_events.txid IS
    'Inserting transaction (pg_current_xact_id()); the live event stream orders by (txid, seq).';
CREATE INDEX vehicle_events_seq ON vehicle_events (seq);
CREATE INDEX vehicle_events_vehicle ON vehicle_events (vehicle_id, seq);
CREATE INDEX vehicle_events_facility ON vehicle_events (facility_id, seq);
CREATE INDEX vehicle_events_stream ON vehicle_events (txid, seq);
CREATE INDEX vehicle_events_facility_stream ON vehicle_events (facility_id, txid, seq);

DO $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    d date;
BEGIN
    EXECUTE format(
        'CREATE TABLE vehicle_events_legacy PARTITION OF vehicle_events '
        'FOR VALUES FROM (MINVALUE) TO (%L)',
        to_char(today + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
    FOR d IN SELECT generate_series(today + 1, today + 3, interval '1 day')::date LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF vehicle_events FOR VALUES FROM (%L) TO (%L)',
            'vehicle_events_p' || to_char(d, 'YYYYMMDD'),
            to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;
END;
$$;

INSERT INTO vehicle_events (seq, vehicle_id, facility_id, event, details, at, txid)
SELECT seq, vehicle_id, facility_id, event, details, at, txid FROM vehicle_events_old;
DROP TABLE vehicle_events_old;

CREATE TRIGGER vehicle_events_append_only BEFORE UPDATE OR DELETE ON vehicle_events
    FOR EACH ROW EXECUTE FUNCTION fleet_append_only();
CREATE TRIGGER vehicle_events_no_truncate BEFORE TRUNCATE ON vehicle_events
    FOR EACH STATEMENT EXECUTE FUNCTION fleet_append_only();
CREATE TRIGGER vehicle_events_notify AFTER INSERT ON vehicle_events
    FOR EACH STATEMENT EXECUTE FUNCTION fleet_events_notify('vehicle');

-- The running daemon creates and drops the partitions, which only the parent's owner may
-- do (as for telemetry, 0006): the runtime role owns vehicle_events and its partitions.
GRANT SELECT, INSERT, UPDATE, DELETE ON vehicle_events TO fleetd_runtime;
ALTER TABLE vehicle_events OWNER TO fleetd_runtime;
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits
                WHERE inhparent = 'vehicle_events'::regclass LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO fleetd_runtime', part);
    END LOOP;
END;
$$;
