/*
 * sandbox_sweep.c — the reconciler's steps for provider objects without a lease
 *
 * Two steps, added to every pass (docs/providers.md, "Lifecycle without leaks"):
 *
 * - "destroy sandboxes of aborted acquisitions": the in-flight table
 *   (sandbox_inflight.c) hands over the objects of acquisitions whose
 *   (sub)transaction aborted, whose backend died, or whose lease lost to a
 *   concurrent acquire; each is destroyed through the pool.  The acquiring
 *   backend wakes the reconciler when it aborts, so this happens within a
 *   pass or two.
 *
 * - "sweep sandboxes without a lease": at the start-up sweep (the first pass
 *   of a reconciler, which after a crash is all that is left of the
 *   in-flight table), when a committed transaction archived or deleted a
 *   sandbox environment, and every PCR_SWEEP_INTERVAL_MS, each provider's
 *   list_owned names the objects labelled with this cluster, and the
 *   reconciler destroys those
 *   - of an ephemeral lease that is missing (once older than the grace, a
 *     while longer than paperclip.acquire_timeout, so that an acquisition
 *     in flight is never taken for an orphan), or terminal with its cleanup
 *     done (success, or a terminal lease that never needed one);
 *   - of a reusable environment that is archived or missing (past the
 *     grace), unless one of its leases is active or has a cleanup pending;
 *   only objects labelled with this reconciler's database (or with none)
 *   are judged: another database's leases are not visible here.
 *   Objects an acquisition in flight names are left alone; an active,
 *   retained or pending-cleanup lease keeps its object; a failed cleanup
 *   keeps it too (cleanup_error says why; set cleanup_status back to
 *   'pending' to retry).  A reusable object's name is claimed in the
 *   in-flight table, and its verdict checked again, before it is destroyed,
 *   so no acquirer resumes it meanwhile.
 *
 * Both steps run with no transaction open and no row locked while a
 * provider call runs: decisions are read in short transactions, then the
 * pool is called.
 */
#include "pcr.h"
#include "reconciler.h"
#include "sandbox.h"
#include "util.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#define PCR_SWEEP_INTERVAL_MS	(5 * 60 * 1000)
#define PCR_ORPHANS_PER_ROUND	64

/* when this reconciler sweeps next (0: at its first pass, the start-up sweep) */
static TimestampTz next_sweep_at = 0;

static int
sweep_grace_ms(void)
{
	return Max(2 * pcr_acquire_timeout, 5000);
}

/* ------------------------------------------------------------------------
 * Destroying through the pool, errors kept
 * ------------------------------------------------------------------------ */

