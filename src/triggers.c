/*
 * triggers.c — the environments triggers that keep rows valid whoever writes them
 *
 * Rows may be written with plain SQL, so these, not the functions, enforce
 * per-driver config validation and normalisation, and no deletion of an
 * environment with active leases.  The rules of environment_leases are in
 * lease_guard.c.  Each trigger function first checks that it fires on
 * paperclip.environments (by OID) and that the columns it reads have the
 * types it reads them as: attached to any other table it raises, it never
 * reads a datum as what it is not.
 */
#include "pcr.h"
#include "driver.h"
#include "rel_util.h"
#include "spi_util.h"
#include "sandbox.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(pcr_environments_config_trigger);
PG_FUNCTION_INFO_V1(pcr_environments_delete_guard);
PG_FUNCTION_INFO_V1(pcr_validate_environment_config);
PG_FUNCTION_INFO_V1(pcr_lease_ttl);
PG_FUNCTION_INFO_V1(pcr_environments_sandbox_sweep);

/* The columns of paperclip.environments the triggers read. */
enum
{
	E_ID, E_NAME, E_DRIVER, E_CONFIG, E_NCOLS
};

static const PcrColumn environment_cols[E_NCOLS] = {
	[E_ID] = {"id", UUIDOID},
	[E_NAME] = {"name", TEXTOID},
	[E_DRIVER] = {"driver", TEXTOID},
	[E_CONFIG] = {"config", JSONBOID},
};

/*
 * The trigger data of a BEFORE ROW trigger on paperclip.environments fired
 * by DELETE (on_delete) or by INSERT or UPDATE, and the attribute numbers of
 * its columns; raises 39P01 otherwise.
 */
static TriggerData *
environments_trigger(FunctionCallInfo fcinfo, const char *fname, bool on_delete,
					 const AttrNumber **att)
{
	static PcrColumns cache;
	TriggerData *td;

	td = PcrTriggerOn(fcinfo, fname, PCR_REL_ENVIRONMENTS);
	if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		(on_delete ? !TRIGGER_FIRED_BY_DELETE(td->tg_event)
		 : !(TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event))))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger function \"%s\" fired for an event it does not handle", fname)));
	*att = PcrResolveColumns(td->tg_relation, environment_cols, E_NCOLS, &cache);
	return td;
}

static char *
text_attr(HeapTuple tuple, Relation rel, AttrNumber attnum)
{
	bool		isnull;
	Datum		d = heap_getattr(tuple, attnum, RelationGetDescr(rel), &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Run a driver's validation; if it fails, keep the statement and its
 * context out of the error: a config refused for carrying a private key
 * would otherwise be copied into the server log by log_min_error_statement,
 * and into the client's and the log's CONTEXT as a bind parameter with
 * log_parameter_max_length_on_error.
 */
typedef struct ValidateCall
{
	const PcrDriver *driver;
	Jsonb	   *config;
} ValidateCall;

static void
validate_call(void *arg)
{
	ValidateCall *c = (ValidateCall *) arg;

	c->config = c->driver->validate(c->config);
}

static Jsonb *
validate_hiding_statement(const PcrDriver *driver, Jsonb *config)
{
	ValidateCall c = {driver, config};

	PcrRunPrivately(validate_call, &c);
	return c.config;
}

/* Validate and normalise environments.config for environments.driver. */
Datum
pcr_environments_config_trigger(PG_FUNCTION_ARGS)
{
	const AttrNumber *att;
	TriggerData *td = environments_trigger(fcinfo, "environments_config_trigger", false, &att);
	Relation	rel = td->tg_relation;
	HeapTuple	tuple = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	const PcrDriver *driver = PcrDriverByName(text_attr(tuple, rel, att[E_DRIVER]));
	bool		isnull;
	Datum		config;
	Jsonb	   *normalised;
	Datum		newval[1];
	bool		newnull[1] = {false};
	int			cols[1];

	/* unknown driver or missing config: leave it to the CHECK / NOT NULL constraints */
	config = heap_getattr(tuple, att[E_CONFIG], RelationGetDescr(rel), &isnull);
	if (driver == NULL || isnull)
		return PointerGetDatum(tuple);

	normalised = validate_hiding_statement(driver, DatumGetJsonbP(config));
	newval[0] = JsonbPGetDatum(normalised);
	cols[0] = att[E_CONFIG];
	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, RelationGetDescr(rel), 1, cols,
													 newval, newnull));
}

/* Refuse to delete an environment that still has active leases (55000). */
Datum
pcr_environments_delete_guard(PG_FUNCTION_ARGS)
{
	const AttrNumber *att;
	TriggerData *td = environments_trigger(fcinfo, "environments_delete_guard", true, &att);
	Relation	rel = td->tg_relation;
	HeapTuple	tuple = td->tg_trigtuple;
	bool		isnull;
	Datum		id = heap_getattr(tuple, att[E_ID], RelationGetDescr(rel), &isnull);
	char	   *name = text_attr(tuple, rel, att[E_NAME]);
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {id};
	int64		active = 0;
	int			rc;

	SPI_connect();
	/* qualified throughout: this runs under the deleting session's search_path */
	rc = SPI_execute_with_args("SELECT pg_catalog.count(*) FROM paperclip.environment_leases "
							   " WHERE environment_id OPERATOR(pg_catalog.=) $1 "
							   "   AND status OPERATOR(pg_catalog.=) 'active'",
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

/*
 * A sandbox environment archived or deleted: its reusable sandbox (if any)
 * is to be destroyed.  Ask the reconciler for a sweep of provider objects
 * once the change commits (AFTER UPDATE OF status OR DELETE, FOR EACH ROW
 * WHEN (OLD.driver = 'sandbox')).
 */
Datum
pcr_environments_sandbox_sweep(PG_FUNCTION_ARGS)
{
	const char *fname = "environments_sandbox_sweep";
	TriggerData *td;
	char	   *status = NULL;

	td = PcrTriggerOn(fcinfo, fname, PCR_REL_ENVIRONMENTS);
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		TRIGGER_FIRED_BY_INSERT(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger function \"%s\" fired for an event it does not handle", fname)));
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		static PcrColumns cache;
		static const PcrColumn status_col[1] = {{"status", TEXTOID}};
		const AttrNumber *att = PcrResolveColumns(td->tg_relation, status_col, 1, &cache);
		bool		isnull;
		Datum		d = heap_getattr(td->tg_newtuple, att[0], RelationGetDescr(td->tg_relation), &isnull);

		status = isnull ? NULL : TextDatumGetCString(d);
	}
	if (status == NULL || strcmp(status, "active") != 0)
		PcrSandboxSweepAtCommit();
	return PointerGetDatum(NULL);
}
