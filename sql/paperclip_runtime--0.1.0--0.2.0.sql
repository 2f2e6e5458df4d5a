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

----------------------------------------------------------------------------
-- Security: tenant entitlement, SECURITY DEFINER lease functions, least
-- privilege (no table-level write right for the two roles, no EXECUTE on
-- trigger functions)
----------------------------------------------------------------------------

-- Entitlements (docs/security.md): a role acts for the companies mapped here to it or to
-- a role whose privileges it has; paperclip.company_id selects one of them.
-- Kept by the owner: no other role may read or write it.
CREATE TABLE paperclip.company_roles (
    company_id  uuid        NOT NULL REFERENCES paperclip.companies (id) ON DELETE CASCADE,
    role        regrole     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT company_roles_pkey PRIMARY KEY (company_id, role)
);
COMMENT ON TABLE paperclip.company_roles IS
    'entitlements: the roles (with their members) that act for a company; written by the owner only';
REVOKE ALL ON paperclip.company_roles FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('paperclip.company_roles', '');

CREATE FUNCTION paperclip.current_company_id()
RETURNS uuid
AS 'MODULE_PATHNAME', 'pcr_current_company_id'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION paperclip.current_company_id() IS
    'the company the session acts for: paperclip.company_id when the session''s role is entitled to it (paperclip.company_roles), else null';
REVOKE ALL ON FUNCTION paperclip.current_company_id() FROM PUBLIC;

ALTER FUNCTION paperclip.acquire_run_lease(uuid, uuid, uuid, uuid, uuid, text)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION paperclip.release_run_leases(uuid, text, text)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION paperclip.renew_run_lease(uuid)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION paperclip.ensure_local_environment(uuid)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION paperclip.heartbeat_runs_after_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF TG_RELID <> 'paperclip.heartbeat_runs'::regclass OR TG_WHEN <> 'AFTER' OR TG_LEVEL <> 'ROW'
       OR TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION USING ERRCODE = '39P01',
            MESSAGE = 'trigger function "heartbeat_runs_after_update" fires only after an update of each row of paperclip.heartbeat_runs';
    END IF;
    IF NEW.status IN ('succeeded', 'failed', 'cancelled', 'timed_out') THEN
        IF NEW.status IN ('failed', 'timed_out') THEN
            PERFORM paperclip.release_run_leases(NEW.id, 'failed',
                                                 coalesce(NEW.error, NEW.error_code, NEW.status));
        ELSE
            PERFORM paperclip.release_run_leases(NEW.id, 'released', NULL);
        END IF;
    ELSE
        -- "IS TRUE": no partial index on active leases can be proven usable
        -- (each may look one page long to stale statistics), only the run's
        UPDATE paperclip.environment_leases AS l
           SET last_used_at = now(),
               expires_at = now() + paperclip.lease_ttl(e.config),
               updated_at = now()
          FROM paperclip.environments AS e
         WHERE l.heartbeat_run_id = NEW.id
           AND (l.status = 'active') IS TRUE
           AND e.company_id = l.company_id
           AND e.id = l.environment_id;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION paperclip.heartbeat_runs_before_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF TG_RELID <> 'paperclip.heartbeat_runs'::regclass OR TG_WHEN <> 'BEFORE' OR TG_LEVEL <> 'ROW'
       OR TG_OP <> 'DELETE' THEN
        RAISE EXCEPTION USING ERRCODE = '39P01',
            MESSAGE = 'trigger function "heartbeat_runs_before_delete" fires only before a deletion of each row of paperclip.heartbeat_runs';
    END IF;
    PERFORM paperclip.release_run_leases(OLD.id, 'released', NULL);
    RETURN OLD;
END
$fn$;

-- row-level security by the effective company, not by the setting alone
ALTER POLICY company_isolation ON paperclip.companies
    USING (id = (SELECT paperclip.current_company_id()));
ALTER TABLE paperclip.company_roles ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON paperclip.company_roles
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER POLICY company_isolation ON paperclip.environments
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER POLICY company_isolation ON paperclip.agents
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER POLICY company_isolation ON paperclip.heartbeat_runs
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER POLICY company_isolation ON paperclip.environment_leases
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER POLICY company_isolation ON paperclip.company_secrets
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER POLICY company_isolation ON paperclip.company_secret_versions
    USING (company_id = (SELECT paperclip.current_company_id()));

-- grants: no table-level write right, no trigger function, for either role
GRANT EXECUTE ON FUNCTION paperclip.current_company_id() TO paperclip_agent, paperclip_admin;
REVOKE INSERT, UPDATE ON paperclip.environment_leases FROM paperclip_agent;
REVOKE UPDATE (status, released_at, last_used_at, expires_at, updated_at, failure_reason, cleanup_status)
    ON paperclip.environment_leases FROM paperclip_agent;
