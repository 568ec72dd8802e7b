-- Separate database roles, so fleetd's own login cannot rewrite the audit trail.
--
-- The schema owner (the login migrations run as: database.migration_dsn) owns every table.
-- The daemon runs as a login that is a member of fleetd_runtime (database.dsn), which may
-- read and write the operational tables but, on audit_log, only INSERT rows and set the
-- chain columns of unsealed ones (the sealer). It does not own audit_log, so it cannot
-- ALTER it, disable or drop its triggers, UPDATE its other columns, DELETE or TRUNCATE.
-- docs/operations.md ("Database roles") shows how to create the logins; scripts/setup.sh
-- does it for a development machine. With one login for both (the local default, a
-- superuser) nothing changes: the separation needs two logins.
--
-- fleetd_runtime is a role of the whole server (roles are not per database); it is created
-- here when missing, which needs CREATEROLE (else create it first, as the docs show).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleetd_runtime') THEN
        BEGIN
            CREATE ROLE fleetd_runtime NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- a migration of another database on this server created it meanwhile
        END;
    END IF;
END;
$$;

-- CREATE on the schema: the runtime creates tomorrow's telemetry partitions.
GRANT USAGE, CREATE ON SCHEMA public TO fleetd_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO fleetd_runtime;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO fleetd_runtime;
-- Tables later migrations create get the same (a new audit-like table must revoke, as below).
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO fleetd_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO fleetd_runtime;

-- The audit trail: append, and seal (the guard trigger of 0005 lets the chain columns of an
-- unsealed row be set once and nothing else change). SELECT ... FOR UPDATE in the sealer
-- needs the column UPDATE right.
REVOKE ALL ON audit_log FROM fleetd_runtime;
GRANT SELECT, INSERT ON audit_log TO fleetd_runtime;
GRANT UPDATE (seq, prev_hash, hash) ON audit_log TO fleetd_runtime;

-- The migration ledger is the owner's.
REVOKE ALL ON schema_migrations FROM fleetd_runtime;
GRANT SELECT ON schema_migrations TO fleetd_runtime;

-- Telemetry partitions are created and dropped by the running daemon, and PostgreSQL lets
-- only the parent's owner do that: telemetry and its partitions belong to the runtime
-- role (they hold positions, nothing the audit trail depends on).
ALTER TABLE telemetry OWNER TO fleetd_runtime;
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits
                WHERE inhparent = 'telemetry'::regclass LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO fleetd_runtime', part);
    END LOOP;
END;
$$;
