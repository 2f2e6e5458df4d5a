/*
 * sandbox_inflight.c — sandbox acquisitions whose outcome is not known yet
 *
 * acquire_run_lease() creates (or resumes) a provider object in a driver
 * worker before it writes the lease row.  If the acquiring (sub)transaction
 * then aborts, or its backend dies, no lease row will ever point at the
 * object: it must be destroyed.  So before the pool call the backend writes
 * an entry here — provider, object, ids, and the (sub)transaction id — and:
 * - at commit, the backend frees its entries whose xid committed (the lease
 *   row owns the object now) and hands the others (a rolled-back savepoint)
 *   to the reconciler;
 * - at abort (also of a savepoint, also on FATAL), it marks them orphans
 *   and wakes the reconciler;
 * - the reconciler (sandbox_sweep.c) claims orphans and entries whose xid
 *   is no longer running and did not commit, destroys their objects through
 *   the pool, and frees them.
 * The worker marks the entry while the provider's create or resume runs
 * ("busy"), and says when a create is about to run ("created"): an orphan is
 * destroyed only once no worker is still making it, and an entry that made
 * nothing (a resume of an object that existed, a call abandoned before it
 * reached a worker) is freed without a destroy.  A worker that finds its
 * entry gone or orphaned does not create anything.
 *
 * A reusable object is named after its environment, so several entries may
 * name it: an acquirer of it waits while the reconciler destroys it, and an
 * acquirer that finds an orphan of it takes the orphan over (its abort then
 * destroys the object; its commit keeps it).  A destroy of a reusable object
 * by a sweep claims its name the same way.
 *
 * The table lives in shared memory: a crash of the whole server (which is
 * also what SIGKILL of any backend or worker causes) loses it, and the
 * reconciler's start-up sweep of list_owned finds those objects instead.
 * A full table refuses the acquisition (53400) rather than lose track.
 *
 * Locking: one LWLock for the table; clog and proc-array lookups are done
 * outside it (entries are copied out, decided, then changed only when their
 * generation is still the one seen).
 */
#include "pcr.h"
#include "sandbox.h"
#include "reconciler.h"

#include <signal.h>

#include "access/transam.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/memutils.h"

int			pcr_max_pending_sandboxes = 1024;

typedef enum PcrInflightState
{
	INFLIGHT_FREE = 0,
	INFLIGHT_ACQUIRING,			/* its (sub)transaction is running, or has just ended */
	INFLIGHT_ORPHAN,			/* ended without a lease: destroy what it made */
	INFLIGHT_DESTROYING			/* the reconciler (or a sweep) is destroying the object */
} PcrInflightState;

typedef struct PcrInflightEntry
{
	PcrInflightState state;
	uint32		generation;		/* changes whenever the entry is (re)used */
	int			provider;		/* registry index */
	TransactionId xid;			/* the acquiring (sub)transaction */
	pid_t		backend_pid;
	bool		busy;			/* a worker runs create or resume for it */
	pid_t		worker_pid;
	TimestampTz busy_since;
	bool		created;		/* a create ran (or may have): the object may exist */
	pid_t		destroyer_pid;	/* DESTROYING: who */
	int			attempts;		/* failed destroys */
	TimestampTz next_attempt_at;
	bool		reusable;
	pg_uuid_t	lease_id;
	pg_uuid_t	company_id;
	pg_uuid_t	environment_id;
	Oid			database_id;
	char		name[PCR_OBJECT_NAME_MAX];
} PcrInflightEntry;

typedef struct PcrInflightTable
{
	LWLock	   *lock;
	ConditionVariable destroyed;	/* a DESTROYING entry was freed */
	uint32		next_generation;
	bool		sweep_requested;	/* sandbox_sweep.c: sweep at the next pass */
	int			size;
	PcrInflightEntry entries[FLEXIBLE_ARRAY_MEMBER];
} PcrInflightTable;

static PcrInflightTable *table = NULL;

/* This backend's entries of the current top-level transaction. */
typedef struct PcrOwnEntry
{
	int			slot;
	uint32		generation;
} PcrOwnEntry;

static PcrOwnEntry *own = NULL;
static int	nown = 0;
static int	own_size = 0;
static bool callbacks_registered = false;
static bool sweep_at_commit = false;

