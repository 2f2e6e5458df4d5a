/*
 * reconcile_retention.c — the reconciler deletes history past paperclip.lease_retention
 *
 * With paperclip.lease_retention set (default 0: keep everything), each pass
 * deletes, oldest first, the rows of every history table below that are
 * done — nothing will change them any more — and became history longer ago
 * than that: one reconciler step per table, in batches of one statement that
 * locks (SKIP LOCKED) and deletes, at most RETENTION_MAX_BATCHES batches a
 * pass so that a backlog never holds up expiry and cleanups for long.
 *
 * A history table is one line of history_tables[]: its name (in schema
 * paperclip, with a uuid primary key "id"), the timestamptz column saying
 * when a row became history, and the SQL condition under which a row is
 * done.  It needs an index on that column, partial with that condition as
 * its predicate (written exactly the same) unless the condition holds for
 * every row with the column set, so that the oldest rows are found without a
 * scan.  A table whose rows reference another one's goes before it: deleting
 * it first leaves fewer references for the other's foreign key action.
 */
#include "pcr.h"
#include "reconciler.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

typedef struct PcrHistoryTable
{
	const char *table;
	const char *finished;		/* when a row became history */
	const char *done;			/* nothing will change the row any more */
} PcrHistoryTable;

static const PcrHistoryTable history_tables[] = {
	/*
	 * An execution record is written once its call has ended, so it is done
	 * as soon as finished_at is set (always, today); its age is how long ago
	 * the command finished, whatever became of the lease.  Before the leases:
	 * it references them.
	 */
	{"lease_executions", "finished_at", "finished_at IS NOT NULL"},

	/*
	 * Never an active lease, nor one whose cleanup is pending (its driver
	 * must still undo what it did) or failed (an operator must look at it),
	 * nor a retained one (its environment was kept on purpose).
	 */
	{"environment_leases", "released_at",
	 "status IN ('released', 'expired', 'failed') AND (cleanup_status IS NULL OR cleanup_status = 'success')"},
};

#define NHISTORY lengthof(history_tables)

/* batches of PCR_SET_BATCH_SIZE rows per table and pass */
#define RETENTION_MAX_BATCHES 100

/* What a row needs, besides being done, to be deleted now. */
#define RETENTION_DUE \
	" < now() - pg_catalog.current_setting('paperclip.lease_retention')::interval " \
	" AND pg_catalog.current_setting('paperclip.lease_retention')::interval > interval '0'"

typedef struct PcrRetentionStep
{
	PcrReconcileStep step;		/* step.arg points back here */
	const PcrHistoryTable *history;
	char	   *batch_sql;
	char	   *row_sql;
	SPIPlanPtr	batch_plan;
	SPIPlanPtr	row_plan;
} PcrRetentionStep;

static PcrRetentionStep retention_steps[NHISTORY];

/* One statement: lock the oldest due rows, skipping locked ones, and delete them. */
static uint64
retention_batch(const PcrReconcileStep *step, Datum skip, int limit, uint64 *changed)
{
	PcrRetentionStep *rs = (PcrRetentionStep *) step->arg;
	Oid			argtypes[2] = {UUIDARRAYOID, INT4OID};
	Datum		values[2] = {skip, Int32GetDatum(limit)};
	int			rc;

	*changed = 0;
	if (pcr_lease_retention <= 0)
		return 0;
	rc = PcrReconcilerExecute(&rs->batch_plan, rs->batch_sql, 2, argtypes, values, NULL);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not delete history of \"%s\": %s", rs->history->table,
			 SPI_result_code_string(rc));
	*changed = SPI_processed;
	return SPI_processed;
}

/* The row path: the row, selected and locked by select_sql, deleted by id. */
static PcrRowOutcome
retention_row(HeapTuple row, TupleDesc desc)
{
	char	   *table = PcrRowText(row, desc, "history_table");
	Oid			argtypes[1] = {UUIDOID};
	Datum		value;
	int			rc;

	for (int i = 0; i < NHISTORY; i++)
	{
		PcrRetentionStep *rs = &retention_steps[i];

		if (table == NULL || strcmp(rs->history->table, table) != 0)
			continue;
		value = UUIDPGetDatum(PcrRowUuid(row, desc, "id"));
		rc = PcrReconcilerExecute(&rs->row_plan, rs->row_sql, 1, argtypes, &value, NULL);
		if (rc != SPI_OK_DELETE)
			elog(ERROR, "could not delete history of \"%s\": %s", table, SPI_result_code_string(rc));
		return SPI_processed > 0 ? PCR_ROW_DELETED : PCR_ROW_NOTHING;
	}
	elog(ERROR, "no history table \"%s\"", table ? table : "(null)");
	pg_unreachable();
}

void
PcrRetentionInit(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	for (int i = 0; i < NHISTORY; i++)
	{
		const PcrHistoryTable *h = &history_tables[i];
		PcrRetentionStep *rs = &retention_steps[i];
		char	   *due = psprintf("(%s) AND %s" RETENTION_DUE, h->done, h->finished);

		rs->history = h;
		rs->step.name = psprintf("retention of %s", h->table);
		rs->step.select_sql =
			psprintf("SELECT id, '%s' AS history_table FROM paperclip.%s "
					 " WHERE %s AND id <> ALL ($1) "
					 " ORDER BY %s LIMIT $2 FOR UPDATE SKIP LOCKED",
					 h->table, h->table, due, h->finished);
		rs->batch_sql =
			psprintf("DELETE FROM paperclip.%s WHERE ctid = ANY (ARRAY( "
					 "  SELECT ctid FROM paperclip.%s "
					 "   WHERE %s AND id <> ALL ($1) "
					 "   ORDER BY %s LIMIT $2 FOR UPDATE SKIP LOCKED))",
					 h->table, h->table, due, h->finished);
		rs->row_sql = psprintf("DELETE FROM paperclip.%s WHERE id = $1 AND %s", h->table, due);
		rs->step.process_row = retention_row;
		rs->step.process_batch = retention_batch;
		rs->step.batch_outcome = PCR_ROW_DELETED;
		rs->step.max_batches = RETENTION_MAX_BATCHES;
		rs->step.arg = rs;
		PcrReconcilerAddStep(&rs->step);
	}
	MemoryContextSwitchTo(old);
}
