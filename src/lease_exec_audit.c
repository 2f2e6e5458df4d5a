/*
 * lease_exec_audit.c — recording lease_execute calls in paperclip.lease_executions
 *
 * The decision (docs/execute.md): every call that passed its checks leaves
 * a row, whether or not the caller's transaction commits, because the
 * command's effects are not transactional.
 *
 * - A completed call inserts its row in the caller's transaction, and this
 *   backend keeps a copy, with the subtransaction nesting level it was
 *   inserted at, until the transaction ends.  If the subtransaction or the
 *   transaction aborts (a later error, ROLLBACK, ROLLBACK TO SAVEPOINT, a
 *   FATAL), the copies it takes along go to the queue below.  PREPARE
 *   TRANSACTION of a transaction that ran commands is refused, since its
 *   rows could vanish later without this backend knowing.
 * - A call that raises after its checks passed queues its row at once, with
 *   the SQLSTATE.
 * - The queue: PCR_AUDIT_QUEUE_LEN fixed entries in shared memory, command
 *   and cwd cut at PCR_AUDIT_TEXT_MAX bytes.  The reconciler takes entries
 *   of its database through paperclip.lease_executions_backlog() and inserts
 *   them (ON CONFLICT DO NOTHING: an entry is taken for one transaction and
 *   freed only when it commits).  A full queue, or a call in a database the
 *   reconciler does not serve, leaves a WARNING naming the execution
 *   instead; a crash of the whole server loses what was queued.
 */
#include "pcr.h"
#include "lease_exec_audit.h"
#include "reconciler.h"
#include "spi_util.h"
#include "util.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(pcr_lease_executions_backlog);

#define PCR_AUDIT_QUEUE_LEN		256
#define PCR_AUDIT_TEXT_MAX		1024

typedef enum AuditState
{
	AUDIT_FREE = 0,
	AUDIT_QUEUED,
	AUDIT_TAKEN					/* by taken_by, for its current transaction */
} AuditState;

typedef struct AuditEntry
{
	AuditState	state;
	pid_t		taken_by;
	Oid			dbid;
	pg_uuid_t	id;
	pg_uuid_t	company_id;
	pg_uuid_t	lease_id;
	bool		has_run;
	pg_uuid_t	heartbeat_run_id;
	TimestampTz started_at;
	TimestampTz finished_at;
	bool		completed;
	bool		exited;
	int32		exit_code;
	bool		timed_out;
	bool		truncated;
	int64		stdout_bytes;
	int64		stderr_bytes;
	char		signal[24];		/* "" when none */
	char		sqlstate[6];	/* "" when none */
	bool		has_cwd;
	char		command[PCR_AUDIT_TEXT_MAX];
	char		cwd[PCR_AUDIT_TEXT_MAX];
} AuditEntry;

typedef struct AuditQueue
{
	slock_t		mutex;
	AuditEntry	entries[PCR_AUDIT_QUEUE_LEN];
} AuditQueue;

static AuditQueue *queue = NULL;

/*
 * The call running now, if any: a FATAL (the client went away,
 * pg_terminate_backend) ends the backend without the caller's PG_CATCH, so
 * the abort at exit queues it, with the SQLSTATE of that FATAL.
 */
static PcrExecRecord *in_flight = NULL;

static void register_callbacks(void);

/* ------------------------------------------------------------------------
 * Shared memory
 * ------------------------------------------------------------------------ */
void
PcrExecAuditShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(AuditQueue)));
}

void
PcrExecAuditShmemStartup(void)
{
	bool		found;

	queue = ShmemInitStruct("paperclip execution audit queue", sizeof(AuditQueue), &found);
	if (!found)
	{
		memset(queue, 0, sizeof(AuditQueue));
		SpinLockInit(&queue->mutex);
	}
}

/* ------------------------------------------------------------------------
 * Records
 * ------------------------------------------------------------------------ */
void
PcrExecRecordBegin(PcrExecRecord *r, const PcrExecCall *call, const PcrExecLease *lease,
				   bool queueable)
{
	memset(r, 0, sizeof(*r));
	r->id = call->execution_id;
	r->company_id = lease->company_id;
	r->lease_id = lease->id;
	r->has_run = lease->has_run;
	r->heartbeat_run_id = lease->heartbeat_run_id;
	r->command = call->command;
	r->cwd = call->cwd[0] ? call->cwd : NULL;
	r->queueable = queueable;
	r->started_at = GetCurrentTimestamp();
	r->finished_at = r->started_at;
}