/* ------------------------------------------------------------------------
 * Settings and shared memory
 * ------------------------------------------------------------------------ */
void
PcrInflightInit(bool preloading)
{
	DefineCustomIntVariable("paperclip.max_pending_sandboxes",
							"Sandbox acquisitions whose outcome shared memory tracks at once.",
							"An acquisition that finds the table full is refused (53400).",
							&pcr_max_pending_sandboxes, 1024, 16, 65536,
							preloading ? PGC_POSTMASTER : PGC_SIGHUP, 0, NULL, NULL, NULL);
}

static Size
table_size(void)
{
	return add_size(offsetof(PcrInflightTable, entries),
					mul_size(sizeof(PcrInflightEntry), pcr_max_pending_sandboxes));
}

void
PcrInflightShmemRequest(void)
{
	RequestAddinShmemSpace(table_size());
	RequestNamedLWLockTranche("paperclip sandboxes", 1);
}

void
PcrInflightShmemStartup(void)
{
	bool		found;

	table = ShmemInitStruct("paperclip sandboxes", table_size(), &found);
	if (found)
		return;
	memset(table, 0, table_size());
	table->lock = &(GetNamedLWLockTranche("paperclip sandboxes"))->lock;
	ConditionVariableInit(&table->destroyed);
	table->size = pcr_max_pending_sandboxes;
}

static void
require_table(void)
{
	if (table == NULL)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("paperclip_runtime is not loaded through shared_preload_libraries"),
				 errhint("Sandbox providers that create objects need its shared memory and workers.")));
}

static void
free_entry(PcrInflightEntry *e)
{
	bool		was_destroying = e->state == INFLIGHT_DESTROYING;

	memset(e, 0, sizeof(*e));
	if (was_destroying)
		ConditionVariableBroadcast(&table->destroyed);
}

static PcrInflightEntry *
entry_if(int slot, uint32 generation)
{
	PcrInflightEntry *e;

	if (table == NULL || slot < 0 || slot >= table->size)
		return NULL;
	e = &table->entries[slot];
	return e->state != INFLIGHT_FREE && e->generation == generation ? e : NULL;
}

static bool
pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* Is a worker (still) making this entry's object? */
static bool
worker_busy(const PcrInflightEntry *e)
{
	long		limit = 2L * pcr_acquire_timeout + 60000;

	if (!e->busy || !pid_alive(e->worker_pid))
		return false;
	return !TimestampDifferenceExceeds(e->busy_since, GetCurrentTimestamp(), (int) Min(limit, INT_MAX));
}

/* ------------------------------------------------------------------------
 * The acquiring backend
 * ------------------------------------------------------------------------ */

/* End of a transaction (or savepoint) for the entries of this backend. */
static void
settle_own(bool top_commit, bool top_abort)
{
	bool		orphans = false;
	int			kept = 0;

	LWLockAcquire(table->lock, LW_EXCLUSIVE);
	for (int i = 0; i < nown; i++)
	{
		PcrInflightEntry *e = entry_if(own[i].slot, own[i].generation);
		bool		aborted;

		if (e == NULL || e->state != INFLIGHT_ACQUIRING)
			continue;
		/* clog knows: the top-level commit or abort, or a rolled-back savepoint */
		aborted = top_abort || !TransactionIdDidCommit(e->xid);
		if (!top_commit && !top_abort && !TransactionIdDidAbort(e->xid))
		{
			own[kept++] = own[i];	/* its savepoint is still open, or was released */
			continue;
		}
		if (!aborted)
			free_entry(e);		/* the committed lease row owns the object */
		else if (!e->created && !e->busy)
			free_entry(e);		/* nothing was made */
		else
		{
			e->state = INFLIGHT_ORPHAN;
			orphans = true;
		}
	}
	LWLockRelease(table->lock);
	nown = (top_commit || top_abort) ? 0 : kept;
	if (orphans)
		PcrReconcilerWake();
}

static void
inflight_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (nown > 0)
				settle_own(true, false);
			if (sweep_at_commit && table != NULL)
			{
				LWLockAcquire(table->lock, LW_EXCLUSIVE);
				table->sweep_requested = true;
				LWLockRelease(table->lock);
				PcrReconcilerWake();
			}
			sweep_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (nown > 0)
				settle_own(false, true);
			sweep_at_commit = false;
			break;
		case XACT_EVENT_PREPARE:
			/* COMMIT or ROLLBACK PREPARED decides later: the reconciler reads the xid's fate */
			nown = 0;
			sweep_at_commit = false;
			break;
		default:
			break;
	}
}

