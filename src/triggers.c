/*
 * triggers.c — the table triggers that keep rows valid whoever writes them
 *
 * Rows may be written with plain SQL, so these, not the lease functions,
 * enforce: per-driver config validation and normalisation, no deletion of an
 * environment with active leases, and no way back from a terminal lease.
 */
#include "pcr.h"
#include "driver.h"
#include "spi_util.h"
#include "reconciler.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/syscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(pcr_environments_config_trigger);
PG_FUNCTION_INFO_V1(pcr_environments_delete_guard);
PG_FUNCTION_INFO_V1(pcr_environment_leases_guard);
PG_FUNCTION_INFO_V1(pcr_validate_environment_config);
PG_FUNCTION_INFO_V1(pcr_lease_ttl);

static TriggerData *
trigger_data(FunctionCallInfo fcinfo, const char *fname)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be called as a trigger", fname)));
	return (TriggerData *) fcinfo->context;
}

static int
attnum_of(Relation rel, const char *name)
{
	int			attnum = SPI_fnumber(RelationGetDescr(rel), name);

	if (attnum <= 0)
		elog(ERROR, "column \"%s\" not found in \"%s\"", name, RelationGetRelationName(rel));
	return attnum;
}

static char *
text_attr(HeapTuple tuple, Relation rel, const char *name)
{
	bool		isnull;
	Datum		d = heap_getattr(tuple, attnum_of(rel, name), RelationGetDescr(rel), &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Run a driver's validation; if it fails, keep the statement and its
 * context out of the error: a config refused for carrying a private key
 * would otherwise be copied into the server log by log_min_error_statement,
 * and into the client's and the log's CONTEXT as a bind parameter with
 * log_parameter_max_length_on_error.
 */
static Jsonb *
validate_hiding_statement(const PcrDriver *driver, Jsonb *config)
{
	MemoryContext ctx = CurrentMemoryContext;
	ErrorContextCallback *saved_context = error_context_stack;
	Jsonb	   *result = NULL;

	PG_TRY();
	{
		error_context_stack = NULL;
		result = driver->validate(config);
		error_context_stack = saved_context;
	}
	PG_CATCH();
	{
		PcrRethrowPrivately(ctx);
	}
	PG_END_TRY();
	return result;
}

/* Validate and normalise environments.config for environments.driver. */
Datum
pcr_environments_config_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = trigger_data(fcinfo, "environments_config_trigger");
	Relation	rel = td->tg_relation;
	HeapTuple	tuple = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	char	   *driver_name = text_attr(tuple, rel, "driver");
	const PcrDriver *driver = PcrDriverByName(driver_name);
	int			config_att = attnum_of(rel, "config");
	bool		isnull;
	Datum		config;
	Jsonb	   *normalised;
	Datum		newval[1];
	bool		newnull[1] = {false};
	int			cols[1];

	if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "environments_config_trigger must be a BEFORE ROW trigger");

	/* unknown driver or missing config: leave it to the CHECK / NOT NULL constraints */
	config = heap_getattr(tuple, config_att, RelationGetDescr(rel), &isnull);
	if (driver == NULL || isnull)
		return PointerGetDatum(tuple);

	normalised = validate_hiding_statement(driver, DatumGetJsonbP(config));
	newval[0] = JsonbPGetDatum(normalised);
	cols[0] = config_att;
	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, RelationGetDescr(rel), 1, cols,
													 newval, newnull));
}

/* Refuse to delete an environment that still has active leases (55000). */
Datum
pcr_environments_delete_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = trigger_data(fcinfo, "environments_delete_guard");
	Relation	rel = td->tg_relation;
	HeapTuple	tuple = td->tg_trigtuple;
	bool		isnull;
	Datum		id = heap_getattr(tuple, attnum_of(rel, "id"), RelationGetDescr(rel), &isnull);
	char	   *name = text_attr(tuple, rel, "name");
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {id};
	int64		active = 0;
	int			rc;

	if (!TRIGGER_FIRED_BY_DELETE(td->tg_event) || !TRIGGER_FIRED_BEFORE(td->tg_event))
		elog(ERROR, "environments_delete_guard must be a BEFORE DELETE trigger");

	SPI_connect();
	rc = SPI_execute_with_args("SELECT count(*) FROM paperclip.environment_leases "
							   " WHERE environment_id = $1 AND status = 'active'",
							   1, argtypes, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not count the active leases of an environment");
	active = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();

	if (active > 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("environment \"%s\" has %lld active lease%s", name,
						(long long) active, active == 1 ? "" : "s"),
				 errhint("Release the leases with paperclip.release_run_leases(), or archive the environment instead.")));
	return PointerGetDatum(tuple);
}

