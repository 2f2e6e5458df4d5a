/*
 * io_shmem.h — what the files of the I/O pool share (io_*.c only)
 *
 * The pool's shared memory: one slot per driver worker, a lock that
 * serialises claims (so that a company's share is never exceeded), a
 * condition variable callers sleep on while every worker is busy, and the
 * per-start key of the routing hashes.  Slots hold only data; library
 * handles live in the workers' own memory.
 *
 * A slot is a small state machine guarded by its spinlock:
 *
 *   IDLE ─caller claims─▶ CLAIMED ─request copied─▶ REQUESTED ─worker─▶ RUNNING
 *     ▲                                                                  │
 *     └──────────── caller copies the answer ◀── DONE ◀──────────────────┘
 *
 * The payload (request, then answer) is written by its single owner while
 * the state says nobody else reads it: the caller in CLAIMED, the worker in
 * RUNNING, the caller again in DONE.  Small payloads travel in the slot's
 * inline area; larger ones in a DSM segment the caller creates for the call
 * (handle in the slot), laid out as [secret ranges][request][answer].
 */
#ifndef PCR_IO_SHMEM_H
#define PCR_IO_SHMEM_H

#include "pcr.h"
#include "io.h"

#include "storage/condition_variable.h"
#include "storage/dsm.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

#define PCR_IO_MAX_ROUTES		16
#define PCR_IO_INLINE_BYTES		32768
#define PCR_IO_MSG_MAX			1024
#define PCR_IO_DETAIL_MAX		2048

typedef enum PcrIoSlotState
{
	SLOT_IDLE = 0,
	SLOT_CLAIMED,
	SLOT_REQUESTED,
	SLOT_RUNNING,
	SLOT_DONE
} PcrIoSlotState;

/* The error a worker answers with (or its exit callback, for a dead worker). */
typedef struct PcrIoError
{
	int			sqlerrcode;
	char		message[PCR_IO_MSG_MAX];
	char		detail[PCR_IO_DETAIL_MAX];
	char		hint[PCR_IO_MSG_MAX];
} PcrIoError;

typedef struct PcrIoSlot
{
	slock_t		mutex;
	PcrIoSlotState state;
	pid_t		worker_pid;		/* 0 while no worker runs for this slot */
	Latch	   *worker_latch;
	Latch	   *caller_latch;
	bool		abandoned;		/* the caller gave up on the current request */
	int			nroutes;
	uint64		routes[PCR_IO_MAX_ROUTES];	/* what the worker holds */
	uint64		served;			/* requests answered, for operators */

	/* the current request: written by the caller while CLAIMED */
	int			op;				/* index in the registry */
	bool		has_company;
	pg_uuid_t	company_id;
	TimestampTz deadline;
	dsm_handle	segment;		/* DSM_HANDLE_INVALID: the payload is inline */
	int			nsecrets;
	Size		request_len;
	Size		response_max;

	/* the answer: written by the worker while RUNNING */
	bool		ok;
	Size		response_len;
	PcrIoError	error;

	char		inline_data[PCR_IO_INLINE_BYTES];	/* [ranges][request], then the answer */
} PcrIoSlot;

typedef struct PcrIoPool
{
	uint8		hash_key[32];	/* random per server start: keys the route hashes */
	LWLock	   *claim_lock;		/* held while a caller picks and claims a slot */
	ConditionVariable slot_freed;	/* a slot became IDLE, or a worker started */
	int			nslots;
	PcrIoSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} PcrIoPool;

/* io_shmem.c; init.c calls the first three */
extern void PcrIoInit(bool preloading);	/* settings; workers when preloading */
extern void PcrIoShmemRequest(void);
extern void PcrIoShmemStartup(void);
extern PcrIoPool *pcr_io_pool;
extern int	pcr_driver_workers;		/* paperclip.driver_workers, as configured */
extern int	pcr_driver_workers_per_company;
extern int	pcr_acquire_timeout;	/* milliseconds */
extern int	PcrIoSlotCount(void);	/* driver_workers clamped to max_worker_processes */
extern void PcrIoSetIdle(PcrIoSlot *slot);	/* state IDLE + wake callers waiting for one */

/* Where a payload lives: the inline area, or the call's DSM segment. */
static inline char *
PcrIoPayload(PcrIoSlot *slot, dsm_segment *seg)
{
	return seg ? (char *) dsm_segment_address(seg) : slot->inline_data;
}

/* Offsets in a payload: [ranges][request] and the answer after them (DSM). */
static inline Size
PcrIoRequestOffset(int nsecrets)
{
	return MAXALIGN(sizeof(PcrIoRange) * nsecrets);
}

static inline Size
PcrIoResponseOffset(dsm_segment *seg, int nsecrets, Size request_len)
{
	return seg ? MAXALIGN(PcrIoRequestOffset(nsecrets) + request_len) : 0;
}

/* io_registry.c */
extern int	PcrIoOperationIndex(const PcrIoOperation *op);	/* -1 when unregistered */
extern const PcrIoOperation *PcrIoOperationAt(int index);
extern const PcrIoBackend *PcrIoBackendOf(int index);
extern int	PcrIoBackendCount(void);
extern const PcrIoBackend *PcrIoBackendAt(int i);

/* io_wait.c: the slot of the request this worker runs (NULL between requests) */
extern PcrIoSlot *pcr_io_current_slot;

/* Zero the secret ranges of a payload laid out as [ranges][request]. */
extern void PcrIoWipeSecrets(char *payload, int nsecrets, Size request_len);

#endif							/* PCR_IO_SHMEM_H */
