-- paperclip_runtime 0.1.0 -> 0.2.0
--
-- Every SQL change of 0.2.0 goes here as well as into sql/paperclip_runtime.sql
-- (the full install script of the current version).  After
-- ALTER EXTENSION paperclip_runtime UPDATE TO '0.2.0' the catalog must equal a
-- fresh CREATE EXTENSION of 0.2.0.  Sections are appended per change, each
-- headed by a comment saying what it is for.
\echo Use "ALTER EXTENSION paperclip_runtime UPDATE TO '0.2.0'" to load this file. \quit

-- Secret names and descriptions: bounded and free of control characters
-- (secret_create checks the same and says which; these hold for UPDATEs).
-- A 0.1.0 row breaking them makes the update fail naming the constraint:
-- rename the secret or shorten its description, then update again.
ALTER TABLE paperclip.company_secrets
    ADD CONSTRAINT company_secrets_name_check
        CHECK (char_length(name) BETWEEN 1 AND 255 AND name !~ '[\x01-\x1f\x7f]'),
    ADD CONSTRAINT company_secrets_description_check
        CHECK (char_length(description) <= 4096 AND description !~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]');

-- I/O pool (issue 8): driver_workers_status() also shows the operation and
-- company each worker serves; validate_environment_config() is STABLE, since
-- its answer depends on which provider libraries the server loaded.
DROP FUNCTION paperclip.driver_workers_status();
CREATE FUNCTION paperclip.driver_workers_status(
    OUT worker integer,
    OUT pid integer,
    OUT state text,
    OUT requests_served bigint,
    OUT pooled_sessions integer,
    OUT operation text,
    OUT company_id uuid)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pcr_driver_workers_status'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED ROWS 2;
COMMENT ON FUNCTION paperclip.driver_workers_status() IS
    'one row per driver worker slot: its pid (null while stopped), state, requests answered since server start, sessions it keeps open (routes it advertises), and the operation and company of the request it serves (null when idle)';
REVOKE ALL ON FUNCTION paperclip.driver_workers_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paperclip.driver_workers_status() TO paperclip_admin;
ALTER FUNCTION paperclip.validate_environment_config(text, jsonb) STABLE;

-- the words C uses (vocab.c) and the registered drivers, for checks against the CHECK constraints
CREATE FUNCTION paperclip.vocabulary(OUT kind text, OUT name text, OUT terminal boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pcr_vocabulary'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION paperclip.vocabulary() IS
    'the status words the C code uses (run_status with terminal, lease_status, lease_policy, cleanup_status, release_status) and the drivers it has; they match the CHECK constraints';
REVOKE ALL ON FUNCTION paperclip.vocabulary() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paperclip.vocabulary() TO paperclip_admin;

-- sandbox providers (issue 9): a sandbox environment archived or deleted asks
-- the reconciler to sweep provider objects once the change commits, so that
-- its reusable sandbox is destroyed
CREATE FUNCTION paperclip.environments_sandbox_sweep() RETURNS trigger
AS 'MODULE_PATHNAME', 'pcr_environments_sandbox_sweep' LANGUAGE C;
COMMENT ON FUNCTION paperclip.environments_sandbox_sweep() IS
    'a sandbox environment archived or deleted: the reconciler sweeps provider objects after commit (its reusable sandbox is destroyed)';
REVOKE ALL ON FUNCTION paperclip.environments_sandbox_sweep() FROM PUBLIC;
CREATE TRIGGER environments_sweep_sandboxes
    AFTER UPDATE OF status OR DELETE ON paperclip.environments
    FOR EACH ROW WHEN (OLD.driver = 'sandbox')
    EXECUTE FUNCTION paperclip.environments_sandbox_sweep();