/*
 * The lease rules that hold whoever writes the row:
 * - INSERT: the fence is drawn from the fence sequence here, so a later
 *   acquisition always has a larger fence, whatever the INSERT said.  The
 *   one exception is a restore: a session with row_security = off (which
 *   pg_dump's scripts and pg_restore always set, and in which a role subject
 *   to row-level security cannot write these tables at all) keeps the fence
 *   it gives, and the sequence is moved past it, so that restored leases
 *   keep their fences and the next acquisition still draws a larger one;
 * - UPDATE: a terminal lease never becomes active again and a fence never
 *   changes; a lease leaving "active" (other than to "retained") whose
 *   driver has release side effects gets cleanup_status "pending", and the
 *   reconciler is woken when the transaction commits;
 * - DELETE: an active lease is never deleted (it would be lost unreleased).
 */
static Oid
fence_sequence_oid(Relation rel)
{
	static Oid	seqoid = InvalidOid;
	static Oid	for_namespace = InvalidOid;

	if (!OidIsValid(seqoid) || for_namespace != RelationGetNamespace(rel) ||
		!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(seqoid)))
	{
		seqoid = get_relname_relid("environment_lease_fence_seq", RelationGetNamespace(rel));
		for_namespace = RelationGetNamespace(rel);
		if (!OidIsValid(seqoid))
			elog(ERROR, "sequence \"environment_lease_fence_seq\" not found");
	}
	return seqoid;
}

