/*
 * lease_exec.c — paperclip.lease_execute(): run a command in a leased environment
 *
 * docs/execute.md.  In order: the arguments (22004, 22023, 54000), the lease (42704
 * when unknown or another company's, 55000 when not active), its driver
 * (0A000 when it cannot execute; local: 42501 unless the caller may run
 * server programs), the limits (timeout and output cap, with superuser
 * ceilings), the environment (secret refs resolved for the lease's company);
 * then the driver runs the command in a driver worker while this backend
 * waits on its latch, and the call is recorded in paperclip.lease_executions
 * (lease_exec_audit.c).  A call that raises after its checks passed is
 * recorded out of band, with its SQLSTATE.
 *
 * The function is SECURITY INVOKER with a pinned search_path (like COPY ...
 * PROGRAM, the local driver checks the role that calls it); it reads and
 * writes the extension's tables as the function's owner, so that callers
 * need no table privileges, and checks the company itself (tenant.h): a
 * restricted role acts for its effective company only, and another
 * company's lease does not exist for it (42704); with no effective company
 * it may act for none (42501).
 *
 * Locking: the lease row is locked FOR KEY SHARE (and its run's, if any)
 * until the caller's transaction ends: the lease and the run cannot be
 * deleted under a running command, while releases, renewals and concurrent
 * executes on the same lease go on.
 */
#include "pcr.h"
#include "driver.h"
#include "exec.h"
#include "guc_ceiling.h"
#include "lease_exec_audit.h"
#include "spi_util.h"
#include "tenant.h"
#include "util.h"

#include <limits.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(pcr_lease_execute);

int			pcr_execute_timeout = PCR_EXEC_DEFAULT_TIMEOUT_MS;
int			pcr_execute_max_output = PCR_EXEC_DEFAULT_MAX_OUTPUT;
static PcrGucCeiling timeout_ceiling = {"paperclip.execute_timeout", PCR_EXEC_DEFAULT_TIMEOUT_MS, "ms"};
static PcrGucCeiling max_output_ceiling = {"paperclip.execute_max_output", PCR_EXEC_DEFAULT_MAX_OUTPUT, "bytes"};

/* How often a waiting caller checks that its client is still connected. */
#define EXEC_CLIENT_CHECK_MS 1000

static bool
check_timeout(int *newval, void **extra, GucSource source)
{
	return PcrGucCeilingCheck(&timeout_ceiling, *newval, source);
}

static bool
check_max_output(int *newval, void **extra, GucSource source)
{
	return PcrGucCeilingCheck(&max_output_ceiling, *newval, source);
}

void
PcrExecInit(bool preloading)
{
	DefineCustomIntVariable("paperclip.execute_timeout",
							"Timeout of a command run by paperclip.lease_execute() when the call and the environment give none.",
							"A ceiling: roles that are not superusers may neither set it above the server's value nor ask for a longer timeout.",
							&pcr_execute_timeout, PCR_EXEC_DEFAULT_TIMEOUT_MS, 1, PCR_EXEC_MAX_TIMEOUT_MS,
							PGC_USERSET, GUC_UNIT_MS, check_timeout, NULL, NULL);
	DefineCustomIntVariable("paperclip.execute_max_output",
							"Bytes of stdout and of stderr paperclip.lease_execute() keeps when the call gives no cap.",
							"A ceiling: roles that are not superusers may neither set it above the server's value nor ask for a larger cap.",
							&pcr_execute_max_output, PCR_EXEC_DEFAULT_MAX_OUTPUT, 0, PCR_EXEC_MAX_OUTPUT,
							PGC_USERSET, GUC_UNIT_BYTE, check_max_output, NULL, NULL);
	PcrExecAuditInit(preloading);
}

/* ------------------------------------------------------------------------
 * Acting as the function's owner
 * ------------------------------------------------------------------------ */
static Oid
function_owner(FunctionCallInfo fcinfo)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	return owner;
}

/* Run fn(arg) with the privileges of owner (as a SECURITY DEFINER function would). */
static void
as_owner(Oid owner, void (*fn) (void *), void *arg)
{
	Oid			save_user;
	int			save_sec;

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		fn(arg);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_user, save_sec);
	}
	PG_END_TRY();
}

/* ------------------------------------------------------------------------
 * The lease
 * ------------------------------------------------------------------------ */