static void
inflight_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && nown > 0)
		settle_own(false, false);
}

static void
register_callbacks(void)
{
	if (callbacks_registered)
		return;
	RegisterXactCallback(inflight_xact_callback, NULL);
	RegisterSubXactCallback(inflight_subxact_callback, NULL);
	callbacks_registered = true;
}

static void
remember_own(int slot, uint32 generation)
{
	if (nown == own_size)
	{
		own_size = own_size == 0 ? 8 : own_size * 2;
		own = own == NULL ? MemoryContextAlloc(TopMemoryContext, sizeof(PcrOwnEntry) * own_size)
			: repalloc(own, sizeof(PcrOwnEntry) * own_size);
	}
	own[nown].slot = slot;
	own[nown].generation = generation;
	nown++;
}

/*
 * Under the lock: can obj be acquired now?  Takes over orphans of the same
 * name (their object becomes this acquisition's to destroy if it aborts);
 * false while one is being destroyed.
 */
static bool
name_free_for_acquire(const PcrSandboxObject *obj, bool *inherit_created)
{
	for (int i = 0; i < table->size; i++)
	{
		PcrInflightEntry *e = &table->entries[i];

		if (e->state == INFLIGHT_FREE || strcmp(e->name, obj->name) != 0)
			continue;
		if (e->state == INFLIGHT_DESTROYING || worker_busy(e))
			return false;
		if (e->state == INFLIGHT_ORPHAN ||
			(e->state == INFLIGHT_ACQUIRING && !TransactionIdIsInProgress(e->xid) &&
			 !TransactionIdDidCommit(e->xid)))
		{
			*inherit_created = *inherit_created || e->created;
			free_entry(e);
		}
		else if (e->state == INFLIGHT_ACQUIRING && !TransactionIdIsInProgress(e->xid))
			free_entry(e);		/* committed: its lease row owns the object */
	}
	return true;
}

static int
take_free_entry(void)
{
	for (int i = 0; i < table->size; i++)
		if (table->entries[i].state == INFLIGHT_FREE)
			return i;
	return -1;
}

int
PcrInflightBegin(const PcrSandboxProvider *p, const PcrSandboxObject *obj, uint32 *generation)
{
	TransactionId xid;
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), pcr_acquire_timeout);
	bool		inherit = false;
	int			slot;

	require_table();
	xid = GetCurrentTransactionId();	/* before the lock: it may have to assign one */
	register_callbacks();
	for (;;)
	{
		long		ms;

		LWLockAcquire(table->lock, LW_EXCLUSIVE);
		if (name_free_for_acquire(obj, &inherit))
			break;
		LWLockRelease(table->lock);
		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);
		if (ms <= 0)
			ereport(ERROR,
					(errcode(PCR_ERRCODE_HELD),
					 errmsg("sandbox \"%s\" is being destroyed", obj->name),
					 errhint("Retry the acquisition once the reconciler has destroyed it.")));
		ConditionVariableTimedSleep(&table->destroyed, Min(ms, 100), PcrWaitEventExtension());
		CHECK_FOR_INTERRUPTS();
	}
	ConditionVariableCancelSleep();
	slot = take_free_entry();
	if (slot < 0)
	{
		LWLockRelease(table->lock);
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NO_WORKER),
				 errmsg("too many sandbox acquisitions are waiting for their outcome"),
				 errdetail("paperclip.max_pending_sandboxes (%d) entries are in use.", table->size),
				 errhint("Retry once the reconciler has caught up, or raise paperclip.max_pending_sandboxes.")));
	}
	{
		PcrInflightEntry *e = &table->entries[slot];

		memset(e, 0, sizeof(*e));
		e->state = INFLIGHT_ACQUIRING;
		e->generation = *generation = ++table->next_generation;
		e->provider = PcrSandboxProviderIndex(p);
		e->xid = xid;
		e->backend_pid = MyProcPid;
		e->created = inherit;
		e->reusable = obj->reusable;
		e->lease_id = obj->lease_id;
		e->company_id = obj->company_id;
		e->environment_id = obj->environment_id;
		e->database_id = obj->database_id;
		strlcpy(e->name, obj->name, sizeof(e->name));
	}
	LWLockRelease(table->lock);
	remember_own(slot, *generation);
	return slot;
}