/* Move the fence sequence past a fence kept by a restore (never back). */
static void
fence_sequence_at_least(Oid seqoid, int64 fence)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {REGCLASSOID, INT8OID};
	Datum		values[2] = {ObjectIdGetDatum(seqoid), Int64GetDatum(fence)};

	SPI_connect();
	if (PcrRunKeptPlan(&plan, "SELECT pg_catalog.setval($1, $2) "
					   " WHERE $2 > coalesce(pg_catalog.pg_sequence_last_value($1), 0)",
					   2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not advance the fence sequence");
	SPI_finish();
}

/* The config of the lease's environment (NULL when it cannot be found). */
static Jsonb *
environment_config(HeapTuple lease, Relation rel)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		values[2];
	bool		isnull;
	Jsonb	   *config = NULL;
	MemoryContext callerctx = CurrentMemoryContext;

	values[0] = heap_getattr(lease, attnum_of(rel, "environment_id"), RelationGetDescr(rel), &isnull);
	if (isnull)
		return NULL;
	values[1] = heap_getattr(lease, attnum_of(rel, "company_id"), RelationGetDescr(rel), &isnull);
	if (isnull)
		return NULL;
	SPI_connect();
	if (PcrRunKeptPlan(&plan, "SELECT config FROM paperclip.environments WHERE id = $1 AND company_id = $2",
					   2, types, values, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(callerctx);

			config = DatumGetJsonbPCopy(d);
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	return config;
}

static HeapTuple
lease_set_column(HeapTuple tuple, Relation rel, const char *column, Datum value, bool isnull)
{
	int			cols[1] = {attnum_of(rel, column)};
	Datum		values[1] = {value};
	bool		nulls[1] = {isnull};

	return heap_modify_tuple_by_cols(tuple, RelationGetDescr(rel), 1, cols, values, nulls);
}

static bool
lease_release_needs_cleanup(HeapTuple tuple, Relation rel)
{
	bool		isnull;
	Datum		md = heap_getattr(tuple, attnum_of(rel, "metadata"), RelationGetDescr(rel), &isnull);
	const PcrDriver *driver = PcrDriverOfLease(isnull ? NULL : DatumGetJsonbP(md),
											   text_attr(tuple, rel, "provider"));

	return driver != NULL && driver->release_needs_cleanup(isnull ? NULL : DatumGetJsonbP(md));
}

Datum
pcr_environment_leases_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = trigger_data(fcinfo, "environment_leases_guard");
	Relation	rel = td->tg_relation;
	HeapTuple	oldtup = td->tg_trigtuple;
	bool		isnull;

	if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "environment_leases_guard must be a BEFORE ROW trigger");

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		Oid			seqoid = fence_sequence_oid(rel);
		Datum		given = heap_getattr(oldtup, attnum_of(rel, "fence"), RelationGetDescr(rel), &isnull);
		HeapTuple	newtup = oldtup;
		char	   *status;

		if (!isnull && !row_security)
			fence_sequence_at_least(seqoid, DatumGetInt64(given));	/* a restore */
		else
			newtup = lease_set_column(oldtup, rel, "fence",
									  Int64GetDatum(nextval_internal(seqoid, false)), false);
		status = text_attr(newtup, rel, "status");

		/* an active lease written without an expiry gets its environment's TTL (docs/leases.md) */
		(void) heap_getattr(newtup, attnum_of(rel, "expires_at"), RelationGetDescr(rel), &isnull);
		if (isnull && status != NULL && strcmp(status, "active") == 0)
		{
			TimestampTz expires = GetCurrentTransactionStartTimestamp() +
				(TimestampTz) PcrLeaseTtlSeconds(environment_config(newtup, rel)) * USECS_PER_SEC;

			newtup = lease_set_column(newtup, rel, "expires_at", TimestampTzGetDatum(expires), false);
		}
		return PointerGetDatum(newtup);
	}
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		char	   *old_status = text_attr(oldtup, rel, "status");

		if (strcmp(old_status, "active") == 0)
			ereport(ERROR,
					(errcode(PCR_ERRCODE_WRONG_STATE),
					 errmsg("cannot delete active lease %s",
							PcrUuidToCString(DatumGetUUIDP(heap_getattr(oldtup, attnum_of(rel, "id"),
																		RelationGetDescr(rel), &isnull)))),
					 errhint("Release it with paperclip.release_run_leases() first.")));
		return PointerGetDatum(oldtup);
	}
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		HeapTuple	newtup = td->tg_newtuple;
		char	   *old_status = text_attr(oldtup, rel, "status");
		char	   *new_status = text_attr(newtup, rel, "status");
		int			fence_att = attnum_of(rel, "fence");
		bool		n1,
					n2;
		Datum		f_old = heap_getattr(oldtup, fence_att, RelationGetDescr(rel), &n1);
		Datum		f_new = heap_getattr(newtup, fence_att, RelationGetDescr(rel), &n2);
		Datum		id = heap_getattr(oldtup, attnum_of(rel, "id"), RelationGetDescr(rel), &isnull);

		if (strcmp(old_status, "active") != 0 && new_status && strcmp(new_status, "active") == 0)
			ereport(ERROR,
					(errcode(PCR_ERRCODE_WRONG_STATE),
					 errmsg("lease %s is %s and cannot become active again",
							PcrUuidToCString(DatumGetUUIDP(id)), old_status),
					 errhint("Acquire a new lease with paperclip.acquire_run_lease().")));
		if (n1 != n2 || (!n1 && DatumGetInt64(f_old) != DatumGetInt64(f_new)))
			ereport(ERROR,
					(errcode(PCR_ERRCODE_WRONG_STATE),
					 errmsg("the fence of lease %s cannot change", PcrUuidToCString(DatumGetUUIDP(id)))));

		/*
		 * Leaving "active", by whatever path: release side effects are the
		 * reconciler's, after commit, and it hears of the change at commit.
		 */
		if (strcmp(old_status, "active") == 0 && new_status && strcmp(new_status, "active") != 0)
		{
			PcrReconcilerWakeAtCommit();
			(void) heap_getattr(newtup, attnum_of(rel, "cleanup_status"), RelationGetDescr(rel), &isnull);
			if (isnull && strcmp(new_status, "retained") != 0 && lease_release_needs_cleanup(newtup, rel))
				newtup = lease_set_column(newtup, rel, "cleanup_status", CStringGetTextDatum("pending"), false);
		}
		return PointerGetDatum(newtup);
	}
	elog(ERROR, "environment_leases_guard must fire on INSERT, UPDATE or DELETE");
	pg_unreachable();
}

Datum
pcr_validate_environment_config(PG_FUNCTION_ARGS)
{
	const PcrDriver *driver;
	char	   *name;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NULL_ID),
				 errmsg("driver must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	driver = PcrDriverByName(name);
	if (driver == NULL)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("unknown environment driver \"%s\"", name),
				 errhint("Drivers are local, ssh and sandbox.")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid %s environment config: \"config\" must be a JSON object", name)));
	PG_RETURN_JSONB_P(validate_hiding_statement(driver, PG_GETARG_JSONB_P(1)));
}

Datum
pcr_lease_ttl(PG_FUNCTION_ARGS)
{
	Interval   *iv = palloc0(sizeof(Interval));
	Jsonb	   *config = PG_GETARG_JSONB_P(0);

	if (!PcrJsonbIsObject(config))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("argument \"config\" must be a JSON object")));
	iv->time = PcrLeaseTtlSeconds(config) * USECS_PER_SEC;
	PG_RETURN_INTERVAL_P(iv);
}
