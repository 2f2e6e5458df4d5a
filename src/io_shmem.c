/*
 * io_shmem.c — the I/O pool's settings, shared memory and worker registration
 *
 * paperclip.driver_workers static background workers, one slot each (see
 * io_shmem.h for the slot's state machine), registered while
 * shared_preload_libraries is processed; their number is clamped so that the
 * reconciler and core's own workers keep their max_worker_processes slots.
 * Also paperclip.driver_workers_status() for operators.
 */
#include "pcr.h"
#include "io_shmem.h"
#include "guc_ceiling.h"

#include <limits.h>
#include <sodium.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#define PCR_IO_WORKER_RESTART_SECONDS	1
/* max_worker_processes slots left to others: the reconciler, the logical replication launcher */
#define PCR_IO_RESERVED_WORKERS			2

PcrIoPool  *pcr_io_pool = NULL;
int			pcr_driver_workers = 2;
int			pcr_driver_workers_per_company = 0;
int			pcr_acquire_timeout = 30000;

static int	io_nslots = 0;		/* the clamped number of workers (set while preloading) */
static PcrGucCeiling acquire_timeout_ceiling = {"paperclip.acquire_timeout", 30000};

PG_FUNCTION_INFO_V1(pcr_driver_workers_status);

static bool
check_acquire_timeout(int *newval, void **extra, GucSource source)
{
	return PcrGucCeilingCheck(&acquire_timeout_ceiling, *newval, source);
}

int
PcrIoSlotCount(void)
{
	return io_nslots;
}

/* paperclip.driver_workers, less what max_worker_processes cannot give: WARNING when clamped. */
static int
clamped_worker_count(void)
{
	int			room = Max(max_worker_processes - PCR_IO_RESERVED_WORKERS, 0);

	if (pcr_driver_workers <= room)
		return pcr_driver_workers;
	ereport(WARNING,
			(errmsg("paperclip.driver_workers is %d, but only %d driver workers can start",
					pcr_driver_workers, room),
			 errdetail("max_worker_processes is %d, and %d of those are kept for the paperclip reconciler and the logical replication launcher.",
					   max_worker_processes, PCR_IO_RESERVED_WORKERS),
			 errhint("Raise max_worker_processes, or lower paperclip.driver_workers.")));
	return room;
}

static void
register_workers(void)
{
	BackgroundWorker worker;

	for (int i = 0; i < io_nslots; i++)
	{
		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_ConsistentState;
		worker.bgw_restart_time = PCR_IO_WORKER_RESTART_SECONDS;
		strlcpy(worker.bgw_library_name, "paperclip_runtime", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "PcrIoWorkerMain", BGW_MAXLEN);
		snprintf(worker.bgw_name, BGW_MAXLEN, "paperclip driver %d", i);
		strlcpy(worker.bgw_type, "paperclip driver", BGW_MAXLEN);
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}
}

void
PcrIoInit(bool preloading)
{
	/* without preloading there are no workers: the settings are plain reloadable ones */
	GucContext	worker_context = preloading ? PGC_POSTMASTER : PGC_SIGHUP;

	DefineCustomIntVariable("paperclip.driver_workers",
							"Number of driver workers doing network and process I/O.",
							NULL, &pcr_driver_workers, 2, 0, 64,
							worker_context, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.driver_workers_per_company",
							"Most driver workers one company may keep busy at once.",
							"0 means one less than the number of driver workers (all of them when there is one).",
							&pcr_driver_workers_per_company, 0, 0, 64,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.acquire_timeout",
							"Longest time a request waits for a driver worker.",
							"A ceiling: only superusers may set it above the server's value.",
							&pcr_acquire_timeout, 30000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, check_acquire_timeout, NULL, NULL);
	if (!preloading)
		return;
	io_nslots = clamped_worker_count();
	register_workers();
}

/* ------------------------------------------------------------------------
 * Shared memory (init.c's hooks call these)
 * ------------------------------------------------------------------------ */
static Size
pool_size(void)
{
	return add_size(offsetof(PcrIoPool, slots), mul_size(sizeof(PcrIoSlot), Max(io_nslots, 1)));
}

void
PcrIoShmemRequest(void)
{
	RequestAddinShmemSpace(pool_size());
	RequestNamedLWLockTranche("paperclip io pool", 1);
}

