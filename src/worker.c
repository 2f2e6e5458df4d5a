/*
 * worker.c — the driver worker pool and the hand-off from a backend
 *
 * paperclip.driver_workers static background workers, one shared-memory slot
 * each.  A slot is a small state machine guarded by a spinlock:
 *
 *   IDLE ─caller claims─▶ CLAIMED ─request copied─▶ REQUESTED ─worker─▶ RUNNING
 *     ▲                                                                  │
 *     └──────────── caller copies the answer ◀── DONE ◀──────────────────┘
 *
 * The request and the answer are written by their single owner while the
 * state says nobody else reads them, so the spinlock only guards the state.
 * A caller that gives up (statement_timeout, pg_cancel_backend, acquire
 * timeout) marks the slot abandoned and wakes the worker, which stops at its
 * next wait and frees the slot itself.  A worker that exits mid-request
 * answers its caller with an error from its exit callback, so a caller never
 * waits for a worker that is gone.
 *
 * Workers connect to no database (like the logical replication launcher):
 * they show up in pg_stat_activity as "paperclip driver", answer
 * pg_terminate_backend, and never block DROP DATABASE.  The private key is
 * resolved from the secret by the calling backend (its snapshot, its
 * privileges) and travels through the slot; see docs/ssh.md.
 */
#include "pcr.h"
#include "worker.h"
#include "ssh_client.h"
#include "ssh_allow.h"

#include <sodium.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define PCR_WORKER_MAX_ADVERTISED	8
#define PCR_WORKER_RESTART_SECONDS	1
#define PCR_CLAIM_POLL_MS			10

typedef enum PcrSlotState
{
	SLOT_IDLE = 0,
	SLOT_CLAIMED,
	SLOT_REQUESTED,
	SLOT_RUNNING,
	SLOT_DONE
} PcrSlotState;

typedef struct PcrDriverSlot
{
	slock_t		mutex;
	PcrSlotState state;
	pid_t		worker_pid;		/* 0 while no worker runs for this slot */
	Latch	   *worker_latch;
	Latch	   *caller_latch;
	bool		abandoned;		/* the caller gave up on the current request */
	int			nadvertised;
	uint64		advertised[PCR_WORKER_MAX_ADVERTISED];	/* sessions the worker holds */
	uint64		served;			/* requests answered, for operators */
	PcrSshRequest req;
	PcrSshResponse resp;
} PcrDriverSlot;

typedef struct PcrDriverPool
{
	uint8		hash_key[32];	/* random per server start: keys the session hashes */
	int			nslots;
	PcrDriverSlot slots[FLEXIBLE_ARRAY_MEMBER];
} PcrDriverPool;

static PcrDriverPool *pool = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* worker side: this process's slot */
static PcrDriverSlot *my_slot = NULL;

PGDLLEXPORT void pcr_driver_worker_main(Datum arg);

PG_FUNCTION_INFO_V1(pcr_driver_workers_status);

static Size
pool_size(void)
{
	return add_size(offsetof(PcrDriverPool, slots),
					mul_size(sizeof(PcrDriverSlot), Max(pcr_driver_workers, 1)));
}

static void
pool_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(pool_size());
}

