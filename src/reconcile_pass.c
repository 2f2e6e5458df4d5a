/*
 * reconcile_pass.c — one pass of the reconciler: steps, batches, rows
 *
 * Each batch of a step is one short transaction that first makes sure the
 * extension is there and not being dropped (a share lock on it, taken
 * without waiting), then handles rows (FOR UPDATE SKIP LOCKED: a row a
 * client holds is left for the next pass): a batch of PCR_SET_BATCH_SIZE all
 * at once in one subtransaction when the step can, else (or when that
 * raised) a batch of PCR_ROW_BATCH_SIZE selected, each row in a
 * subtransaction of its own.  A row that raises is rolled back alone,
 * logged, counted and skipped for the rest of the pass; a batch that fails
 * as a whole ends its step for this pass.  Nothing here can stop the worker
 * but FATAL.
 */
#include "pcr.h"
#include "spi_util.h"
#include "reconciler.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#define PCR_EXTENSION_NAME "paperclip_runtime"
/*
 * Rows per transaction handled row by row.  Each row that changes gets a
 * subtransaction id, and past 64 of them in one transaction
 * (PGPROC_MAX_CACHED_SUBXIDS) every other session's snapshots overflow to
 * pg_subtrans lookups: stay below.
 */
#define PCR_ROW_BATCH_SIZE 50
/*
 * Rows per transaction handled at once (one subtransaction): large enough
 * that a transaction's fixed cost is small next to its rows', small enough
 * that the row locks it holds are short (a few milliseconds).
 */
#define PCR_SET_BATCH_SIZE 1000

/* ------------------------------------------------------------------------
 * The steps of a pass: the built-in ones, then those added by others
 * ------------------------------------------------------------------------ */
static const PcrReconcileStep *steps[PCR_RECONCILER_MAX_STEPS] = {
	&pcr_step_release_finished_runs,
	&pcr_step_expire,
	&pcr_step_cleanup,
};
static int	nsteps = 3;
static SPIPlanPtr step_plans[PCR_RECONCILER_MAX_STEPS];

