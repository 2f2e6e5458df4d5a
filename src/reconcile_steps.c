/*
 * reconcile_steps.c — the reconciler's built-in steps on environment_leases
 *
 * - release the active leases of runs that are terminal (the rule of the
 *   heartbeat_runs trigger, for runs that reached a terminal status without
 *   it) or gone;
 * - expire active leases past expires_at (docs/leases.md);
 * - carry out pending cleanups through the lease's driver, with backoff,
 *   until success or paperclip.cleanup_max_attempts (docs/leases.md).
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
	else if (strcmp(run_status, "failed") == 0 || strcmp(run_status, "timed_out") == 0)
	{
		t.status = "failed";
		t.reason = PcrRowText(row, desc, "run_reason");
	}
	else
		t.status = "released";
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
	"   AND (r.id IS NULL OR r.status IN ('succeeded', 'failed', 'cancelled', 'timed_out')) "
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

/*
 * Call the driver's cleanup in a subtransaction of its own, so that a driver
 * that raises still gets its failed attempt recorded.
 */
static bool
call_cleanup(const PcrDriver *driver, const PcrLeaseCleanup *lease, char **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = false;
	char	   *volatile message = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		char	   *e = NULL;

		ok = driver->cleanup(lease, &e);
		message = e;
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ok = false;
		message = edata->message ? pstrdup(edata->message) : NULL;
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;

	if (!ok)
		*error = message ? message : pstrdup("cleanup failed without a message");
	return ok;
}

static const char *const record_cleanup_sql =
"UPDATE paperclip.environment_leases "
"   SET cleanup_attempts = cleanup_attempts + 1, "
"       cleanup_status = CASE WHEN $2 THEN 'success' "
"                             WHEN cleanup_attempts + 1 >= $4 THEN 'failed' "
"                             ELSE 'pending' END, "
"       cleanup_error = CASE WHEN $2 THEN NULL ELSE $3 END, "
"       updated_at = now() "
" WHERE id = $1 AND cleanup_status = 'pending' "
"RETURNING cleanup_status, cleanup_attempts";

static PcrRowOutcome
cleanup_row(HeapTuple row, TupleDesc desc)
{
	static SPIPlanPtr plan = NULL;
	PcrLeaseCleanup lease;
	const PcrDriver *driver;
	char	   *error = NULL;
	bool		ok;
	Oid			argtypes[4] = {UUIDOID, BOOLOID, TEXTOID, INT4OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	char	   *status;
	int			rc;

	memset(&lease, 0, sizeof(lease));
	memcpy(&lease.lease_id, PcrRowUuid(row, desc, "id"), sizeof(pg_uuid_t));
	lease.provider = PcrRowText(row, desc, "provider");
	lease.provider_lease_id = PcrRowText(row, desc, "provider_lease_id");
	lease.metadata = PcrRowJsonb(row, desc, "metadata");
	lease.attempt = PcrRowInt(row, desc, "cleanup_attempts", 0) + 1;

	driver = PcrDriverOfLease(lease.metadata, lease.provider);
	if (driver == NULL)
	{
		ok = false;
		error = psprintf("lease names unknown driver \"%s\"",
						 PcrJsonbGetText(lease.metadata, "driver"));
	}
	else if (driver->cleanup == NULL)
		ok = true;				/* no side effects: nothing left to do */
	else
		ok = call_cleanup(driver, &lease, &error);

	values[0] = UUIDPGetDatum(&lease.lease_id);
	values[1] = BoolGetDatum(ok);
	if (error == NULL)
		nulls[2] = 'n', values[2] = (Datum) 0;
	else
		values[2] = CStringGetTextDatum(error);
	values[3] = Int32GetDatum(pcr_cleanup_max_attempts);
	rc = PcrReconcilerExecute(&plan, record_cleanup_sql, 4, argtypes, values, nulls);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not record a cleanup attempt: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return PCR_ROW_NOTHING;

	status = PcrRowText(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, "cleanup_status");
	if (strcmp(status, "success") == 0)
		return PCR_ROW_CLEANED;
	if (strcmp(status, "failed") == 0)
	{
		ereport(WARNING,
				(errmsg("paperclip reconciler: cleanup of lease %s failed after %d attempts",
						PcrUuidToCString(&lease.lease_id),
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
	"SELECT id, provider, provider_lease_id, metadata, cleanup_attempts "
	"  FROM paperclip.environment_leases "
	" WHERE cleanup_status = 'pending' "
	"   AND status IN ('released', 'expired', 'failed') "
	"   AND (cleanup_attempts = 0 "
	"        OR updated_at + least(pg_catalog.current_setting('paperclip.reconcile_interval')::interval "
	"                              * pg_catalog.power(2, least(cleanup_attempts - 1, 20)), "
	"                              interval '1 hour') <= now()) "
	"   AND id <> ALL ($1) "
	" ORDER BY updated_at "
	" LIMIT $2 "
	"   FOR UPDATE SKIP LOCKED",
	.process_row = cleanup_row,
};
