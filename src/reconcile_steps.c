/*
 * reconcile_steps.c — the reconciler's built-in steps on environment_leases
 *
 * - release the active leases of runs that are terminal (the rule of the
 *   heartbeat_runs trigger, for runs that reached a terminal status without
 *   it) or gone;
 * - expire active leases past expires_at (docs/leases.md);
 * - carry out pending cleanups: the lease's driver's cleanup operation,
 *   called through the I/O pool after the select has committed, the outcome
 *   recorded in a short transaction of its own, with backoff, until success
 *   or paperclip.cleanup_max_attempts (docs/leases.md).
 *
 * A batch is first handled at once (expiry: one statement that locks and
 * changes the rows a probe of the expiry index found; release: the rows
 * selected, changed by one statement); if that raises, row by row, each in
 * its own subtransaction (reconcile_pass.c).
 */
#include "pcr.h"
#include "driver.h"
#include "lease_probe.h"
#include "reconciler.h"
#include "vocab.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

/* ------------------------------------------------------------------------
 * Transitions of active leases (release or expiry)
 * ------------------------------------------------------------------------ */

/* What an active lease becomes: status NULL leaves it as it is. */
typedef struct PcrTransition
{
	const char *status;
	const char *reason;
} PcrTransition;

typedef PcrTransition (*PcrDecideFn) (HeapTuple row, TupleDesc desc);

/*
 * As release_run_leases: a failed retain_on_failure lease is retained, and
 * the lease trigger gives a released lease whose driver has side effects
 * cleanup_status 'pending' (not a retained one: its environment is kept on
 * purpose).  An expiry leaves last_used_at alone: nobody used the lease.
 * The leases are addressed by primary key, "IS TRUE" keeping every partial
 * index on active leases out of the plan (see lease.c).
 */
static const char *const transition_sql =
"UPDATE paperclip.environment_leases AS l "
"   SET status = CASE WHEN t.status = 'failed' AND l.lease_policy = 'retain_on_failure' "
"                     THEN 'retained' ELSE t.status END, "
"       released_at = now(), "
"       last_used_at = CASE WHEN t.status = 'expired' THEN l.last_used_at ELSE now() END, "
"       updated_at = now(), "
"       failure_reason = t.reason, "
"       cleanup_status = NULL "
"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) "
"       AS t (id, status, reason) "
" WHERE l.id = t.id AND (l.status = 'active') IS TRUE";

