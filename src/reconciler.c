/*
 * reconciler.c — the reconciler worker: registration, shared state, wake-up
 *
 * A static background worker ("paperclip reconciler"), registered while
 * shared_preload_libraries is processed, started once recovery has finished
 * and restarted by the postmaster whenever it exits.  It connects to
 * paperclip.database and runs a pass (reconcile_pass.c) at start-up — the
 * sweep of what a crash or restart left behind — then whenever
 * paperclip.reconcile_interval has passed or a committed transaction asked
 * for it (PcrReconcilerWakeAtCommit).  While the extension is absent from
 * that database, or being created or dropped, a pass finds nothing to do and
 * the worker idles.
 *
 * Every wait is a WaitLatch with WL_EXIT_ON_PM_DEATH followed by
 * CHECK_FOR_INTERRUPTS, so SIGTERM (also pg_terminate_backend), SIGHUP and
 * procsignal barriers (DROP DATABASE) are served within a wait.
 *
 * Shared memory holds only plain data: the worker's latch pointer, a wake-up
 * flag and what the last passes did, read by paperclip.reconciler_status().
 */
#include "pcr.h"
#include "reconciler.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(pcr_reconciler_status);
PG_FUNCTION_INFO_V1(pcr_reconciler_wake);

/* woken passes are at least this far apart (a burst of releases is one pass) */
#define PCR_WAKE_MIN_GAP_MS 1000

#define PCR_RECONCILER_NAME "paperclip reconciler"

/* longest wait on a lock held by someone else (lock_timeout of the worker) */
#define PCR_RECONCILER_LOCK_TIMEOUT_MS 1000

/* seconds the postmaster waits before starting the worker again */
#define PCR_RECONCILER_RESTART_SECONDS 1
/* longest wait before reconnecting after failed connection attempts */
#define PCR_RECONCILER_MAX_CONNECT_BACKOFF_MS (30 * 1000)
/* how often a worker waiting for paperclip.database looks for it */
#define PCR_RECONCILER_DATABASE_POLL_MS 500

typedef enum PcrReconcilerState
{
	PCR_STATE_STOPPED,
	PCR_STATE_CONNECTING,
	PCR_STATE_WAITING_FOR_DATABASE,
	PCR_STATE_WAITING_FOR_EXTENSION,
	PCR_STATE_IDLE,
	PCR_STATE_RECONCILING
} PcrReconcilerState;

static const char *const state_names[] = {
	[PCR_STATE_STOPPED] = "stopped",
	[PCR_STATE_CONNECTING] = "connecting",
	[PCR_STATE_WAITING_FOR_DATABASE] = "waiting for database",
	[PCR_STATE_WAITING_FOR_EXTENSION] = "waiting for extension",
	[PCR_STATE_IDLE] = "idle",
	[PCR_STATE_RECONCILING] = "reconciling",
};

typedef struct PcrReconcilerShared
{
	slock_t		mutex;
	pid_t		pid;			/* 0 when not running */
	Latch	   *latch;			/* the worker's process latch, or NULL */
	bool		wake_requested;
	PcrReconcilerState state;
	int			connect_failures;	/* attempts since the last connection */
	bool		database_missing;	/* the last attempt found no paperclip.database */
	TimestampTz started_at;
	int64		passes;
	TimestampTz last_pass_started_at;
	TimestampTz last_pass_finished_at;
	PcrPassCounts last;
	PcrPassCounts total;
	TimestampTz last_error_at;
	char		last_error[PCR_RECONCILER_ERROR_LEN];
} PcrReconcilerShared;

static PcrReconcilerShared *shared = NULL;

static bool wake_at_commit = false;
static bool am_reconciler = false;	/* true in the reconciler worker itself */
static bool xact_callback_registered = false;

/* ------------------------------------------------------------------------
 * Registration and shared memory
 * ------------------------------------------------------------------------ */
void
PcrReconcilerShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(PcrReconcilerShared)));
}

