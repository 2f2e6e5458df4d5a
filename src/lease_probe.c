/*
 * lease_probe.c — active leases found by direct index probes, never by a plan
 *
 * Every partial index on active leases has the predicate status = 'active',
 * so every query that says status = 'active' may be planned on any of them.
 * With statistics gathered while few leases were active (a quiet night, then
 * a burst of runs: autoanalyze waits for a tenth of the table to change),
 * the planner estimates each of those indexes at one page and may well scan
 * every active lease to find the one it wants.  So the lease paths do not
 * ask the planner: they read the index keyed by what they know, here, and
 * the statement that then reads or changes the rows addresses them by
 * primary key (see lease.c) or by ctid (the reconciler).
 *
 * The scans see what a volatile function's next SPI query would see: a
 * fresh snapshot after CommandCounterIncrement, so also the rows this
 * transaction changed so far.
 */
#include "pcr.h"
#include "lease_probe.h"
#include "rel_util.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* the columns a probe reads */
static const PcrColumn probe_columns[] = {
	{"status", TEXTOID},
	{"id", UUIDOID},
	{"heartbeat_run_id", UUIDOID},
};

typedef struct PcrProbe
{
	PcrRel		index;			/* a partial index on active leases */
	int			nkeys;
	ScanKeyData keys[2];
	const pg_uuid_t *not_of_run;	/* leases of this run do not count */
	const Datum *skip;			/* lease ids that do not count */
	int			nskip;
	int			max;			/* stop after this many; 0: find all */
} PcrProbe;

typedef struct PcrFound
{
	pg_uuid_t	id;
	ItemPointerData tid;
} PcrFound;

static bool
text_equals(Datum d, const char *s)
{
	text	   *t = DatumGetTextPP(d);
	size_t		len = strlen(s);

	return VARSIZE_ANY_EXHDR(t) == len && memcmp(VARDATA_ANY(t), s, len) == 0;
}

static bool
uuid_listed(const pg_uuid_t *id, const Datum *list, int n)
{
	for (int i = 0; i < n; i++)
		if (memcmp(DatumGetUUIDP(list[i]), id, UUID_LEN) == 0)
			return true;
	return false;
}

/*
 * Does the row in slot count for the probe?  An index entry can lead to a
 * row version that is visible but no longer active (a HOT chain never
 * changes the status, but be sure).
 */
static bool
counts(const PcrProbe *p, TupleTableSlot *slot, const AttrNumber *att, pg_uuid_t *id)
{
	bool		isnull;
	Datum		d;

	d = slot_getattr(slot, att[0], &isnull);
	if (isnull || !text_equals(d, "active"))
		return false;
	d = slot_getattr(slot, att[1], &isnull);
	if (isnull)
		return false;
	memcpy(id, DatumGetUUIDP(d), UUID_LEN);
	if (p->nskip > 0 && uuid_listed(id, p->skip, p->nskip))
		return false;
	if (p->not_of_run != NULL)
	{
		d = slot_getattr(slot, att[2], &isnull);
		if (!isnull && memcmp(DatumGetUUIDP(d), p->not_of_run, UUID_LEN) == 0)
			return false;
	}
	return true;
}

/* Run the probe; the leases found, in index order, go to *found (palloc'd). */
static int
run_probe(const PcrProbe *p, PcrFound **found)
{
	static PcrColumns columns;
	Relation	rel;
	Relation	idx;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	Snapshot	snapshot;
	const AttrNumber *att;
	int			n = 0;
	int			size = p->max > 0 ? p->max : 4;

	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	PushActiveSnapshot(snapshot);

	rel = table_open(PcrRelid(PCR_REL_ENVIRONMENT_LEASES), AccessShareLock);
	idx = index_open(PcrRelid(p->index), AccessShareLock);
	slot = table_slot_create(rel, NULL);
	att = PcrResolveColumns(rel, probe_columns, lengthof(probe_columns), &columns);

	*found = palloc(sizeof(PcrFound) * size);
	scan = index_beginscan(rel, idx, snapshot, p->nkeys, 0);
	index_rescan(scan, (ScanKey) p->keys, p->nkeys, NULL, 0);
	while ((p->max == 0 || n < p->max) && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		pg_uuid_t	id;

		if (!counts(p, slot, att, &id))
			continue;
		if (n == size)
		{
			size *= 2;
			*found = repalloc(*found, sizeof(PcrFound) * size);
		}
		(*found)[n].id = id;
		(*found)[n].tid = slot->tts_tid;
		n++;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, NoLock);

	PopActiveSnapshot();
	UnregisterSnapshot(snapshot);
	return n;
}

static void
uuid_key(ScanKeyData *key, AttrNumber column, const pg_uuid_t *value)
{
	ScanKeyInit(key, column, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum((pg_uuid_t *) value));
}

int
PcrProbeRunLeases(const pg_uuid_t *run_id, Datum **ids)
{
	PcrProbe	p = {.index = PCR_REL_LEASES_ACTIVE_BY_RUN_ENVIRONMENT, .nkeys = 1};
	PcrFound   *found;
	int			n;

	/* the leading column of (heartbeat_run_id, environment_id) */
	uuid_key(&p.keys[0], 1, run_id);
	n = run_probe(&p, &found);
	*ids = palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

		*id = found[i].id;
		(*ids)[i] = UUIDPGetDatum(id);
	}
	return n;
}

bool
PcrProbeRunEnvironmentLease(const pg_uuid_t *run_id, const pg_uuid_t *environment_id,
							pg_uuid_t *lease_id)
{
	PcrProbe	p = {.index = PCR_REL_LEASES_ACTIVE_BY_RUN_ENVIRONMENT, .nkeys = 2, .max = 1};
	PcrFound   *found;

	uuid_key(&p.keys[0], 1, run_id);
	uuid_key(&p.keys[1], 2, environment_id);
	if (run_probe(&p, &found) == 0)
		return false;
	*lease_id = found[0].id;
	return true;
}

bool
PcrProbeEnvironmentHolder(const pg_uuid_t *environment_id, const pg_uuid_t *run_id,
						  pg_uuid_t *lease_id)
{
	PcrProbe	p = {.index = PCR_REL_LEASES_ACTIVE_BY_ENVIRONMENT, .nkeys = 1, .max = 1, .not_of_run = run_id};
	PcrFound   *found;

	uuid_key(&p.keys[0], 1, environment_id);
	if (run_probe(&p, &found) == 0)
		return false;
	*lease_id = found[0].id;
	return true;
}

int
PcrProbeDueLeases(TimestampTz now, const Datum *skip, int nskip, int max, ItemPointerData *tids)
{
	PcrProbe	p = {.index = PCR_REL_LEASES_ACTIVE_BY_EXPIRY, .nkeys = 1, .skip = skip, .nskip = nskip, .max = max};
	PcrFound   *found;
	int			n;

	/* (expires_at) in ascending order: the most overdue first */
	ScanKeyInit(&p.keys[0], 1, BTLessEqualStrategyNumber, F_TIMESTAMPTZ_LE,
				TimestampTzGetDatum(now));
	n = run_probe(&p, &found);
	for (int i = 0; i < n; i++)
		tids[i] = found[i].tid;
	return n;
}
