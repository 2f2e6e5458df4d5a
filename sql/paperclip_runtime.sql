-- paperclip_runtime: full install script (source of truth for the current version)
\echo Use "CREATE EXTENSION paperclip_runtime" to load this file. \quit

-- The schema "paperclip" is created by CREATE EXTENSION (control file: schema = paperclip).

----------------------------------------------------------------------------
-- Roles (cluster-wide; created once, kept across DROP EXTENSION)
----------------------------------------------------------------------------
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'paperclip_agent') THEN
        CREATE ROLE paperclip_agent NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'paperclip_admin') THEN
        CREATE ROLE paperclip_admin NOLOGIN;
    END IF;
END
$roles$;

----------------------------------------------------------------------------
-- Tables
----------------------------------------------------------------------------
CREATE TABLE paperclip.companies (
    id          uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    name        text        NOT NULL,
    status      text        NOT NULL DEFAULT 'active'
                CONSTRAINT companies_status_check CHECK (status IN ('active', 'paused', 'archived')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE paperclip.companies IS 'tenants; every other table is scoped by company_id';

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

CREATE TABLE paperclip.environments (
    id          uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    company_id  uuid        NOT NULL REFERENCES paperclip.companies (id) ON DELETE CASCADE,
    name        text        NOT NULL,
    description text,
    driver      text        NOT NULL DEFAULT 'local'
                CONSTRAINT environments_driver_check CHECK (driver IN ('local', 'ssh', 'sandbox')),
    status      text        NOT NULL DEFAULT 'active'
                CONSTRAINT environments_status_check CHECK (status IN ('active', 'archived')),
    config      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    metadata    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT environments_company_id_id_key UNIQUE (company_id, id)
);
COMMENT ON TABLE paperclip.environments IS 'where agent work executes: local host, ssh host or sandbox; config is validated per driver';
CREATE UNIQUE INDEX environments_one_local_per_company
    ON paperclip.environments (company_id) WHERE driver = 'local';

CREATE TABLE paperclip.agents (
    id                     uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    company_id             uuid        NOT NULL REFERENCES paperclip.companies (id) ON DELETE CASCADE,
    name                   text        NOT NULL,
    role                   text        NOT NULL DEFAULT 'general',
    status                 text        NOT NULL DEFAULT 'idle',
    adapter_type           text        NOT NULL DEFAULT 'process',
    adapter_config         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    runtime_config         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    permissions            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    default_environment_id uuid,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agents_company_id_id_key UNIQUE (company_id, id),
    CONSTRAINT agents_default_environment_fkey FOREIGN KEY (company_id, default_environment_id)
        REFERENCES paperclip.environments (company_id, id) ON DELETE SET NULL (default_environment_id)
);
COMMENT ON TABLE paperclip.agents IS 'agents of a company; role and status use the host''s vocabulary';

CREATE TABLE paperclip.heartbeat_runs (
    id                uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    company_id        uuid        NOT NULL REFERENCES paperclip.companies (id) ON DELETE CASCADE,
    agent_id          uuid        NOT NULL,
    invocation_source text        NOT NULL DEFAULT 'on_demand',
    status            text        NOT NULL DEFAULT 'queued'
                      CONSTRAINT heartbeat_runs_status_check CHECK (status IN
                          ('queued', 'scheduled_retry', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
    started_at        timestamptz,
    finished_at       timestamptz,
    error             text,
    error_code        text,
    context_snapshot  jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT heartbeat_runs_company_id_id_key UNIQUE (company_id, id),
    CONSTRAINT heartbeat_runs_agent_fkey FOREIGN KEY (company_id, agent_id)
        REFERENCES paperclip.agents (company_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE paperclip.heartbeat_runs IS 'agent runs; terminal statuses are succeeded, failed, cancelled and timed_out';

CREATE SEQUENCE paperclip.environment_lease_fence_seq AS bigint;
COMMENT ON SEQUENCE paperclip.environment_lease_fence_seq IS 'fencing tokens: a later acquisition always has a larger fence';

CREATE TABLE paperclip.environment_leases (
    id                     uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    company_id             uuid        NOT NULL REFERENCES paperclip.companies (id) ON DELETE CASCADE,
    environment_id         uuid        NOT NULL,
    execution_workspace_id uuid,
    issue_id               uuid,
    heartbeat_run_id       uuid,
    status                 text        NOT NULL DEFAULT 'active'
                           CONSTRAINT environment_leases_status_check CHECK (status IN
                               ('active', 'released', 'expired', 'failed', 'retained')),
    lease_policy           text        NOT NULL DEFAULT 'ephemeral'
                           CONSTRAINT environment_leases_lease_policy_check CHECK (lease_policy IN
                               ('ephemeral', 'reuse_by_environment', 'reuse_by_execution_workspace', 'retain_on_failure')),
    provider               text,
    provider_lease_id      text,
    fence                  bigint      NOT NULL,  -- always drawn from environment_lease_fence_seq by the insert trigger
    acquired_at            timestamptz NOT NULL DEFAULT now(),
    last_used_at           timestamptz NOT NULL DEFAULT now(),
    expires_at             timestamptz,
    released_at            timestamptz,
    failure_reason         text,
    cleanup_status         text
                           CONSTRAINT environment_leases_cleanup_status_check CHECK (cleanup_status IN
                               ('pending', 'success', 'failed')),
    cleanup_attempts       integer     NOT NULL DEFAULT 0
                           CONSTRAINT environment_leases_cleanup_attempts_check CHECK (cleanup_attempts >= 0),
    cleanup_error          text,
    metadata               jsonb,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT environment_leases_environment_fkey FOREIGN KEY (company_id, environment_id)
        REFERENCES paperclip.environments (company_id, id) ON DELETE CASCADE,
    CONSTRAINT environment_leases_heartbeat_run_fkey FOREIGN KEY (company_id, heartbeat_run_id)
        REFERENCES paperclip.heartbeat_runs (company_id, id) ON DELETE SET NULL (heartbeat_run_id),
    CONSTRAINT environment_leases_released_at_check CHECK (status = 'active' OR released_at IS NOT NULL),
    CONSTRAINT environment_leases_expires_at_check CHECK (status <> 'active' OR expires_at IS NOT NULL)
);
ALTER SEQUENCE paperclip.environment_lease_fence_seq OWNED BY paperclip.environment_leases.fence;
COMMENT ON TABLE paperclip.environment_leases IS 'which run holds which environment; state changes commit with the run''s own';
COMMENT ON COLUMN paperclip.environment_leases.fence IS 'strictly increasing fencing token';

CREATE UNIQUE INDEX environment_leases_one_active_per_run_environment
    ON paperclip.environment_leases (heartbeat_run_id, environment_id) WHERE status = 'active';
-- a reusable environment is held by one run at a time, whoever writes the row
CREATE UNIQUE INDEX environment_leases_one_active_reuse_per_environment
    ON paperclip.environment_leases (environment_id)
    WHERE status = 'active' AND lease_policy = 'reuse_by_environment';
CREATE INDEX environment_leases_active_by_environment
    ON paperclip.environment_leases (environment_id) WHERE status = 'active';
CREATE INDEX environment_leases_active_expiry
    ON paperclip.environment_leases (expires_at) WHERE status = 'active';
CREATE INDEX environment_leases_cleanup_pending
    ON paperclip.environment_leases (updated_at) WHERE cleanup_status = 'pending';
CREATE INDEX environment_leases_by_environment_provider_lease
    ON paperclip.environment_leases (environment_id, provider_lease_id);
-- deleting a run sets heartbeat_run_id NULL in its leases (the foreign key's
-- action), and a run's renewal finds its leases: a probe, not a table scan
CREATE INDEX environment_leases_by_heartbeat_run
    ON paperclip.environment_leases (heartbeat_run_id) WHERE heartbeat_run_id IS NOT NULL;
-- retention (paperclip.lease_retention) deletes the oldest history that is done
CREATE INDEX environment_leases_done_by_released_at
    ON paperclip.environment_leases (released_at)
    WHERE status IN ('released', 'expired', 'failed')
      AND (cleanup_status IS NULL OR cleanup_status = 'success');

CREATE TABLE paperclip.company_secrets (
    id                  uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    company_id          uuid        NOT NULL REFERENCES paperclip.companies (id) ON DELETE CASCADE,
    name                text        NOT NULL,
    provider            text        NOT NULL DEFAULT 'local_encrypted',
    external_ref        text,
    latest_version      integer     NOT NULL DEFAULT 1
                        CONSTRAINT company_secrets_latest_version_check CHECK (latest_version >= 1),
    description         text,
    created_by_agent_id uuid,
    created_by_user_id  text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT company_secrets_company_id_name_key UNIQUE (company_id, name),
    -- names and descriptions are bounded and free of control characters, whoever writes them
    CONSTRAINT company_secrets_name_check
        CHECK (char_length(name) BETWEEN 1 AND 255 AND name !~ '[\x01-\x1f\x7f]'),
    CONSTRAINT company_secrets_description_check
        CHECK (char_length(description) <= 4096 AND description !~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]'),
    CONSTRAINT company_secrets_company_id_id_key UNIQUE (company_id, id),
    CONSTRAINT company_secrets_created_by_agent_fkey FOREIGN KEY (company_id, created_by_agent_id)
        REFERENCES paperclip.agents (company_id, id) ON DELETE SET NULL (created_by_agent_id)
);
COMMENT ON TABLE paperclip.company_secrets IS 'named secrets of a company; values live encrypted in company_secret_versions';

CREATE TABLE paperclip.company_secret_versions (
    id                uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    company_id        uuid        NOT NULL,
    secret_id         uuid        NOT NULL,
    version           integer     NOT NULL CONSTRAINT company_secret_versions_version_check CHECK (version >= 1),
    material          jsonb       NOT NULL,
    value_fingerprint text,
    key_id            text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz,
    CONSTRAINT company_secret_versions_secret_id_version_key UNIQUE (secret_id, version),
    CONSTRAINT company_secret_versions_secret_fkey FOREIGN KEY (company_id, secret_id)
        REFERENCES paperclip.company_secrets (company_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE paperclip.company_secret_versions IS 'encrypted secret versions: material holds ciphertext and decryption parameters only, never plaintext';

-- Command execution: one row per call of lease_execute, never the
-- output, the arguments or the values of the environment
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
-- retention (paperclip.lease_retention) deletes the records that finished longest ago
CREATE INDEX lease_executions_by_finished_at ON paperclip.lease_executions (finished_at);

----------------------------------------------------------------------------
-- C functions
----------------------------------------------------------------------------
-- the lease functions are SECURITY DEFINER: callers need no write right on
-- the lease table; the C code checks the caller's company (tenant.h)
CREATE FUNCTION paperclip.current_company_id()
RETURNS uuid
AS 'MODULE_PATHNAME', 'pcr_current_company_id'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION paperclip.current_company_id() IS
    'the company the session acts for: paperclip.company_id when the session''s role is entitled to it (paperclip.company_roles), else null';

CREATE FUNCTION paperclip.acquire_run_lease(
    company_id uuid,
    environment_id uuid,
    heartbeat_run_id uuid,
    issue_id uuid DEFAULT NULL,
    execution_workspace_id uuid DEFAULT NULL,
    execution_workspace_mode text DEFAULT NULL)
RETURNS paperclip.environment_leases
AS 'MODULE_PATHNAME', 'pcr_acquire_run_lease'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION paperclip.acquire_run_lease(uuid, uuid, uuid, uuid, uuid, text) IS
    'acquire (or return the already active) lease of a run on an environment';

CREATE FUNCTION paperclip.release_run_leases(
    heartbeat_run_id uuid,
    status text DEFAULT 'released',
    failure_reason text DEFAULT NULL)
RETURNS SETOF paperclip.environment_leases
AS 'MODULE_PATHNAME', 'pcr_release_run_leases'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE ROWS 1
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION paperclip.release_run_leases(uuid, text, text) IS
    'transition every active lease of a run to released, failed or expired; returns the transitioned rows';

CREATE FUNCTION paperclip.renew_run_lease(lease_id uuid)
RETURNS paperclip.environment_leases
AS 'MODULE_PATHNAME', 'pcr_renew_run_lease'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION paperclip.renew_run_lease(uuid) IS 'extend an active lease by its TTL';

CREATE FUNCTION paperclip.ensure_local_environment(company_id uuid)
RETURNS paperclip.environments
AS 'MODULE_PATHNAME', 'pcr_ensure_local_environment'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION paperclip.ensure_local_environment(uuid) IS
    'return the company''s local environment, creating it if none exists';

CREATE FUNCTION paperclip.lease_ttl(config jsonb)
RETURNS interval
AS 'MODULE_PATHNAME', 'pcr_lease_ttl'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION paperclip.lease_ttl(jsonb) IS
    'lease TTL for an environment config: config.leaseTtlSeconds, else paperclip.lease_ttl';

CREATE FUNCTION paperclip.validate_environment_config(driver text, config jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pcr_validate_environment_config'
LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION paperclip.validate_environment_config(text, jsonb) IS
    'validate a driver config and return its normalised form; raises 22023 naming the field';

CREATE FUNCTION paperclip.environment_probe(environment_id uuid)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'pcr_environment_probe'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION paperclip.environment_probe(uuid) IS
    'check that an environment can be used (ssh: connect, verify the host key and the workspace); returns {ok, driver, summary, details}, failures are reported, not raised';

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

-- the words C uses (vocab.c) and the registered drivers, for checks against the CHECK constraints
CREATE FUNCTION paperclip.vocabulary(OUT kind text, OUT name text, OUT terminal boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pcr_vocabulary'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION paperclip.vocabulary() IS
    'the status words the C code uses (run_status with terminal, lease_status, lease_policy, cleanup_status, release_status) and the drivers it has; they match the CHECK constraints';

-- the background reconciler (docs/reconciler.md)
CREATE FUNCTION paperclip.reconciler_status(
    OUT state text,
    OUT pid integer,
    OUT database text,
    OUT connect_failures integer,
    OUT started_at timestamptz,
    OUT passes bigint,
    OUT last_pass_started_at timestamptz,
    OUT last_pass_finished_at timestamptz,
    OUT last_pass_leases_expired bigint,
    OUT last_pass_leases_released bigint,
    OUT last_pass_cleanups_succeeded bigint,
    OUT last_pass_cleanup_attempts_failed bigint,
    OUT last_pass_cleanups_given_up bigint,
    OUT last_pass_errors bigint,
    OUT total_leases_expired bigint,
    OUT total_leases_released bigint,
    OUT total_cleanups_succeeded bigint,
    OUT total_cleanup_attempts_failed bigint,
    OUT total_cleanups_given_up bigint,
    OUT total_errors bigint,
    OUT last_error_at timestamptz,
    OUT last_error text)
RETURNS record
AS 'MODULE_PATHNAME', 'pcr_reconciler_status'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION paperclip.reconciler_status() IS
    'state of the background reconciler and what its last pass and all passes since server start did';

CREATE FUNCTION paperclip.reconciler_wake()
RETURNS boolean
AS 'MODULE_PATHNAME', 'pcr_reconciler_wake'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION paperclip.reconciler_wake() IS
    'ask the reconciler for a pass when this transaction commits; false when no reconciler runs';

-- secrets (docs/secrets.md): callers need no access to the secret tables; the C code
-- checks the session's effective company like the RLS policies do
CREATE FUNCTION paperclip.secret_create(company_id uuid, name text, value text, description text DEFAULT NULL)
RETURNS paperclip.company_secrets
AS 'MODULE_PATHNAME', 'pcr_secret_create'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION paperclip.secret_create(uuid, text, text, text) IS
    'create a secret with its value encrypted as version 1 (provider local_encrypted)';

CREATE FUNCTION paperclip.secret_rotate(secret_id uuid, value text)
RETURNS paperclip.company_secrets
AS 'MODULE_PATHNAME', 'pcr_secret_rotate'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION paperclip.secret_rotate(uuid, text) IS
    'store a new value as version latest_version + 1 (concurrent rotations get consecutive versions)';

CREATE FUNCTION paperclip.secret_revoke(secret_id uuid, version integer)
RETURNS paperclip.company_secrets
AS 'MODULE_PATHNAME', 'pcr_secret_revoke'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION paperclip.secret_revoke(uuid, integer) IS
    'revoke one version of a secret: it no longer resolves, and "latest" skips it';

-- not SECURITY DEFINER: it runs no SQL (index scans in C, for speed), so it
-- depends on no search_path; EXECUTE is the gate, then the company check
CREATE FUNCTION paperclip.secret_resolve(company_id uuid, secret_ref jsonb)
RETURNS text
AS 'MODULE_PATHNAME', 'pcr_secret_resolve'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION paperclip.secret_resolve(uuid, jsonb) IS
    'decrypt the value a secret_ref names ("latest" = latest version not revoked)';

CREATE FUNCTION paperclip.secret_reencrypt_all()
RETURNS integer
AS 'MODULE_PATHNAME', 'pcr_secret_reencrypt_all'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION paperclip.secret_reencrypt_all() IS
    're-encrypt every secret version not under the current master key; returns how many (superuser only)';

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

-- trigger functions
CREATE FUNCTION paperclip.environments_config_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'pcr_environments_config_trigger' LANGUAGE C;
CREATE FUNCTION paperclip.environments_delete_guard() RETURNS trigger
AS 'MODULE_PATHNAME', 'pcr_environments_delete_guard' LANGUAGE C;
CREATE FUNCTION paperclip.environment_leases_guard() RETURNS trigger
AS 'MODULE_PATHNAME', 'pcr_environment_leases_guard' LANGUAGE C;
CREATE FUNCTION paperclip.environments_sandbox_sweep() RETURNS trigger
AS 'MODULE_PATHNAME', 'pcr_environments_sandbox_sweep' LANGUAGE C;
COMMENT ON FUNCTION paperclip.environments_sandbox_sweep() IS
    'a sandbox environment archived or deleted: the reconciler sweeps provider objects after commit (its reusable sandbox is destroyed)';

----------------------------------------------------------------------------
-- Run triggers (docs/leases.md)
----------------------------------------------------------------------------
-- SECURITY DEFINER: an agent that may update its run's status has no write
-- right on the leases the update releases or renews.  Fired on any other
-- table, they refuse to run.
CREATE FUNCTION paperclip.heartbeat_runs_after_update() RETURNS trigger
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
COMMENT ON FUNCTION paperclip.heartbeat_runs_after_update() IS
    'a run entering a terminal status releases its leases; any other update renews them';

CREATE FUNCTION paperclip.heartbeat_runs_before_delete() RETURNS trigger
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
COMMENT ON FUNCTION paperclip.heartbeat_runs_before_delete() IS
    'deleting a run releases its active leases first';

CREATE TRIGGER heartbeat_runs_lease_lifecycle
    AFTER UPDATE ON paperclip.heartbeat_runs
    FOR EACH ROW EXECUTE FUNCTION paperclip.heartbeat_runs_after_update();
CREATE TRIGGER heartbeat_runs_release_on_delete
    BEFORE DELETE ON paperclip.heartbeat_runs
    FOR EACH ROW EXECUTE FUNCTION paperclip.heartbeat_runs_before_delete();

CREATE TRIGGER environments_config_check
    BEFORE INSERT OR UPDATE OF driver, config ON paperclip.environments
    FOR EACH ROW EXECUTE FUNCTION paperclip.environments_config_trigger();
CREATE TRIGGER environments_refuse_delete_with_active_leases
    BEFORE DELETE ON paperclip.environments
    FOR EACH ROW EXECUTE FUNCTION paperclip.environments_delete_guard();
CREATE TRIGGER environments_sweep_sandboxes
    AFTER UPDATE OF status OR DELETE ON paperclip.environments
    FOR EACH ROW WHEN (OLD.driver = 'sandbox')
    EXECUTE FUNCTION paperclip.environments_sandbox_sweep();

CREATE TRIGGER environment_leases_state_guard
    BEFORE INSERT OR UPDATE OR DELETE ON paperclip.environment_leases
    FOR EACH ROW EXECUTE FUNCTION paperclip.environment_leases_guard();

----------------------------------------------------------------------------
-- Row-level security by company (docs/security.md): roles the policies apply to (not
-- the owner, superusers or BYPASSRLS roles) see and write the rows of their
-- effective company only: paperclip.company_id when their role is entitled
-- to it, else none.  The sub-select evaluates it once per statement.
----------------------------------------------------------------------------
ALTER TABLE paperclip.companies ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON paperclip.companies
    USING (id = (SELECT paperclip.current_company_id()));
ALTER TABLE paperclip.company_roles ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON paperclip.company_roles
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER TABLE paperclip.environments ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON paperclip.environments
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER TABLE paperclip.agents ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON paperclip.agents
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER TABLE paperclip.heartbeat_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON paperclip.heartbeat_runs
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER TABLE paperclip.environment_leases ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON paperclip.environment_leases
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER TABLE paperclip.company_secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON paperclip.company_secrets
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER TABLE paperclip.company_secret_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON paperclip.company_secret_versions
    USING (company_id = (SELECT paperclip.current_company_id()));
ALTER TABLE paperclip.lease_executions ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON paperclip.lease_executions
    USING (company_id = (SELECT paperclip.current_company_id()));

----------------------------------------------------------------------------
-- Grants: nothing to PUBLIC (docs/security.md)
----------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA paperclip FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA paperclip FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA paperclip FROM PUBLIC;

GRANT USAGE ON SCHEMA paperclip TO paperclip_agent, paperclip_admin;
-- the row-level security policies call it as the querying role
GRANT EXECUTE ON FUNCTION paperclip.current_company_id() TO paperclip_agent, paperclip_admin;

-- No role but the owner holds a table-level write privilege (so none can LOCK
-- TABLE a table other companies share), nor EXECUTE on a trigger function.

-- paperclip_agent: acquire, renew and release leases (functions only: no
-- write right on environment_leases); report its runs' progress, which
-- renews or releases their leases through the heartbeat_runs triggers;
-- read its company's rows
GRANT SELECT ON paperclip.companies, paperclip.agents, paperclip.environments,
                paperclip.heartbeat_runs, paperclip.environment_leases TO paperclip_agent;
GRANT UPDATE (status, started_at, finished_at, error, error_code, context_snapshot, updated_at)
    ON paperclip.heartbeat_runs TO paperclip_agent;
-- no role gets the fence sequence: the lease trigger draws fences itself
GRANT EXECUTE ON FUNCTION
    paperclip.acquire_run_lease(uuid, uuid, uuid, uuid, uuid, text),
    paperclip.release_run_leases(uuid, text, text),
    paperclip.renew_run_lease(uuid),
    paperclip.lease_ttl(jsonb)
TO paperclip_agent;

-- paperclip_admin: administer environments and secrets (column grants: no
-- row id of its choosing, no other company's rows, no deletion: environments
-- are archived, secret versions revoked)
GRANT SELECT ON paperclip.environments TO paperclip_admin;
GRANT INSERT (company_id, name, description, driver, status, config, metadata)
    ON paperclip.environments TO paperclip_admin;
GRANT UPDATE (name, description, driver, status, config, metadata, updated_at)
    ON paperclip.environments TO paperclip_admin;
GRANT SELECT ON paperclip.companies, paperclip.agents, paperclip.heartbeat_runs,
                paperclip.environment_leases TO paperclip_admin;
-- secrets: values only through the secret_* functions; the material column stays unreadable
GRANT SELECT ON paperclip.company_secrets TO paperclip_admin;
GRANT UPDATE (name, description) ON paperclip.company_secrets TO paperclip_admin;
GRANT SELECT (id, company_id, secret_id, version, value_fingerprint, key_id, created_at, revoked_at)
    ON paperclip.company_secret_versions TO paperclip_admin;
GRANT EXECUTE ON FUNCTION
    paperclip.secret_create(uuid, text, text, text),
    paperclip.secret_rotate(uuid, text),
    paperclip.secret_revoke(uuid, integer),
    paperclip.secret_resolve(uuid, jsonb)
TO paperclip_admin;
GRANT EXECUTE ON FUNCTION
    paperclip.ensure_local_environment(uuid),
    paperclip.environment_probe(uuid),
    paperclip.validate_environment_config(text, jsonb),
    paperclip.lease_ttl(jsonb)
TO paperclip_admin;
GRANT EXECUTE ON FUNCTION
    paperclip.reconciler_status(),
    paperclip.reconciler_wake(),
    paperclip.driver_workers_status(),
    paperclip.vocabulary()
TO paperclip_admin;

-- command execution: both roles run commands in their company's active
-- leases and read their company's execution records
GRANT SELECT ON paperclip.lease_executions TO paperclip_agent, paperclip_admin;
GRANT EXECUTE ON FUNCTION
    paperclip.lease_execute(uuid, text, text[], text, jsonb, text, integer, integer)
TO paperclip_agent, paperclip_admin;

----------------------------------------------------------------------------
-- pg_dump keeps the data of these tables
----------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('paperclip.companies', '');
SELECT pg_catalog.pg_extension_config_dump('paperclip.company_roles', '');
SELECT pg_catalog.pg_extension_config_dump('paperclip.agents', '');
SELECT pg_catalog.pg_extension_config_dump('paperclip.environments', '');
SELECT pg_catalog.pg_extension_config_dump('paperclip.heartbeat_runs', '');
SELECT pg_catalog.pg_extension_config_dump('paperclip.environment_leases', '');
SELECT pg_catalog.pg_extension_config_dump('paperclip.environment_lease_fence_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paperclip.company_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('paperclip.company_secret_versions', '');
SELECT pg_catalog.pg_extension_config_dump('paperclip.lease_executions', '');

----------------------------------------------------------------------------
-- A running reconciler starts reconciling this database once it commits
----------------------------------------------------------------------------
SELECT paperclip.reconciler_wake();