void
PcrReconcilerAddStep(const PcrReconcileStep *step)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("reconciler steps can only be added while shared_preload_libraries is processed")));
	if (step == NULL || step->name == NULL || step->select_sql == NULL || step->process_row == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reconciler step is incomplete")));
	if (nsteps >= PCR_RECONCILER_MAX_STEPS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many reconciler steps (at most %d)", PCR_RECONCILER_MAX_STEPS)));
	steps[nsteps++] = step;
}

int
PcrReconcilerExecute(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes,
					 Datum *values, const char *nulls)
{
	return PcrRunKeptPlan(plan, sql, nargs, argtypes, values, nulls, false, 0);
}

/* ------------------------------------------------------------------------
 * Column helpers for process_row
 * ------------------------------------------------------------------------ */
static Datum
row_datum(HeapTuple row, TupleDesc desc, const char *column, bool *isnull)
{
	int			att = SPI_fnumber(desc, column);

	if (att <= 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return SPI_getbinval(row, desc, att, isnull);
}

char *
PcrRowText(HeapTuple row, TupleDesc desc, const char *column)
{
	bool		isnull;
	Datum		d = row_datum(row, desc, column, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

Jsonb *
PcrRowJsonb(HeapTuple row, TupleDesc desc, const char *column)
{
	bool		isnull;
	Datum		d = row_datum(row, desc, column, &isnull);

	return isnull ? NULL : DatumGetJsonbPCopy(d);
}

pg_uuid_t *
PcrRowUuid(HeapTuple row, TupleDesc desc, const char *column)
{
	bool		isnull;
	Datum		d = row_datum(row, desc, column, &isnull);
	pg_uuid_t  *copy;

	if (isnull)
		return NULL;
	copy = palloc(sizeof(pg_uuid_t));
	memcpy(copy, DatumGetUUIDP(d), sizeof(pg_uuid_t));
	return copy;
}

int
PcrRowInt(HeapTuple row, TupleDesc desc, const char *column, int dflt)
{
	bool		isnull;
	Datum		d = row_datum(row, desc, column, &isnull);

	return isnull ? dflt : DatumGetInt32(d);
}

/* ------------------------------------------------------------------------
 * A pass
 * ------------------------------------------------------------------------ */

/* Rows that raised in this pass: never selected again before the next one. */
typedef struct PcrSkipList
{
	Datum	   *ids;			/* pg_uuid_t pointers, in the pass context */
	int			n;
	int			size;
} PcrSkipList;

typedef struct PcrPass
{
	MemoryContext cxt;			/* lives as long as the pass */
	PcrSkipList skip;
	PcrPassCounts *counts;
	char	   *last_error;
} PcrPass;

typedef enum PcrBatchResult
{
	BATCH_PARTIAL,				/* fewer rows than a batch: the step is done */
	BATCH_FULL,					/* a full batch: there may be more */
	BATCH_FAILED,				/* the batch as a whole failed */
	BATCH_NO_EXTENSION
} PcrBatchResult;

static void
skip_add(PcrPass *pass, pg_uuid_t *id)
{
	MemoryContext old = MemoryContextSwitchTo(pass->cxt);
	pg_uuid_t  *copy = palloc(sizeof(pg_uuid_t));

	memcpy(copy, id, sizeof(pg_uuid_t));
	if (pass->skip.n == pass->skip.size)
	{
		pass->skip.size = pass->skip.size == 0 ? 16 : pass->skip.size * 2;
		pass->skip.ids = pass->skip.ids == NULL
			? palloc(sizeof(Datum) * pass->skip.size)
			: repalloc(pass->skip.ids, sizeof(Datum) * pass->skip.size);
	}
	pass->skip.ids[pass->skip.n++] = UUIDPGetDatum(copy);
	MemoryContextSwitchTo(old);
}

static Datum
skip_array(PcrPass *pass)
{
	if (pass->skip.n == 0)
		return PointerGetDatum(construct_empty_array(UUIDOID));
	return PointerGetDatum(construct_array(pass->skip.ids, pass->skip.n, UUIDOID,
										   UUID_LEN, false, TYPALIGN_CHAR));
}

/*
 * Log an error that the pass survived and remember it; the message is the
 * error's own (never the SQL of a statement, never a detail with row data).
 */
static void
pass_error(PcrPass *pass, const PcrReconcileStep *step, pg_uuid_t *row_id, ErrorData *edata)
{
	char	   *what = row_id
		? psprintf("step \"%s\" skipped row %s", step->name,
				   DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(row_id))))
		: psprintf("step \"%s\" failed", step->name);

	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("paperclip reconciler: %s", what),
			 errdetail_internal("%s", edata->message ? edata->message : "no message")));
	snprintf(pass->last_error, PCR_RECONCILER_ERROR_LEN, "%s: %s", what,
			 edata->message ? edata->message : "no message");
	pass->counts->errors++;
}

static void
count_outcome(PcrPassCounts *c, PcrRowOutcome outcome)
{
	switch (outcome)
	{
		case PCR_ROW_NOTHING:
			break;
		case PCR_ROW_EXPIRED:
			c->expired++;
			break;
		case PCR_ROW_RELEASED:
			c->released++;
			break;
		case PCR_ROW_CLEANED:
			c->cleanups_succeeded++;
			break;
		case PCR_ROW_CLEANUP_RETRY:
			c->cleanup_attempts_failed++;
			break;
		case PCR_ROW_CLEANUP_FAILED:
			c->cleanup_attempts_failed++;
			c->cleanups_given_up++;
			break;
		case PCR_ROW_DELETED:
			c->history_deleted++;
			break;
	}
}

/*
 * Is the extension installed, and not being dropped?  DROP EXTENSION holds
 * an exclusive lock on the extension while it drops its tables: the share
 * lock taken here without waiting either fails (being dropped: idle) or
 * keeps the drop waiting until this short transaction ends.
 */
static bool
extension_ready(void)
{
	Oid			ext = get_extension_oid(PCR_EXTENSION_NAME, true);

	if (!OidIsValid(ext))
		return false;
	if (!ConditionalLockDatabaseObject(ExtensionRelationId, ext, 0, AccessShareLock))
		return false;
	AcceptInvalidationMessages();
	return get_extension_oid(PCR_EXTENSION_NAME, true) == ext;
}

/* Run process_row in a subtransaction: an error rolls back this row alone. */
static PcrRowOutcome
process_row_guarded(PcrPass *pass, const PcrReconcileStep *step, HeapTuple row, TupleDesc desc)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile PcrRowOutcome outcome = PCR_ROW_NOTHING;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		outcome = step->process_row(row, desc);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		pg_uuid_t  *id;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;

		/* a row without an id cannot be skipped: then fail the whole batch */
		id = PcrRowUuid(row, desc, "id");
		if (id == NULL)
			ReThrowError(edata);
		skip_add(pass, id);
		pass_error(pass, step, id, edata);
		FreeErrorData(edata);
		outcome = PCR_ROW_NOTHING;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return outcome;
}

