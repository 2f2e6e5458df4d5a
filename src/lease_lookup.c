/*
 * lease_lookup.c — what acquire_run_lease reads before it writes
 *
 * The environment, the run (locked FOR SHARE, so that a concurrent status
 * change waits for this acquire and its trigger then sees the lease) and
 * whether the run already holds an active lease on the environment (always
 * by a direct probe of the index keyed by both, after the run is locked:
 * lease_probe.c).
 *
 * Two paths for the environment and the run that must give the same answer:
 * - direct: primary-key probes through the table and index access methods,
 *   under a fresh snapshot taken exactly as SPI takes one.  Used when the
 *   caller is not subject to row-level security and holds the privileges
 *   the query would need; it saves the executor set-up of a join on every
 *   acquire.
 * - SPI: one join query, used whenever row-level security applies (the
 *   policies must filter what the caller sees) or a privilege is missing
 *   (so that the caller gets PostgreSQL's own permission error).
 * With paperclip.check_lookup_paths (on in assert-enabled builds, and in the
 * test suite's cluster) every direct lookup is repeated through SPI under the
 * same snapshot and the two answers are compared: a difference is an error.
 */
#include "pcr.h"
#include "lease_lookup.h"
#include "lease_probe.h"
#include "spi_util.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

/* ------------------------------------------------------------------------
 * SPI path
 * ------------------------------------------------------------------------ */
static const char *lookup_sql =
"SELECT e.name, e.status, e.driver, e.config, r.status "
"  FROM paperclip.environments AS e "
"  JOIN paperclip.heartbeat_runs AS r ON r.id = $3 AND r.company_id = $2 "
" WHERE e.id = $1 AND e.company_id = $2 "
"   FOR SHARE OF r";

static const char *env_only_sql =
"SELECT name, status, driver, config FROM paperclip.environments WHERE id = $1 AND company_id = $2 "
"   AND $3 IS NOT NULL";			/* the same three parameters as lookup_sql */

static SPIPlanPtr lookup_plan = NULL;
static SPIPlanPtr env_only_plan = NULL;

static char *
spi_text(int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* SPI_execute_plan, or under a given snapshot (the cross-check) */
static int
run_lookup_plan(SPIPlanPtr *plan, const char *sql, Oid *types, Datum *values, bool read_only,
				Snapshot snapshot)
{
	if (snapshot == InvalidSnapshot)
		return PcrRunKeptPlan(plan, sql, 3, types, values, NULL, read_only, 1);
	return SPI_execute_snapshot(PcrKeepPlan(plan, sql, 3, types), values, NULL, snapshot,
								InvalidSnapshot, read_only, false, 1);
}

static void
lookup_spi(const PcrLeaseRequest *req, PcrAcquireLookup *out, Snapshot snapshot)
{
	Oid			types[3] = {UUIDOID, UUIDOID, UUIDOID};
	Datum		values[3];
	bool		isnull;
	int			rc;

	values[0] = UUIDPGetDatum((pg_uuid_t *) &req->environment_id);
	values[1] = UUIDPGetDatum((pg_uuid_t *) &req->company_id);
	values[2] = UUIDPGetDatum((pg_uuid_t *) &req->heartbeat_run_id);
	rc = run_lookup_plan(&lookup_plan, lookup_sql, types, values, false, snapshot);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "paperclip lease lookup failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		/* no row: the environment alone tells which check fails first */
		rc = run_lookup_plan(&env_only_plan, env_only_sql, types, values, true, snapshot);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "paperclip environment lookup failed: %s", SPI_result_code_string(rc));
		out->found_environment = SPI_processed > 0;
		out->found_run = false;
		if (out->found_environment)
		{
			out->environment_name = spi_text(1);
			out->environment_status = spi_text(2);
			out->driver_name = spi_text(3);
			out->config = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
		}
		return;
	}
	out->found_environment = true;
	out->found_run = true;
	out->environment_name = spi_text(1);
	out->environment_status = spi_text(2);
	out->driver_name = spi_text(3);
	out->config = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	out->run_status = spi_text(5);
}

