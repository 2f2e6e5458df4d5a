/*
 * io_call.c — the caller's side of the I/O pool
 *
 * A caller claims an idle slot (preferring a worker that advertises the
 * request's route, never more slots than its company's share), copies the
 * request in, sets the worker's latch and sleeps on its own latch until the
 * answer is there.  A caller that finds no slot it may claim sleeps on the
 * pool's condition variable, which every freed slot and every starting worker
 * broadcasts, bounded by the acquire timeout.
 *
 * Locking: claims are serialised by the pool's claim lock, so a company's
 * busy count (slots not IDLE that carry its id) can only be over-estimated by
 * a concurrent release, never exceeded; each slot's state is read and
 * written under its spinlock.
 *
 * A caller that gives up (statement_timeout, pg_cancel_backend, its deadline,
 * FATAL) frees a slot the worker has not taken, or marks the running request
 * abandoned and wakes the worker; the secret ranges are zeroed in every copy
 * the caller still owns.
 */
#include "pcr.h"
#include "io_shmem.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

/* What the caller's cleanup needs when it errors out or exits mid-call. */
typedef struct PcrCallState
{
	const PcrIoCall *call;
	bool		wiped;			/* the caller's secret ranges are zero */
	PcrIoSlot  *slot;			/* NULL until a slot is claimed, and after it is freed */
	dsm_segment *seg;			/* NULL when the payload is inline */
} PcrCallState;

/* Why no slot could be claimed. */
typedef struct PcrClaimMiss
{
	int			started;		/* workers running */
	bool		share_in_use;	/* an idle worker was there, but the company is at its share */
	int			busy_for_company;
} PcrClaimMiss;

static bool
workers_running(void)
{
	return pcr_preloaded && pcr_io_pool != NULL && pcr_io_pool->nslots > 0;
}

void
PcrIoRequireWorkers(void)
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

/* How many slots one company may hold busy at once. */
static int
company_share(void)
{
	int			n = pcr_io_pool->nslots;
	int			share = pcr_driver_workers_per_company;

	if (share <= 0)
		share = n > 1 ? n - 1 : n;
	return Min(share, n);
}

static void
wipe_caller(PcrCallState *st)
{
	const PcrIoCall *call = st->call;

	if (st->wiped)
		return;
	for (int i = 0; i < call->nsecrets; i++)
		if (call->secrets[i].offset <= call->request_len &&
			call->secrets[i].len <= call->request_len - call->secrets[i].offset)
			explicit_bzero(call->request + call->secrets[i].offset, call->secrets[i].len);
	st->wiped = true;
}

/*
 * Claim an idle slot for call, under the claim lock; -1 (and why in *miss)
 * when there is none this caller may take.
 */
static int
try_claim(const PcrIoCall *call, PcrClaimMiss *miss)
{
	int			share = company_share();
	int			found = -1;
	bool		idle_seen = false;

	memset(miss, 0, sizeof(*miss));
	LWLockAcquire(pcr_io_pool->claim_lock, LW_EXCLUSIVE);
	if (call->company_id != NULL)
	{
		for (int i = 0; i < pcr_io_pool->nslots; i++)
		{
			PcrIoSlot  *slot = &pcr_io_pool->slots[i];

			SpinLockAcquire(&slot->mutex);
			if (slot->state != SLOT_IDLE && slot->has_company &&
				memcmp(&slot->company_id, call->company_id, sizeof(pg_uuid_t)) == 0)
				miss->busy_for_company++;
			SpinLockRelease(&slot->mutex);
		}
	}
	/* first pass: a worker that holds the route; second: any idle worker */
	for (int pass = call->route != 0 ? 0 : 1; pass < 2 && found < 0; pass++)
	{
		for (int i = 0; i < pcr_io_pool->nslots && found < 0; i++)
		{
			PcrIoSlot  *slot = &pcr_io_pool->slots[i];
			bool		match = pass == 1;

			SpinLockAcquire(&slot->mutex);
			if (pass == 1 && slot->worker_pid != 0)
				miss->started++;
			if (slot->worker_pid != 0 && slot->state == SLOT_IDLE)
			{
				idle_seen = true;
				for (int k = 0; k < slot->nroutes && !match; k++)
					match = slot->routes[k] == call->route;
				if (match && miss->busy_for_company < share)
				{
					slot->state = SLOT_CLAIMED;
					slot->caller_latch = MyLatch;
					slot->abandoned = false;
					slot->has_company = call->company_id != NULL;
					if (call->company_id != NULL)
						memcpy(&slot->company_id, call->company_id, sizeof(pg_uuid_t));
					found = i;
				}
			}
			SpinLockRelease(&slot->mutex);
		}
	}
	LWLockRelease(pcr_io_pool->claim_lock);
	miss->share_in_use = found < 0 && idle_seen;
	return found;
}