/*
 * Try the step's process_batch in one subtransaction; false (and nothing
 * changed) when it raised, or the step has none.  *full: the batch was full
 * and changed something, so there may be more.
 */
static bool
process_batch_guarded(PcrPass *pass, const PcrReconcileStep *step, PcrPassCounts *batch,
					  bool *full)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool done = false;
	volatile uint64 selected = 0;
	volatile uint64 changed = 0;

	if (step->process_batch == NULL)
		return false;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		uint64		n = 0;

		selected = step->process_batch(step, skip_array(pass), PCR_SET_BATCH_SIZE, &n);
		changed = n;
		ReleaseCurrentSubTransaction();
		done = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ereport(DEBUG1,
				(errmsg_internal("paperclip reconciler: step \"%s\" goes row by row: %s",
								 step->name, edata->message)));
		FreeErrorData(edata);
		changed = 0;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;

	for (uint64 i = 0; i < changed; i++)
		count_outcome(batch, step->batch_outcome);
	*full = selected >= PCR_SET_BATCH_SIZE && changed > 0;
	return done;
}

/* Select a batch and handle each row in a subtransaction of its own. */
static void
process_rows(PcrPass *pass, int stepno, PcrPassCounts *batch, bool *full)
{
	const PcrReconcileStep *step = steps[stepno];
	Oid			argtypes[2] = {UUIDARRAYOID, INT4OID};
	Datum		values[2];
	SPITupleTable *rows;
	uint64		nrows;
	int			rc;

	values[0] = skip_array(pass);
	values[1] = Int32GetDatum(PCR_ROW_BATCH_SIZE);
	rc = PcrReconcilerExecute(&step_plans[stepno], step->select_sql, 2, argtypes, values, NULL);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reconciler step \"%s\" did not select rows: %s",
			 step->name, SPI_result_code_string(rc));
	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (uint64 i = 0; i < nrows; i++)
	{
		CHECK_FOR_INTERRUPTS();
		count_outcome(batch, process_row_guarded(pass, step, rows->vals[i], rows->tupdesc));
	}
	*full = nrows >= PCR_ROW_BATCH_SIZE;
}

static PcrBatchResult
run_batch(PcrPass *pass, int stepno)
{
	const PcrReconcileStep *step = steps[stepno];
	volatile PcrBatchResult result = BATCH_PARTIAL;
	PcrPassCounts batch = {0};

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	PG_TRY();
	{
		if (!extension_ready())
			result = BATCH_NO_EXTENSION;
		else
		{
			bool		full = false;

			SPI_connect();
			if (!process_batch_guarded(pass, step, &batch, &full))
				process_rows(pass, stepno, &batch, &full);
			SPI_finish();
			result = full ? BATCH_FULL : BATCH_PARTIAL;
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(pass->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		pass_error(pass, step, NULL, edata);
		FreeErrorData(edata);
		result = BATCH_FAILED;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(pass->cxt);

	/* what the rows did counts once it is committed */
	if (result == BATCH_PARTIAL || result == BATCH_FULL)
	{
		pass->counts->expired += batch.expired;
		pass->counts->released += batch.released;
		pass->counts->cleanups_succeeded += batch.cleanups_succeeded;
		pass->counts->cleanup_attempts_failed += batch.cleanup_attempts_failed;
		pass->counts->cleanups_given_up += batch.cleanups_given_up;
		pass->counts->history_deleted += batch.history_deleted;
	}
	return result;
}

PcrPassResult
PcrReconcilePass(PcrPassCounts *counts, char *last_error)
{
	PcrPass		pass;

	Assert(!IsTransactionState());
	memset(&pass, 0, sizeof(pass));
	memset(counts, 0, sizeof(*counts));
	pass.cxt = CurrentMemoryContext;
	pass.counts = counts;
	pass.last_error = last_error;
	last_error[0] = '\0';

	for (int s = 0; s < nsteps; s++)
	{
		PcrBatchResult r;
		int			batches = 0;

		do
		{
			CHECK_FOR_INTERRUPTS();
			r = run_batch(&pass, s);
			if (r == BATCH_NO_EXTENSION)
				return PCR_PASS_NO_EXTENSION;
			batches++;
		} while (r == BATCH_FULL && (steps[s]->max_batches == 0 || batches < steps[s]->max_batches));
	}
	return PCR_PASS_DONE;
}