void
PcrExecRecordOutcome(PcrExecRecord *r, const PcrExecOutcome *o)
{
	r->finished_at = Max(GetCurrentTimestamp(), r->started_at);
	r->completed = true;
	r->exited = o->exited;
	r->exit_code = o->exit_code;
	r->signal = o->signal != 0 ? PcrExecSignalName(o->signal) : NULL;
	r->timed_out = o->timed_out;
	r->stdout_bytes = o->out_len;
	r->stderr_bytes = o->err_len;
	r->truncated = o->out_truncated || o->err_truncated;
}

/* text cut at a character boundary of the database encoding, into dst */
static void
copy_cut(char *dst, const char *src, int max)
{
	int			len = strlen(src);

	if (len >= max)
		len = pg_mbcliplen(src, len, max - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static void
fill_entry(AuditEntry *e, const PcrExecRecord *r)
{
	e->dbid = MyDatabaseId;
	e->id = r->id;
	e->company_id = r->company_id;
	e->lease_id = r->lease_id;
	e->has_run = r->has_run;
	e->heartbeat_run_id = r->heartbeat_run_id;
	e->started_at = r->started_at;
	e->finished_at = r->finished_at;
	e->completed = r->completed;
	e->exited = r->exited;
	e->exit_code = r->exit_code;
	e->timed_out = r->timed_out;
	e->truncated = r->truncated;
	e->stdout_bytes = r->stdout_bytes;
	e->stderr_bytes = r->stderr_bytes;
	strlcpy(e->signal, r->signal ? r->signal : "", sizeof(e->signal));
	if (r->sqlerrcode != 0)
		strlcpy(e->sqlstate, unpack_sql_state(r->sqlerrcode), sizeof(e->sqlstate));
	else
		e->sqlstate[0] = '\0';
	copy_cut(e->command, r->command, sizeof(e->command));
	e->has_cwd = r->cwd != NULL;
	copy_cut(e->cwd, r->cwd ? r->cwd : "", sizeof(e->cwd));
}

/* Queue a record for the reconciler; a WARNING when that cannot be done.  Never raises. */
static void
enqueue(const PcrExecRecord *r)
{
	int			slot = -1;

	if (r->queueable && queue != NULL)
	{
		SpinLockAcquire(&queue->mutex);
		for (int i = 0; i < PCR_AUDIT_QUEUE_LEN && slot < 0; i++)
			if (queue->entries[i].state == AUDIT_FREE)
			{
				slot = i;
				queue->entries[i].state = AUDIT_QUEUED;
				queue->entries[i].taken_by = 0;
				fill_entry(&queue->entries[i], r);
			}
		SpinLockRelease(&queue->mutex);
	}
	if (slot >= 0)
	{
		PcrReconcilerWake();
		return;
	}
	ereport(WARNING,
			(errmsg("execution %s of lease %s is not recorded in paperclip.lease_executions",
					PcrUuidToCString(&r->id), PcrUuidToCString(&r->lease_id)),
			 errdetail(!r->queueable
					   ? "Its transaction did not commit, and the reconciler records such calls only in the database named by paperclip.database."
					   : "Its transaction did not commit, and the queue of such calls is full."),
			 errhidestmt(true)));
}

void
PcrExecRecordFailed(PcrExecRecord *r, int sqlerrcode)
{
	in_flight = NULL;
	r->finished_at = Max(GetCurrentTimestamp(), r->started_at);
	r->sqlerrcode = sqlerrcode;
	enqueue(r);
}

void
PcrExecRecordRunning(PcrExecRecord *r)
{
	register_callbacks();
	in_flight = r;
}

/* ------------------------------------------------------------------------
 * Rows inserted by this backend's transaction: queued when it aborts
 * ------------------------------------------------------------------------ */
typedef struct Tracked
{
	PcrExecRecord record;
	int			level;			/* the subtransaction nesting level of the insert */
} Tracked;

static MemoryContext tracked_cxt = NULL;
static List *tracked = NIL;
static bool callbacks_registered = false;


static void
forget_all(void)
{
	tracked = NIL;
	if (tracked_cxt != NULL)
		MemoryContextReset(tracked_cxt);
}

/* Queue the tracked rows inserted at level or deeper (they are rolled back). */
static void
queue_from_level(int level)
{
	List	   *keep = NIL;
	ListCell   *lc;
	MemoryContext old = MemoryContextSwitchTo(tracked_cxt);

	foreach(lc, tracked)
	{
		Tracked    *t = (Tracked *) lfirst(lc);

		if (t->level >= level)
			enqueue(&t->record);
		else
			keep = lappend(keep, t);
	}
	tracked = keep;
	MemoryContextSwitchTo(old);
}

static void
audit_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			forget_all();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (in_flight != NULL)
			{
				PcrExecRecord *r = in_flight;

				in_flight = NULL;
				r->finished_at = Max(GetCurrentTimestamp(), r->started_at);
				r->sqlerrcode = ClientConnectionLost ? ERRCODE_CONNECTION_FAILURE : ERRCODE_ADMIN_SHUTDOWN;
				enqueue(r);
			}
			queue_from_level(0);
			forget_all();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (tracked != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that ran paperclip.lease_execute()"),
						 errdetail("The command's effects are not transactional; its record must not depend on a later COMMIT PREPARED.")));
			break;
		default:
			break;
	}
}