void
PcrInflightAbandon(int slot, uint32 generation)
{
	PcrInflightEntry *e;

	LWLockAcquire(table->lock, LW_EXCLUSIVE);
	e = entry_if(slot, generation);
	if (e != NULL && e->state == INFLIGHT_ACQUIRING)
		e->state = INFLIGHT_ORPHAN;
	LWLockRelease(table->lock);
	PcrReconcilerWakeAtCommit();
}

/* ------------------------------------------------------------------------
 * The driver worker
 * ------------------------------------------------------------------------ */
bool
PcrInflightWorkerStart(int slot, uint32 generation)
{
	PcrInflightEntry *e;
	bool		ok = false;

	if (table == NULL)
		return false;
	LWLockAcquire(table->lock, LW_EXCLUSIVE);
	e = entry_if(slot, generation);
	if (e != NULL && e->state == INFLIGHT_ACQUIRING)
	{
		e->busy = true;
		e->worker_pid = MyProcPid;
		e->busy_since = GetCurrentTimestamp();
		ok = true;
	}
	LWLockRelease(table->lock);
	return ok;
}

void
PcrInflightWorkerCreates(int slot, uint32 generation)
{
	PcrInflightEntry *e;

	LWLockAcquire(table->lock, LW_EXCLUSIVE);
	e = entry_if(slot, generation);
	if (e != NULL)
		e->created = true;
	LWLockRelease(table->lock);
}

void
PcrInflightWorkerDone(int slot, uint32 generation)
{
	PcrInflightEntry *e;

	if (table == NULL)
		return;
	LWLockAcquire(table->lock, LW_EXCLUSIVE);
	e = entry_if(slot, generation);
	if (e != NULL)
		e->busy = false;
	LWLockRelease(table->lock);
}

/* ------------------------------------------------------------------------
 * The reconciler
 * ------------------------------------------------------------------------ */
typedef struct PcrSeen
{
	int			slot;
	uint32		generation;
	PcrInflightState state;
	TransactionId xid;
	bool		busy;
	bool		done;			/* its transaction is over (ACQUIRING) */
	bool		committed;
} PcrSeen;

static void
fill_orphan(PcrInflightOrphan *o, int slot, const PcrInflightEntry *e)
{
	memset(o, 0, sizeof(*o));
	o->slot = slot;
	o->generation = e->generation;
	o->provider = e->provider;
	o->obj.name = pstrdup(e->name);
	o->obj.cluster = PcrSandboxCluster();
	o->obj.lease_id = e->lease_id;
	o->obj.company_id = e->company_id;
	o->obj.environment_id = e->environment_id;
	o->obj.database_id = e->database_id;
	o->obj.reusable = e->reusable;
}

int
PcrInflightClaimOrphans(PcrInflightOrphan *out, int max)
{
	PcrSeen    *seen;
	int			nseen = 0;
	int			n = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (table == NULL)
		return 0;
	seen = palloc(sizeof(PcrSeen) * table->size);
	LWLockAcquire(table->lock, LW_SHARED);
	for (int i = 0; i < table->size; i++)
	{
		PcrInflightEntry *e = &table->entries[i];

		if (e->state == INFLIGHT_FREE)
			continue;
		seen[nseen++] = (PcrSeen) {.slot = i,.generation = e->generation,.state = e->state,
		.xid = e->xid,.busy = worker_busy(e)};
	}
	LWLockRelease(table->lock);

	/* the fate of each acquisition, from the proc array and clog (no lock held) */
	for (int i = 0; i < nseen; i++)
		if (seen[i].state == INFLIGHT_ACQUIRING && !TransactionIdIsInProgress(seen[i].xid))
		{
			seen[i].done = true;
			seen[i].committed = TransactionIdDidCommit(seen[i].xid);
		}

	LWLockAcquire(table->lock, LW_EXCLUSIVE);
	for (int i = 0; i < nseen && n < max; i++)
	{
		PcrInflightEntry *e = entry_if(seen[i].slot, seen[i].generation);

		if (e == NULL || e->state != seen[i].state)
			continue;			/* changed meanwhile: the next pass sees it */
		if (e->state == INFLIGHT_DESTROYING)
		{
			/* a reconciler that died mid-destroy: destroy again */
			if (pid_alive(e->destroyer_pid))
				continue;
		}
		else if (e->state == INFLIGHT_ACQUIRING)
		{
			if (!seen[i].done || seen[i].busy)
				continue;
			if (seen[i].committed)
			{
				free_entry(e);
				continue;
			}
		}
		else if (seen[i].busy || worker_busy(e) || e->next_attempt_at > now)
			continue;
		if (!e->created)
		{
			free_entry(e);		/* nothing was made */
			continue;
		}
		e->state = INFLIGHT_DESTROYING;
		e->destroyer_pid = MyProcPid;
		fill_orphan(&out[n++], seen[i].slot, e);
	}
	LWLockRelease(table->lock);
	pfree(seen);
	return n;
}