static void
pool_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pool = ShmemInitStruct("paperclip driver pool", pool_size(), &found);
	if (!found)
	{
		memset(pool, 0, pool_size());
		if (!pg_strong_random(pool->hash_key, sizeof(pool->hash_key)))
			elog(FATAL, "could not generate the paperclip session hash key");
		pool->nslots = pcr_driver_workers;
		for (int i = 0; i < pool->nslots; i++)
			SpinLockInit(&pool->slots[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
PcrDriverWorkersInit(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pool_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pool_shmem_startup;

	for (int i = 0; i < pcr_driver_workers; i++)
	{
		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_ConsistentState;
		worker.bgw_restart_time = PCR_WORKER_RESTART_SECONDS;
		strlcpy(worker.bgw_library_name, "paperclip_runtime", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "pcr_driver_worker_main", BGW_MAXLEN);
		snprintf(worker.bgw_name, BGW_MAXLEN, "paperclip driver %d", i);
		strlcpy(worker.bgw_type, "paperclip driver", BGW_MAXLEN);
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}
}

void
PcrSshCacheKey(PcrSshRequest *req)
{
	crypto_generichash_state st;
	int32		port = req->port;

	Assert(pool != NULL);
	crypto_generichash_init(&st, pool->hash_key, sizeof(pool->hash_key), PCR_SSH_CACHE_KEY_LEN);
	crypto_generichash_update(&st, (const unsigned char *) req->host, strlen(req->host) + 1);
	crypto_generichash_update(&st, (const unsigned char *) &port, sizeof(port));
	crypto_generichash_update(&st, (const unsigned char *) req->username, strlen(req->username) + 1);
	crypto_generichash_update(&st, (const unsigned char *) req->key, req->key_len);
	/* a session opened under another allow-list is not reused */
	crypto_generichash_update(&st, (const unsigned char *) PcrSshAllowedHostsSetting(),
							  strlen(PcrSshAllowedHostsSetting()) + 1);
	crypto_generichash_final(&st, req->cache_key, PCR_SSH_CACHE_KEY_LEN);
	sodium_memzero(&st, sizeof(st));
	memcpy(&req->route_hash, req->cache_key, sizeof(uint64));
}

/* ------------------------------------------------------------------------
 * Caller side
 * ------------------------------------------------------------------------ */

/* Claim an idle slot, preferring a worker that holds a session for route. */
static int
try_claim(uint64 route, bool *any_worker)
{
	*any_worker = false;
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < pool->nslots; i++)
		{
			PcrDriverSlot *slot = &pool->slots[i];
			bool		match = false;
			bool		claimed = false;

			SpinLockAcquire(&slot->mutex);
			if (slot->worker_pid != 0)
				*any_worker = true;
			if (slot->worker_pid != 0 && slot->state == SLOT_IDLE)
			{
				for (int k = 0; k < slot->nadvertised; k++)
					match |= slot->advertised[k] == route;
				/* first pass: only a worker with a session; second: any */
				if (match || pass == 1)
				{
					slot->state = SLOT_CLAIMED;
					slot->caller_latch = MyLatch;
					slot->abandoned = false;
					claimed = true;
				}
			}
			SpinLockRelease(&slot->mutex);
			if (claimed)
				return i;
		}
	}
	return -1;
}

/* Give up on a request: free the slot now, or let the worker free it. */
static void
abandon(PcrDriverSlot *slot)
{
	bool		ours = false;
	Latch	   *wake = NULL;

	SpinLockAcquire(&slot->mutex);
	switch (slot->state)
	{
		case SLOT_CLAIMED:
		case SLOT_REQUESTED:
		case SLOT_DONE:
			/* back to CLAIMED: nobody else touches the slot while we wipe it */
			slot->state = SLOT_CLAIMED;
			ours = true;
			break;
		case SLOT_RUNNING:
			slot->abandoned = true;
			wake = slot->worker_latch;
			break;
		case SLOT_IDLE:
			break;
	}
	SpinLockRelease(&slot->mutex);
	if (wake)
		SetLatch(wake);
	if (!ours)
		return;
	/* the worker never read the request, or is done with it: its key goes */
	sodium_memzero(slot->req.key, sizeof(slot->req.key));
	SpinLockAcquire(&slot->mutex);
	slot->state = SLOT_IDLE;
	SpinLockRelease(&slot->mutex);
}

/* What the caller's cleanup needs when it errors out or exits mid-call. */
typedef struct PcrCallState
{
	PcrSshRequest *req;
	PcrDriverSlot *slot;		/* NULL until a slot is claimed */
} PcrCallState;

/* On ERROR and on FATAL (pg_terminate_backend of the caller): free the slot. */
static void
call_cleanup(int code, Datum arg)
{
	PcrCallState *st = (PcrCallState *) DatumGetPointer(arg);

	sodium_memzero(st->req->key, sizeof(st->req->key));
	if (st->slot != NULL)
		abandon(st->slot);
	st->slot = NULL;
}

static bool
workers_running(void)
{
	return pcr_preloaded && pool != NULL && pool->nslots > 0;
}

/* 55000 with a hint unless driver workers can serve requests. */
void
PcrRequireDriverWorkers(void)
{
	if (workers_running())
		return;
	ereport(ERROR,
			(errcode(PCR_ERRCODE_WRONG_STATE),
			 errmsg("paperclip driver workers are not running"),
			 errhint(!pcr_preloaded
					 ? "Add paperclip_runtime to shared_preload_libraries and restart the server."
					 : "Set paperclip.driver_workers to at least 1 and restart the server.")));
}

void
PcrDriverCall(PcrSshRequest *req, PcrSshResponse *resp)
{
	PcrCallState st = {.req = req,.slot = NULL};
	TimestampTz deadline;

	if (!workers_running())
	{
		sodium_memzero(req->key, sizeof(req->key));
		PcrRequireDriverWorkers();
	}

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), pcr_acquire_timeout);

	PG_ENSURE_ERROR_CLEANUP(call_cleanup, PointerGetDatum(&st));
	{
		PcrDriverSlot *slot;
		bool		any_worker;
		int			idx;
		Latch	   *wake;

		/* 1. an idle worker, bounded by paperclip.acquire_timeout */
		while ((idx = try_claim(req->route_hash, &any_worker)) < 0)
		{
			long		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

			if (ms <= 0)
				ereport(ERROR,
						(errcode(PCR_ERRCODE_NO_WORKER),
						 errmsg("no paperclip driver worker became free within paperclip.acquire_timeout (%d ms)",
								pcr_acquire_timeout),
						 any_worker
						 ? errdetail("All %d driver workers are busy.", pool->nslots)
						 : errdetail("No driver worker is running."),
						 errhint("Raise paperclip.driver_workers or paperclip.acquire_timeout.")));
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(ms, PCR_CLAIM_POLL_MS), PcrWaitEventExtension());
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		slot = st.slot = &pool->slots[idx];

		/* 2. hand the request over; only we touch it while CLAIMED */
		memcpy(&slot->req, req, sizeof(PcrSshRequest));
		sodium_memzero(req->key, sizeof(req->key));
		SpinLockAcquire(&slot->mutex);
		slot->state = SLOT_REQUESTED;
		wake = slot->worker_latch;
		SpinLockRelease(&slot->mutex);
		/* a worker that exited meanwhile is restarted and serves it first */
		if (wake != NULL)
			SetLatch(wake);

		/* 3. sleep until the answer is there */
		for (;;)
		{
			PcrSlotState state;
			long		ms;

			SpinLockAcquire(&slot->mutex);
			state = slot->state;
			SpinLockRelease(&slot->mutex);
			if (state == SLOT_DONE)
				break;
			ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (ms <= 0)
				ereport(ERROR,
						(errcode(PCR_ERRCODE_TRANSPORT),
						 errmsg("driver request to \"%s\" did not finish within paperclip.acquire_timeout (%d ms)",
								req->host, pcr_acquire_timeout)));
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 ms, PcrWaitEventExtension());
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		memcpy(resp, &slot->resp, sizeof(PcrSshResponse));
		SpinLockAcquire(&slot->mutex);
		slot->state = SLOT_IDLE;
		SpinLockRelease(&slot->mutex);
		st.slot = NULL;
	}
	PG_END_ENSURE_ERROR_CLEANUP(call_cleanup, PointerGetDatum(&st));

	if (!resp->ok)
		ereport(ERROR,
				(errcode(resp->sqlerrcode),
				 errmsg_internal("%s", resp->message),
				 resp->detail[0] ? errdetail_internal("%s", resp->detail) : 0,
				 resp->hint[0] ? errhint("%s", resp->hint) : 0));
}