static void
audit_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (tracked == NIL)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		queue_from_level(level);
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, tracked)
		{
			Tracked    *t = (Tracked *) lfirst(lc);

			if (t->level >= level)
				t->level = level - 1;
		}
	}
}

static void
register_callbacks(void)
{
	if (callbacks_registered)
		return;
	tracked_cxt = AllocSetContextCreate(TopMemoryContext, "paperclip lease executions",
										ALLOCSET_SMALL_SIZES);
	RegisterXactCallback(audit_xact_callback, NULL);
	RegisterSubXactCallback(audit_subxact_callback, NULL);
	callbacks_registered = true;
}

static void
track(const PcrExecRecord *r)
{
	MemoryContext old;
	Tracked    *t;

	register_callbacks();
	old = MemoryContextSwitchTo(tracked_cxt);
	t = palloc(sizeof(Tracked));
	t->record = *r;
	t->record.command = pstrdup(r->command);
	t->record.cwd = r->cwd ? pstrdup(r->cwd) : NULL;
	t->level = GetCurrentTransactionNestLevel();
	tracked = lappend(tracked, t);
	MemoryContextSwitchTo(old);
}

/* ------------------------------------------------------------------------
 * The INSERT (caller's transaction, and the reconciler's)
 * ------------------------------------------------------------------------ */
#define AUDIT_NCOLS 15

/*
 * The lease and the run are looked up again: a row queued after its
 * transaction aborted may name a lease that never committed (acquired in
 * that transaction) or that was deleted since; it keeps its company.
 */
static const char *const insert_sql =
"INSERT INTO paperclip.lease_executions AS x "
"  (id, company_id, lease_id, heartbeat_run_id, command, cwd, started_at, finished_at, "
"   exit_code, signal, timed_out, stdout_bytes, stderr_bytes, truncated, error_sqlstate) "
"SELECT $1, c.id, "
"       (SELECT l.id FROM paperclip.environment_leases AS l WHERE l.company_id = c.id AND l.id = $3), "
"       (SELECT r.id FROM paperclip.heartbeat_runs AS r WHERE r.company_id = c.id AND r.id = $4), "
"       $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 "
"  FROM paperclip.companies AS c WHERE c.id = $2 "
"ON CONFLICT (id) DO NOTHING";

static SPIPlanPtr insert_plan;
static Oid	insert_types[AUDIT_NCOLS] = {
	UUIDOID, UUIDOID, UUIDOID, UUIDOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
	INT4OID, TEXTOID, BOOLOID, INT8OID, INT8OID, BOOLOID, TEXTOID
};

static void
record_values(const PcrExecRecord *r, Datum *v, char *n)
{
	memset(n, ' ', AUDIT_NCOLS);
	v[0] = UUIDPGetDatum((pg_uuid_t *) &r->id);
	v[1] = UUIDPGetDatum((pg_uuid_t *) &r->company_id);
	v[2] = UUIDPGetDatum((pg_uuid_t *) &r->lease_id);
	v[3] = UUIDPGetDatum((pg_uuid_t *) &r->heartbeat_run_id);
	n[3] = r->has_run ? ' ' : 'n';
	v[4] = CStringGetTextDatum(r->command);
	v[5] = r->cwd ? CStringGetTextDatum(r->cwd) : (Datum) 0;
	n[5] = r->cwd ? ' ' : 'n';
	v[6] = TimestampTzGetDatum(r->started_at);
	v[7] = TimestampTzGetDatum(r->finished_at);
	v[8] = Int32GetDatum(r->exit_code);
	n[8] = (r->completed && r->exited && !r->timed_out) ? ' ' : 'n';
	v[9] = r->signal ? CStringGetTextDatum(r->signal) : (Datum) 0;
	n[9] = r->signal ? ' ' : 'n';
	v[10] = BoolGetDatum(r->timed_out);
	v[11] = Int64GetDatum(r->stdout_bytes);
	v[12] = Int64GetDatum(r->stderr_bytes);
	n[11] = n[12] = r->completed ? ' ' : 'n';
	v[13] = BoolGetDatum(r->truncated);
	v[14] = r->sqlerrcode ? CStringGetTextDatum(unpack_sql_state(r->sqlerrcode)) : (Datum) 0;
	n[14] = r->sqlerrcode ? ' ' : 'n';
}

