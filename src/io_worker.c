/*
 * io_worker.c — a driver worker: take requests from its slot, run them
 *
 * Workers connect to no database (like the logical replication launcher):
 * they show up in pg_stat_activity as "paperclip driver", answer
 * pg_terminate_backend, and never block DROP DATABASE.  Between requests a
 * worker runs its backends' housekeeping and republishes the routes they
 * hold; SIGHUP is applied there, never in the middle of a request.
 *
 * A request: copy it into worker memory, zero the secret ranges of the shared
 * copy, run the operation in a memory context reset afterwards, zero the
 * worker's copy, answer.  An operation that raises has its error copied into
 * the answer and its backend's abort hook called.  A worker that exits
 * mid-request answers its caller from its exit callback, so a caller never
 * waits for a worker that is gone.
 */
#include "pcr.h"
#include "io_shmem.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/memutils.h"

#define PCR_IO_IDLE_WAKE_MS 60000

PGDLLEXPORT void PcrIoWorkerMain(Datum arg);

static PcrIoSlot *my_slot = NULL;
static int	my_index = -1;

static void
fail_answer(PcrIoError *error, int sqlerrcode, const char *message, const char *detail,
			const char *hint)
{
	memset(error, 0, sizeof(*error));
	error->sqlerrcode = sqlerrcode;
	strlcpy(error->message, message ? message : "driver request failed", sizeof(error->message));
	if (detail)
		strlcpy(error->detail, detail, sizeof(error->detail));
	if (hint)
		strlcpy(error->hint, hint, sizeof(error->hint));
}

/* On exit (SIGTERM, pg_terminate_backend, FATAL): answer a waiting caller. */
static void
worker_exit(int code, Datum arg)
{
	PcrIoSlot  *slot = my_slot;
	Latch	   *wake = NULL;
	bool		taken;

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	taken = slot->state == SLOT_REQUESTED || slot->state == SLOT_RUNNING;
	/* a request this worker took: its inline secrets go (in CLAIMED the caller owns them) */
	if (taken && slot->segment == DSM_HANDLE_INVALID)
		PcrIoWipeSecrets(slot->inline_data, slot->nsecrets, slot->request_len);
	if (taken && !slot->abandoned)
	{
		char		message[PCR_IO_MSG_MAX];

		snprintf(message, sizeof(message), "paperclip driver worker %d exited during the request",
				 my_index);
		fail_answer(&slot->error, PCR_ERRCODE_TRANSPORT, message,
					"The worker was terminated before it could answer.", NULL);
		slot->ok = false;
		slot->state = SLOT_DONE;
		wake = slot->caller_latch;
	}
	else if (slot->state != SLOT_DONE && slot->state != SLOT_CLAIMED)
		slot->state = SLOT_IDLE;	/* a caller mid hand-off keeps its claim */
	slot->worker_pid = 0;
	slot->worker_latch = NULL;
	slot->nroutes = 0;
	SpinLockRelease(&slot->mutex);
	if (wake)
		SetLatch(wake);
	my_slot = NULL;
	pcr_io_current_slot = NULL;
}

/* Publish the routes every backend holds, for callers choosing a worker. */
static void
publish_routes(void)
{
	uint64		routes[PCR_IO_MAX_ROUTES];
	int			n = 0;

	for (int b = 0; b < PcrIoBackendCount(); b++)
	{
		const PcrIoBackend *backend = PcrIoBackendAt(b);

		if (backend->routes != NULL && n < PCR_IO_MAX_ROUTES)
			n += Min(backend->routes(routes + n, PCR_IO_MAX_ROUTES - n), PCR_IO_MAX_ROUTES - n);
	}
	SpinLockAcquire(&my_slot->mutex);
	memcpy(my_slot->routes, routes, sizeof(uint64) * n);
	my_slot->nroutes = n;
	SpinLockRelease(&my_slot->mutex);
}

/* Run one operation; false and *error filled when it raised. */
static bool
run_operation(int op_index, PcrIoRequest *req, PcrIoResponse *resp, PcrIoError *error,
			  MemoryContext workctx)
{
	const PcrIoOperation *op = PcrIoOperationAt(op_index);
	const PcrIoBackend *backend = PcrIoBackendOf(op_index);
	volatile bool ok = false;

	if (op == NULL)
	{
		fail_answer(error, ERRCODE_INTERNAL_ERROR, "unknown paperclip I/O operation", NULL, NULL);
		return false;
	}
	pgstat_report_activity(STATE_RUNNING, op->name);
	PG_TRY();
	{
		op->run(req, resp);
		ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(workctx);
		edata = CopyErrorData();
		FlushErrorState();
		fail_answer(error, edata->sqlerrcode, edata->message, edata->detail, edata->hint);
		if (backend->abort != NULL)
			backend->abort();
	}
	PG_END_TRY();
	return ok;
}