/* ------------------------------------------------------------------------
 * For operators: paperclip.driver_workers_status()
 * ------------------------------------------------------------------------ */
static const char *
slot_state_name(PcrSlotState state)
{
	switch (state)
	{
		case SLOT_IDLE:
			return "idle";
		case SLOT_CLAIMED:
			return "claimed";
		case SLOT_REQUESTED:
			return "requested";
		case SLOT_RUNNING:
			return "running";
		case SLOT_DONE:
			return "done";
	}
	return "unknown";
}

Datum
pcr_driver_workers_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (pool == NULL)
		return (Datum) 0;
	for (int i = 0; i < pool->nslots; i++)
	{
		PcrDriverSlot *slot = &pool->slots[i];
		Datum		values[5];
		bool		nulls[5] = {false};
		pid_t		pid;
		PcrSlotState state;
		uint64		served;
		int			sessions;

		SpinLockAcquire(&slot->mutex);
		pid = slot->worker_pid;
		state = slot->state;
		served = slot->served;
		sessions = slot->nadvertised;
		SpinLockRelease(&slot->mutex);

		values[0] = Int32GetDatum(i);
		values[1] = Int32GetDatum((int32) pid);
		nulls[1] = pid == 0;
		values[2] = CStringGetTextDatum(pid == 0 && state == SLOT_IDLE ? "stopped" : slot_state_name(state));
		values[3] = Int64GetDatum((int64) served);
		values[4] = Int32GetDatum(sessions);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * Worker side
 * ------------------------------------------------------------------------ */
void
PcrWorkerCheckAbandoned(void)
{
	bool		abandoned;

	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	abandoned = my_slot->abandoned;
	SpinLockRelease(&my_slot->mutex);
	if (abandoned)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("driver request cancelled by its caller")));
}

