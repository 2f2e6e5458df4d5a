/*
 * reconciler.h — the background reconciler (docs/reconciler.md)
 *
 * One static background worker, registered when the library is preloaded,
 * connects to paperclip.database and runs passes: release active leases of
 * terminal or missing runs, expire active leases past expires_at, carry out
 * pending cleanups with retry and backoff, delete history older than
 * paperclip.lease_retention.  A pass runs at start-up (the
 * sweep after a crash or restart), every paperclip.reconcile_interval, and
 * when a committed transaction asked for it.
 *
 * reconciler.c      the worker: registration, shared state, wake-up, loop
 * reconcile_pass.c  a pass: short transactions, a subtransaction per row
 * reconcile_steps.c the built-in steps on environment_leases
 * reconcile_retention.c  deleting history past paperclip.lease_retention
 */
#ifndef PCR_RECONCILER_H
#define PCR_RECONCILER_H

#include "pcr.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "executor/spi.h"

/* Called once from _PG_init; does nothing unless preloading. */
extern void PcrReconcilerInit(void);

/* init.c's shmem request and startup hooks call these. */
extern void PcrReconcilerShmemRequest(void);
extern void PcrReconcilerShmemStartup(void);

/*
 * Wake the reconciler when the current transaction commits (nothing on
 * abort).  Cheap; does nothing when the library is not preloaded.
 */
extern void PcrReconcilerWakeAtCommit(void);

/* Wake the reconciler now. */
extern void PcrReconcilerWake(void);

/* The worker's entry point (bgw_function_name). */
extern PGDLLEXPORT void PcrReconcilerMain(Datum main_arg);

/* ------------------------------------------------------------------------
 * Steps of a pass
 *
 * A step handles a batch of rows at once in one subtransaction when it can
 * (process_batch), else — or when that raised — selects a smaller batch and
 * handles each row in its own subtransaction, so one bad row is logged and
 * skipped while the others go on.  The select gets $1 uuid[] (ids to skip:
 * rows that failed earlier in this pass) and $2 integer (the batch size); it
 * must return a uuid column "id", and should lock what it returns with FOR
 * UPDATE SKIP LOCKED so that it never waits for, or races with, a client.
 * A step is repeated while it fills batches (at most max_batches a pass).
 * A step whose rows need I/O (call, below) selects and commits first, and
 * records each outcome in a transaction of its own.
 *
 * Later subsystems (e.g. destroying provider resources whose acquiring
 * transaction aborted) add their steps with PcrReconcilerAddStep() from
 * _PG_init; they run after the built-in ones, in every pass.
 * ------------------------------------------------------------------------ */
typedef enum PcrRowOutcome
{
	PCR_ROW_NOTHING,			/* changed nothing (raced away, not due) */
	PCR_ROW_EXPIRED,			/* an active lease became expired */
	PCR_ROW_RELEASED,			/* an active lease was released (or failed, retained) */
	PCR_ROW_CLEANED,			/* a pending cleanup succeeded */
	PCR_ROW_CLEANUP_RETRY,		/* a cleanup attempt failed; it will be retried */
	PCR_ROW_CLEANUP_FAILED,		/* a cleanup failed for good */
	PCR_ROW_OBJECT_DESTROYED,	/* a provider object without a lease was destroyed */
	PCR_ROW_DELETED				/* history past paperclip.lease_retention was deleted */
} PcrRowOutcome;

/* A pass in progress (reconcile_pass.c), for steps that run themselves. */
typedef struct PcrPass PcrPass;

