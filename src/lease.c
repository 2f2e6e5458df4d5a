/*
 * lease.c — acquire, release and renew leases; ensure the local environment
 *
 * Every state change is a statement in the caller's transaction (SPI with
 * kept plans), so a lease changes state exactly when the caller commits.
 * Drivers are reached only through the vtable of driver.h.
 */
#include "pcr.h"
#include "driver.h"
#include "lease_lookup.h"
#include "lease_probe.h"
#include "spi_util.h"
#include "vocab.h"
#include "tenant.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/datum.h"

PG_FUNCTION_INFO_V1(pcr_acquire_run_lease);
PG_FUNCTION_INFO_V1(pcr_release_run_leases);
PG_FUNCTION_INFO_V1(pcr_renew_run_lease);
PG_FUNCTION_INFO_V1(pcr_ensure_local_environment);

/* ------------------------------------------------------------------------
 * Kept SPI plans
 * ------------------------------------------------------------------------ */
typedef enum PcrPlanId
{
	PLAN_ACTIVE_LEASE,
	PLAN_HOLDER,
	PLAN_INSERT_LEASE,
	PLAN_RELEASE,
	PLAN_RENEW,
	PLAN_LEASE_STATUS,
	PLAN_COMPANY,
	PLAN_INSERT_LOCAL,
	PLAN_SELECT_LOCAL,
	PLAN_LOCK_ENVIRONMENT,
	PLAN_COUNT
} PcrPlanId;

/*
 * The active leases a statement reads or changes are first found by a
 * direct index probe (lease_probe.c) and then addressed by primary key, with
 * the status condition written as "(status = 'active') IS TRUE": the same
 * test, but one from which the planner cannot prove the predicate of a
 * partial index on active leases, so the primary key is the only index it
 * can use, whatever the statistics say.  With a plain "status = 'active'" it
 * may scan every active lease for one (statistics from before they existed
 * make each of those indexes look one page long).  The plans are generic
 * (PcrKeepGenericPlan): planned once per backend, not for each array of ids.
 */
static const PcrPlanDef plan_defs[PLAN_COUNT] = {
	[PLAN_ACTIVE_LEASE] = {
		"SELECT l FROM paperclip.environment_leases AS l "
		" WHERE l.id = $1 AND (l.status = 'active') IS TRUE",
		1, {UUIDOID}
	},
	[PLAN_HOLDER] = {
		"SELECT heartbeat_run_id FROM paperclip.environment_leases "
		" WHERE id = $1 AND (status = 'active') IS TRUE",
		1, {UUIDOID}
	},
	/* acquired_at, last_used_at and expires_at (its TTL later) are the lease trigger's */
	[PLAN_INSERT_LEASE] = {
		"INSERT INTO paperclip.environment_leases AS l "
		"  (id, company_id, environment_id, heartbeat_run_id, issue_id, execution_workspace_id, "
		"   status, lease_policy, provider, provider_lease_id, metadata) "
		"VALUES ($10, $1, $2, $3, $4, $5, 'active', $6, $7, $8, $9) "
		"ON CONFLICT DO NOTHING "
		"RETURNING l",
		10, {UUIDOID, UUIDOID, UUIDOID, UUIDOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, UUIDOID}
	},
	[PLAN_RELEASE] = {
		"UPDATE paperclip.environment_leases AS l "
		"   SET status = CASE WHEN $2 = 'failed' AND lease_policy = 'retain_on_failure' "
		"                     THEN 'retained' ELSE $2 END, "
		"       released_at = now(), last_used_at = now(), updated_at = now(), "
		"       failure_reason = $3, cleanup_status = NULL "
		" WHERE l.id = ANY ($1) AND (l.status = 'active') IS TRUE "
		"RETURNING l",
		3, {UUIDARRAYOID, TEXTOID, TEXTOID}
	},
	[PLAN_RENEW] = {
		"UPDATE paperclip.environment_leases AS l "
		"   SET last_used_at = now(), expires_at = now() + paperclip.lease_ttl(e.config), "
		"       updated_at = now() "
		"  FROM paperclip.environments AS e "
		" WHERE l.id = $1 AND (l.status = 'active') IS TRUE "
		"   AND e.company_id = l.company_id AND e.id = l.environment_id "
		"RETURNING l",
		1, {UUIDOID}
	},
	[PLAN_LEASE_STATUS] = {
		"SELECT status FROM paperclip.environment_leases WHERE id = $1",
		1, {UUIDOID}
	},
	[PLAN_COMPANY] = {
		"SELECT 1 FROM paperclip.companies WHERE id = $1",
		1, {UUIDOID}
	},
	[PLAN_INSERT_LOCAL] = {
		"INSERT INTO paperclip.environments AS e (company_id, name, driver, metadata) "
		"VALUES ($1, 'Local', 'local', "
		"        '{\"managedByPaperclip\": true, \"defaultForCompany\": true}') "
		"ON CONFLICT (company_id) WHERE driver = 'local' DO NOTHING "
		"RETURNING e",
		1, {UUIDOID}
	},
	[PLAN_SELECT_LOCAL] = {
		"SELECT e FROM paperclip.environments AS e WHERE company_id = $1 AND driver = 'local'",
		1, {UUIDOID}
	},
	[PLAN_LOCK_ENVIRONMENT] = {
		"SELECT 1 FROM paperclip.environments WHERE id = $1 AND company_id = $2 FOR NO KEY UPDATE",
		2, {UUIDOID, UUIDOID}
	},
};