void
PcrIoShmemStartup(void)
{
	bool		found;

	pcr_io_pool = ShmemInitStruct("paperclip io pool", pool_size(), &found);
	if (found)
		return;
	memset(pcr_io_pool, 0, pool_size());
	if (!pg_strong_random(pcr_io_pool->hash_key, sizeof(pcr_io_pool->hash_key)))
		elog(FATAL, "could not generate the paperclip route hash key");
	pcr_io_pool->claim_lock = &(GetNamedLWLockTranche("paperclip io pool"))->lock;
	ConditionVariableInit(&pcr_io_pool->slot_freed);
	pcr_io_pool->nslots = io_nslots;
	for (int i = 0; i < pcr_io_pool->nslots; i++)
	{
		SpinLockInit(&pcr_io_pool->slots[i].mutex);
		pcr_io_pool->slots[i].segment = DSM_HANDLE_INVALID;
	}
}

void
PcrIoSetIdle(PcrIoSlot *slot)
{
	SpinLockAcquire(&slot->mutex);
	slot->state = SLOT_IDLE;
	slot->abandoned = false;
	slot->has_company = false;
	slot->segment = DSM_HANDLE_INVALID;
	SpinLockRelease(&slot->mutex);
	ConditionVariableBroadcast(&pcr_io_pool->slot_freed);
}

/* ------------------------------------------------------------------------
 * Route keys
 * ------------------------------------------------------------------------ */
void
PcrIoRouteKey(const PcrIoHashPart *parts, int nparts, uint8 out[PCR_IO_ROUTE_KEY_LEN])
{
	crypto_generichash_state st;

	if (pcr_io_pool == NULL)
		PcrIoRequireWorkers();
	crypto_generichash_init(&st, pcr_io_pool->hash_key, sizeof(pcr_io_pool->hash_key),
							PCR_IO_ROUTE_KEY_LEN);
	for (int i = 0; i < nparts; i++)
		crypto_generichash_update(&st, (const unsigned char *) parts[i].data, parts[i].len);
	crypto_generichash_final(&st, out, PCR_IO_ROUTE_KEY_LEN);
	sodium_memzero(&st, sizeof(st));
}

uint64
PcrIoRouteOf(const uint8 key[PCR_IO_ROUTE_KEY_LEN])
{
	uint64		route;

	memcpy(&route, key, sizeof(route));
	return route;
}

/* ------------------------------------------------------------------------
 * For operators: paperclip.driver_workers_status()
 * ------------------------------------------------------------------------ */
static const char *
slot_state_name(PcrIoSlotState state)
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

#define STATUS_COLUMNS 7

Datum
pcr_driver_workers_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (rsinfo->setDesc->natts != STATUS_COLUMNS)
		elog(ERROR, "paperclip.driver_workers_status returns %d columns, the library %d",
			 rsinfo->setDesc->natts, STATUS_COLUMNS);
	if (pcr_io_pool == NULL)
		return (Datum) 0;
	for (int i = 0; i < pcr_io_pool->nslots; i++)
	{
		PcrIoSlot  *slot = &pcr_io_pool->slots[i];
		Datum		values[STATUS_COLUMNS];
		bool		nulls[STATUS_COLUMNS] = {false};
		pid_t		pid;
		PcrIoSlotState state;
		uint64		served;
		int			routes;
		int			op;
		bool		has_company;
		pg_uuid_t  *company = palloc(sizeof(pg_uuid_t));
		const PcrIoOperation *operation;

		SpinLockAcquire(&slot->mutex);
		pid = slot->worker_pid;
		state = slot->state;
		served = slot->served;
		routes = slot->nroutes;
		op = slot->op;
		has_company = slot->has_company;
		memcpy(company, &slot->company_id, sizeof(pg_uuid_t));
		SpinLockRelease(&slot->mutex);

		operation = state == SLOT_IDLE ? NULL : PcrIoOperationAt(op);
		values[0] = Int32GetDatum(i);
		values[1] = Int32GetDatum((int32) pid);
		nulls[1] = pid == 0;
		values[2] = CStringGetTextDatum(pid == 0 && state == SLOT_IDLE ? "stopped" : slot_state_name(state));
		values[3] = Int64GetDatum((int64) served);
		values[4] = Int32GetDatum(routes);
		nulls[5] = operation == NULL;
		values[5] = operation ? CStringGetTextDatum(operation->name) : (Datum) 0;
		nulls[6] = state == SLOT_IDLE || !has_company;
		values[6] = UUIDPGetDatum(company);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