typedef struct PcrReconcileStep
{
	const char *name;
	const char *select_sql;
	PcrRowOutcome (*process_row) (HeapTuple row, TupleDesc desc);

	/*
	 * Optional: select and change a whole batch at once — at most limit
	 * rows, none of those in skip (uuid[]), never waiting for a row lock —
	 * and return how many rows it selected, setting *changed to how many it
	 * changed, each counted as batch_outcome.  Tried first, in one
	 * subtransaction; if it raises, that batch is done again by select_sql
	 * and process_row, row by row, so that only a bad row is skipped.
	 */
	uint64		(*process_batch) (const struct PcrReconcileStep *step, Datum skip, int limit,
								  uint64 *changed);
	PcrRowOutcome batch_outcome;
	int			max_batches;	/* per pass; 0: as many as it fills */
	void	   *arg;			/* for the step's own functions */

	/*
	 * Optional, instead of process_row: work that must not run inside the
	 * batch's transaction (a call through the I/O pool that may take long).
	 * prepare_row copies what it needs out of a selected row (in the
	 * select's transaction, into the pass's memory); once that transaction
	 * has committed, call runs with no transaction open and no row locked
	 * (an ERROR it raises is caught and handed to record); record then
	 * writes the outcome in a short transaction of its own, and must guard
	 * against a concurrent change of the row.  Each row is handled once per
	 * pass.
	 */
	void	   *(*prepare_row) (HeapTuple row, TupleDesc desc);
	void		(*call) (void *work);
	PcrRowOutcome (*record) (void *work, ErrorData *call_error);

	/*
	 * Optional, instead of select_sql and the row functions: a step that
	 * finds its work itself (in shared memory, from a provider) and does it,
	 * called once per pass with no transaction open.  SQL goes through
	 * PcrReconcilerInTransaction; what it did is counted with
	 * PcrReconcilerCount.  An error it raises is logged and counted, and
	 * ends the step for this pass.  Returns false when the extension is
	 * absent (the pass stops).
	 */
	bool		(*run) (PcrPass *pass, const struct PcrReconcileStep *step);
} PcrReconcileStep;

#define PCR_RECONCILER_MAX_STEPS 16

/* Add a step (from _PG_init, while preloading); step must stay valid. */
extern void PcrReconcilerAddStep(const PcrReconcileStep *step);

/*
 * For run steps: fn(arg) in a short transaction of its own, with the
 * extension there and SPI connected.  Returns 1 when it committed, 0 when
 * the extension is absent, -1 when it raised (the error is logged and
 * counted against step, and row_id when given).
 */
extern int	PcrReconcilerInTransaction(PcrPass *pass, const PcrReconcileStep *step, pg_uuid_t *row_id,
									   void (*fn) (void *arg), void *arg);

/* For run steps: count what a unit of work did. */
extern void PcrReconcilerCount(PcrPass *pass, PcrRowOutcome outcome);

/* For run steps: log and count an error a unit of work hit (the step goes on). */
extern void PcrReconcilerStepError(PcrPass *pass, const PcrReconcileStep *step, const char *what,
								   const char *message);

/* Column helpers for process_row: NULL when SQL NULL or no such column. */
extern char *PcrRowText(HeapTuple row, TupleDesc desc, const char *column);
extern Jsonb *PcrRowJsonb(HeapTuple row, TupleDesc desc, const char *column);
extern pg_uuid_t *PcrRowUuid(HeapTuple row, TupleDesc desc, const char *column);
extern int	PcrRowInt(HeapTuple row, TupleDesc desc, const char *column, int dflt);
extern bool PcrRowBool(HeapTuple row, TupleDesc desc, const char *column, bool dflt);

/*
 * Execute sql through a plan kept in *plan (prepared on first use).  Kept
 * plans are checked against the catalogs before each use, so they follow a
 * DROP and CREATE EXTENSION.  Returns the SPI result code.
 */
extern int	PcrReconcilerExecute(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes,
								 Datum *values, const char *nulls);

/* What one pass did. */
typedef struct PcrPassCounts
{
	int64		expired;
	int64		released;
	int64		cleanups_succeeded;
	int64		cleanup_attempts_failed;
	int64		cleanups_given_up;
	int64		objects_destroyed;	/* provider objects without a lease (sandbox_sweep.c) */
	int64		history_deleted;	/* rows past paperclip.lease_retention (reconcile_retention.c) */
	int64		errors;
} PcrPassCounts;

#define PCR_RECONCILER_ERROR_LEN 256

typedef enum PcrPassResult
{
	PCR_PASS_DONE,				/* every step ran (some rows may have failed) */
	PCR_PASS_NO_EXTENSION		/* the extension is absent, or being dropped */
} PcrPassResult;

/*
 * Run one pass (reconcile_pass.c).  Must be called outside a transaction;
 * leaves none open.  last_error receives the last error message, if any.
 */
extern PcrPassResult PcrReconcilePass(PcrPassCounts *counts, char *last_error);

/* The built-in steps (reconcile_steps.c), in the order a pass runs them. */
extern const PcrReconcileStep pcr_step_release_finished_runs;
extern const PcrReconcileStep pcr_step_expire;
extern const PcrReconcileStep pcr_step_cleanup;

/* Add one retention step per history table (reconcile_retention.c), while preloading. */
extern void PcrRetentionInit(void);

#endif							/* PCR_RECONCILER_H */