void
PcrWorkerAdvertise(const uint64 *hashes, int n)
{
	if (my_slot == NULL)
		return;
	n = Min(n, PCR_WORKER_MAX_ADVERTISED);
	SpinLockAcquire(&my_slot->mutex);
	memcpy(my_slot->advertised, hashes, sizeof(uint64) * n);
	my_slot->nadvertised = n;
	SpinLockRelease(&my_slot->mutex);
}

/* On exit (SIGTERM, pg_terminate_backend, FATAL): answer a waiting caller. */
static void
worker_exit(int code, Datum arg)
{
	PcrDriverSlot *slot = my_slot;
	Latch	   *wake = NULL;

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	/* a request this worker took: wipe its key (in CLAIMED the caller owns it) */
	if (slot->state == SLOT_REQUESTED || slot->state == SLOT_RUNNING)
		sodium_memzero(slot->req.key, sizeof(slot->req.key));
	if ((slot->state == SLOT_REQUESTED || slot->state == SLOT_RUNNING) && !slot->abandoned)
	{
		memset(&slot->resp, 0, sizeof(slot->resp));
		slot->resp.ok = false;
		slot->resp.sqlerrcode = PCR_ERRCODE_TRANSPORT;
		snprintf(slot->resp.message, sizeof(slot->resp.message),
				 "paperclip driver worker %d exited during the request", (int) (slot - pool->slots));
		strlcpy(slot->resp.detail, "The worker was terminated before it could answer; no lease was granted.",
				sizeof(slot->resp.detail));
		slot->state = SLOT_DONE;
		wake = slot->caller_latch;
	}
	else if (slot->state != SLOT_DONE && slot->state != SLOT_CLAIMED)
		slot->state = SLOT_IDLE;	/* a caller mid hand-off keeps its claim */
	slot->worker_pid = 0;
	slot->worker_latch = NULL;
	slot->nadvertised = 0;
	SpinLockRelease(&slot->mutex);
	if (wake)
		SetLatch(wake);
	my_slot = NULL;
}

