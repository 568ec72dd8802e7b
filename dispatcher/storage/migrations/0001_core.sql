-- 0001_core: facilities, zones, vehicles, their last-known positions and events, telemetry.
--
-- Conventions (kept by later migrations too): UUID keys, timestamptz everywhere, statuses
-- CHECK-constrained, soft deletes (deleted_at) for records people edit, every table scoped
-- by facility_id. Times are stored as instants; "days" below are UTC days.

CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- One sequence orders vehicle_events and mission_events (0003) together, so the live event
-- stream can merge both and resume from a single "last seen seq".
CREATE SEQUENCE IF NOT EXISTS fleet_event_seq AS bigint;
COMMENT ON SEQUENCE fleet_event_seq IS
    'Shared ordering of vehicle_events and mission_events for the live event stream.';

-- Shared trigger functions -----------------------------------------------------------------

CREATE OR REPLACE FUNCTION fleet_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION fleet_touch_updated_at() IS
    'BEFORE UPDATE trigger: keeps updated_at honest whoever writes the row.';

-- Reused by every append-only table (vehicle_events here, mission_events and audit_log later).
CREATE OR REPLACE FUNCTION fleet_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
COMMENT ON FUNCTION fleet_append_only() IS
    'Trigger rejecting UPDATE, DELETE and TRUNCATE on append-only tables (SQLSTATE 23001).';

-- Facilities -------------------------------------------------------------------------------

CREATE TABLE facilities (
    id         uuid PRIMARY KEY,
    key        text NOT NULL UNIQUE CHECK (key ~ '^[a-z0-9][a-z0-9_-]*$'),
    name       text NOT NULL,
    timezone   text NOT NULL DEFAULT 'UTC',
    maps       jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(maps) = 'array'),
    places     jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(places) = 'array'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
COMMENT ON TABLE facilities IS
    'Sites (tenants). id is uuid5(FLEETD_NAMESPACE, "facility:<key>"), synced from configuration; '
    'maps and places mirror the configured MapSettings and PlaceSettings.';
CREATE TRIGGER facilities_touch BEFORE UPDATE ON facilities
    FOR EACH ROW EXECUTE FUNCTION fleet_touch_updated_at();

-- Zones ------------------------------------------------------------------------------------