static void pg_attribute_noreturn()
no_worker_error(const PcrIoCall *call, const PcrClaimMiss *miss, int timeout_ms)
{
	char	   *company;

	if (miss->share_in_use)
	{
		company = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum((pg_uuid_t *) call->company_id)));
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NO_WORKER),
				 errmsg("the share of paperclip driver workers of company %s is in use", company),
				 errdetail("The company keeps %d of %d driver workers busy (paperclip.driver_workers_per_company), and none of them became free within %d ms.",
						   miss->busy_for_company, pcr_io_pool->nslots, timeout_ms),
				 errhint("Raise paperclip.driver_workers_per_company or paperclip.driver_workers.")));
	}
	ereport(ERROR,
			(errcode(PCR_ERRCODE_NO_WORKER),
			 errmsg("no paperclip driver worker became free within paperclip.acquire_timeout (%d ms)",
					timeout_ms),
			 miss->started == 0
			 ? errdetail("No driver worker is running.")
			 : miss->started < pcr_io_pool->nslots
			 ? errdetail("All %d running driver workers are busy; %d of %d have not started.",
						 miss->started, pcr_io_pool->nslots - miss->started, pcr_io_pool->nslots)
			 : errdetail("All %d driver workers are busy.", miss->started),
			 errhint("Raise paperclip.driver_workers or paperclip.acquire_timeout.")));
}

/* Claim a slot, sleeping on the condition variable until one frees up or time is up. */
static int
claim_slot(const PcrIoCall *call, TimestampTz until, int timeout_ms)
{
	PcrClaimMiss miss;
	int			idx;

	if ((idx = try_claim(call, &miss)) >= 0)
		return idx;
	ConditionVariablePrepareToSleep(&pcr_io_pool->slot_freed);
	while ((idx = try_claim(call, &miss)) < 0)
	{
		long		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (ms <= 0)
		{
			ConditionVariableCancelSleep();
			no_worker_error(call, &miss, timeout_ms);
		}
		(void) ConditionVariableTimedSleep(&pcr_io_pool->slot_freed, ms, PcrWaitEventExtension());
	}
	ConditionVariableCancelSleep();
	return idx;
}

/*
 * Give up on a request: free the slot now if the worker has not taken it (or
 * is done), else mark it abandoned and wake the worker, which frees it.
 * True when the payload was ours to wipe.
 */
static bool
abandon(PcrIoSlot *slot)
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
	if (ours)
	{
		if (slot->segment == DSM_HANDLE_INVALID)
			explicit_bzero(slot->inline_data, sizeof(slot->inline_data));
		PcrIoSetIdle(slot);
	}
	return ours;
}

/* On ERROR and on FATAL (pg_terminate_backend of the caller): free what the call holds. */
static void
call_cleanup(int code, Datum arg)
{
	PcrCallState *st = (PcrCallState *) DatumGetPointer(arg);
	bool		ours = true;

	wipe_caller(st);
	ConditionVariableCancelSleep();
	if (st->slot != NULL)
		ours = abandon(st->slot);
	st->slot = NULL;
	if (st->seg != NULL)
	{
		/* a running worker has its copy and wiped the segment's itself */
		if (ours)
			PcrIoWipeSecrets(dsm_segment_address(st->seg), st->call->nsecrets, st->call->request_len);
		dsm_detach(st->seg);
		st->seg = NULL;
	}
}

/* What is wrong with a call (a programming error), or NULL. */
static char *
check_call(const PcrIoCall *call, int *index)
{
	*index = PcrIoOperationIndex(call->op);
	if (*index < 0)
		return psprintf("paperclip I/O operation \"%s\" is not registered",
						call->op && call->op->name ? call->op->name : "?");
	if (call->request_len > call->op->max_request || call->response_max > call->op->max_response)
		return psprintf("paperclip I/O request for \"%s\" is larger than the operation allows",
						call->op->name);
	for (int i = 0; i < call->nsecrets; i++)
		if (call->secrets[i].offset > call->request_len ||
			call->secrets[i].len > call->request_len - call->secrets[i].offset)
			return psprintf("secret range %d of a paperclip I/O request is outside the request", i);
	return NULL;
}

/* Put [ranges][request] at payload, and wipe the caller's secrets. */
static void
copy_request(PcrCallState *st, char *payload)
{
	const PcrIoCall *call = st->call;

	if (call->nsecrets > 0)
		memcpy(payload, call->secrets, sizeof(PcrIoRange) * call->nsecrets);
	memcpy(payload + PcrIoRequestOffset(call->nsecrets), call->request, call->request_len);
	wipe_caller(st);
}

