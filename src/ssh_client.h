/*
 * ssh_client.h — the libssh2 client of the driver workers
 *
 * Runs only inside a driver worker (ssh_ops.c calls it).  Sessions are kept
 * in the worker's own memory between requests (never in shared memory) and
 * reused for the same host, port, user and key once their host key is
 * verified again against the request and a round trip shows the session is
 * alive.
 */
#ifndef PCR_SSH_CLIENT_H
#define PCR_SSH_CLIENT_H

#include "ssh_proto.h"

/* Carry out an ssh request; raises on failure (SQLSTATE, message, detail). */
extern void PcrSshExecute(PcrSshRequest *req, PcrSshResponse *resp);

/* After a failed request: drop the session it used (and any half-open socket). */
extern void PcrSshAbort(void);

/* Close sessions idle for too long; returns ms until the next one expires, or -1. */
extern long PcrSshExpireIdle(void);

/* The route hashes of the pooled sessions. */
extern int	PcrSshRoutes(uint64 *out, int max);

#endif							/* PCR_SSH_CLIENT_H */