static void
serve_request(PcrSshRequest *req, PcrSshResponse *resp, MemoryContext workctx)
{
	Latch	   *wake;
	bool		abandoned;
	MemoryContext old;

	SpinLockAcquire(&my_slot->mutex);
	if (my_slot->state != SLOT_REQUESTED)
	{
		SpinLockRelease(&my_slot->mutex);
		return;
	}
	my_slot->state = SLOT_RUNNING;
	SpinLockRelease(&my_slot->mutex);
	pgstat_report_activity(STATE_RUNNING, "ssh request");

	memcpy(req, &my_slot->req, sizeof(PcrSshRequest));
	sodium_memzero(my_slot->req.key, sizeof(my_slot->req.key));
	memset(resp, 0, sizeof(PcrSshResponse));

	old = MemoryContextSwitchTo(workctx);
	PG_TRY();
	{
		TimestampTz start = GetCurrentTimestamp();

		PcrSshExecute(req, resp);
		resp->ok = true;
		resp->elapsed_ms = (int32) TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(workctx);
		edata = CopyErrorData();
		FlushErrorState();
		PcrSshAbort();
		resp->ok = false;
		resp->sqlerrcode = edata->sqlerrcode;
		strlcpy(resp->message, edata->message ? edata->message : "driver request failed",
				sizeof(resp->message));
		if (edata->detail)
			strlcpy(resp->detail, edata->detail, sizeof(resp->detail));
		if (edata->hint)
			strlcpy(resp->hint, edata->hint, sizeof(resp->hint));
	}
	PG_END_TRY();
	sodium_memzero(req->key, sizeof(req->key));
	MemoryContextSwitchTo(old);
	MemoryContextReset(workctx);

	/* only the worker writes resp while RUNNING */
	memcpy(&my_slot->resp, resp, sizeof(PcrSshResponse));
	SpinLockAcquire(&my_slot->mutex);
	abandoned = my_slot->abandoned;
	my_slot->served++;
	wake = NULL;
	if (abandoned)
	{
		my_slot->state = SLOT_IDLE;
		my_slot->abandoned = false;
	}
	else
	{
		my_slot->state = SLOT_DONE;
		wake = my_slot->caller_latch;
	}
	SpinLockRelease(&my_slot->mutex);
	if (wake)
		SetLatch(wake);
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
pcr_driver_worker_main(Datum arg)
{
	int			idx = DatumGetInt32(arg);
	char		appname[NAMEDATALEN];
	MemoryContext workerctx;
	MemoryContext workctx;
	PcrSshRequest *req;
	PcrSshResponse *resp;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	/* no database: visible in pg_stat_activity, never in the way of DROP DATABASE */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	snprintf(appname, sizeof(appname), "paperclip driver %d", idx);
	pgstat_report_appname(appname);

	if (pool == NULL || idx >= pool->nslots)
		elog(FATAL, "paperclip driver worker %d has no slot", idx);

	workerctx = AllocSetContextCreate(TopMemoryContext, "paperclip driver worker",
									  ALLOCSET_DEFAULT_SIZES);
	workctx = AllocSetContextCreate(workerctx, "paperclip driver request",
									ALLOCSET_DEFAULT_SIZES);
	req = MemoryContextAllocZero(workerctx, sizeof(PcrSshRequest));
	resp = MemoryContextAllocZero(workerctx, sizeof(PcrSshResponse));

	my_slot = &pool->slots[idx];
	before_shmem_exit(worker_exit, (Datum) 0);
	SpinLockAcquire(&my_slot->mutex);
	my_slot->worker_pid = MyProcPid;
	my_slot->worker_latch = MyLatch;
	my_slot->nadvertised = 0;
	my_slot->abandoned = false;
	SpinLockRelease(&my_slot->mutex);
	serve_request(req, resp, workctx);

	pgstat_report_activity(STATE_IDLE, NULL);
	for (;;)
	{
		long		timeout = PcrSshExpireIdle();

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout < 0 ? 60000 : timeout, PcrWaitEventExtension());
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		serve_request(req, resp, workctx);
	}
}