/* Transition rows[0..nrows) as decide says, in one statement; returns how many changed. */
static uint64
transition_leases(HeapTuple *rows, uint64 nrows, TupleDesc desc, PcrDecideFn decide)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {UUIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[3];
	Datum	   *ids = palloc(sizeof(Datum) * nrows);
	Datum	   *statuses = palloc(sizeof(Datum) * nrows);
	Datum	   *reasons = palloc(sizeof(Datum) * nrows);
	bool	   *reason_nulls = palloc(sizeof(bool) * nrows);
	int			n = 0;
	int			dims[1];
	int			lbs[1] = {1};
	int			rc;

	for (uint64 i = 0; i < nrows; i++)
	{
		PcrTransition t = decide(rows[i], desc);

		if (t.status == NULL)
			continue;
		ids[n] = UUIDPGetDatum(PcrRowUuid(rows[i], desc, "id"));
		statuses[n] = CStringGetTextDatum(t.status);
		reason_nulls[n] = t.reason == NULL;
		reasons[n] = t.reason ? CStringGetTextDatum(t.reason) : (Datum) 0;
		n++;
	}
	if (n == 0)
		return 0;

	dims[0] = n;
	values[0] = PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[1] = PointerGetDatum(construct_array(statuses, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_md_array(reasons, reason_nulls, 1, dims, lbs,
												   TEXTOID, -1, false, TYPALIGN_INT));
	rc = PcrReconcilerExecute(&plan, transition_sql, 3, argtypes, values, NULL);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not update leases: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* ------------------------------------------------------------------------
 * Step: release the leases of terminal or missing runs
 * ------------------------------------------------------------------------ */
static PcrTransition
decide_release(HeapTuple row, TupleDesc desc)
{
	char	   *run_status = PcrRowText(row, desc, "run_status");
	PcrTransition t = {NULL, NULL};

	if (run_status == NULL)
	{
		t.status = "released";
		t.reason = "heartbeat run no longer exists";
	}
	else if (!PcrRunStatusIsTerminal(run_status))
		return t;
	/* the rule of paperclip.heartbeat_runs_after_update() */
	else
	{
		t.status = PcrLeaseStatusForRun(run_status);
		if (strcmp(t.status, "failed") == 0)
			t.reason = PcrRowText(row, desc, "run_reason");
	}
	return t;
}

static PcrRowOutcome
release_row(HeapTuple row, TupleDesc desc)
{
	return transition_leases(&row, 1, desc, decide_release) == 1 ? PCR_ROW_RELEASED : PCR_ROW_NOTHING;
}

/* The step's select with a large batch, then one statement for the rows. */
static uint64
release_batch(const PcrReconcileStep *step, Datum skip, int limit, uint64 *changed)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {UUIDARRAYOID, INT4OID};
	Datum		values[2] = {skip, Int32GetDatum(limit)};
	SPITupleTable *rows;
	uint64		nrows;
	int			rc;

	rc = PcrReconcilerExecute(&plan, step->select_sql, 2, argtypes, values, NULL);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not select leases: %s", SPI_result_code_string(rc));
	rows = SPI_tuptable;
	nrows = SPI_processed;
	*changed = nrows == 0 ? 0 : transition_leases(rows->vals, nrows, rows->tupdesc, decide_release);
	return nrows;
}

const PcrReconcileStep pcr_step_release_finished_runs = {
	.name = "release leases of finished runs",
	.select_sql =
	"SELECT l.id, r.status AS run_status, coalesce(r.error, r.error_code, r.status) AS run_reason "
	"  FROM paperclip.environment_leases AS l "
	"  LEFT JOIN paperclip.heartbeat_runs AS r "
	"         ON r.company_id = l.company_id AND r.id = l.heartbeat_run_id "
	" WHERE l.status = 'active' "
	"   AND (r.id IS NULL OR r.status IN (NULL " PCR_RUN_TERMINAL_SQL ")) "
	"   AND l.id <> ALL ($1) "
	" LIMIT $2 "
	"   FOR UPDATE OF l SKIP LOCKED",
	.process_row = release_row,
	.process_batch = release_batch,
	.batch_outcome = PCR_ROW_RELEASED,
};

/* ------------------------------------------------------------------------
 * Step: expire active leases past expires_at
 * ------------------------------------------------------------------------ */
static PcrTransition
decide_expire(HeapTuple row, TupleDesc desc)
{
	PcrTransition t = {"expired", "lease expired"};

	return t;
}

static PcrRowOutcome
expire_row(HeapTuple row, TupleDesc desc)
{
	return transition_leases(&row, 1, desc, decide_expire) == 1 ? PCR_ROW_EXPIRED : PCR_ROW_NOTHING;
}

/*
 * One statement per batch: the leases a probe of the expiry index found
 * (lease_probe.c: no plan, so no statistics, can make it scan every active
 * lease), locked SKIP LOCKED and changed by ctid, which the locks keep
 * stable; a lease changed meanwhile is left for the next pass.
 */
static const char *const expire_sql =
"UPDATE paperclip.environment_leases "
"   SET status = 'expired', released_at = now(), updated_at = now(), "
"       failure_reason = 'lease expired', cleanup_status = NULL "
" WHERE ctid = ANY (ARRAY( "
"       SELECT ctid FROM paperclip.environment_leases "
"        WHERE ctid = ANY ($1) AND (status = 'active') IS TRUE AND expires_at <= now() "
"          FOR NO KEY UPDATE SKIP LOCKED))";

static uint64
expire_batch(const PcrReconcileStep *step, Datum skip, int limit, uint64 *changed)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {TIDARRAYOID};
	ItemPointerData *tids = palloc(sizeof(ItemPointerData) * limit);
	Datum	   *tid_datums;
	Datum	   *skip_ids;
	int			nskip;
	int			n;
	int			rc;
	Datum		value;

	deconstruct_array(DatumGetArrayTypeP(skip), UUIDOID, UUID_LEN, false, TYPALIGN_CHAR,
					  &skip_ids, NULL, &nskip);
	n = PcrProbeDueLeases(GetCurrentTransactionStartTimestamp(), skip_ids, nskip, limit, tids);
	*changed = 0;
	if (n == 0)
		return 0;

	tid_datums = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
		tid_datums[i] = PointerGetDatum(&tids[i]);
	value = PointerGetDatum(construct_array(tid_datums, n, TIDOID, sizeof(ItemPointerData),
											false, TYPALIGN_SHORT));
	rc = PcrReconcilerExecute(&plan, expire_sql, 1, argtypes, &value, NULL);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not expire leases: %s", SPI_result_code_string(rc));
	*changed = SPI_processed;
	return n;
}