REVOKE UPDATE ON paperclip.heartbeat_runs FROM paperclip_agent;
GRANT UPDATE (status, started_at, finished_at, error, error_code, context_snapshot, updated_at)
    ON paperclip.heartbeat_runs TO paperclip_agent;
REVOKE INSERT, UPDATE, DELETE ON paperclip.environments FROM paperclip_admin;
GRANT INSERT (company_id, name, description, driver, status, config, metadata)
    ON paperclip.environments TO paperclip_admin;
GRANT UPDATE (name, description, driver, status, config, metadata, updated_at)
    ON paperclip.environments TO paperclip_admin;
REVOKE DELETE ON paperclip.company_secrets FROM paperclip_admin;
REVOKE EXECUTE ON FUNCTION
    paperclip.heartbeat_runs_after_update(),
    paperclip.heartbeat_runs_before_delete(),
    paperclip.environment_leases_guard(),
    paperclip.environments_config_trigger(),
    paperclip.environments_delete_guard()
FROM paperclip_agent, paperclip_admin;

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

-- Command execution (issue 10): paperclip.lease_execute() and the
-- table paperclip.lease_executions that records every call
ALTER TABLE paperclip.environment_leases
    ADD CONSTRAINT environment_leases_company_id_id_key UNIQUE (company_id, id);

CREATE TABLE paperclip.lease_executions (
    id               uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    company_id       uuid        NOT NULL REFERENCES paperclip.companies (id) ON DELETE CASCADE,
    lease_id         uuid,
    heartbeat_run_id uuid,
    command          text        NOT NULL,
    cwd              text,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL,
    exit_code        integer,
    signal           text
                     CONSTRAINT lease_executions_signal_check CHECK (signal ~ '^SIG[A-Z0-9+-]+$'),
    timed_out        boolean     NOT NULL DEFAULT false,
    stdout_bytes     bigint      CONSTRAINT lease_executions_stdout_bytes_check CHECK (stdout_bytes >= 0),
    stderr_bytes     bigint      CONSTRAINT lease_executions_stderr_bytes_check CHECK (stderr_bytes >= 0),
    truncated        boolean     NOT NULL DEFAULT false,
    error_sqlstate   text
                     CONSTRAINT lease_executions_error_sqlstate_check CHECK (error_sqlstate ~ '^[0-9A-Z]{5}$'),
    CONSTRAINT lease_executions_lease_fkey FOREIGN KEY (company_id, lease_id)
        REFERENCES paperclip.environment_leases (company_id, id) ON DELETE SET NULL (lease_id),
    CONSTRAINT lease_executions_heartbeat_run_fkey FOREIGN KEY (company_id, heartbeat_run_id)
        REFERENCES paperclip.heartbeat_runs (company_id, id) ON DELETE SET NULL (heartbeat_run_id),
    CONSTRAINT lease_executions_finished_at_check CHECK (finished_at >= started_at),
    -- a completed call: exit_code is NULL exactly when a signal killed it or it timed out
    CONSTRAINT lease_executions_outcome_check CHECK
        (error_sqlstate IS NOT NULL OR (exit_code IS NULL) = (signal IS NOT NULL OR timed_out))
);
COMMENT ON TABLE paperclip.lease_executions IS
    'one row per paperclip.lease_execute() call: what ran where and how it ended; never its output, arguments or environment values';
COMMENT ON COLUMN paperclip.lease_executions.stdout_bytes IS 'bytes of stdout returned to the caller (at most the output cap)';
COMMENT ON COLUMN paperclip.lease_executions.truncated IS 'stdout or stderr was longer than the output cap';
COMMENT ON COLUMN paperclip.lease_executions.error_sqlstate IS
    'the SQLSTATE of a call that raised; such rows are written after the caller''s transaction aborted, by the reconciler';
CREATE INDEX lease_executions_by_lease ON paperclip.lease_executions (company_id, lease_id, started_at);
CREATE INDEX lease_executions_by_run ON paperclip.lease_executions (company_id, heartbeat_run_id);

-- command execution.  SECURITY INVOKER, like COPY ... PROGRAM, so
-- that the local driver's pg_execute_server_program check sees the calling
-- role; the C code reads and writes the extension's tables as their owner,
-- with explicit company checks, and the search_path is pinned.
CREATE FUNCTION paperclip.lease_execute(
    lease_id uuid,
    command text,
    args text[] DEFAULT '{}',
    cwd text DEFAULT NULL,
    env jsonb DEFAULT '{}',
    stdin text DEFAULT NULL,
    timeout_ms integer DEFAULT NULL,
    max_output_bytes integer DEFAULT NULL)
