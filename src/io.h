/*
 * io.h — the driver-agnostic I/O pool of paperclip_runtime (public interface)
 *
 * paperclip.driver_workers background workers ("paperclip driver") do every
 * piece of network and process I/O.  A backend (the ssh client, a sandbox
 * provider, ...) declares the operations it serves with an I/O backend
 * registered from _PG_init; any caller (a client backend, the reconciler)
 * then hands a request to an idle worker with PcrIoCall() and sleeps on its
 * latch until the answer is there.  The pool moves bytes: it knows no
 * backend's types.
 *
 * This header needs only PostgreSQL's own headers; it is installed next to
 * pcr_provider.h (which includes it), for provider libraries.
 *
 * Worker-side rules for an operation's run function:
 * - it runs in a driver worker, outside any transaction: no SPI, no catalog
 *   access, no database at all; everything it needs is in the request;
 * - it waits only through PcrIoWait() (latch, up to PCR_IO_WAIT_MAX_FDS
 *   sockets, pipes or pidfds, a deadline, postmaster death, and the caller
 *   giving up), never in a blocking system call;
 * - it fails with ereport(ERROR, ...): the pool copies SQLSTATE, message,
 *   detail and hint to the caller, which re-raises them, and then calls the
 *   backend's abort hook.  Messages never carry a secret;
 * - when PcrIoWait() reports PCR_IO_WAIT_ABANDONED the caller has gone
 *   (statement_timeout, pg_cancel_backend, its own deadline, backend exit):
 *   stop promptly (kill a child process tree, drop a half-open session) and
 *   return or raise; the answer is discarded either way.
 */
#ifndef PCR_IO_H
#define PCR_IO_H

#include "postgres.h"

#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#define PCR_IO_ABI_VERSION 1

/* ------------------------------------------------------------------------
 * Declaring operations (from _PG_init, while shared_preload_libraries is
 * processed, so that the postmaster and every child agree on them)
 * ------------------------------------------------------------------------ */

/* What the run function of an operation gets: its private copy of the request. */
typedef struct PcrIoRequest
{
	char	   *data;			/* the request bytes (worker memory, zeroed afterwards) */
	Size		len;
	TimestampTz deadline;		/* the caller gives up then: finish before */
	pg_uuid_t	company_id;		/* the tenant the caller named (zero uuid when none) */
	bool		has_company;
} PcrIoRequest;

/* Where the run function writes its answer (at most max bytes). */
typedef struct PcrIoResponse
{
	char	   *data;			/* shared memory of the call: write through PcrIoReply* */
	Size		max;			/* the caller's room for the answer */
	Size		len;			/* bytes written */
} PcrIoResponse;

typedef void (*PcrIoRunFunc) (PcrIoRequest *req, PcrIoResponse *resp);

typedef struct PcrIoOperation
{
	const char *name;			/* unique, e.g. "ssh.acquire" */
	Size		max_request;	/* largest request a caller may send */
	Size		max_response;	/* largest answer a caller may ask for */
	PcrIoRunFunc run;			/* worker side */
} PcrIoOperation;

/*
 * One I/O backend: its operations and optional per-worker hooks (NULL: none).
 * The hooks run in every driver worker.
 */
typedef struct PcrIoBackend
{
	int			abi_version;	/* PCR_IO_ABI_VERSION */
	const char *name;			/* e.g. "ssh" */
	const PcrIoOperation *const *ops;
	int			nops;
	void		(*worker_start) (void); /* once, when a worker starts */
	void		(*abort) (void);	/* after one of its operations raised */

	/*
	 * Between requests (and at least once a minute): expire idle state.
	 * Returns milliseconds until it wants to run again, or -1 for no wish.
	 */
	long		(*housekeeping) (void);

	/*
	 * Routing hashes (PcrIoRouteOf) of what this worker holds, so that a
	 * caller with the same route prefers it: fill at most max, return how
	 * many.  Called after each request and each housekeeping.
	 */
	int			(*routes) (uint64 *out, int max);
} PcrIoBackend;

/*
 * Register a backend; raises 55000 unless called while
 * shared_preload_libraries is processed, 22023 for an incomplete or
 * duplicate declaration, 54000 past the registry's limits.  backend and its
 * operations must stay valid for the life of the process.
 */
extern void PcrIoRegisterBackend(const PcrIoBackend *backend);

/* A registered operation by name, or NULL. */
extern const PcrIoOperation *PcrIoOperationByName(const char *name);

/* ------------------------------------------------------------------------
 * Caller side (any backend with a latch, including the reconciler)
 * ------------------------------------------------------------------------ */

/* A range of the request that holds a secret: zeroed in every copy. */
typedef struct PcrIoRange
{
	Size		offset;
	Size		len;
} PcrIoRange;