/* init.c's startup hook, under AddinShmemInitLock */
void
PcrReconcilerShmemStartup(void)
{
	bool		found;

	shared = ShmemInitStruct("paperclip reconciler", sizeof(PcrReconcilerShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(PcrReconcilerShared));
		SpinLockInit(&shared->mutex);
		shared->state = PCR_STATE_STOPPED;
	}
}

void
PcrReconcilerInit(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = PCR_RECONCILER_RESTART_SECONDS;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "paperclip_runtime");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "PcrReconcilerMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, PCR_RECONCILER_NAME);
	snprintf(worker.bgw_type, BGW_MAXLEN, PCR_RECONCILER_NAME);
	RegisterBackgroundWorker(&worker);
	PcrRetentionInit();
}

/* ------------------------------------------------------------------------
 * Wake-up
 * ------------------------------------------------------------------------ */
void
PcrReconcilerWake(void)
{
	Latch	   *latch;

	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	shared->wake_requested = true;
	latch = shared->latch;
	SpinLockRelease(&shared->mutex);
	if (latch != NULL)
		SetLatch(latch);
}

static void
reconciler_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
			{
				wake_at_commit = false;
				PcrReconcilerWake();
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* rolled back, or committed later by COMMIT PREPARED: the timer catches it */
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

void
PcrReconcilerWakeAtCommit(void)
{
	/* not preloaded, or the reconciler's own changes (it needs no reminder) */
	if (shared == NULL || am_reconciler)
		return;
	if (!xact_callback_registered)
	{
		RegisterXactCallback(reconciler_xact_callback, NULL);
		xact_callback_registered = true;
	}
	wake_at_commit = true;
}

/* ------------------------------------------------------------------------
 * The worker
 * ------------------------------------------------------------------------ */
static void
set_state(PcrReconcilerState state)
{
	SpinLockAcquire(&shared->mutex);
	shared->state = state;
	SpinLockRelease(&shared->mutex);
}

static void
reconciler_detach(int code, Datum arg)
{
	SpinLockAcquire(&shared->mutex);
	shared->pid = 0;
	shared->latch = NULL;
	shared->state = PCR_STATE_STOPPED;
	SpinLockRelease(&shared->mutex);
}

/* Sleep on the latch for ms milliseconds, serving interrupts. */
static void
reconciler_sleep(long ms, uint32 wait_event)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (left <= 0)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left, wait_event);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * A missing paperclip.database is an expected state (it is created after the
 * server starts), not an error worth a FATAL line per attempt.  A process can
 * connect to one database once, so waiting for it takes two incarnations of
 * the worker: the attempt that finds no database keeps its FATAL out of the
 * log (an emit_log_hook, in this process only) and notes it in shared memory;
 * the next incarnation connects to no database, looks the name up in
 * pg_database every PCR_RECONCILER_DATABASE_POLL_MS ("waiting for database"),
 * and exits once it exists, so that the one after connects to it.  Other
 * failures stay FATAL, logged, with exponential backoff across restarts.
 */
static emit_log_hook_type prev_emit_log_hook = NULL;