static SPIPlanPtr lookup_plan;
static SPIPlanPtr lock_run_plan;

static const char *const lookup_sql =
"SELECT l.company_id, l.heartbeat_run_id, l.status, l.expires_at <= pg_catalog.now(), "
"       l.provider, l.provider_lease_id, l.metadata, l.environment_id, e.name, e.config, "
"       l.expires_at, l.xmin "
"  FROM paperclip.environment_leases AS l "
"  JOIN paperclip.environments AS e ON e.company_id = l.company_id AND e.id = l.environment_id "
" WHERE l.id = $1 AND ($2::uuid IS NULL OR l.company_id = $2) "
"   FOR KEY SHARE OF l";

static const char *const lock_run_sql =
"SELECT 1 FROM paperclip.heartbeat_runs WHERE company_id = $1 AND id = $2 FOR KEY SHARE";

typedef struct LookupArgs
{
	const pg_uuid_t *lease_id;
	PcrTenantScope scope;		/* the companies the acting role may act for now */
	PcrExecLease *lease;
	MemoryContext cxt;
} LookupArgs;

static char *
copy_text(SPITupleTable *t, int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(t->vals[0], t->tupdesc, col, &isnull);

	return isnull ? NULL : MemoryContextStrdup(cxt, TextDatumGetCString(d));
}

static Jsonb *
copy_jsonb(SPITupleTable *t, int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(t->vals[0], t->tupdesc, col, &isnull);
	Jsonb	   *jb;
	Jsonb	   *copy;

	if (isnull)
		return NULL;
	jb = DatumGetJsonbP(d);
	copy = MemoryContextAlloc(cxt, VARSIZE(jb));
	memcpy(copy, jb, VARSIZE(jb));
	return copy;
}

static void
lookup_lease(void *arg)
{
	LookupArgs *la = (LookupArgs *) arg;
	PcrExecLease *lease = la->lease;
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	SPITupleTable *t;
	bool		isnull;
	char	   *status;
	char	   *id = PcrUuidToCString(la->lease_id);

	values[0] = UUIDPGetDatum((pg_uuid_t *) la->lease_id);
	values[1] = UUIDPGetDatum(&la->scope.company);
	if (la->scope.all)
		nulls[1] = 'n';
	SPI_connect();
	if (PcrRunKeptPlan(&lookup_plan, lookup_sql, 2, types, values, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "lease lookup failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NOT_FOUND),
				 errmsg("lease %s does not exist", id)));
	t = SPI_tuptable;
	status = copy_text(t, 3, CurrentMemoryContext);
	if (strcmp(status, "active") != 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("lease %s is %s", id, status),
				 errdetail("Commands run only in active leases."),
				 errhint("Acquire a new lease with paperclip.acquire_run_lease().")));
	if (DatumGetBool(SPI_getbinval(t->vals[0], t->tupdesc, 4, &isnull)) && !isnull)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("lease %s expired at %s", id, SPI_getvalue(t->vals[0], t->tupdesc, 11)),
				 errdetail("The reconciler will mark it expired."),
				 errhint("Renew leases in use with paperclip.renew_run_lease().")));

	memcpy(&lease->id, la->lease_id, sizeof(pg_uuid_t));
	memcpy(&lease->company_id, DatumGetUUIDP(SPI_getbinval(t->vals[0], t->tupdesc, 1, &isnull)),
		   sizeof(pg_uuid_t));
	{
		Datum		run = SPI_getbinval(t->vals[0], t->tupdesc, 2, &isnull);

		lease->has_run = !isnull;
		if (!isnull)
			memcpy(&lease->heartbeat_run_id, DatumGetUUIDP(run), sizeof(pg_uuid_t));
	}
	lease->provider = copy_text(t, 5, la->cxt);
	lease->provider_lease_id = copy_text(t, 6, la->cxt);
	lease->metadata = copy_jsonb(t, 7, la->cxt);
	memcpy(&lease->environment_id, DatumGetUUIDP(SPI_getbinval(t->vals[0], t->tupdesc, 8, &isnull)),
		   sizeof(pg_uuid_t));
	lease->environment_name = copy_text(t, 9, la->cxt);
	lease->config = copy_jsonb(t, 10, la->cxt);
	lease->written_here =
		TransactionIdIsCurrentTransactionId(DatumGetTransactionId(SPI_getbinval(t->vals[0], t->tupdesc, 12, &isnull)));

	/* the run cannot be deleted under the command either (its row is recorded) */
	if (lease->has_run)
	{
		values[0] = UUIDPGetDatum(&lease->company_id);
		values[1] = UUIDPGetDatum(&lease->heartbeat_run_id);
		if (PcrRunKeptPlan(&lock_run_plan, lock_run_sql, 2, types, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "run lock failed");
		lease->has_run = SPI_processed > 0;
	}
	SPI_finish();
}