static SPIPlanPtr plans[PLAN_COUNT];

static void
run_plan(PcrPlanId id, Datum *values, const char *nulls, bool read_only, long limit, int expected_rc)
{
	/* prepared generic (see above) before PcrRunPlanDef finds it kept */
	(void) PcrKeepGenericPlan(&plans[id], plan_defs[id].sql, plan_defs[id].nargs,
							  (Oid *) plan_defs[id].argtypes);
	PcrRunPlanDef(plans, plan_defs, id, values, nulls, read_only, limit, expected_rc);
}

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */
static char *
spi_text(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static void
require_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NULL_ID),
				 errmsg("%s must not be null", name)));
}

/*
 * Every plan that returns a lease or an environment returns it as one
 * whole-row column ("RETURNING l", "SELECT l"): a composite datum of the
 * table's row type, which is exactly the functions' declared result type.
 * One column is much cheaper for the executor to set up than the 25 of
 * "RETURNING *", and dropped columns need no special care.
 */
static Datum
return_row(FunctionCallInfo fcinfo, MemoryContext callerctx)
{
	bool		isnull;
	Datum		row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	MemoryContext old;
	Datum		result;

	if (isnull)
		elog(ERROR, "paperclip query returned a null row");
	old = MemoryContextSwitchTo(callerctx);
	result = datumCopy(row, false, -1);
	MemoryContextSwitchTo(old);
	return result;
}

/* Append a whole-row datum to the SRF's tuplestore. */
static void
put_row(ReturnSetInfo *rsinfo, Datum row)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(row);
	HeapTupleData tuple;

	tuple.t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = td;
	tuplestore_puttuple(rsinfo->setResult, &tuple);
}

/* ------------------------------------------------------------------------
 * acquire_run_lease
 * ------------------------------------------------------------------------ */

/*
 * Serialise the acquirers of one reusable environment until commit, so that
 * "who holds it" is checked and written by one transaction at a time: a lock
 * on the environment's own row (the caller's company was checked, and the
 * row is looked up in it), which nobody of another company can hold.  FOR
 * NO KEY UPDATE does not conflict with the key-share locks of foreign key
 * checks, so leases of the environment are still written meanwhile.
 */
static void
lock_environment_for_reuse(const PcrLeaseRequest *req)
{
	Datum		values[2];

	values[0] = UUIDPGetDatum((pg_uuid_t *) &req->environment_id);
	values[1] = UUIDPGetDatum((pg_uuid_t *) &req->company_id);
	run_plan(PLAN_LOCK_ENVIRONMENT, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)		/* deleted since the lookup */
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NOT_FOUND),
				 errmsg("environment %s does not exist in company %s",
						PcrUuidToCString(&req->environment_id), PcrUuidToCString(&req->company_id))));
}