const PcrReconcileStep pcr_step_expire = {
	.name = "expire leases",
	.select_sql =
	"SELECT id "
	"  FROM paperclip.environment_leases "
	" WHERE status = 'active' AND expires_at <= now() "
	"   AND id <> ALL ($1) "
	" ORDER BY expires_at "
	" LIMIT $2 "
	"   FOR UPDATE SKIP LOCKED",
	.process_row = expire_row,
	.process_batch = expire_batch,
	.batch_outcome = PCR_ROW_EXPIRED,
};

/* ------------------------------------------------------------------------
 * Step: pending cleanups, with backoff
 * ------------------------------------------------------------------------ */

/* A pending cleanup, copied out of its row for the call and the record. */
typedef struct PcrCleanupWork
{
	PcrLeaseCleanup lease;
	int			attempts_seen;	/* cleanup_attempts when selected: guards the record */
} PcrCleanupWork;

static void *
cleanup_prepare(HeapTuple row, TupleDesc desc)
{
	PcrCleanupWork *w = palloc0(sizeof(PcrCleanupWork));
	pg_uuid_t  *company = PcrRowUuid(row, desc, "company_id");

	memcpy(&w->lease.lease_id, PcrRowUuid(row, desc, "id"), sizeof(pg_uuid_t));
	if (company != NULL)
		memcpy(&w->lease.company_id, company, sizeof(pg_uuid_t));
	w->lease.provider = PcrRowText(row, desc, "provider");
	w->lease.provider_lease_id = PcrRowText(row, desc, "provider_lease_id");
	w->lease.metadata = PcrRowJsonb(row, desc, "metadata");
	w->lease.environment_config = PcrRowJsonb(row, desc, "environment_config");
	w->lease.keep_object = PcrRowBool(row, desc, "keep_object", false);
	if (PcrRowUuid(row, desc, "environment_id") != NULL)
		memcpy(&w->lease.environment_id, PcrRowUuid(row, desc, "environment_id"), sizeof(pg_uuid_t));
	w->attempts_seen = PcrRowInt(row, desc, "cleanup_attempts", 0);
	w->lease.attempt = w->attempts_seen + 1;
	return w;
}

/*
 * The driver's cleanup operation, through the I/O pool (no transaction, no
 * lock held): a driver worker does the I/O, never the reconciler.  The
 * lease's company is the caller, so its share of the pool applies.
 */
static void
cleanup_call(void *work)
{
	PcrCleanupWork *w = (PcrCleanupWork *) work;
	const PcrDriver *driver = PcrDriverOfLease(w->lease.metadata, w->lease.provider);
	PcrIoCall	call = {0};
	PcrIoResult result;

	if (driver == NULL)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("lease names unknown driver \"%s\"",
						PcrJsonbGetText(w->lease.metadata, "driver"))));
	if (driver->cleanup_op == NULL)
		return;					/* no side effects: nothing left to do */
	call.op = driver->cleanup_op;
	call.company_id = &w->lease.company_id;
	call.request = PcrLeaseCleanupPack(&w->lease, &call.request_len);
	call.target = driver->name;
	PcrIoInvoke(&call, &result);
}