/* ------------------------------------------------------------------------
 * Arguments
 * ------------------------------------------------------------------------ */
static void
require_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NULL_ID),
				 errmsg("%s must not be null", name)));
}

static void pg_attribute_noreturn()
bad_arg(const char *name, const char *why)
{
	ereport(ERROR,
			(errcode(PCR_ERRCODE_BAD_CONFIG),
			 errmsg("invalid %s: %s", name, why)));
}

static const char *
check_command(FunctionCallInfo fcinfo)
{
	char	   *command = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (command[0] == '\0')
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid command: must not be empty")));
	if (strlen(command) >= PCR_EXEC_MAX_COMMAND)
		bad_arg("command", psprintf("longer than %d bytes", PCR_EXEC_MAX_COMMAND - 1));
	return command;
}

static void
check_args(FunctionCallInfo fcinfo, PcrExecCall *call)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	call->nargs = 0;
	call->args = NULL;
	if (PG_ARGISNULL(2))
		return;
	arr = PG_GETARG_ARRAYTYPE_P(2);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid args: must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n > PCR_EXEC_MAX_ARGS)
		bad_arg("args", psprintf("more than %d arguments", PCR_EXEC_MAX_ARGS));
	call->args = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(PCR_ERRCODE_NULL_ID),
					 errmsg("args must not contain null elements"),
					 errdetail("Element %d is null.", i + 1)));
		call->args[i] = TextDatumGetCString(elems[i]);
	}
	call->nargs = n;
}

/* Bytes of arguments, variables and stdin: 54000 past PCR_EXEC_MAX_INPUT. */
static void
check_input_size(const PcrExecCall *call)
{
	Size		total = call->stdin_len;

	for (int i = 0; i < call->nargs; i++)
		total += strlen(call->args[i]) + 1;
	for (int i = 0; i < call->nvars; i++)
		total += strlen(call->vars[i].name) + call->vars[i].len + 2;
	if (total > PCR_EXEC_MAX_INPUT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the command's arguments, environment and stdin take %zu bytes, more than %d",
						total, PCR_EXEC_MAX_INPUT)));
}

/* The limits given as arguments: 22023 out of range. */
static void
check_limit_args(FunctionCallInfo fcinfo)
{
	if (!PG_ARGISNULL(6) &&
		(PG_GETARG_INT32(6) < 1 || PG_GETARG_INT32(6) > PCR_EXEC_MAX_TIMEOUT_MS))
		bad_arg("timeout_ms", psprintf("must be between 1 and %d ms", PCR_EXEC_MAX_TIMEOUT_MS));
	if (!PG_ARGISNULL(7) &&
		(PG_GETARG_INT32(7) < 0 || PG_GETARG_INT32(7) > PCR_EXEC_MAX_OUTPUT))
		bad_arg("max_output_bytes", psprintf("must be between 0 and %d", PCR_EXEC_MAX_OUTPUT));
}

/*
 * The timeout and output cap: the argument, else the environment's (timeout
 * only), else the setting.  A role that is not a superuser may not go past
 * the server's settings, which hold shared driver workers and memory.
 */