/* 55P03 when another run holds this reusable environment. */
static void
check_holder(const PcrLeaseRequest *req)
{
	pg_uuid_t	lease_id;
	Datum		value;
	bool		isnull;

	if (!PcrProbeEnvironmentHolder(&req->environment_id, &req->heartbeat_run_id, &lease_id))
		return;
	/* read through SQL: what the caller may see of it, if it is still active */
	value = UUIDPGetDatum(&lease_id);
	run_plan(PLAN_HOLDER, &value, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		Datum		holder = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		ereport(ERROR,
				(errcode(PCR_ERRCODE_HELD),
				 errmsg("environment \"%s\" is held by heartbeat run %s", req->environment_name,
						isnull ? "(deleted)" : PcrUuidToCString(DatumGetUUIDP(holder))),
				 errhint("A reusable sandbox serves one run at a time; release that run's lease first.")));
	}
}

/*
 * Look up the environment and the run and check them (each failure with its
 * own SQLSTATE, nothing written); the environment's driver.
 */
static const PcrDriver *
acquire_checks(PcrLeaseRequest *req, PcrAcquireLookup *lk)
{
	const PcrDriver *driver;

	PcrLookupForAcquire(req, lk);
	if (!lk->found_environment)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NOT_FOUND),
				 errmsg("environment %s does not exist in company %s",
						PcrUuidToCString(&req->environment_id), PcrUuidToCString(&req->company_id))));

	/* the environment: active */
	req->environment_name = lk->environment_name;
	if (strcmp(lk->environment_status, "active") != 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("environment \"%s\" is not active", req->environment_name),
				 errdetail("The environment is %s.", lk->environment_status)));

	/* the run: exists, not terminal */
	if (!lk->found_run)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NOT_FOUND),
				 errmsg("heartbeat run %s does not exist in company %s",
						PcrUuidToCString(&req->heartbeat_run_id), PcrUuidToCString(&req->company_id))));
	if (PcrRunStatusIsTerminal(lk->run_status))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("heartbeat run %s is %s", PcrUuidToCString(&req->heartbeat_run_id), lk->run_status),
				 errdetail("A run in a terminal status cannot acquire leases.")));

	/* the stored config, checked again: a bad row must not reach a driver */
	driver = PcrDriverByName(lk->driver_name);
	if (driver == NULL)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("environment \"%s\" has unknown driver \"%s\"", req->environment_name, lk->driver_name)));
	return driver;
}

/* The lease lease_id if it is still active (SPI_tuptable row 0). */
static bool
select_active_lease(pg_uuid_t *lease_id)
{
	Datum		value = UUIDPGetDatum(lease_id);

	run_plan(PLAN_ACTIVE_LEASE, &value, NULL, false, 1, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/* Insert the new lease; false when a unique index said no (SPI_tuptable: the row). */
static bool
insert_lease(FunctionCallInfo fcinfo, const PcrLeaseRequest *req, const char *policy,
			 const PcrLeaseGrant *grant)
{
	Datum		values[10];
	char		nulls[10];

	/* expires_at: the lease trigger gives an active lease its environment's TTL */
	memset(nulls, ' ', sizeof(nulls));
	values[0] = UUIDPGetDatum((pg_uuid_t *) &req->company_id);
	values[1] = UUIDPGetDatum((pg_uuid_t *) &req->environment_id);
	values[2] = UUIDPGetDatum((pg_uuid_t *) &req->heartbeat_run_id);
	if (PG_ARGISNULL(3))
		nulls[3] = 'n', values[3] = (Datum) 0;
	else
		values[3] = PG_GETARG_DATUM(3);
	if (PG_ARGISNULL(4))
		nulls[4] = 'n', values[4] = (Datum) 0;
	else
		values[4] = PG_GETARG_DATUM(4);
	values[5] = CStringGetTextDatum(policy);
	values[6] = CStringGetTextDatum(grant->provider);
	if (grant->provider_lease_id == NULL)
		nulls[7] = 'n', values[7] = (Datum) 0;
	else
		values[7] = CStringGetTextDatum(grant->provider_lease_id);
	values[8] = JsonbPGetDatum(grant->metadata);
	values[9] = UUIDPGetDatum((pg_uuid_t *) &req->lease_id);
	run_plan(PLAN_INSERT_LEASE, values, nulls, false, 0, SPI_OK_INSERT_RETURNING);
	return SPI_processed > 0;
}

/*
 * A unique index refused the insert: a concurrent acquire of the same run
 * and environment committed first (return its lease), or another run took
 * the reusable environment (55P03).  Under REPEATABLE READ a conflict with a
 * row this snapshot cannot see has already raised 40001.
 */
static void
resolve_conflict(const PcrLeaseRequest *req)
{
	pg_uuid_t	lease_id;

	if (PcrProbeRunEnvironmentLease(&req->heartbeat_run_id, &req->environment_id, &lease_id) &&
		select_active_lease(&lease_id))
		return;
	check_holder(req);
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not acquire a lease on environment \"%s\" due to a concurrent change",
					req->environment_name),
			 errhint("Retry the transaction.")));
}