static void
insert_row(const PcrExecRecord *r)
{
	Datum		values[AUDIT_NCOLS];
	char		nulls[AUDIT_NCOLS];

	record_values(r, values, nulls);
	SPI_connect();
	if (PcrRunKeptPlan(&insert_plan, insert_sql, AUDIT_NCOLS, insert_types, values, nulls, false, 0)
		!= SPI_OK_INSERT)
		elog(ERROR, "could not record the execution");
	SPI_finish();
}

void
PcrExecRecordInsert(const PcrExecRecord *r)
{
	in_flight = NULL;
	insert_row(r);
	track(r);
}

/* ------------------------------------------------------------------------
 * The reconciler's side: paperclip.lease_executions_backlog(skip, n)
 * ------------------------------------------------------------------------ */
static bool taken_callback_registered = false;

/* Free what this process took when its transaction commits; give it back when it aborts. */
static void
taken_xact_callback(XactEvent event, void *arg)
{
	AuditState	to;

	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
		to = AUDIT_FREE;
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		to = AUDIT_QUEUED;
	else
		return;
	SpinLockAcquire(&queue->mutex);
	for (int i = 0; i < PCR_AUDIT_QUEUE_LEN; i++)
		if (queue->entries[i].state == AUDIT_TAKEN && queue->entries[i].taken_by == MyProcPid)
		{
			queue->entries[i].state = to;
			queue->entries[i].taken_by = 0;
		}
	SpinLockRelease(&queue->mutex);
}

/* Entries taken by processes that are gone go back to the queue. */
static void
reclaim_stale(void)
{
	pid_t		pids[PCR_AUDIT_QUEUE_LEN];
	int			n = 0;

	SpinLockAcquire(&queue->mutex);
	for (int i = 0; i < PCR_AUDIT_QUEUE_LEN; i++)
		if (queue->entries[i].state == AUDIT_TAKEN && queue->entries[i].taken_by != MyProcPid)
			pids[n++] = queue->entries[i].taken_by;
	SpinLockRelease(&queue->mutex);
	for (int k = 0; k < n; k++)
	{
		if (BackendPidGetProc(pids[k]) != NULL || AuxiliaryPidGetProc(pids[k]) != NULL)
			continue;
		SpinLockAcquire(&queue->mutex);
		for (int i = 0; i < PCR_AUDIT_QUEUE_LEN; i++)
			if (queue->entries[i].state == AUDIT_TAKEN && queue->entries[i].taken_by == pids[k])
			{
				queue->entries[i].state = AUDIT_QUEUED;
				queue->entries[i].taken_by = 0;
			}
		SpinLockRelease(&queue->mutex);
	}
}

static bool
skipped(const pg_uuid_t *id, Datum *skip, int nskip)
{
	for (int i = 0; i < nskip; i++)
		if (memcmp(DatumGetUUIDP(skip[i])->data, id->data, UUID_LEN) == 0)
			return true;
	return false;
}