/* ------------------------------------------------------------------------
 * Direct path
 * ------------------------------------------------------------------------ */

/* May the current user read relid without row-level security filtering? */
static bool
direct_allowed(Oid relid, bool need_update)
{
	if (!OidIsValid(relid))
		return false;
	/* pg_class_aclcheck() passes when any of the bits is held: ask one at a time */
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return false;
	if (need_update && pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE) != ACLCHECK_OK)
		return false;
	/* RLS_NONE_ENV: policies exist but this user bypasses them (owner, BYPASSRLS) */
	switch (check_enable_rls(relid, InvalidOid, true))
	{
		case RLS_NONE:
		case RLS_NONE_ENV:
			return true;
		default:
			return false;
	}
}

static char *
slot_text(TupleTableSlot *slot, const char *column)
{
	int			attnum = SPI_fnumber(slot->tts_tupleDescriptor, column);
	bool		isnull;
	Datum		d;

	if (attnum <= 0)
		elog(ERROR, "column \"%s\" not found", column);
	d = slot_getattr(slot, attnum, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

static bool
slot_uuid_equals(TupleTableSlot *slot, const char *column, const pg_uuid_t *value)
{
	int			attnum = SPI_fnumber(slot->tts_tupleDescriptor, column);
	bool		isnull;
	Datum		d;

	if (attnum <= 0)
		elog(ERROR, "column \"%s\" not found", column);
	d = slot_getattr(slot, attnum, &isnull);
	return !isnull && memcmp(DatumGetUUIDP(d), value, UUID_LEN) == 0;
}

/*
 * Fetch the visible row of rel whose primary key (a single uuid) is id into
 * slot; false when there is none.
 */
static bool
fetch_by_pkey(Relation rel, const pg_uuid_t *id, Snapshot snapshot, TupleTableSlot *slot)
{
	Oid			pkoid = RelationGetPrimaryKeyIndex(rel);
	Relation	idx;
	IndexScanDesc scan;
	ScanKeyData key;
	bool		found;

	if (!OidIsValid(pkoid))
		elog(ERROR, "table \"%s\" has no primary key", RelationGetRelationName(rel));
	idx = index_open(pkoid, AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum((pg_uuid_t *) id));
	scan = index_beginscan(rel, idx, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	index_close(idx, AccessShareLock);
	return found;
}

/*
 * Lock the run row FOR SHARE.  In READ COMMITTED the latest version is
 * locked and returned (as SELECT ... FOR SHARE does); in REPEATABLE READ
 * and SERIALIZABLE a concurrent update is a serialization failure.
 * Returns false when the row was deleted concurrently.
 */
static bool
lock_run_row(Relation rel, TupleTableSlot *slot, Snapshot snapshot)
{
	TM_FailureData tmfd;
	TM_Result	res;
	ItemPointerData tid = slot->tts_tid;
	int			flags = IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION;

	res = table_tuple_lock(rel, &tid, snapshot, slot, GetCurrentCommandId(true),
						   LockTupleShare, LockWaitBlock, flags, &tmfd);
	switch (res)
	{
		case TM_Ok:
		case TM_SelfModified:	/* changed by this transaction: still ours to use */
			return true;
		case TM_Updated:
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update")));
			return false;		/* READ COMMITTED: deleted meanwhile */
		default:
			elog(ERROR, "unexpected result %d locking a heartbeat run", (int) res);
	}
	pg_unreachable();
}

static bool
lookup_direct(const PcrLeaseRequest *req, PcrAcquireLookup *out, Snapshot *snapshot_out)
{
	Oid			nsp = get_namespace_oid("paperclip", true);
	Oid			env_relid,
				run_relid;
	Relation	env_rel,
				run_rel;
	TupleTableSlot *slot;
	Snapshot	snapshot;

	if (!OidIsValid(nsp))
		return false;
	env_relid = get_relname_relid("environments", nsp);
	run_relid = get_relname_relid("heartbeat_runs", nsp);
	if (!direct_allowed(env_relid, false) || !direct_allowed(run_relid, true))
		return false;

	/* the same snapshot discipline as a volatile function's SPI query */
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	PushActiveSnapshot(snapshot);

	env_rel = table_open(env_relid, AccessShareLock);
	slot = table_slot_create(env_rel, NULL);
	out->found_environment = fetch_by_pkey(env_rel, &req->environment_id, snapshot, slot) &&
		slot_uuid_equals(slot, "company_id", &req->company_id);
	if (out->found_environment)
	{
		bool		isnull;
		int			att = SPI_fnumber(slot->tts_tupleDescriptor, "config");

		out->environment_name = slot_text(slot, "name");
		out->environment_status = slot_text(slot, "status");
		out->driver_name = slot_text(slot, "driver");
		out->config = DatumGetJsonbPCopy(slot_getattr(slot, att, &isnull));
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(env_rel, NoLock);

	out->found_run = false;
	if (out->found_environment)
	{
		run_rel = table_open(run_relid, RowShareLock);
		slot = table_slot_create(run_rel, NULL);
		if (fetch_by_pkey(run_rel, &req->heartbeat_run_id, snapshot, slot) &&
			slot_uuid_equals(slot, "company_id", &req->company_id) &&
			lock_run_row(run_rel, slot, snapshot) &&
			slot_uuid_equals(slot, "company_id", &req->company_id))
		{
			out->found_run = true;
			out->run_status = slot_text(slot, "status");
		}
		ExecDropSingleTupleTableSlot(slot);
		table_close(run_rel, NoLock);
	}

	PopActiveSnapshot();
	if (snapshot_out != NULL)
		*snapshot_out = snapshot;	/* the cross-check unregisters it */
	else
		UnregisterSnapshot(snapshot);
	return true;
}

static bool
same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Repeat a direct lookup through SPI under its snapshot; raise if they differ. */
static void
cross_check(const PcrLeaseRequest *req, const PcrAcquireLookup *direct, Snapshot snapshot)
{
	PcrAcquireLookup spi;
	const char *field = NULL;

	memset(&spi, 0, sizeof(spi));
	lookup_spi(req, &spi, snapshot);
	UnregisterSnapshot(snapshot);
	if (spi.found_environment != direct->found_environment)
		field = "found_environment";
	else if (spi.found_run != direct->found_run)
		field = "found_run";
	else if (!same_text(spi.environment_name, direct->environment_name) ||
			 !same_text(spi.environment_status, direct->environment_status) ||
			 !same_text(spi.driver_name, direct->driver_name))
		field = "environment";
	else if ((spi.config == NULL) != (direct->config == NULL) ||
			 (spi.config && compareJsonbContainers(&spi.config->root, &direct->config->root) != 0))
		field = "config";
	else if (direct->found_run && !same_text(spi.run_status, direct->run_status))
		field = "run_status";
	if (field != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("paperclip lease lookup paths disagree on %s", field)));
}

void
PcrLookupForAcquire(const PcrLeaseRequest *req, PcrAcquireLookup *out)
{
	Snapshot	snapshot = InvalidSnapshot;

	memset(out, 0, sizeof(*out));
	if (!lookup_direct(req, out, pcr_check_lookup_paths ? &snapshot : NULL))
		lookup_spi(req, out, InvalidSnapshot);
	else if (pcr_check_lookup_paths)
		cross_check(req, out, snapshot);
	/* after the run is locked: an acquire of the same run that committed meanwhile is seen */
	if (out->found_run)
		out->has_active_lease = PcrProbeRunEnvironmentLease(&req->heartbeat_run_id, &req->environment_id,
															&out->active_lease_id);
}