Datum
pcr_acquire_run_lease(PG_FUNCTION_ARGS)
{
	MemoryContext callerctx = CurrentMemoryContext;
	PcrLeaseRequest req;
	PcrLeaseGrant grant = {0};
	const PcrDriver *driver;
	const char *policy;
	PcrAcquireLookup lk;
	Datum		result;

	require_arg(fcinfo, 0, "company_id");
	require_arg(fcinfo, 1, "environment_id");
	require_arg(fcinfo, 2, "heartbeat_run_id");

	memset(&req, 0, sizeof(req));
	memcpy(&req.company_id, PG_GETARG_UUID_P(0), sizeof(pg_uuid_t));
	memcpy(&req.environment_id, PG_GETARG_UUID_P(1), sizeof(pg_uuid_t));
	memcpy(&req.heartbeat_run_id, PG_GETARG_UUID_P(2), sizeof(pg_uuid_t));
	req.execution_workspace_mode = PcrArgText(fcinfo, 5, "execution_workspace_mode", 0,
											  PCR_WORKSPACE_MODE_MAX_BYTES);	/* copied into metadata */
	PcrTenantRequireCompany(&req.company_id);

	SPI_connect();
	driver = acquire_checks(&req, &lk);

	/*
	 * Idempotent: an active lease of this run on this environment is returned
	 * as it is (unless released while this acquire waited for the run's lock:
	 * then it acquires anew).
	 */
	if (!(lk.has_active_lease && select_active_lease(&lk.active_lease_id)))
	{
		req.config = driver->validate(lk.config);
		PcrDriverCheckAvailable(driver, req.config);
		policy = PcrDriverLeasePolicy(driver, req.config);

		/* a reusable environment is held by one run at a time */
		if (strcmp(policy, "reuse_by_environment") == 0)
		{
			lock_environment_for_reuse(&req);
			check_holder(&req);
		}
		/* the lease id, before any side effect: provider objects are named after it */
		memcpy(&req.lease_id, DatumGetUUIDP(DirectFunctionCall1(gen_random_uuid, (Datum) 0)),
			   sizeof(pg_uuid_t));
		req.reusable = strcmp(policy, "reuse_by_environment") == 0;
		driver->acquire(&req, &grant);
		if (!insert_lease(fcinfo, &req, policy, &grant))
		{
			PcrDriverGrantUnused(driver, &req, &grant);
			resolve_conflict(&req);
		}
	}
	result = return_row(fcinfo, callerctx);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/* ------------------------------------------------------------------------
 * release_run_leases
 * ------------------------------------------------------------------------ */
Datum
pcr_release_run_leases(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext callerctx = CurrentMemoryContext;
	char	   *status;
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	SPITupleTable *released;
	uint64		nreleased;
	MemoryContext old;
	Datum	   *ids;
	int			nids;

	require_arg(fcinfo, 0, "heartbeat_run_id");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("release status must not be null"),
				 errhint("Use released, failed or expired.")));
	status = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PcrReleaseStatusIsValid(status))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid release status \"%s\"", status),
				 errhint("Use released, failed or expired.")));

	InitMaterializedSRF(fcinfo, 0);
	/* a run of another company has no leases to release, as far as this caller can tell */
	if (!PcrTenantMayActOnRow(PCR_REL_HEARTBEAT_RUNS, PCR_REL_HEARTBEAT_RUNS_PKEY,
							  PG_GETARG_UUID_P(0)))
		return (Datum) 0;

	SPI_connect();
	/* the run's active leases, then their update by primary key */
	nids = PcrProbeRunLeases(PG_GETARG_UUID_P(0), &ids);
	values[0] = PointerGetDatum(construct_array(ids, nids, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[1] = PG_GETARG_DATUM(1);
	if (PG_ARGISNULL(2))
		nulls[2] = 'n', values[2] = (Datum) 0;
	else
		values[2] = PG_GETARG_DATUM(2);
	run_plan(PLAN_RELEASE, values, nulls, false, 0, SPI_OK_UPDATE_RETURNING);
	released = SPI_tuptable;
	nreleased = SPI_processed;

	for (uint64 i = 0; i < nreleased; i++)
	{
		HeapTuple	tup = released->vals[i];
		TupleDesc	desc = released->tupdesc;
		bool		isnull;
		Datum		row = SPI_getbinval(tup, desc, 1, &isnull);

		old = MemoryContextSwitchTo(callerctx);
		put_row(rsinfo, row);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * renew_run_lease
 * ------------------------------------------------------------------------ */
Datum
pcr_renew_run_lease(PG_FUNCTION_ARGS)
{
	MemoryContext callerctx = CurrentMemoryContext;
	Datum		id;
	Datum		result;

	require_arg(fcinfo, 0, "lease_id");
	id = PG_GETARG_DATUM(0);
	if (!PcrTenantMayActOnRow(PCR_REL_ENVIRONMENT_LEASES, PCR_REL_ENVIRONMENT_LEASES_PKEY,
							  DatumGetUUIDP(id)))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NOT_FOUND),
				 errmsg("lease %s does not exist", PcrUuidToCString(DatumGetUUIDP(id)))));

	SPI_connect();
	run_plan(PLAN_RENEW, &id, NULL, false, 0, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 0)
	{
		run_plan(PLAN_LEASE_STATUS, &id, NULL, false, 1, SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(PCR_ERRCODE_NOT_FOUND),
					 errmsg("lease %s does not exist", PcrUuidToCString(DatumGetUUIDP(id)))));
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("lease %s is %s and cannot be renewed",
						PcrUuidToCString(DatumGetUUIDP(id)), spi_text(0, 1)),
				 errhint("Acquire a new lease with paperclip.acquire_run_lease().")));
	}
	result = return_row(fcinfo, callerctx);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/* ------------------------------------------------------------------------
 * ensure_local_environment
 * ------------------------------------------------------------------------ */
Datum
pcr_ensure_local_environment(PG_FUNCTION_ARGS)
{
	MemoryContext callerctx = CurrentMemoryContext;
	Datum		company;
	Datum		result;

	require_arg(fcinfo, 0, "company_id");
	company = PG_GETARG_DATUM(0);
	PcrTenantRequireCompany(DatumGetUUIDP(company));

	SPI_connect();
	run_plan(PLAN_COMPANY, &company, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NOT_FOUND),
				 errmsg("company %s does not exist", PcrUuidToCString(DatumGetUUIDP(company)))));

	/* the partial unique index makes concurrent callers create one row */
	run_plan(PLAN_INSERT_LOCAL, &company, NULL, false, 0, SPI_OK_INSERT_RETURNING);
	if (SPI_processed == 0)
	{
		run_plan(PLAN_SELECT_LOCAL, &company, NULL, false, 1, SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not find or create the local environment of company %s",
							PcrUuidToCString(DatumGetUUIDP(company))),
					 errhint("Retry the transaction.")));
	}
	result = return_row(fcinfo, callerctx);
	SPI_finish();
	PG_RETURN_DATUM(result);
}