static const char *const record_cleanup_sql =
"UPDATE paperclip.environment_leases "
"   SET cleanup_attempts = cleanup_attempts + 1, "
"       cleanup_status = CASE WHEN $2 THEN 'success' "
"                             WHEN cleanup_attempts + 1 >= $4 THEN 'failed' "
"                             ELSE 'pending' END, "
"       cleanup_error = CASE WHEN $2 THEN NULL ELSE $3 END, "
"       updated_at = now() "
" WHERE id = $1 AND cleanup_status = 'pending' AND cleanup_attempts = $5 "
"RETURNING cleanup_status, cleanup_attempts";

/* The outcome, unless the row changed since it was selected. */
static PcrRowOutcome
cleanup_record(void *work, ErrorData *call_error)
{
	static SPIPlanPtr plan = NULL;
	PcrCleanupWork *w = (PcrCleanupWork *) work;
	const char *error = NULL;
	Oid			argtypes[5] = {UUIDOID, BOOLOID, TEXTOID, INT4OID, INT4OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	char	   *status;
	int			rc;

	if (call_error != NULL)
		error = call_error->message ? call_error->message : "cleanup failed without a message";
	values[0] = UUIDPGetDatum(&w->lease.lease_id);
	values[1] = BoolGetDatum(call_error == NULL);
	if (error == NULL)
		nulls[2] = 'n', values[2] = (Datum) 0;
	else
		values[2] = CStringGetTextDatum(error);
	values[3] = Int32GetDatum(pcr_cleanup_max_attempts);
	values[4] = Int32GetDatum(w->attempts_seen);
	rc = PcrReconcilerExecute(&plan, record_cleanup_sql, 5, argtypes, values, nulls);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not record a cleanup attempt: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return PCR_ROW_NOTHING;	/* changed meanwhile: its new state stands */

	status = PcrRowText(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, "cleanup_status");
	if (strcmp(status, "success") == 0)
		return PCR_ROW_CLEANED;
	if (strcmp(status, "failed") == 0)
	{
		ereport(WARNING,
				(errmsg("paperclip reconciler: cleanup of lease %s failed after %d attempts",
						PcrUuidToCString(&w->lease.lease_id),
						PcrRowInt(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, "cleanup_attempts", 0)),
				 errdetail_internal("%s", error)));
		return PCR_ROW_CLEANUP_FAILED;
	}
	return PCR_ROW_CLEANUP_RETRY;
}

/*
 * Attempt n+1 is due paperclip.reconcile_interval * 2^(n-1) after attempt n
 * (updated_at), at most an hour; the first is due at once.  A retained
 * lease is not cleaned up: its environment is kept on purpose.
 */
const PcrReconcileStep pcr_step_cleanup = {
	.name = "cleanup",
	.select_sql =
	"SELECT l.id, l.company_id, l.environment_id, l.provider, l.provider_lease_id, l.metadata, "
	"       l.cleanup_attempts, e.config AS environment_config, "
	"       (l.lease_policy = 'reuse_by_environment' AND e.status = 'active') IS TRUE AS keep_object "
	"  FROM paperclip.environment_leases AS l "
	"  LEFT JOIN paperclip.environments AS e ON e.company_id = l.company_id AND e.id = l.environment_id "
	" WHERE l.cleanup_status = 'pending' "
	"   AND l.status IN ('released', 'expired', 'failed') "
	"   AND (l.cleanup_attempts = 0 "
	"        OR l.updated_at + least(pg_catalog.current_setting('paperclip.reconcile_interval')::interval "
	"                                * pg_catalog.power(2, least(l.cleanup_attempts - 1, 20)), "
	"                                interval '1 hour') <= now()) "
	"   AND l.id <> ALL ($1) "
	" ORDER BY l.updated_at "
	" LIMIT $2 "
	"   FOR UPDATE OF l SKIP LOCKED",
	.prepare_row = cleanup_prepare,
	.call = cleanup_call,
	.record = cleanup_record,
};