static void
resolve_limits(FunctionCallInfo fcinfo, const PcrExecTarget *target, PcrExecCall *call)
{
	const char *source;
	int			v;

	if (!PG_ARGISNULL(6))
	{
		v = PG_GETARG_INT32(6);
		source = "timeout_ms";
	}
	else if (target->timeout_ms > 0)
	{
		v = Min(target->timeout_ms, PCR_EXEC_MAX_TIMEOUT_MS);
		source = "the environment's timeoutMs";
	}
	else
	{
		v = pcr_execute_timeout;
		source = "paperclip.execute_timeout";
	}
	if (v > timeout_ceiling.value && !superuser())
		ereport(ERROR,
				(errcode(PCR_ERRCODE_FORBIDDEN),
				 errmsg("%s (%d ms) is above the server's paperclip.execute_timeout (%d ms)",
						source, v, timeout_ceiling.value),
				 errdetail("Commands hold a shared driver worker: only superusers may run them longer than the server's setting."),
				 errhint("A superuser can raise paperclip.execute_timeout in postgresql.conf or with ALTER SYSTEM.")));
	call->timeout_ms = v;

	if (!PG_ARGISNULL(7))
	{
		v = PG_GETARG_INT32(7);
		source = "max_output_bytes";
	}
	else
	{
		v = pcr_execute_max_output;
		source = "paperclip.execute_max_output";
	}
	if (v > max_output_ceiling.value && !superuser())
		ereport(ERROR,
				(errcode(PCR_ERRCODE_FORBIDDEN),
				 errmsg("%s (%d bytes) is above the server's paperclip.execute_max_output (%d bytes)",
						source, v, max_output_ceiling.value),
				 errdetail("Output travels through shared memory: only superusers may ask for more than the server's setting."),
				 errhint("A superuser can raise paperclip.execute_max_output in postgresql.conf or with ALTER SYSTEM.")));
	call->max_output = v;
}

/*
 * A caller whose client goes away while the command runs should not keep it
 * running until its timeout: check the connection every second for the rest
 * of this call (the function's own setting scope ends it), as
 * client_connection_check_interval would.  The FATAL it leads to abandons the
 * request, and the worker kills the command.
 */
static void
watch_client(void)
{
	if (MyProcPort == NULL || client_connection_check_interval > 0)
		return;
	(void) set_config_option("client_connection_check_interval", CppAsString2(EXEC_CLIENT_CHECK_MS),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (client_connection_check_interval > 0 && !get_timeout_active(CLIENT_CONNECTION_CHECK_TIMEOUT))
		enable_timeout_after(CLIENT_CONNECTION_CHECK_TIMEOUT, client_connection_check_interval);
}

/* ------------------------------------------------------------------------
 * The result
 * ------------------------------------------------------------------------ */
static void
return_outcome(FunctionCallInfo fcinfo, const PcrExecCall *call, const PcrExecOutcome *o)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[9];
	bool		nulls[9];
	const char *signame = o->signal != 0 ? PcrExecSignalName(o->signal) : NULL;

	InitMaterializedSRF(fcinfo, 0);
	memset(nulls, 0, sizeof(nulls));
	values[0] = UUIDPGetDatum((pg_uuid_t *) &call->execution_id);
	values[1] = Int32GetDatum(o->exit_code);
	nulls[1] = !o->exited;
	values[2] = signame ? CStringGetTextDatum(signame) : (Datum) 0;
	nulls[2] = signame == NULL;
	values[3] = BoolGetDatum(o->timed_out);
	values[4] = PointerGetDatum(PcrExecOutputText(o->out, o->out_len));
	values[5] = PointerGetDatum(PcrExecOutputText(o->err, o->err_len));
	values[6] = BoolGetDatum(o->out_truncated);
	values[7] = BoolGetDatum(o->err_truncated);
	values[8] = Int32GetDatum(o->duration_ms);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

static void
new_execution_id(pg_uuid_t *id)
{
	if (!pg_strong_random(id->data, UUID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random execution id")));
	id->data[6] = (id->data[6] & 0x0f) | 0x40;	/* version 4 */
	id->data[8] = (id->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
}

typedef struct InsertArgs
{
	const PcrExecRecord *record;
} InsertArgs;

static void
insert_record(void *arg)
{
	PcrExecRecordInsert(((InsertArgs *) arg)->record);
}

/* ------------------------------------------------------------------------
 * paperclip.lease_execute(lease_id, command, args, cwd, env, stdin, timeout_ms, max_output_bytes)
 * ------------------------------------------------------------------------ */
/* The arguments, checked before anything is looked up. */
static void
check_call_args(FunctionCallInfo fcinfo, PcrExecCall *call, Jsonb **env)
{
	require_arg(fcinfo, 0, "lease_id");
	require_arg(fcinfo, 1, "command");
	PreventCommandIfReadOnly("paperclip.lease_execute()");
	PreventCommandIfParallelMode("paperclip.lease_execute()");
	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(PCR_ERRCODE_FORBIDDEN),
				 errmsg("cannot run paperclip.lease_execute() during a security-restricted operation")));

	memset(call, 0, sizeof(*call));
	call->command = check_command(fcinfo);
	check_args(fcinfo, call);
	call->cwd = PcrExecNormaliseCwd(PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)));
	*env = PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4);
	PcrExecCheckEnv(*env, "env");
	check_limit_args(fcinfo);
	if (!PG_ARGISNULL(5))
	{
		text	   *in = PG_GETARG_TEXT_PP(5);

		call->stdin_data = VARDATA_ANY(in);
		call->stdin_len = VARSIZE_ANY_EXHDR(in);
	}
	check_input_size(call);
}