typedef struct PcrIoCall
{
	const PcrIoOperation *op;
	const pg_uuid_t *company_id;	/* the tenant: bounded by its share of the pool; NULL: none */
	uint64		route;			/* PcrIoRouteOf(...) for affinity, 0: any worker */

	/*
	 * The request.  Its secret ranges are zeroed in this buffer as soon as it
	 * has been handed over (or the call fails), in shared memory as soon as
	 * the worker has its copy, and in the worker's copy after the operation.
	 */
	char	   *request;
	Size		request_len;
	const PcrIoRange *secrets;
	int			nsecrets;

	Size		response_max;	/* room for the answer (<= op->max_response) */

	/*
	 * Time allowed to find a free worker (0: paperclip.acquire_timeout), and
	 * the absolute deadline of the whole call (0: now + acquire timeout).
	 * Past the deadline the caller gives up with 08001, message
	 * "driver request to "<target>" did not finish within <deadline_label>".
	 */
	int			acquire_timeout_ms;
	TimestampTz deadline;
	const char *target;			/* e.g. the host, for messages */
	const char *deadline_label; /* e.g. "paperclip.acquire_timeout (30000 ms)" */
} PcrIoCall;

/* What a successful call returns: the answer, palloc'd in the caller's context. */
typedef struct PcrIoResult
{
	char	   *data;
	Size		len;
} PcrIoResult;

/*
 * 55000 with a hint unless driver workers can serve requests (not preloaded,
 * or paperclip.driver_workers = 0).
 */
extern void PcrIoRequireWorkers(void);

/*
 * Hand the request to a driver worker and wait for the answer, on the latch:
 * cancellable (57014), 53400 when no worker (or none within the company's
 * share) frees up within the acquire timeout, 08001 past the deadline or when
 * the worker exits mid-request, and the operation's own error (SQLSTATE,
 * message, detail, hint) re-raised.  A caller that errors out or exits
 * mid-call tells the worker at once (PCR_IO_WAIT_ABANDONED there).
 */
extern void PcrIoInvoke(const PcrIoCall *call, PcrIoResult *result);

/* A part of what a route is computed from. */
typedef struct PcrIoHashPart
{
	const void *data;
	Size		len;
} PcrIoHashPart;

#define PCR_IO_ROUTE_KEY_LEN 32

/*
 * Keyed BLAKE2b (a random key per server start) of the parts that identify
 * reusable worker state, e.g. an ssh session: never reveals the parts.
 */
extern void PcrIoRouteKey(const PcrIoHashPart *parts, int nparts,
						  uint8 out[PCR_IO_ROUTE_KEY_LEN]);

/* The routing hash of a route key (its first 8 bytes). */
extern uint64 PcrIoRouteOf(const uint8 key[PCR_IO_ROUTE_KEY_LEN]);

/* ------------------------------------------------------------------------
 * Worker side (inside an operation's run function)
 * ------------------------------------------------------------------------ */
#define PCR_IO_WAIT_MAX_FDS 4

typedef struct PcrIoWaitFd
{
	pgsocket	fd;				/* a socket, a pipe or a pidfd */
	uint32		events;			/* WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE | WL_SOCKET_CONNECTED */
	uint32		ready;			/* out: which of them happened */
} PcrIoWaitFd;

/* Result bits of PcrIoWait (0: woken for nothing in particular, e.g. a latch) */
#define PCR_IO_WAIT_READY		0x01	/* at least one fd is ready: see ready */
#define PCR_IO_WAIT_TIMEOUT		0x02	/* the deadline has passed */
#define PCR_IO_WAIT_ABANDONED	0x04	/* the caller gave up on this request */

/*
 * Wait until one of the fds is ready, the deadline passes, or the caller
 * gives up; interrupts are served (SIGTERM ends the worker; its exit answers
 * the caller) and postmaster death ends it.  nfds may be 0 (a plain sleep
 * until the deadline or abandonment).  Never raises by itself.
 */
extern int	PcrIoWait(PcrIoWaitFd *fds, int nfds, TimestampTz deadline);

/* Has the caller of the current request given up? */
extern bool PcrIoAbandoned(void);

/* Raise 57014 "driver request cancelled by its caller" when it has. */
extern void PcrIoCheckAbandoned(void);

/* Write the answer: raises 54000 when it does not fit in resp->max. */
extern void PcrIoReply(PcrIoResponse *resp, const void *data, Size len);

/* Room for len bytes of answer, to fill in place (resp->len = len). */
extern void *PcrIoReplyBuffer(PcrIoResponse *resp, Size len);

#endif							/* PCR_IO_H */