/* Take the request in REQUESTED (if any), run it, answer. */
static void
serve_request(MemoryContext workctx)
{
	PcrIoSlot  *slot = my_slot;
	PcrIoRequest req;
	PcrIoResponse resp;
	PcrIoError *error;
	dsm_segment *seg = NULL;
	char	   *payload;
	bool		ok;
	bool		abandoned;
	Latch	   *wake = NULL;
	MemoryContext old;

	SpinLockAcquire(&slot->mutex);
	if (slot->state != SLOT_REQUESTED)
	{
		SpinLockRelease(&slot->mutex);
		return;
	}
	slot->state = SLOT_RUNNING;
	SpinLockRelease(&slot->mutex);
	pcr_io_current_slot = slot;

	old = MemoryContextSwitchTo(workctx);
	if (slot->segment != DSM_HANDLE_INVALID)
	{
		seg = dsm_attach(slot->segment);
		if (seg != NULL)
			dsm_pin_mapping(seg);
	}
	error = palloc0(sizeof(PcrIoError));
	memset(&req, 0, sizeof(req));
	req.deadline = slot->deadline;
	req.has_company = slot->has_company;
	memcpy(&req.company_id, &slot->company_id, sizeof(pg_uuid_t));
	if (slot->segment != DSM_HANDLE_INVALID && seg == NULL)
	{
		/* the caller gave up and its segment is gone */
		fail_answer(error, PCR_ERRCODE_TRANSPORT, "driver request vanished before it was read", NULL, NULL);
		ok = false;
	}
	else
	{
		payload = PcrIoPayload(slot, seg);
		req.len = slot->request_len;
		req.data = palloc(req.len + 1);
		memcpy(req.data, payload + PcrIoRequestOffset(slot->nsecrets), req.len);
		req.data[req.len] = '\0';
		PcrIoWipeSecrets(payload, slot->nsecrets, slot->request_len);

		resp.data = payload + PcrIoResponseOffset(seg, slot->nsecrets, slot->request_len);
		resp.max = slot->response_max;
		resp.len = 0;
		ok = run_operation(slot->op, &req, &resp, error, workctx);
		explicit_bzero(req.data, req.len);
	}

	/* only the worker writes the answer while RUNNING */
	slot->ok = ok;
	slot->response_len = ok ? resp.len : 0;
	if (!ok)
		memcpy(&slot->error, error, sizeof(PcrIoError));
	if (seg != NULL)
		dsm_detach(seg);
	MemoryContextSwitchTo(old);
	MemoryContextReset(workctx);
	pcr_io_current_slot = NULL;
	publish_routes();			/* before the next caller chooses a worker */

	SpinLockAcquire(&slot->mutex);
	abandoned = slot->abandoned;
	slot->served++;
	if (!abandoned)
	{
		slot->state = SLOT_DONE;
		wake = slot->caller_latch;
	}
	SpinLockRelease(&slot->mutex);
	if (abandoned)
	{
		if (slot->segment == DSM_HANDLE_INVALID)
			explicit_bzero(slot->inline_data, sizeof(slot->inline_data));
		PcrIoSetIdle(slot);
	}
	if (wake)
		SetLatch(wake);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Every backend's housekeeping; milliseconds until the next is due. */
static long
housekeeping(void)
{
	long		next = PCR_IO_IDLE_WAKE_MS;

	for (int b = 0; b < PcrIoBackendCount(); b++)
	{
		const PcrIoBackend *backend = PcrIoBackendAt(b);
		long		ms;

		if (backend->housekeeping == NULL)
			continue;
		ms = backend->housekeeping();
		if (ms >= 0 && ms < next)
			next = ms;
	}
	return next;
}

static void
attach_slot(int idx)
{
	my_index = idx;
	my_slot = &pcr_io_pool->slots[idx];
	before_shmem_exit(worker_exit, (Datum) 0);
	SpinLockAcquire(&my_slot->mutex);
	my_slot->worker_pid = MyProcPid;
	my_slot->worker_latch = MyLatch;
	my_slot->nroutes = 0;
	my_slot->abandoned = false;
	SpinLockRelease(&my_slot->mutex);
	/* callers waiting for a worker may now claim this one */
	ConditionVariableBroadcast(&pcr_io_pool->slot_freed);
}

void
PcrIoWorkerMain(Datum arg)
{
	int			idx = DatumGetInt32(arg);
	char		appname[NAMEDATALEN];
	MemoryContext workerctx;
	MemoryContext workctx;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	/* no database: visible in pg_stat_activity, never in the way of DROP DATABASE */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	snprintf(appname, sizeof(appname), "paperclip driver %d", idx);
	pgstat_report_appname(appname);

	if (pcr_io_pool == NULL || idx >= pcr_io_pool->nslots)
		elog(FATAL, "paperclip driver worker %d has no slot", idx);

	workerctx = AllocSetContextCreate(TopMemoryContext, "paperclip driver worker",
									  ALLOCSET_DEFAULT_SIZES);
	workctx = AllocSetContextCreate(workerctx, "paperclip driver request",
									ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(workerctx);
	for (int b = 0; b < PcrIoBackendCount(); b++)
		if (PcrIoBackendAt(b)->worker_start != NULL)
			PcrIoBackendAt(b)->worker_start();

	attach_slot(idx);
	/* a request handed over while this worker was restarting is served first */
	serve_request(workctx);
	publish_routes();

	pgstat_report_activity(STATE_IDLE, NULL);
	for (;;)
	{
		long		timeout = housekeeping();

		publish_routes();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PcrWaitEventExtension());
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		serve_request(workctx);
	}
}