/* The lease (as the owner, for the companies the caller may act for) and its driver's say. */
static const PcrDriver *
prepare_lease(FunctionCallInfo fcinfo, Oid owner, PcrExecLease *lease, PcrExecTarget *target,
			  PcrExecCall *call)
{
	LookupArgs	la;
	const PcrDriver *driver;

	memset(lease, 0, sizeof(*lease));
	memset(target, 0, sizeof(*target));
	memset(&la, 0, sizeof(la));
	la.lease_id = PG_GETARG_UUID_P(0);
	la.lease = lease;
	la.cxt = CurrentMemoryContext;
	la.scope = PcrTenantScopeRequire();	/* 42501 when a restricted role acts for no company */
	as_owner(owner, lookup_lease, &la);

	driver = PcrDriverOfLease(lease->metadata, lease->provider);
	if (driver != NULL && driver->exec_prepare != NULL)
		driver->exec_prepare(lease, target);	/* may refuse, more precisely than below */
	if (driver == NULL || driver->execute == NULL || driver->exec_prepare == NULL)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_UNSUPPORTED),
				 errmsg("the %s driver cannot execute commands", driver ? driver->name : "lease's"),
				 errdetail("Lease %s.", PcrUuidToCString(&lease->id))));
	PcrExecCheckEnv(target->env, "environment config: \"env\"");
	resolve_limits(fcinfo, target, call);
	return driver;
}

/*
 * The command's environment, its secret refs resolved: should a later one
 * fail (unknown, revoked, another company's), the values resolved so far
 * are wiped before the error goes on.
 */
static void
build_environment(PcrExecCall *call, const PcrExecLease *lease, const PcrExecTarget *target, Jsonb *env)
{
	PG_TRY();
	{
		PcrExecBuildVars(call, &lease->company_id, target->workspace, target->env, env);
		check_input_size(call);
	}
	PG_CATCH();
	{
		PcrExecCallWipe(call);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Hand the call to the driver and record it: in this transaction when it
 * completes, out of band (with its SQLSTATE) when it raises.
 */
static void
run_and_record(Oid owner, const PcrDriver *driver, const PcrExecLease *lease, PcrExecCall *call,
			   PcrExecOutcome *outcome)
{
	MemoryContext cxt = CurrentMemoryContext;
	PcrExecRecord record;

	new_execution_id(&call->execution_id);
	PcrExecRecordBegin(&record, call, lease, strcmp(get_database_name(MyDatabaseId), pcr_database) == 0);
	watch_client();
	PcrExecRecordRunning(&record);
	PG_TRY();
	{
		InsertArgs	ia = {&record};

		driver->execute(lease, call, outcome);
		PcrExecCallWipe(call);
		PcrExecRecordOutcome(&record, outcome);
		as_owner(owner, insert_record, &ia);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		PcrExecCallWipe(call);
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		/* the transaction (or subtransaction) aborts: record the call out of band */
		PcrExecRecordFailed(&record, edata->sqlerrcode);
		FreeErrorData(edata);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

Datum
pcr_lease_execute(PG_FUNCTION_ARGS)
{
	Oid			owner = function_owner(fcinfo);
	PcrExecLease lease;
	PcrExecTarget target;
	PcrExecCall call;
	PcrExecOutcome outcome;
	const PcrDriver *driver;
	Jsonb	   *env;

	check_call_args(fcinfo, &call, &env);
	driver = prepare_lease(fcinfo, owner, &lease, &target, &call);
	build_environment(&call, &lease, &target, env);
	run_and_record(owner, driver, &lease, &call, &outcome);
	return_outcome(fcinfo, &call, &outcome);
	return (Datum) 0;
}