/* Destroy obj; true when it is gone.  A failure (also a pool error) is logged and counted. */
static bool
destroy_object(PcrPass *pass, const PcrReconcileStep *step, const PcrSandboxProvider *p,
			   const PcrSandboxObject *obj)
{
	MemoryContext cxt = CurrentMemoryContext;
	char		message[PCR_PROVIDER_MESSAGE_MAX] = "";
	volatile PcrProviderStatus status = PCR_PROVIDER_FATAL;

	PG_TRY();
	{
		status = PcrSandboxCallTeardown(p, obj, false, message);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		strlcpy(message, edata->message ? edata->message : "driver request failed", sizeof(message));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	if (status == PCR_PROVIDER_OK || status == PCR_PROVIDER_NOT_FOUND)
	{
		PcrReconcilerCount(pass, PCR_ROW_OBJECT_DESTROYED);
		ereport(LOG,
				(errmsg("paperclip reconciler: destroyed sandbox \"%s\" of provider \"%s\", which no lease holds",
						obj->name, p->name)));
		return true;
	}
	PcrReconcilerStepError(pass, step, psprintf("could not destroy sandbox \"%s\"", obj->name),
						   message[0] ? message : "no reason given");
	return false;
}

/* ------------------------------------------------------------------------
 * Step: objects of aborted acquisitions
 * ------------------------------------------------------------------------ */
static bool
orphans_run(PcrPass *pass, const PcrReconcileStep *step)
{
	PcrInflightOrphan *batch = palloc(sizeof(PcrInflightOrphan) * PCR_ORPHANS_PER_ROUND);
	int			n;

	do
	{
		n = PcrInflightClaimOrphans(batch, PCR_ORPHANS_PER_ROUND);
		for (int i = 0; i < n; i++)
		{
			const PcrSandboxProvider *p = PcrSandboxProviderAt(batch[i].provider);
			bool		gone = false;

			CHECK_FOR_INTERRUPTS();
			if (p != NULL && PcrSandboxProviderHasObjects(p))
				gone = destroy_object(pass, step, p, &batch[i].obj);
			PcrInflightOrphanDone(&batch[i], gone);
		}
	} while (n == PCR_ORPHANS_PER_ROUND);
	return true;
}

/* ------------------------------------------------------------------------
 * Step: sweep of list_owned
 * ------------------------------------------------------------------------ */
typedef enum PcrVerdict
{
	VERDICT_KEEP,
	VERDICT_DESTROY,
	VERDICT_LATER				/* too young to tell: look again once past the grace */
} PcrVerdict;

typedef struct PcrSweepItem
{
	PcrOwnedObject owned;
	pg_uuid_t	id;				/* from the name: the lease, or the environment */
	bool		reusable;
	PcrVerdict	verdict;
} PcrSweepItem;

typedef struct PcrSweepBatch
{
	PcrSweepItem *items;
	int			n;
	TimestampTz now;
	TimestampTz later;			/* the earliest time a VERDICT_LATER item is due */
} PcrSweepBatch;

/*
 * One row per object: the lease (ephemeral) or the environment (reusable)
 * and whether any lease of that environment is active or pending cleanup.
 */
static const char *const verdict_sql =
"SELECT o.i, l.status, l.cleanup_status, e.status AS environment_status, "
"       EXISTS (SELECT 1 FROM paperclip.environment_leases AS a "
"                WHERE o.reusable AND a.environment_id = o.id "
"                  AND (a.status = 'active' OR a.cleanup_status = 'pending')) AS environment_busy "
"  FROM ROWS FROM (pg_catalog.unnest($1::uuid[]), pg_catalog.unnest($2::boolean[])) "
"       WITH ORDINALITY AS o(id, reusable, i) "
"  LEFT JOIN paperclip.environment_leases AS l ON NOT o.reusable AND l.id = o.id "
"  LEFT JOIN paperclip.environments AS e ON o.reusable AND e.id = o.id";

static PcrVerdict
missing_verdict(PcrSweepBatch *b, const PcrSweepItem *it)
{
	TimestampTz due = TimestampTzPlusMilliseconds(it->owned.created_at, sweep_grace_ms());

	if (it->owned.created_at == 0 || due <= b->now)
		return VERDICT_DESTROY;
	if (b->later == 0 || due < b->later)
		b->later = due;
	return VERDICT_LATER;
}

static PcrVerdict
decide(PcrSweepBatch *b, const PcrSweepItem *it, HeapTuple row, TupleDesc desc)
{
	char	   *status = PcrRowText(row, desc, "status");
	char	   *cleanup = PcrRowText(row, desc, "cleanup_status");
	char	   *env_status = PcrRowText(row, desc, "environment_status");

	if (it->reusable)
	{
		if (env_status != NULL && strcmp(env_status, "active") == 0)
			return VERDICT_KEEP;
		if (PcrRowBool(row, desc, "environment_busy", true))
			return VERDICT_KEEP;
		return env_status == NULL ? missing_verdict(b, it) : VERDICT_DESTROY;
	}
	if (status == NULL)
		return missing_verdict(b, it);
	if (strcmp(status, "active") == 0 || strcmp(status, "retained") == 0)
		return VERDICT_KEEP;
	if (cleanup == NULL || strcmp(cleanup, "success") == 0)
		return VERDICT_DESTROY;
	return VERDICT_KEEP;		/* pending: the cleanup step's; failed: the operator's */
}

static void
decide_in_transaction(void *arg)
{
	static SPIPlanPtr plan = NULL;
	PcrSweepBatch *b = (PcrSweepBatch *) arg;
	Datum	   *ids = palloc(sizeof(Datum) * b->n);
	Datum	   *reusable = palloc(sizeof(Datum) * b->n);
	Oid			types[2] = {UUIDARRAYOID, BOOLARRAYOID};
	Datum		values[2];
	int			rc;

	for (int i = 0; i < b->n; i++)
	{
		ids[i] = UUIDPGetDatum(&b->items[i].id);
		reusable[i] = BoolGetDatum(b->items[i].reusable);
	}
	values[0] = PointerGetDatum(construct_array(ids, b->n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[1] = PointerGetDatum(construct_array(reusable, b->n, BOOLOID, 1, true, TYPALIGN_CHAR));
	rc = PcrReconcilerExecute(&plan, verdict_sql, 2, types, values, NULL);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not look up the leases of sandboxes: %s", SPI_result_code_string(rc));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	row = SPI_tuptable->vals[r];
		bool		isnull;
		int64		i = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull)) - 1;

		if (i >= 0 && i < b->n && b->items[i].verdict == VERDICT_KEEP)
			b->items[i].verdict = decide(b, &b->items[i], row, SPI_tuptable->tupdesc);
	}
}

/* The objects of this cluster as verdict items; those an acquisition names are kept. */
static PcrSweepBatch *
sweep_items(const PcrOwnedObject *owned, int n)
{
	PcrSweepBatch *b = palloc0(sizeof(PcrSweepBatch));

	b->items = palloc0(sizeof(PcrSweepItem) * Max(n, 1));
	b->now = GetCurrentTimestamp();
	for (int i = 0; i < n; i++)
	{
		PcrSweepItem *it = &b->items[b->n];

		/* an object of another database's lease is that database's to judge */
		if (!PcrSandboxObjectNameParse(owned[i].name, PcrSandboxCluster(), &it->id) ||
			(owned[i].database_id != InvalidOid && owned[i].database_id != MyDatabaseId) ||
			PcrInflightHasObject(owned[i].name))
			continue;
		it->owned = owned[i];
		it->reusable = owned[i].reusable;
		it->verdict = VERDICT_KEEP;
		b->n++;
	}
	return b;
}