static void
reconciler_quiet_missing_database(ErrorData *edata)
{
	if (edata->elevel == FATAL && edata->sqlerrcode == ERRCODE_UNDEFINED_DATABASE)
	{
		edata->output_to_server = false;
		SpinLockAcquire(&shared->mutex);
		shared->database_missing = true;
		SpinLockRelease(&shared->mutex);
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

static void
reconciler_wait_for_database(uint32 wait_event)
{
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname(PCR_RECONCILER_NAME);
	for (;;)
	{
		bool		exists;

		CHECK_FOR_INTERRUPTS();
		StartTransactionCommand();
		exists = OidIsValid(get_database_oid(pcr_database, true));
		CommitTransactionCommand();
		if (exists)
			break;
		reconciler_sleep(PCR_RECONCILER_DATABASE_POLL_MS, wait_event);
	}
	SpinLockAcquire(&shared->mutex);
	shared->database_missing = false;
	shared->connect_failures = 0;
	SpinLockRelease(&shared->mutex);
	ereport(DEBUG1,
			(errmsg("paperclip reconciler: database \"%s\" exists now, reconnecting", pcr_database)));
	proc_exit(1);				/* the postmaster starts the worker again */
}

/* Connect to paperclip.database (or wait for it, see above). */
static void
reconciler_connect(uint32 wait_event)
{
	int			failures;
	bool		missing;

	SpinLockAcquire(&shared->mutex);
	missing = shared->database_missing;
	failures = missing ? 0 : shared->connect_failures++;
	shared->pid = MyProcPid;
	shared->state = missing ? PCR_STATE_WAITING_FOR_DATABASE : PCR_STATE_CONNECTING;
	SpinLockRelease(&shared->mutex);

	if (missing)
		reconciler_wait_for_database(wait_event);	/* does not return */
	if (failures > 0)
		reconciler_sleep(Min((long) 1000 << Min(failures - 1, 5),
							 PCR_RECONCILER_MAX_CONNECT_BACKOFF_MS), wait_event);

	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = reconciler_quiet_missing_database;
	BackgroundWorkerInitializeConnection(pcr_database, NULL, 0);
	emit_log_hook = prev_emit_log_hook;

	SpinLockAcquire(&shared->mutex);
	shared->connect_failures = 0;
	SpinLockRelease(&shared->mutex);
}

static void
add_counts(PcrPassCounts *total, const PcrPassCounts *pass)
{
	total->expired += pass->expired;
	total->released += pass->released;
	total->cleanups_succeeded += pass->cleanups_succeeded;
	total->cleanup_attempts_failed += pass->cleanup_attempts_failed;
	total->cleanups_given_up += pass->cleanups_given_up;
	total->objects_destroyed += pass->objects_destroyed;
	total->history_deleted += pass->history_deleted;
	total->errors += pass->errors;
}

/* Run one pass and publish what it did; false when the extension is absent. */
static bool
reconciler_pass(MemoryContext passcxt, bool sweep)
{
	PcrPassCounts counts;
	char		last_error[PCR_RECONCILER_ERROR_LEN];
	TimestampTz started = GetCurrentTimestamp();
	PcrPassResult result;
	MemoryContext old;

	set_state(PCR_STATE_RECONCILING);
	pgstat_report_activity(STATE_RUNNING, sweep ? "start-up sweep" : "reconcile pass");

	MemoryContextReset(passcxt);
	old = MemoryContextSwitchTo(passcxt);
	result = PcrReconcilePass(&counts, last_error);
	MemoryContextSwitchTo(old);

	pgstat_report_activity(STATE_IDLE, NULL);
	pgstat_report_stat(true);

	SpinLockAcquire(&shared->mutex);
	if (result == PCR_PASS_DONE)
	{
		shared->passes++;
		shared->last_pass_started_at = started;
		shared->last_pass_finished_at = GetCurrentTimestamp();
		shared->last = counts;
		add_counts(&shared->total, &counts);
		if (last_error[0] != '\0')
		{
			shared->last_error_at = shared->last_pass_finished_at;
			strlcpy(shared->last_error, last_error, PCR_RECONCILER_ERROR_LEN);
		}
	}
	shared->state = result == PCR_PASS_DONE ? PCR_STATE_IDLE : PCR_STATE_WAITING_FOR_EXTENSION;
	SpinLockRelease(&shared->mutex);

	if (result != PCR_PASS_DONE)
		return false;
	if (counts.expired + counts.released + counts.cleanups_succeeded +
		counts.cleanups_given_up + counts.objects_destroyed + counts.history_deleted +
		counts.errors > 0 || sweep)
		ereport(LOG,
				(errmsg("paperclip reconciler: %s expired " INT64_FORMAT ", released " INT64_FORMAT
						" leases; cleaned up " INT64_FORMAT ", gave up on " INT64_FORMAT
						"; destroyed " INT64_FORMAT " sandboxes without a lease; deleted " INT64_FORMAT
						" history rows; " INT64_FORMAT " errors",
						sweep ? "start-up sweep" : "pass",
						counts.expired, counts.released, counts.cleanups_succeeded,
						counts.cleanups_given_up, counts.objects_destroyed, counts.history_deleted,
						counts.errors)));
	return true;
}

void
PcrReconcilerMain(Datum main_arg)
{
	uint32		wait_event;
	MemoryContext workercxt;
	MemoryContext passcxt;
	bool		swept = false;
	TimestampTz next_pass;
	TimestampTz last_pass_end = 0;
	bool		wake_pending = false;

	am_reconciler = true;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (shared == NULL)
		elog(FATAL, "paperclip reconciler started without its shared memory");

	wait_event = PcrWaitEventExtension();
	on_shmem_exit(reconciler_detach, (Datum) 0);
	reconciler_connect(wait_event);
	pgstat_report_appname(PCR_RECONCILER_NAME);

	/*
	 * A pass whose commits a crash loses is simply done again by the
	 * start-up sweep (every step is idempotent, and a driver's cleanup must
	 * be anyway: a crash can fall between its side effect and the commit
	 * that records it), so the worker does not wait for WAL flushes.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * Never wait long on someone else's lock: rows are selected SKIP LOCKED,
	 * and a table lock (DDL, LOCK TABLE) makes that batch fail after
	 * PCR_RECONCILER_LOCK_TIMEOUT_MS, the step is given up for this pass and
	 * the next step goes on, so a lock on one table or row never stops the
	 * expiry of anyone else's leases.
	 */
	SetConfigOption("lock_timeout", CppAsString2(PCR_RECONCILER_LOCK_TIMEOUT_MS), PGC_SUSET, PGC_S_OVERRIDE);

	workercxt = AllocSetContextCreate(TopMemoryContext, "paperclip reconciler",
									  ALLOCSET_DEFAULT_SIZES);
	passcxt = AllocSetContextCreate(workercxt, "paperclip reconciler pass",
									ALLOCSET_DEFAULT_SIZES);

	SpinLockAcquire(&shared->mutex);
	shared->latch = MyLatch;
	shared->started_at = GetCurrentTimestamp();
	shared->wake_requested = false;
	SpinLockRelease(&shared->mutex);

	ereport(LOG,
			(errmsg("paperclip reconciler started on database \"%s\"", pcr_database)));

	/* the first pass, at once: the start-up sweep */
	next_pass = GetCurrentTimestamp();
	for (;;)
	{
		bool		woken;
		long		timeout;
		TimestampTz now;
		TimestampTz wake_due;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		SpinLockAcquire(&shared->mutex);
		woken = shared->wake_requested;
		shared->wake_requested = false;
		SpinLockRelease(&shared->mutex);
		if (woken)
			wake_pending = true;

		/*
		 * Every committed release wakes us; a burst of them is served by one
		 * pass at most every PCR_WAKE_MIN_GAP_MS, not by back-to-back passes.
		 */
		now = GetCurrentTimestamp();
		wake_due = TimestampTzPlusMilliseconds(last_pass_end, PCR_WAKE_MIN_GAP_MS);
		if ((wake_pending && now >= wake_due) || now >= next_pass)
		{
			/* the sweep is the first pass that finds the extension */
			if (reconciler_pass(passcxt, !swept))
				swept = true;
			wake_pending = false;
			last_pass_end = GetCurrentTimestamp();
			next_pass = TimestampTzPlusMilliseconds(last_pass_end, pcr_reconcile_interval);
			wake_due = TimestampTzPlusMilliseconds(last_pass_end, PCR_WAKE_MIN_GAP_MS);
		}

		timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
												  wake_pending ? Min(next_pass, wake_due) : next_pass);
		if (timeout > 0)
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 timeout, wait_event);
		ResetLatch(MyLatch);
	}
}

