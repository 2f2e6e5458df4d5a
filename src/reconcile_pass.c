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
#include "util.h"

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
	if (step == NULL || step->name == NULL ||
		(step->run == NULL &&
		 (step->select_sql == NULL ||
		  (step->process_row == NULL &&
		   (step->prepare_row == NULL || step->call == NULL || step->record == NULL)))))
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

bool
PcrRowBool(HeapTuple row, TupleDesc desc, const char *column, bool dflt)
{
	bool		isnull;
	Datum		d = row_datum(row, desc, column, &isnull);

	return isnull ? dflt : DatumGetBool(d);
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

struct PcrPass
{
	MemoryContext cxt;			/* lives as long as the pass */
	PcrSkipList skip;
	PcrPassCounts *counts;
	char	   *last_error;
};

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
		case PCR_ROW_OBJECT_DESTROYED:
			c->objects_destroyed++;
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

typedef struct PcrRowCall
{
	const PcrReconcileStep *step;
	HeapTuple	row;
	TupleDesc	desc;
	PcrRowOutcome outcome;
	Datum		skip;			/* process_batch's arguments and results */
	uint64		selected;
	uint64		changed;
} PcrRowCall;

static void
row_call(void *arg)
{
	PcrRowCall *c = (PcrRowCall *) arg;

	c->outcome = c->step->process_row(c->row, c->desc);
}

static void
batch_call(void *arg)
{
	PcrRowCall *c = (PcrRowCall *) arg;

	c->selected = c->step->process_batch(c->step, c->skip, PCR_SET_BATCH_SIZE, &c->changed);
}

/* Run process_row in a subtransaction: an error rolls back this row alone. */
static PcrRowOutcome
process_row_guarded(PcrPass *pass, const PcrReconcileStep *step, HeapTuple row, TupleDesc desc)
{
	PcrRowCall	c = {.step = step,.row = row,.desc = desc,.outcome = PCR_ROW_NOTHING};
	ErrorData  *edata;
	pg_uuid_t  *id;

	if (PcrRunInSubtransaction(row_call, &c, &edata))
		return c.outcome;
	/* a row without an id cannot be skipped: then fail the whole batch */
	id = PcrRowUuid(row, desc, "id");
	if (id == NULL)
		ReThrowError(edata);
	skip_add(pass, id);
	pass_error(pass, step, id, edata);
	FreeErrorData(edata);
	return PCR_ROW_NOTHING;
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
	PcrRowCall	c = {.step = step,.skip = skip_array(pass)};
	ErrorData  *edata;
	uint64		changed;
	bool		done;

	if (step->process_batch == NULL)
		return false;
	done = PcrRunInSubtransaction(batch_call, &c, &edata);
	if (!done)
	{
		ereport(DEBUG1,
				(errmsg_internal("paperclip reconciler: step \"%s\" goes row by row: %s",
								 step->name, edata->message)));
		FreeErrorData(edata);
	}
	changed = done ? c.changed : 0;
	for (uint64 i = 0; i < changed; i++)
		count_outcome(batch, step->batch_outcome);
	*full = done && c.selected >= PCR_SET_BATCH_SIZE && changed > 0;
	return done;
}

/*
 * Run fn(pass, arg) in a short transaction of its own, with the extension
 * there (share-locked) and SPI connected.  An error rolls the transaction
 * back and is logged against step (and row_id, when given).
 */
typedef enum PcrTxnResult
{
	TXN_COMMITTED,
	TXN_NO_EXTENSION,
	TXN_FAILED
} PcrTxnResult;

static PcrTxnResult
in_transaction(PcrPass *pass, const PcrReconcileStep *step, pg_uuid_t *row_id,
			   void (*fn) (PcrPass *pass, void *arg), void *arg)
{
	volatile PcrTxnResult result = TXN_COMMITTED;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	PG_TRY();
	{
		if (!extension_ready())
			result = TXN_NO_EXTENSION;
		else
		{
			SPI_connect();
			fn(pass, arg);
			SPI_finish();
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
		pass_error(pass, step, row_id, edata);
		FreeErrorData(edata);
		result = TXN_FAILED;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(pass->cxt);
	return result;
}

/* Select a batch of the step's rows (SPI connected); they are in SPI_tuptable. */
static void
select_rows(PcrPass *pass, int stepno)
{
	const PcrReconcileStep *step = steps[stepno];
	Oid			argtypes[2] = {UUIDARRAYOID, INT4OID};
	Datum		values[2];
	int			rc;

	values[0] = skip_array(pass);
	values[1] = Int32GetDatum(PCR_ROW_BATCH_SIZE);
	rc = PcrReconcilerExecute(&step_plans[stepno], step->select_sql, 2, argtypes, values, NULL);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reconciler step \"%s\" did not select rows: %s",
			 step->name, SPI_result_code_string(rc));
}

typedef struct PcrBatch
{
	int			stepno;
	bool		full;			/* there may be more */
	PcrPassCounts counts;		/* added to the pass's once committed */
} PcrBatch;

/* The whole batch at once if the step can; else (or if that raised) row by row. */
static void
batch_in_transaction(PcrPass *pass, void *arg)
{
	PcrBatch   *b = (PcrBatch *) arg;
	const PcrReconcileStep *step = steps[b->stepno];
	SPITupleTable *rows;
	uint64		nrows;

	if (process_batch_guarded(pass, step, &b->counts, &b->full))
		return;
	select_rows(pass, b->stepno);
	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (uint64 i = 0; i < nrows; i++)
	{
		CHECK_FOR_INTERRUPTS();
		count_outcome(&b->counts, process_row_guarded(pass, step, rows->vals[i], rows->tupdesc));
	}
	b->full = nrows >= PCR_ROW_BATCH_SIZE;
}

static void
add_counts(PcrPassCounts *to, const PcrPassCounts *from)
{
	to->expired += from->expired;
	to->released += from->released;
	to->cleanups_succeeded += from->cleanups_succeeded;
	to->cleanup_attempts_failed += from->cleanup_attempts_failed;
	to->cleanups_given_up += from->cleanups_given_up;
	to->objects_destroyed += from->objects_destroyed;
	to->history_deleted += from->history_deleted;
}

static PcrBatchResult
run_batch(PcrPass *pass, int stepno)
{
	PcrBatch	b = {.stepno = stepno};

	switch (in_transaction(pass, steps[stepno], NULL, batch_in_transaction, &b))
	{
		case TXN_NO_EXTENSION:
			return BATCH_NO_EXTENSION;
		case TXN_FAILED:
			return BATCH_FAILED;
		case TXN_COMMITTED:
			break;
	}
	/* what the rows did counts once it is committed */
	add_counts(pass->counts, &b.counts);
	return b.full ? BATCH_FULL : BATCH_PARTIAL;
}

/* ------------------------------------------------------------------------
 * Steps whose rows need I/O: select and commit, call, record
 * ------------------------------------------------------------------------ */
typedef struct PcrCallRow
{
	pg_uuid_t  *id;
	void	   *work;
} PcrCallRow;

typedef struct PcrCallBatch
{
	int			stepno;
	PcrCallRow *rows;
	uint64		nrows;
} PcrCallBatch;

/* In the select's transaction: copy each row's work out, into the pass's memory. */
static void
call_batch_in_transaction(PcrPass *pass, void *arg)
{
	PcrCallBatch *b = (PcrCallBatch *) arg;
	const PcrReconcileStep *step = steps[b->stepno];

	select_rows(pass, b->stepno);
	b->nrows = SPI_processed;
	b->rows = MemoryContextAllocZero(pass->cxt, sizeof(PcrCallRow) * Max(b->nrows, 1));
	for (uint64 i = 0; i < b->nrows; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(pass->cxt);

		b->rows[i].id = PcrRowUuid(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, "id");
		b->rows[i].work = step->prepare_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
		MemoryContextSwitchTo(old);
	}
}

/* step->call outside any transaction; its error, if any. */
static ErrorData *
call_row(const PcrReconcileStep *step, void *work, MemoryContext cxt)
{
	ErrorData  *volatile edata = NULL;

	Assert(!IsTransactionState());
	PG_TRY();
	{
		step->call(work);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return edata;
}

typedef struct PcrRecord
{
	const PcrReconcileStep *step;
	void	   *work;
	ErrorData  *call_error;
	PcrRowOutcome outcome;
} PcrRecord;

static void
record_in_transaction(PcrPass *pass, void *arg)
{
	PcrRecord  *r = (PcrRecord *) arg;

	r->outcome = r->step->record(r->work, r->call_error);
}

static PcrBatchResult
run_call_batch(PcrPass *pass, int stepno)
{
	const PcrReconcileStep *step = steps[stepno];
	PcrCallBatch b = {.stepno = stepno};

	switch (in_transaction(pass, step, NULL, call_batch_in_transaction, &b))
	{
		case TXN_NO_EXTENSION:
			return BATCH_NO_EXTENSION;
		case TXN_FAILED:
			return BATCH_FAILED;
		case TXN_COMMITTED:
			break;
	}
	for (uint64 i = 0; i < b.nrows; i++)
	{
		PcrRecord	r = {.step = step,.work = b.rows[i].work,.outcome = PCR_ROW_NOTHING};

		CHECK_FOR_INTERRUPTS();
		if (b.rows[i].id != NULL)
			skip_add(pass, b.rows[i].id);	/* once per pass, whatever happens */
		r.call_error = call_row(step, b.rows[i].work, pass->cxt);
		switch (in_transaction(pass, step, b.rows[i].id, record_in_transaction, &r))
		{
			case TXN_NO_EXTENSION:
				return BATCH_NO_EXTENSION;
			case TXN_FAILED:
				break;
			case TXN_COMMITTED:
				count_outcome(pass->counts, r.outcome);
				break;
		}
	}
	return b.nrows >= PCR_ROW_BATCH_SIZE ? BATCH_FULL : BATCH_PARTIAL;
}

/* ------------------------------------------------------------------------
 * Steps that run themselves
 * ------------------------------------------------------------------------ */
typedef struct PcrPlainCall
{
	void		(*fn) (void *arg);
	void	   *arg;
} PcrPlainCall;

static void
plain_in_transaction(PcrPass *pass, void *arg)
{
	PcrPlainCall *c = (PcrPlainCall *) arg;

	c->fn(c->arg);
}

int
PcrReconcilerInTransaction(PcrPass *pass, const PcrReconcileStep *step, pg_uuid_t *row_id,
						   void (*fn) (void *arg), void *arg)
{
	PcrPlainCall c = {fn, arg};

	switch (in_transaction(pass, step, row_id, plain_in_transaction, &c))
	{
		case TXN_COMMITTED:
			return 1;
		case TXN_NO_EXTENSION:
			return 0;
		case TXN_FAILED:
			break;
	}
	return -1;
}

void
PcrReconcilerCount(PcrPass *pass, PcrRowOutcome outcome)
{
	count_outcome(pass->counts, outcome);
}

void
PcrReconcilerStepError(PcrPass *pass, const PcrReconcileStep *step, const char *what, const char *message)
{
	ereport(WARNING,
			(errmsg("paperclip reconciler: step \"%s\": %s", step->name, what),
			 errdetail_internal("%s", message ? message : "no message")));
	snprintf(pass->last_error, PCR_RECONCILER_ERROR_LEN, "step \"%s\": %s: %s", step->name, what,
			 message ? message : "no message");
	pass->counts->errors++;
}

/* A run step outside any transaction; an error it raises ends it for this pass. */
static PcrBatchResult
run_self(PcrPass *pass, const PcrReconcileStep *step)
{
	volatile bool ready = true;

	Assert(!IsTransactionState());
	PG_TRY();
	{
		ready = step->run(pass, step);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(pass->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (IsTransactionState())
			AbortCurrentTransaction();
		pass_error(pass, step, NULL, edata);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(pass->cxt);
	return ready ? BATCH_PARTIAL : BATCH_NO_EXTENSION;
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
			if (steps[s]->run != NULL)
				r = run_self(&pass, steps[s]);
			else
				r = steps[s]->call != NULL ? run_call_batch(&pass, s) : run_batch(&pass, s);
			if (r == BATCH_NO_EXTENSION)
				return PCR_PASS_NO_EXTENSION;
			batches++;
		} while (r == BATCH_FULL && (steps[s]->max_batches == 0 || batches < steps[s]->max_batches));
	}
	return PCR_PASS_DONE;
}
