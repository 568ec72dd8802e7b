-- 0005_audit_seal: audit rows are inserted unsealed and hash-chained later by a sealer.
--
-- Before: every writer took an advisory lock inside its own transaction, read the previous
-- hash and inserted a chained row, so all audited requests queued on one lock until their
-- callers committed. Now append_audit is a plain INSERT with seq, prev_hash and hash left
-- NULL; dispatcher.audit.log.seal_pending (one sealer at a time, behind a try-lock) gives
-- committed unsealed rows, in id order, the next chain positions (seq) and their hashes.
-- Chain order is seq order, not id order: ids commit out of order, so a row with a lower id
-- can be sealed after a higher one.
--
-- Existing rows. The old code chained them in id order with a canonical form that does not
-- contain seq. They get seq = their position in id order (which is exactly the order they
-- were chained in) and keep their hashes untouched, marked hash_format = 1: verify checks
-- them with the old canonical form, and every row sealed from now on (hash_format = 2, the
-- default) with the new form, which also covers seq. We deliberately do NOT re-hash the old
-- rows into the new form: recomputing hashes from the stored contents would accept whatever
-- those contents are now, i.e. launder any tampering that happened before this migration.
-- Keeping the old hashes keeps that evidence verifiable. Format-1 rows must form a prefix of
-- the chain; verify reports a format-1 row after a format-2 one as broken.
--
-- Depends on 0002_auth_audit. Applied in one transaction by dispatcher.storage.migrate.

-- The old trigger refuses every UPDATE; drop it so the existing rows can get their seq,
-- and replace it with one that allows exactly the one-time sealing update (below).
DROP TRIGGER audit_log_append_only ON audit_log;

ALTER TABLE audit_log
    ADD COLUMN seq bigint,
    -- 1 = sealed by fleetd before 0005 (canonical form without seq), 2 = sealed after.
    -- DEFAULT 1 fills in the existing rows; rows inserted from now on get 2.
    ADD COLUMN hash_format smallint NOT NULL DEFAULT 1 CHECK (hash_format IN (1, 2)),
    ALTER COLUMN hash DROP NOT NULL;
ALTER TABLE audit_log ALTER COLUMN hash_format SET DEFAULT 2;

UPDATE audit_log AS a
SET seq = o.pos
FROM (SELECT id, row_number() OVER (ORDER BY id) AS pos FROM audit_log) AS o
WHERE a.id = o.id;

ALTER TABLE audit_log
    ADD CONSTRAINT audit_log_seq_key UNIQUE (seq),
    ADD CONSTRAINT audit_log_seq_positive CHECK (seq >= 1),
    -- Unsealed: no chain columns at all. Sealed: a position and a hash (prev_hash is NULL
    -- only for seq 1, which verify checks).
    ADD CONSTRAINT audit_log_sealed_whole CHECK (
        (seq IS NULL AND prev_hash IS NULL AND hash IS NULL)
        OR (seq IS NOT NULL AND hash IS NOT NULL)
    );

-- What the sealer looks for: committed rows without a chain position, oldest id first.
CREATE INDEX audit_log_unsealed ON audit_log (id) WHERE seq IS NULL;

-- The guard: rows arrive unsealed, the chain columns are written once by the sealing
-- UPDATE (NULL -> set, every other column unchanged, including columns added later since
-- the comparison is over the whole row), and nothing else ever changes or disappears.
-- An INSERT carrying chain columns has them cleared rather than refused: nobody can insert
-- a row that looks sealed, and a fleetd from before 0005 still running while this one
-- migrates (it computes hashes itself, in id order) writes ordinary unsealed rows instead
-- of failing every request it audits.
CREATE FUNCTION audit_log_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.seq := NULL;
        NEW.prev_hash := NULL;
        NEW.hash := NULL;
        NEW.hash_format := 2;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE'
       AND OLD.hash IS NULL AND OLD.seq IS NULL
       AND NEW.hash IS NOT NULL AND NEW.seq IS NOT NULL
       AND (to_jsonb(NEW) - '{seq,prev_hash,hash}'::text[])
           = (to_jsonb(OLD) - '{seq,prev_hash,hash}'::text[]) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % is not allowed (only the one-time sealing of an '
        'unsealed row may update it)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
COMMENT ON FUNCTION audit_log_guard() IS
    'audit_log: INSERT always unsealed (chain columns cleared); UPDATE only to seal an unsealed '
    'row (seq, prev_hash, hash from NULL, nothing else changed); DELETE never (SQLSTATE 23001).';

CREATE TRIGGER audit_log_append_only
    BEFORE INSERT OR UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
-- audit_log_no_truncate (0002) stays as it is.

COMMENT ON COLUMN audit_log.seq IS
    'Chain position, assigned when the row is sealed (NULL until then); the chain runs in seq order.';
COMMENT ON COLUMN audit_log.hash_format IS
    '1: sealed before 0005, hash over the canonical form without seq; 2: with seq.';
COMMENT ON TABLE audit_log IS
    'Append-only, hash-chained record of every mutating and every refused API call. Rows are '
    'inserted unsealed; the sealer sets seq and hash = sha256(prev_hash || canonical JSON of '
    'the row) shortly after commit. Verify with fleetd audit verify.';