/* The entry as a row of the function's result type (paperclip.lease_executions). */
static void
put_entry(ReturnSetInfo *rsinfo, const AuditEntry *e)
{
	TupleDesc	desc = rsinfo->setDesc;
	Datum	   *values = palloc0(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	PcrExecRecord r;
	Datum		v[AUDIT_NCOLS];
	char		n[AUDIT_NCOLS];
	static const char *const cols[AUDIT_NCOLS] = {
		"id", "company_id", "lease_id", "heartbeat_run_id", "command", "cwd", "started_at",
		"finished_at", "exit_code", "signal", "timed_out", "stdout_bytes", "stderr_bytes",
		"truncated", "error_sqlstate"
	};

	memset(&r, 0, sizeof(r));
	r.id = e->id;
	r.company_id = e->company_id;
	r.lease_id = e->lease_id;
	r.has_run = e->has_run;
	r.heartbeat_run_id = e->heartbeat_run_id;
	r.command = e->command;
	r.cwd = e->has_cwd ? e->cwd : NULL;
	r.started_at = e->started_at;
	r.finished_at = e->finished_at;
	r.completed = e->completed;
	r.exited = e->exited;
	r.exit_code = e->exit_code;
	r.signal = e->signal[0] ? e->signal : NULL;
	r.timed_out = e->timed_out;
	r.stdout_bytes = e->stdout_bytes;
	r.stderr_bytes = e->stderr_bytes;
	r.truncated = e->truncated;
	r.sqlerrcode = e->sqlstate[0] ? MAKE_SQLSTATE(e->sqlstate[0], e->sqlstate[1], e->sqlstate[2],
												  e->sqlstate[3], e->sqlstate[4]) : 0;
	record_values(&r, v, n);

	memset(nulls, true, sizeof(bool) * desc->natts);
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (att->attisdropped)
			continue;
		for (int c = 0; c < AUDIT_NCOLS; c++)
			if (strcmp(NameStr(att->attname), cols[c]) == 0)
			{
				values[a] = v[c];
				nulls[a] = n[c] == 'n';
			}
	}
	tuplestore_putvalues(rsinfo->setResult, desc, values, nulls);
}

Datum
pcr_lease_executions_backlog(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArrayType  *skip_arr = PG_GETARG_ARRAYTYPE_P(0);
	int			limit = PG_GETARG_INT32(1);
	Datum	   *skip;
	int			nskip;
	AuditEntry *taken;
	int			ntaken = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (queue == NULL || limit <= 0)
		return (Datum) 0;
	deconstruct_array(skip_arr, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR, &skip, NULL, &nskip);
	if (!taken_callback_registered)
	{
		RegisterXactCallback(taken_xact_callback, NULL);
		taken_callback_registered = true;
	}
	reclaim_stale();

	taken = palloc(sizeof(AuditEntry) * Min(limit, PCR_AUDIT_QUEUE_LEN));
	SpinLockAcquire(&queue->mutex);
	for (int i = 0; i < PCR_AUDIT_QUEUE_LEN && ntaken < limit; i++)
	{
		AuditEntry *e = &queue->entries[i];

		if (e->state != AUDIT_QUEUED || e->dbid != MyDatabaseId || skipped(&e->id, skip, nskip))
			continue;
		e->state = AUDIT_TAKEN;
		e->taken_by = MyProcPid;
		memcpy(&taken[ntaken++], e, sizeof(AuditEntry));
	}
	SpinLockRelease(&queue->mutex);

	for (int i = 0; i < ntaken; i++)
		put_entry(rsinfo, &taken[i]);
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * The reconciler step
 * ------------------------------------------------------------------------ */
static SPIPlanPtr step_insert_plan;

static Datum
row_value(HeapTuple row, TupleDesc desc, const char *column, bool *isnull)
{
	int			col = SPI_fnumber(desc, column);

	if (col <= 0)
		elog(ERROR, "column \"%s\" is missing", column);
	return SPI_getbinval(row, desc, col, isnull);
}

static PcrRowOutcome
record_backlog_row(HeapTuple row, TupleDesc desc)
{
	static const char *const cols[AUDIT_NCOLS] = {
		"id", "company_id", "lease_id", "heartbeat_run_id", "command", "cwd", "started_at",
		"finished_at", "exit_code", "signal", "timed_out", "stdout_bytes", "stderr_bytes",
		"truncated", "error_sqlstate"
	};
	Datum		values[AUDIT_NCOLS];
	char		nulls[AUDIT_NCOLS];
	bool		isnull;

	for (int c = 0; c < AUDIT_NCOLS; c++)
	{
		values[c] = row_value(row, desc, cols[c], &isnull);
		nulls[c] = isnull ? 'n' : ' ';
	}
	if (PcrReconcilerExecute(&step_insert_plan, insert_sql, AUDIT_NCOLS, insert_types, values, nulls)
		!= SPI_OK_INSERT)
		elog(ERROR, "could not record the execution");
	return PCR_ROW_NOTHING;
}

static const PcrReconcileStep record_aborted_executions = {
	.name = "record executions whose transaction aborted",
	.select_sql = "SELECT * FROM paperclip.lease_executions_backlog($1, $2)",
	.process_row = record_backlog_row,
};

void
PcrExecAuditInit(bool preloading)
{
	if (preloading)
		PcrReconcilerAddStep(&record_aborted_executions);
}