RETURNS TABLE (
    execution_id uuid,
    exit_code integer,
    signal text,
    timed_out boolean,
    stdout text,
    stderr text,
    stdout_truncated boolean,
    stderr_truncated boolean,
    duration_ms integer)
AS 'MODULE_PATHNAME', 'pcr_lease_execute'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE ROWS 1
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION paperclip.lease_execute(uuid, text, text[], text, jsonb, text, integer, integer) IS
    'run a command (argv, no shell) in the environment of an active lease; returns its exit code or signal, output and duration, and records the call in lease_executions';

-- the reconciler records the calls whose transaction aborted from a queue in
-- shared memory (lease_exec_audit.c); granted to nobody
CREATE FUNCTION paperclip.lease_executions_backlog(skip uuid[], n integer)
RETURNS SETOF paperclip.lease_executions
AS 'MODULE_PATHNAME', 'pcr_lease_executions_backlog'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION paperclip.lease_executions_backlog(uuid[], integer) IS
    'internal: take up to n queued rows of lease_executions (calls whose transaction aborted) for this transaction to insert';

-- the local driver's workspaces (local_workspace.c): the reconciler lists them
-- to remove those whose lease is no longer active; granted to nobody
CREATE FUNCTION paperclip.local_workspaces(OUT lease_id uuid, OUT creator_running boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pcr_local_workspaces'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION paperclip.local_workspaces() IS
    'internal: the lease ids of the directories under paperclip.local_workspace_root, and whether the transaction that made one for a lease it had not committed yet still runs';
REVOKE ALL ON FUNCTION paperclip.local_workspaces() FROM PUBLIC;
REVOKE ALL ON FUNCTION paperclip.lease_execute(uuid, text, text[], text, jsonb, text, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION paperclip.lease_executions_backlog(uuid[], integer) FROM PUBLIC;

ALTER TABLE paperclip.lease_executions ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON paperclip.lease_executions
    USING (company_id = (SELECT paperclip.current_company_id()));
GRANT SELECT ON paperclip.lease_executions TO paperclip_agent, paperclip_admin;
GRANT EXECUTE ON FUNCTION
    paperclip.lease_execute(uuid, text, text[], text, jsonb, text, integer, integer)
TO paperclip_agent, paperclip_admin;
SELECT pg_catalog.pg_extension_config_dump('paperclip.lease_executions', '');

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

----------------------------------------------------------------------------
-- Scale (issue 13): indexes for run deletion and retention.  (A run's
-- renewal by heartbeat_runs_after_update, above, says "IS TRUE" so that no
-- statistics can send it through every active lease.)
--
-- On a big table these two CREATE INDEX hold a SHARE lock on
-- paperclip.environment_leases (acquires and releases wait) for as long as a
-- scan of the table and a sort take (docs/scale.md has measured times).  To
-- avoid that, create them beforehand with CREATE INDEX CONCURRENTLY, with
-- exactly these names and definitions: the update then keeps them.
----------------------------------------------------------------------------
DO $scale$
DECLARE
    want text;
    have text;
    valid boolean;
BEGIN
    FOR want IN VALUES
        ('CREATE INDEX environment_leases_by_heartbeat_run ON paperclip.environment_leases USING btree (heartbeat_run_id) WHERE (heartbeat_run_id IS NOT NULL)'),
        ('CREATE INDEX environment_leases_done_by_released_at ON paperclip.environment_leases USING btree (released_at) WHERE ((status = ANY (ARRAY[''released''::text, ''expired''::text, ''failed''::text])) AND ((cleanup_status IS NULL) OR (cleanup_status = ''success''::text)))')
    LOOP
        SELECT pg_catalog.pg_get_indexdef(i.indexrelid), i.indisvalid INTO have, valid
          FROM pg_catalog.pg_index AS i
          JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
         WHERE c.relnamespace = 'paperclip'::regnamespace
           AND c.relname = pg_catalog.split_part(want, ' ', 3);
        IF have IS NULL THEN
            EXECUTE want;
        ELSIF have IS DISTINCT FROM want OR NOT valid THEN
            RAISE EXCEPTION 'index "paperclip.%" exists but is not the one this version needs',
                            pg_catalog.split_part(want, ' ', 3)
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = CASE WHEN NOT valid THEN 'It is invalid (a failed CREATE INDEX CONCURRENTLY).'
                                    ELSE 'It is: ' || have END,
                      HINT = 'Drop it, create it again as: ' || want || ', then update the extension.';
        END IF;
    END LOOP;
END
$scale$;

-- Retention of execution records (issue 13): the reconciler deletes the
-- oldest records that finished longer ago than paperclip.lease_retention.
-- lease_executions is new in this version (above), so no lock to avoid.
CREATE INDEX lease_executions_by_finished_at ON paperclip.lease_executions (finished_at);
