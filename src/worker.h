/*
 * worker.h — the pool of driver workers and the hand-off to them
 *
 * paperclip.driver_workers background workers ("paperclip driver") do the
 * network I/O of drivers.  A backend hands a request to an idle worker
 * through that worker's slot in shared memory, sleeps on its latch until the
 * answer is there, and stays cancellable the whole time.  Slots hold only
 * data (requests, answers, a few hashes); library handles live in the
 * worker's own memory.
 */
#ifndef PCR_WORKER_H
#define PCR_WORKER_H

#include "pcr.h"

/* What a request asks the worker to do. */
typedef enum PcrWorkerOp
{
	PCR_OP_SSH_ACQUIRE = 1,		/* connect, create the workspace, find the API */
	PCR_OP_SSH_PROBE = 2		/* connect, look at the workspace, find the API */
} PcrWorkerOp;

#define PCR_SSH_HOST_MAX		256
#define PCR_SSH_USER_MAX		256
#define PCR_SSH_PATH_MAX		4096
#define PCR_SSH_KNOWN_HOSTS_MAX	32768
#define PCR_SSH_KEY_MAX			16384
#define PCR_SSH_CANDIDATES_MAX	8192
#define PCR_SSH_URL_MAX			2048
#define PCR_SSH_CACHE_KEY_LEN	32
#define PCR_MSG_MAX				1024
#define PCR_DETAIL_MAX			2048

/*
 * An ssh request.  The private key travels in it: the caller zeroes its own
 * copy right after the hand-off, the worker zeroes the slot as soon as it has
 * copied the request out, and its own copy right after authentication.
 */
typedef struct PcrSshRequest
{
	int32		op;				/* PcrWorkerOp */
	int32		port;
	int32		connect_timeout_ms;
	bool		strict_host_key_checking;
	uint8		cache_key[PCR_SSH_CACHE_KEY_LEN];	/* keyed hash: host, port, user, key */
	uint64		route_hash;		/* first bytes of cache_key, for choosing a worker */
	char		host[PCR_SSH_HOST_MAX];
	char		username[PCR_SSH_USER_MAX];
	char		path[PCR_SSH_PATH_MAX];
	char		known_hosts[PCR_SSH_KNOWN_HOSTS_MAX];	/* "" when none */
	char		candidates[PCR_SSH_CANDIDATES_MAX];	/* URLs, one per line */
	uint32		key_len;
	char		key[PCR_SSH_KEY_MAX];
} PcrSshRequest;

/* The answer to a request: either an error to re-raise, or the result. */
typedef struct PcrSshResponse
{
	bool		ok;
	int			sqlerrcode;
	char		message[PCR_MSG_MAX];
	char		detail[PCR_DETAIL_MAX];
	char		hint[PCR_MSG_MAX];
	/* result */
	bool		reused_session;
	bool		workspace_exists;
	char		remote_cwd[PCR_SSH_PATH_MAX];	/* "" when unknown */
	char		api_url[PCR_SSH_URL_MAX];	/* "" when none */
	char		host_key_type[32];
	char		host_key_sha256[64];	/* base64, as OpenSSH prints it */
	int32		elapsed_ms;
} PcrSshResponse;

/* init.c calls this from _PG_init: shared memory and worker registration. */
extern void PcrDriverWorkersInit(void);

/*
 * Hand a request to a driver worker and wait for the answer (caller side).
 * Raises 55000 without workers, 53400 when none frees up within
 * paperclip.acquire_timeout, 08001 when the request outlives it, and the
 * worker's own error (SQLSTATE, message, detail) when the request failed.
 * The request's key is zeroed before this returns or raises.
 */
/* 55000 with a hint unless driver workers can serve requests */
extern void PcrRequireDriverWorkers(void);
extern void PcrDriverCall(PcrSshRequest *req, PcrSshResponse *resp);

/* Keyed BLAKE2b of the parts that identify a reusable ssh session. */
extern void PcrSshCacheKey(PcrSshRequest *req);

/* --- worker side, for ssh_client.c --- */

/* Raise an error when the caller gave up on the current request. */
extern void PcrWorkerCheckAbandoned(void);

/* Advertise the sessions a worker holds (route hashes), for routing. */
extern void PcrWorkerAdvertise(const uint64 *hashes, int n);

#endif							/* PCR_WORKER_H */
