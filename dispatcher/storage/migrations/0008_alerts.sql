-- 0008_alerts: what facility staff must look at (dispatcher/alerting), and its history on
-- the live event stream.
--
-- Depends on 0001_core (facilities, vehicles, fleet_event_seq), 0003_missions (missions)
-- and 0004_event_stream (fleet_events_notify).
--
-- alerts: one row per alert, open while its condition holds (cleared_at NULL). The
-- daemon's alert task raises and clears them from fleet state and missions; staff
-- acknowledge them through the API (audited by dispatcher/ops/alerts.py). At most one
-- open alert per (kind, subject): a vehicle or a mission.
CREATE TABLE alerts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    facility_id     uuid NOT NULL REFERENCES facilities (id),
    -- dispatcher.alerting.rules.AlertKind
    kind            text NOT NULL CHECK (kind IN (
                        'vehicle_offline', 'low_battery', 'fatal_error', 'safety_stop',
                        'mission_waiting', 'mission_decision')),
    severity        text NOT NULL CHECK (severity IN ('warning', 'critical')),
    subject_id      uuid NOT NULL,
    vehicle_id      uuid REFERENCES vehicles (id),
    mission_id      uuid REFERENCES missions (id),
    message         text NOT NULL CHECK (length(message) BETWEEN 1 AND 500),
    raised_at       timestamptz NOT NULL DEFAULT now(),
    cleared_at      timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text CHECK (length(acknowledged_by) BETWEEN 1 AND 200),
    CONSTRAINT alerts_subject CHECK (subject_id = coalesce(mission_id, vehicle_id)),
    CONSTRAINT alerts_ack_pair CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL))
);
CREATE UNIQUE INDEX alerts_open_subject ON alerts (kind, subject_id) WHERE cleared_at IS NULL;
CREATE INDEX alerts_facility_raised ON alerts (facility_id, raised_at DESC);
COMMENT ON TABLE alerts IS
    'Alerts for staff, raised and cleared by the daemon, acknowledged by people.';

-- alert_events: raised, cleared, acknowledged; seq from fleet_event_seq and txid like the
-- other two event tables, so the live event stream merges all three in one order.
CREATE TABLE alert_events (
    seq         bigint PRIMARY KEY DEFAULT nextval('fleet_event_seq'),
    alert_id    uuid NOT NULL REFERENCES alerts (id),
    facility_id uuid NOT NULL REFERENCES facilities (id),
    event       text NOT NULL CHECK (event IN ('raised', 'cleared', 'acknowledged')),
    vehicle_id  uuid,
    actor       text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
    at          timestamptz NOT NULL DEFAULT now(),
    txid        xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, seq);
CREATE INDEX alert_events_stream ON alert_events (txid, seq);
CREATE INDEX alert_events_facility_stream ON alert_events (facility_id, txid, seq);
COMMENT ON TABLE alert_events IS
    'Append-only history of alerts (raised, cleared, acknowledged); seq from fleet_event_seq.';

CREATE TRIGGER alert_events_notify AFTER INSERT ON alert_events
    FOR EACH STATEMENT EXECUTE FUNCTION fleet_events_notify('alert');
