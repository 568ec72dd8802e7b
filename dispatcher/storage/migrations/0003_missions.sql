-- 0003_missions: missions and their append-only event history.
--
-- Depends on 0001_core (facilities, vehicles, fleet_event_seq, fleet_touch_updated_at,
-- fleet_append_only). The lifecycle rules live in dispatcher/missions/lifecycle.py; the
-- CHECKs here only keep the stored values inside its vocabulary and consistent with each
-- other. Every write goes through dispatcher/missions/store.py.

-- Missions ---------------------------------------------------------------------------------

CREATE TABLE missions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    facility_id     uuid NOT NULL REFERENCES facilities (id),
    -- dispatcher.missions.lifecycle.MissionStatus
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN (
                        'pending', 'assigned', 'in_progress', 'completed', 'cancelled', 'failed')),
    priority        text NOT NULL DEFAULT 'normal'
                        CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    -- Orders the dispatch queue (higher first); always derived from priority.
    priority_rank   smallint NOT NULL GENERATED ALWAYS AS (
                        CASE priority WHEN 'low' THEN 0 WHEN 'normal' THEN 1
                                      WHEN 'high' THEN 2 WHEN 'urgent' THEN 3 END) STORED,
    -- {"place": name or null, "lat": .., "lon": ..}; the point repeats it for spatial queries.
    pickup          jsonb NOT NULL CHECK (jsonb_typeof(pickup) = 'object'),
    pickup_point    geography(Point, 4326) NOT NULL,
    pickup_place    text CHECK (length(pickup_place) BETWEEN 1 AND 128),
    dropoff         jsonb NOT NULL CHECK (jsonb_typeof(dropoff) = 'object'),
    dropoff_point   geography(Point, 4326) NOT NULL,
    dropoff_place   text CHECK (length(dropoff_place) BETWEEN 1 AND 128),
    -- Requested pickup time: both or neither.
    window_start    timestamptz,
    window_end      timestamptz,
    -- {"vehicle_kind": robot|driver|any, "wheelchair_type": text|null, "payload_kg": num|null}
    requirements    jsonb NOT NULL DEFAULT '{"vehicle_kind": "any"}'::jsonb
                        CHECK (jsonb_typeof(requirements) = 'object'
                               AND requirements->>'vehicle_kind' IN ('robot', 'driver', 'any')),
    -- An opaque reference and a display name: no other personal data is kept.
    passenger_ref   text CHECK (length(passenger_ref) BETWEEN 1 AND 128),
    passenger_name  text CHECK (length(passenger_name) BETWEEN 1 AND 200),
    notes           text CHECK (length(notes) <= 2000),
    -- dispatcher.auth.principal.Principal.subject of the creator.
    created_by      text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
    vehicle_id      uuid REFERENCES vehicles (id),
    -- Idempotent creation: one key per (facility, creator); request_hash is the SHA-256 of
    -- the validated request, so a replay with a different body can be told apart.
    idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash    bytea NOT NULL CHECK (length(request_hash) = 32),
    -- Optimistic concurrency: bumped by every change.
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- When the mission reached a final status (completed, cancelled or failed).
    completed_at    timestamptz,
    deleted_at      timestamptz,
    CONSTRAINT missions_window_pair CHECK ((window_start IS NULL) = (window_end IS NULL)),
    CONSTRAINT missions_window_order CHECK (window_end > window_start),
    CONSTRAINT missions_final_has_completed_at CHECK (
        (status IN ('completed', 'cancelled', 'failed')) = (completed_at IS NOT NULL)),
    CONSTRAINT missions_vehicle_when_active CHECK (
        status NOT IN ('assigned', 'in_progress') OR vehicle_id IS NOT NULL),
    CONSTRAINT missions_passenger_name_needs_ref CHECK (
        passenger_name IS NULL OR passenger_ref IS NOT NULL)
);
COMMENT ON TABLE missions IS
    'Transport missions. status follows dispatcher/missions/lifecycle.py; every change bumps '
    'version and writes a mission_events row in the same transaction. Soft-deleted via '
    'deleted_at.';

CREATE UNIQUE INDEX missions_idempotency
    ON missions (facility_id, created_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The dispatch queue and list filters by status: most urgent first, then oldest first.
CREATE INDEX missions_queue
    ON missions (facility_id, status, priority_rank DESC, created_at)
    WHERE deleted_at IS NULL;
-- Lists are newest first with a keyset cursor on (created_at, id).
CREATE INDEX missions_list ON missions (facility_id, created_at DESC, id DESC);
CREATE INDEX missions_creator ON missions (facility_id, created_by, created_at DESC, id DESC);
CREATE INDEX missions_vehicle ON missions (vehicle_id, created_at DESC) WHERE vehicle_id IS NOT NULL;
CREATE INDEX missions_pickup_gist ON missions USING gist (pickup_point);

CREATE TRIGGER missions_touch BEFORE UPDATE ON missions
    FOR EACH ROW EXECUTE FUNCTION fleet_touch_updated_at();

-- Mission events ---------------------------------------------------------------------------

CREATE TABLE mission_events (
    seq         bigint PRIMARY KEY DEFAULT nextval('fleet_event_seq'),
    mission_id  uuid NOT NULL REFERENCES missions (id),
    facility_id uuid NOT NULL REFERENCES facilities (id),
    -- dispatcher.missions.lifecycle.MissionEvent
    event       text NOT NULL CHECK (event IN (
                    'created', 'assigned', 'started', 'pickup_arrived', 'pickup_completed',
                    'in_transit', 'dropoff_arrived', 'dropoff_completed', 'completed',
                    'cancelled', 'failed', 'reassigned', 'offered', 'declined', 'expired',
                    'priority_changed')),
    -- NULL only for 'created'.
    from_status text CHECK (from_status IN (
                    'pending', 'assigned', 'in_progress', 'completed', 'cancelled', 'failed')),
    to_status   text NOT NULL CHECK (to_status IN (
                    'pending', 'assigned', 'in_progress', 'completed', 'cancelled', 'failed')),
    vehicle_id  uuid REFERENCES vehicles (id),
    -- Who caused it: a Principal.subject, or "system:<task>" for the daemon's own tasks.
    actor       text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
    at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT mission_events_created_has_no_from CHECK ((event = 'created') = (from_status IS NULL))
);
COMMENT ON TABLE mission_events IS
    'Append-only timeline of each mission. seq comes from fleet_event_seq, shared with '
    'vehicle_events, so the live event stream can merge both.';

CREATE INDEX mission_events_mission ON mission_events (mission_id, seq);
CREATE INDEX mission_events_facility ON mission_events (facility_id, seq);

CREATE TRIGGER mission_events_append_only BEFORE UPDATE OR DELETE ON mission_events
    FOR EACH ROW EXECUTE FUNCTION fleet_append_only();
CREATE TRIGGER mission_events_no_truncate BEFORE TRUNCATE ON mission_events
    FOR EACH STATEMENT EXECUTE FUNCTION fleet_append_only();
