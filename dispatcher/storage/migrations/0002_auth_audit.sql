-- 0002_auth_audit: roles, users, API tokens (hashes only) and the append-only audit log.
--
-- Depends on 0001_core (facilities). Applied in one transaction by dispatcher.storage.migrate.

-- Roles ----------------------------------------------------------------------------------
-- The permission matrix is code (dispatcher/auth/roles.py); this table names the roles so
-- users and tokens can reference them.
CREATE TABLE roles (
    name        text PRIMARY KEY
                CHECK (name IN ('admin', 'operator', 'nurse', 'caregiver', 'maintenance', 'guest')),
    description text NOT NULL DEFAULT ''
);

INSERT INTO roles (name, description) VALUES
    ('admin',       'Everything, in every facility'),
    ('operator',    'Monitors the fleet, dispatches and cancels missions, commands vehicles'),
    ('nurse',       'Requests transport, sees mission status, cancels own missions'),
    ('caregiver',   'Requests and sees own missions only'),
    ('maintenance', 'Vehicle diagnostics and maintenance mode'),
    ('guest',       'Fleet summary only');

-- Users (people-facing: soft delete) -------------------------------------------------------
CREATE TABLE users (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    facility_id  uuid REFERENCES facilities (id),
    username     text NOT NULL CHECK (length(username) BETWEEN 1 AND 200),
    display_name text NOT NULL DEFAULT '',
    role         text NOT NULL REFERENCES roles (name),
    created_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);

-- A username is unique among the live users of a facility (and among unscoped users).
CREATE UNIQUE INDEX users_username_live
    ON users (coalesce(facility_id, '00000000-0000-0000-0000-000000000000'::uuid), lower(username))
    WHERE deleted_at IS NULL;

-- API tokens -------------------------------------------------------------------------------
-- Only the SHA-256 of the secret is stored; the secret is shown once, at creation.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    role         text NOT NULL REFERENCES roles (name),
    -- NULL = every facility; only admin tokens may be unscoped.
    facility_id  uuid REFERENCES facilities (id),
    user_id      uuid REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    CONSTRAINT api_tokens_unscoped_admin_only CHECK (facility_id IS NOT NULL OR role = 'admin'),
    CONSTRAINT api_tokens_expiry_after_creation CHECK (expires_at IS NULL OR expires_at > created_at)
);

CREATE INDEX api_tokens_facility ON api_tokens (facility_id);

-- Audit log: append-only, hash-chained -----------------------------------------------------
-- hash = sha256(prev_hash || canonical JSON of the row); see dispatcher/audit/log.py.
-- Writers serialise on an advisory lock, so ids increase in chain order.
CREATE TABLE audit_log (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    facility_id    uuid,
    actor_token_id uuid,
    actor_role     text,
    action         text NOT NULL CHECK (length(action) BETWEEN 1 AND 200),
    resource_type  text NOT NULL CHECK (length(resource_type) BETWEEN 1 AND 200),
    resource_id    text,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    source         text,
    success        boolean NOT NULL,
    reason         text,
    prev_hash      bytea CHECK (prev_hash IS NULL OR length(prev_hash) = 32),
    hash           bytea NOT NULL CHECK (length(hash) = 32)
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_facility_at ON audit_log (facility_id, at);
CREATE INDEX audit_log_actor ON audit_log (actor_token_id) WHERE actor_token_id IS NOT NULL;
CREATE INDEX audit_log_resource ON audit_log (resource_type, resource_id);

-- fleet_append_only() comes from 0001 (SQLSTATE 23001 restrict_violation).
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION fleet_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION fleet_append_only();

COMMENT ON TABLE audit_log IS
    'Append-only, hash-chained record of every mutating and every refused API call. '
    'hash = sha256(prev_hash || canonical JSON of the row); verify with fleetd audit verify.';
COMMENT ON TABLE api_tokens IS
    'API bearer tokens. token_hash is SHA-256 of the secret; the secret itself is never stored.';