/* ------------------------------------------------------------------------
 * SQL: paperclip.reconciler_status(), paperclip.reconciler_wake()
 * ------------------------------------------------------------------------ */
#define STATUS_COLUMNS 22
/* last_pass_leases_expired and every column after it */
#define FIRST_COUNT_COLUMN 8

static void
put_counts(Datum *values, int *i, const PcrPassCounts *c)
{
	values[(*i)++] = Int64GetDatum(c->expired);
	values[(*i)++] = Int64GetDatum(c->released);
	values[(*i)++] = Int64GetDatum(c->cleanups_succeeded);
	values[(*i)++] = Int64GetDatum(c->cleanup_attempts_failed);
	values[(*i)++] = Int64GetDatum(c->cleanups_given_up);
	values[(*i)++] = Int64GetDatum(c->errors);
}

static void
put_time(Datum *values, bool *nulls, int *i, TimestampTz t)
{
	nulls[*i] = t == 0;
	values[(*i)++] = TimestampTzGetDatum(t);
}

Datum
pcr_reconciler_status(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[STATUS_COLUMNS];
	bool		nulls[STATUS_COLUMNS];
	PcrReconcilerShared snap;
	int			i = 0;
	bool		hide_counts = false;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "paperclip.reconciler_status must return a row type");
	if (desc->natts != STATUS_COLUMNS)
		elog(ERROR, "paperclip.reconciler_status returns %d columns, the library %d",
			 desc->natts, STATUS_COLUMNS);
	desc = BlessTupleDesc(desc);
	memset(nulls, 0, sizeof(nulls));

	if (shared == NULL)
	{
		/* not preloaded: no worker, nothing to report but that */
		memset(nulls, true, sizeof(nulls));
		nulls[0] = false;
		values[0] = CStringGetTextDatum("not loaded");
		nulls[2] = false;
		values[2] = CStringGetTextDatum(pcr_database);
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
	}

	SpinLockAcquire(&shared->mutex);
	memcpy(&snap, shared, sizeof(snap));
	SpinLockRelease(&shared->mutex);

	/*
	 * The counts and the last error are about every company's leases: like
	 * other sessions' queries in pg_stat_activity, they are shown only to
	 * roles with the privileges of pg_read_all_stats (and superusers); the
	 * others see whether the reconciler is alive and passing, not what it did.
	 */
	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS))
		hide_counts = true;

	values[i++] = CStringGetTextDatum(state_names[snap.state]);
	nulls[i] = snap.pid == 0;
	values[i++] = Int32GetDatum((int32) snap.pid);
	values[i++] = CStringGetTextDatum(pcr_database);
	values[i++] = Int32GetDatum(snap.connect_failures);
	put_time(values, nulls, &i, snap.pid == 0 ? 0 : snap.started_at);
	values[i++] = Int64GetDatum(snap.passes);
	put_time(values, nulls, &i, snap.last_pass_started_at);
	put_time(values, nulls, &i, snap.last_pass_finished_at);
	put_counts(values, &i, &snap.last);
	put_counts(values, &i, &snap.total);
	put_time(values, nulls, &i, snap.last_error_at);
	nulls[i] = snap.last_error[0] == '\0';
	values[i++] = CStringGetTextDatum(snap.last_error);
	Assert(i == STATUS_COLUMNS);
	if (hide_counts)
		for (int c = FIRST_COUNT_COLUMN; c < STATUS_COLUMNS; c++)
			nulls[c] = true;

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * Ask for a pass when the calling transaction commits (so that, called from
 * the install script, the pass sees the new extension); true when a worker
 * is running to do it.
 */
Datum
pcr_reconciler_wake(PG_FUNCTION_ARGS)
{
	bool		running;

	if (shared == NULL)
		PG_RETURN_BOOL(false);
	SpinLockAcquire(&shared->mutex);
	running = shared->latch != NULL;
	SpinLockRelease(&shared->mutex);
	PcrReconcilerWakeAtCommit();
	PG_RETURN_BOOL(running);
}