CREATE TABLE zones (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    facility_id     uuid NOT NULL REFERENCES facilities (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind            text NOT NULL CHECK (kind IN ('service_area', 'no_go', 'charging', 'slow')),
    -- Polygon or MultiPolygon, WGS84. geography so distances and areas are in metres.
    area            geography(Geometry, 4326) NOT NULL
        CHECK (GeometryType(area::geometry) IN ('POLYGON', 'MULTIPOLYGON')),
    speed_limit_mps real CHECK (speed_limit_mps > 0),
    created_by      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
COMMENT ON TABLE zones IS
    'Areas of a facility: where service is offered, where vehicles must not go, charging '
    'areas and slow zones (speed_limit_mps). Soft-deleted via deleted_at.';
CREATE INDEX zones_area_gist ON zones USING gist (area);
CREATE UNIQUE INDEX zones_facility_name_live ON zones (facility_id, name) WHERE deleted_at IS NULL;
CREATE TRIGGER zones_touch BEFORE UPDATE ON zones
    FOR EACH ROW EXECUTE FUNCTION fleet_touch_updated_at();

-- Vehicles ---------------------------------------------------------------------------------

CREATE TABLE vehicles (
    id           uuid PRIMARY KEY,
    facility_id  uuid NOT NULL REFERENCES facilities (id),
    kind         text NOT NULL CHECK (kind IN ('robot', 'driver')),
    manufacturer text NOT NULL DEFAULT '',
    serial       text NOT NULL CHECK (length(serial) > 0),
    name         text NOT NULL DEFAULT '',
    capabilities jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(capabilities) = 'object'),
    -- fleet.model.VehicleStatus
    status       text NOT NULL DEFAULT 'offline' CHECK (status IN (
                     'idle', 'driving', 'busy', 'paused', 'charging', 'break', 'error',
                     'maintenance', 'offline')),
    online       boolean NOT NULL DEFAULT false,
    maintenance  boolean NOT NULL DEFAULT false,
    battery_pct  real CHECK (battery_pct BETWEEN 0 AND 100),
    last_seen    timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz,
    -- Drivers are named by their driver id alone (fleet.model.vehicle_id).
    CHECK (kind = 'robot' OR manufacturer = ''),
    UNIQUE (facility_id, kind, manufacturer, serial)
);
COMMENT ON TABLE vehicles IS
    'Robots and drivers. id is deterministic (fleet.model.vehicle_id); status, online, battery '
    'and last_seen are the last-known values, written in batches by the daemon.';
CREATE INDEX vehicles_facility_live ON vehicles (facility_id) WHERE deleted_at IS NULL;
CREATE TRIGGER vehicles_touch BEFORE UPDATE ON vehicles
    FOR EACH ROW EXECUTE FUNCTION fleet_touch_updated_at();

CREATE TABLE vehicle_positions (
    vehicle_id  uuid PRIMARY KEY REFERENCES vehicles (id),
    facility_id uuid NOT NULL REFERENCES facilities (id),
    -- NULL when only a map pose is known (unknown map, no geo reference).
    position    geography(Point, 4326),
    heading_deg real,
    accuracy_m  real CHECK (accuracy_m >= 0),
    map_id      text,
    x           double precision,
    y           double precision,
    theta       double precision,
    at          timestamptz NOT NULL
);
COMMENT ON TABLE vehicle_positions IS
    'Last-known position of each vehicle (one row each, upserted in batches). Live positions '
    'for dispatching are in Redis GEO; this survives restarts and answers spatial queries.';
CREATE INDEX vehicle_positions_gist ON vehicle_positions USING gist (position);
CREATE INDEX vehicle_positions_facility ON vehicle_positions (facility_id);

CREATE TABLE vehicle_events (
    seq         bigint PRIMARY KEY DEFAULT nextval('fleet_event_seq'),
    vehicle_id  uuid NOT NULL REFERENCES vehicles (id),
    facility_id uuid NOT NULL REFERENCES facilities (id),
    event       text NOT NULL CHECK (event IN (
                    'went_online', 'went_offline', 'registered', 'status_changed',
                    'error_raised', 'error_cleared')),
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    at          timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE vehicle_events IS
    'Append-only history of vehicle liveness, registration, status and errors. seq comes '
    'from fleet_event_seq, shared with mission_events.';
CREATE INDEX vehicle_events_vehicle ON vehicle_events (vehicle_id, seq);
CREATE INDEX vehicle_events_facility ON vehicle_events (facility_id, seq);
CREATE TRIGGER vehicle_events_append_only BEFORE UPDATE OR DELETE ON vehicle_events
    FOR EACH ROW EXECUTE FUNCTION fleet_append_only();
CREATE TRIGGER vehicle_events_no_truncate BEFORE TRUNCATE ON vehicle_events
    FOR EACH STATEMENT EXECUTE FUNCTION fleet_append_only();

-- Telemetry --------------------------------------------------------------------------------

-- High-rate, short-lived: no foreign keys (they would cost on every COPY), daily range
-- partitions so retention is a DROP TABLE, not a DELETE.
CREATE TABLE telemetry (
    at          timestamptz NOT NULL,
    vehicle_id  uuid NOT NULL,
    facility_id uuid NOT NULL,
    source      text NOT NULL CHECK (source IN ('state', 'visualization', 'driver')),
    lat         double precision,
    lon         double precision,
    map_id      text,
    x           double precision,
    y           double precision,
    theta       double precision,
    battery_pct real,
    speed_mps   real
) PARTITION BY RANGE (at);
COMMENT ON TABLE telemetry IS
    'Vehicle telemetry samples, COPYed in batches. Daily partitions telemetry_pYYYYMMDD cover '
    '[day 00:00 UTC, next day 00:00 UTC); created ahead and dropped after the retention by '
    'dispatcher.storage.partitions.';
CREATE INDEX telemetry_vehicle_at ON telemetry (vehicle_id, at);

-- Partitions for yesterday, today and the next three UTC days, so a fresh database accepts
-- telemetry before the maintenance task first runs. Same naming and bounds as partitions.py.
DO $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    d date;
BEGIN
    FOR d IN SELECT generate_series(today - 1, today + 3, interval '1 day')::date LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF telemetry FOR VALUES FROM (%L) TO (%L)',
            'telemetry_p' || to_char(d, 'YYYYMMDD'),
            to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;
END;
$$;