/* Hand the request over in the claimed slot and wake its worker. */
static void
hand_over(PcrCallState *st, int op_index, TimestampTz deadline)
{
	const PcrIoCall *call = st->call;
	PcrIoSlot  *slot = st->slot;
	Latch	   *wake;

	slot->op = op_index;
	slot->deadline = deadline;
	slot->segment = st->seg ? dsm_segment_handle(st->seg) : DSM_HANDLE_INVALID;
	slot->nsecrets = call->nsecrets;
	slot->request_len = call->request_len;
	slot->response_max = call->response_max;
	slot->ok = false;
	slot->response_len = 0;
	if (st->seg == NULL)
		copy_request(st, slot->inline_data);
	SpinLockAcquire(&slot->mutex);
	slot->state = SLOT_REQUESTED;
	wake = slot->worker_latch;
	SpinLockRelease(&slot->mutex);
	if (wake != NULL)
		SetLatch(wake);
}

/* Sleep until the worker is done; 08001 past the deadline. */
static void
await_answer(const PcrIoCall *call, PcrIoSlot *slot, TimestampTz deadline)
{
	for (;;)
	{
		PcrIoSlotState state;
		long		ms;

		SpinLockAcquire(&slot->mutex);
		state = slot->state;
		SpinLockRelease(&slot->mutex);
		if (state == SLOT_DONE)
			return;
		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (ms <= 0)
			ereport(ERROR,
					(errcode(PCR_ERRCODE_TRANSPORT),
					 errmsg("driver request to \"%s\" did not finish within %s",
							call->target ? call->target : call->op->name,
							call->deadline_label ? call->deadline_label
							: psprintf("paperclip.acquire_timeout (%d ms)", pcr_acquire_timeout))));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ms, PcrWaitEventExtension());
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Copy the answer (or the error) out of the slot, before it is freed. */
static void
take_answer(PcrCallState *st, PcrIoResult *result, PcrIoError *error, bool *ok)
{
	PcrIoSlot  *slot = st->slot;

	*ok = slot->ok;
	if (!*ok)
	{
		memcpy(error, &slot->error, sizeof(PcrIoError));
		return;
	}
	result->len = Min(slot->response_len, st->call->response_max);
	result->data = palloc(result->len + 1);
	memcpy(result->data,
		   PcrIoPayload(slot, st->seg) +
		   PcrIoResponseOffset(st->seg, st->call->nsecrets, st->call->request_len),
		   result->len);
	result->data[result->len] = '\0';
}

void
PcrIoInvoke(const PcrIoCall *call, PcrIoResult *result)
{
	PcrCallState st = {.call = call};
	TimestampTz start;
	TimestampTz deadline;
	int			acquire_ms;
	int			op_index;
	PcrIoError *error = palloc(sizeof(PcrIoError));
	bool		ok = false;
	char	   *problem;

	memset(result, 0, sizeof(*result));
	if (!workers_running())
	{
		wipe_caller(&st);
		PcrIoRequireWorkers();
	}
	if ((problem = check_call(call, &op_index)) != NULL)
	{
		wipe_caller(&st);
		elog(ERROR, "%s", problem);
	}
	start = GetCurrentTimestamp();
	acquire_ms = call->acquire_timeout_ms > 0 ? call->acquire_timeout_ms : pcr_acquire_timeout;
	deadline = call->deadline != 0 ? call->deadline : TimestampTzPlusMilliseconds(start, acquire_ms);

	PG_ENSURE_ERROR_CLEANUP(call_cleanup, PointerGetDatum(&st));
	{
		Size		payload = MAXALIGN(PcrIoRequestOffset(call->nsecrets) + call->request_len);

		/* a payload too large for the slot travels in a segment of its own */
		if (payload > PCR_IO_INLINE_BYTES || call->response_max > PCR_IO_INLINE_BYTES)
		{
			st.seg = dsm_create(add_size(payload, call->response_max), 0);
			dsm_pin_mapping(st.seg);
			copy_request(&st, dsm_segment_address(st.seg));
		}
		st.slot = &pcr_io_pool->slots[claim_slot(call, Min(deadline, TimestampTzPlusMilliseconds(start, acquire_ms)),
											   acquire_ms)];
		hand_over(&st, op_index, deadline);
		await_answer(call, st.slot, deadline);
		take_answer(&st, result, error, &ok);
		/* the worker wiped the request's secrets; the answer goes too (a segment goes whole) */
		if (st.seg == NULL)
			explicit_bzero(st.slot->inline_data, Min(st.slot->response_len, PCR_IO_INLINE_BYTES));
		else
			PcrIoWipeSecrets(dsm_segment_address(st.seg), call->nsecrets, call->request_len);
		PcrIoSetIdle(st.slot);
		st.slot = NULL;
		if (st.seg != NULL)
			dsm_detach(st.seg);
		st.seg = NULL;
	}
	PG_END_ENSURE_ERROR_CLEANUP(call_cleanup, PointerGetDatum(&st));

	if (!ok)
		ereport(ERROR,
				(errcode(error->sqlerrcode),
				 errmsg_internal("%s", error->message),
				 error->detail[0] ? errdetail_internal("%s", error->detail) : 0,
				 error->hint[0] ? errhint("%s", error->hint) : 0));
}