static void
item_object(const PcrSweepItem *it, PcrSandboxObject *obj)
{
	memset(obj, 0, sizeof(*obj));
	obj->name = it->owned.name;
	obj->cluster = PcrSandboxCluster();
	obj->lease_id = it->owned.lease_id;
	obj->company_id = it->owned.company_id;
	obj->environment_id = it->reusable ? it->id : it->owned.environment_id;
	obj->database_id = it->owned.database_id;
	obj->reusable = it->reusable;
}

/*
 * A reusable object: claim its name, then check the verdict again (an
 * acquirer may have resumed it since), then destroy.
 */
static bool
destroy_reusable(PcrPass *pass, const PcrReconcileStep *step, const PcrSandboxProvider *p,
				 PcrSweepItem *it)
{
	PcrSandboxObject obj;
	PcrSweepBatch one = {.items = it,.n = 1,.now = GetCurrentTimestamp()};
	int			slot;
	uint32		generation;
	bool		gone = false;

	item_object(it, &obj);
	if (!PcrInflightClaimName(p, &obj, &slot, &generation))
		return false;
	it->verdict = VERDICT_KEEP;
	if (PcrReconcilerInTransaction(pass, step, NULL, decide_in_transaction, &one) == 1 &&
		it->verdict == VERDICT_DESTROY)
		gone = destroy_object(pass, step, p, &obj);
	PcrInflightReleaseName(slot, generation);
	return gone;
}

/* Sweep one provider's objects; false when the extension is absent. */
static bool
sweep_provider(PcrPass *pass, const PcrReconcileStep *step, const PcrSandboxProvider *p)
{
	MemoryContext cxt = CurrentMemoryContext;
	PcrOwnedObject *owned = NULL;
	int			n = 0;
	char		message[PCR_PROVIDER_MESSAGE_MAX] = "";
	volatile PcrProviderStatus status = PCR_PROVIDER_FATAL;
	PcrSweepBatch *b;
	int			rc;

	PG_TRY();
	{
		status = PcrSandboxCallListOwned(p, &owned, &n, message);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		strlcpy(message, edata->message ? edata->message : "driver request failed", sizeof(message));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	if (status != PCR_PROVIDER_OK)
	{
		PcrReconcilerStepError(pass, step, psprintf("could not list the sandboxes of provider \"%s\"", p->name),
							   message);
		next_sweep_at = Min(next_sweep_at, TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																	   pcr_reconcile_interval));
		return true;
	}
	b = sweep_items(owned, n);
	if (b->n == 0)
		return true;
	rc = PcrReconcilerInTransaction(pass, step, NULL, decide_in_transaction, b);
	if (rc <= 0)
		return rc == 0 ? false : true;
	for (int i = 0; i < b->n; i++)
	{
		PcrSandboxObject obj;

		CHECK_FOR_INTERRUPTS();
		if (b->items[i].verdict != VERDICT_DESTROY)
			continue;
		if (b->items[i].reusable)
			(void) destroy_reusable(pass, step, p, &b->items[i]);
		else
		{
			item_object(&b->items[i], &obj);
			(void) destroy_object(pass, step, p, &obj);
		}
	}
	if (b->later != 0)
		next_sweep_at = Min(next_sweep_at, b->later);
	return true;
}

static bool
sweep_run(PcrPass *pass, const PcrReconcileStep *step)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		requested = PcrInflightTakeSweepRequest();

	if (!requested && next_sweep_at != 0 && now < next_sweep_at)
		return true;
	next_sweep_at = TimestampTzPlusMilliseconds(now, PCR_SWEEP_INTERVAL_MS);
	for (int i = 0; i < PcrSandboxProviderCount(); i++)
	{
		const PcrSandboxProvider *p = PcrSandboxProviderAt(i);

		if (!PcrSandboxProviderHasObjects(p))
			continue;
		if (!sweep_provider(pass, step, p))
		{
			next_sweep_at = 0;	/* the extension is gone: sweep when it is back */
			return false;
		}
	}
	return true;
}

static const PcrReconcileStep orphans_step = {
	.name = "destroy sandboxes of aborted acquisitions",
	.run = orphans_run,
};

static const PcrReconcileStep sweep_step = {
	.name = "sweep sandboxes without a lease",
	.run = sweep_run,
};

void
PcrSandboxSweepInit(bool preloading)
{
	if (!preloading)
		return;
	PcrReconcilerAddStep(&orphans_step);
	PcrReconcilerAddStep(&sweep_step);
}