void
PcrInflightOrphanDone(const PcrInflightOrphan *o, bool destroyed)
{
	PcrInflightEntry *e;

	LWLockAcquire(table->lock, LW_EXCLUSIVE);
	e = entry_if(o->slot, o->generation);
	if (e != NULL && e->state == INFLIGHT_DESTROYING)
	{
		if (destroyed || e->attempts + 1 >= pcr_cleanup_max_attempts)
			free_entry(e);		/* given up: the sweep of list_owned remains */
		else
		{
			e->attempts++;
			e->state = INFLIGHT_ORPHAN;
			e->next_attempt_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															 Min((int64) pcr_reconcile_interval << Min(e->attempts - 1, 20),
																 (int64) 3600 * 1000));
		}
	}
	LWLockRelease(table->lock);
}

bool
PcrInflightHasObject(const char *name)
{
	bool		found = false;

	if (table == NULL)
		return false;
	LWLockAcquire(table->lock, LW_SHARED);
	for (int i = 0; i < table->size && !found; i++)
		found = table->entries[i].state != INFLIGHT_FREE && strcmp(table->entries[i].name, name) == 0;
	LWLockRelease(table->lock);
	return found;
}

bool
PcrInflightClaimName(const PcrSandboxProvider *p, const PcrSandboxObject *obj, int *slot, uint32 *generation)
{
	bool		ok = true;

	*slot = -1;
	if (table == NULL)
		return true;			/* no acquisition can be in flight either */
	LWLockAcquire(table->lock, LW_EXCLUSIVE);
	for (int i = 0; i < table->size && ok; i++)
		ok = table->entries[i].state == INFLIGHT_FREE || strcmp(table->entries[i].name, obj->name) != 0;
	*slot = ok ? take_free_entry() : -1;
	if (*slot >= 0)
	{
		PcrInflightEntry *e = &table->entries[*slot];

		memset(e, 0, sizeof(*e));
		e->state = INFLIGHT_DESTROYING;
		e->generation = *generation = ++table->next_generation;
		e->provider = PcrSandboxProviderIndex(p);
		e->destroyer_pid = MyProcPid;
		e->reusable = obj->reusable;
		strlcpy(e->name, obj->name, sizeof(e->name));
	}
	LWLockRelease(table->lock);
	return *slot >= 0;
}

void
PcrInflightReleaseName(int slot, uint32 generation)
{
	PcrInflightEntry *e;

	if (table == NULL || slot < 0)
		return;
	LWLockAcquire(table->lock, LW_EXCLUSIVE);
	e = entry_if(slot, generation);
	if (e != NULL)
		free_entry(e);
	LWLockRelease(table->lock);
}

/* ------------------------------------------------------------------------
 * Sweep requests (sandbox_sweep.c)
 * ------------------------------------------------------------------------ */
void
PcrSandboxSweepAtCommit(void)
{
	if (table == NULL)
		return;
	register_callbacks();
	sweep_at_commit = true;
}

bool
PcrInflightTakeSweepRequest(void)
{
	bool		requested;

	if (table == NULL)
		return false;
	LWLockAcquire(table->lock, LW_EXCLUSIVE);
	requested = table->sweep_requested;
	table->sweep_requested = false;
	LWLockRelease(table->lock);
	return requested;
}
