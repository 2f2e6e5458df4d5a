-- paperclip_runtime 0.1.0 -> 0.2.0
--
-- Every SQL change of 0.2.0 goes here as well as into sql/paperclip_runtime.sql
-- (the full install script of the current version).  After
-- ALTER EXTENSION paperclip_runtime UPDATE TO '0.2.0' the catalog must equal a
-- fresh CREATE EXTENSION of 0.2.0.  Sections are appended per change, each
-- headed by a comment saying what it is for.
\echo Use "ALTER EXTENSION paperclip_runtime UPDATE TO '0.2.0'" to load this file. \quit

----------------------------------------------------------------------------
-- Scale (issue 13): indexes for run deletion and retention, and a run's
-- renewal that no statistics can send through every active lease.
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

CREATE OR REPLACE FUNCTION paperclip.heartbeat_runs_after_update() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
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
