/*
 * probe.c — paperclip.environment_probe(environment_id): can this
 * environment be used?
 *
 * Looks the environment up with the caller's rights (row-level security
 * applies), then asks its driver, in a subtransaction: any error the driver
 * raises (bad config, unknown secret, refused host key, ...) becomes
 * {ok: false, summary: <message>, details: {sqlstate, detail, hint}} instead
 * of aborting the caller.  Cancellation and timeouts still abort.
 */
#include "pcr.h"
#include "driver.h"
#include "spi_util.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

PG_FUNCTION_INFO_V1(pcr_environment_probe);

typedef struct ProbeTarget
{
	PcrLeaseRequest req;
	char	   *driver;
	const PcrDriver *driver_vtable;
	Jsonb	   *result;
} ProbeTarget;

/* validate, then probe (in a subtransaction of its own) */
static void
probe_call(void *arg)
{
	ProbeTarget *t = (ProbeTarget *) arg;

	t->req.config = t->driver_vtable->validate(t->req.config);
	t->result = PcrDriverProbe(t->driver_vtable, &t->req);
}

static void
load_environment(Datum id, ProbeTarget *t, MemoryContext callerctx)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {UUIDOID};
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;
	MemoryContext old;
	int			rc;

	SPI_connect();
	rc = PcrRunKeptPlan(&plan, "SELECT company_id, name, driver, config "
						"  FROM paperclip.environments WHERE id = $1", 1, types, &id, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "environment probe query failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NOT_FOUND),
				 errmsg("environment %s does not exist", PcrUuidToCString(DatumGetUUIDP(id)))));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	old = MemoryContextSwitchTo(callerctx);
	memset(t, 0, sizeof(ProbeTarget));
	memcpy(&t->req.company_id, DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull)), sizeof(pg_uuid_t));
	memcpy(&t->req.environment_id, DatumGetUUIDP(id), sizeof(pg_uuid_t));
	t->req.environment_name = SPI_getvalue(tup, desc, 2);
	t->driver = SPI_getvalue(tup, desc, 3);
	t->req.config = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
	MemoryContextSwitchTo(old);
	SPI_finish();
}

/* {ok: false, ...} from an error the driver raised */
static Jsonb *
failure_result(const char *driver, ErrorData *edata)
{
	PcrJsonbBuilder details;

	PcrJbBegin(&details);
	PcrJbAddText(&details, "sqlstate", unpack_sql_state(edata->sqlerrcode));
	PcrJbAddText(&details, "detail", edata->detail);
	PcrJbAddText(&details, "hint", edata->hint);
	return PcrProbeResult(false, driver, edata->message, PcrJbFinish(&details));
}

Datum
pcr_environment_probe(PG_FUNCTION_ARGS)
{
	MemoryContext callerctx = CurrentMemoryContext;
	const PcrDriver *driver;
	ProbeTarget t;
	ErrorData  *edata;
	Jsonb	   *result = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NULL_ID),
				 errmsg("environment_id must not be null")));
	load_environment(PG_GETARG_DATUM(0), &t, callerctx);

	driver = PcrDriverByName(t.driver);
	if (driver == NULL)
		PG_RETURN_JSONB_P(PcrProbeResult(false, t.driver,
										 psprintf("environment \"%s\" has unknown driver \"%s\"",
												  t.req.environment_name, t.driver), NULL));

	t.driver_vtable = driver;
	if (!PcrRunInSubtransaction(probe_call, &t, &edata))
	{
		/* a cancelled statement stays cancelled */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		t.result = failure_result(t.driver, edata);
	}
	result = t.result;
	PG_RETURN_JSONB_P(result);
}
