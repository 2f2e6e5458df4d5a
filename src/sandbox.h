/*
 * sandbox.h — what the sandbox family shares (driver_sandbox.c, sandbox_*.c)
 *
 * sandbox_registry.c  the providers (pcr_provider.h), object names
 * sandbox_ops.c       one I/O operation per worker-side entry point, and the
 *                     caller side that packs a request and unpacks the answer
 * sandbox_inflight.c  the shared-memory table of acquisitions whose outcome
 *                     is not known yet (so that an aborted one leaks nothing)
 * sandbox_sweep.c     the reconciler's steps: destroy the objects of aborted
 *                     acquisitions; the start-up and periodic sweep of
 *                     list_owned
 * driver_sandbox.c    the "sandbox" driver: routes to the provider, the
 *                     acquire and cleanup of objects
 * sandbox_exec.c      lease_execute on a sandbox lease: the provider's
 *                     execute entry point
 */
#ifndef PCR_SANDBOX_H
#define PCR_SANDBOX_H

#include "pcr.h"
#include "exec.h"
#include "pcr_provider.h"

/* ------------------------------------------------------------------------
 * sandbox_registry.c
 * ------------------------------------------------------------------------ */

/* Does the provider make objects (ABI 2 with create)? */
extern bool PcrSandboxProviderHasObjects(const PcrSandboxProvider *p);
extern int	PcrSandboxProviderCount(void);
extern const PcrSandboxProvider *PcrSandboxProviderAt(int i);
extern int	PcrSandboxProviderIndex(const PcrSandboxProvider *p);

/* This server's cluster label (the system identifier, 16 hex digits). */
extern const char *PcrSandboxCluster(void);

/* pcr-<cluster>-<id> (palloc'd) */
extern char *PcrSandboxObjectName(const pg_uuid_t *id);

/* ------------------------------------------------------------------------
 * sandbox_ops.c: caller side of the providers' operations
 * ------------------------------------------------------------------------ */

/* From PcrRegisterSandboxProvider: the provider's I/O backend and operations. */
extern void PcrSandboxRegisterOperations(const PcrSandboxProvider *p);

/* What an acquire call did. */
typedef struct PcrSandboxAcquired
{
	PcrProviderStatus status;
	bool		resumed;		/* resume found the object */
	Jsonb	   *metadata;		/* the provider's extra metadata, or NULL */
	char		message[PCR_PROVIDER_MESSAGE_MAX];
} PcrSandboxAcquired;

/*
 * Resume (reusable) or create, in a driver worker; the in-flight entry
 * (slot, generation) is marked by the worker around the provider's call.
 */
extern void PcrSandboxCallAcquire(const PcrSandboxProvider *p, const PcrSandboxObject *obj,
								  int slot, uint32 generation, PcrSandboxAcquired *out);

/* destroy or release (release = false: destroy), in a driver worker. */
extern PcrProviderStatus PcrSandboxCallTeardown(const PcrSandboxProvider *p, const PcrSandboxObject *obj,
												bool release, char *message);

/* probe in a driver worker. */
extern PcrProviderStatus PcrSandboxCallProbe(const PcrSandboxProvider *p, const PcrSandboxObject *obj,
											 char *message);

/* list_owned in a driver worker: *objects (palloc'd array) and *n. */
extern PcrProviderStatus PcrSandboxCallListOwned(const PcrSandboxProvider *p, PcrOwnedObject **objects,
												 int *n, char *message);

/*
 * execute in a driver worker (lease_execute's sandbox path): spec's env
 * entries flagged in env_secret travel in secret ranges of the request.
 * Raises 58030 when the provider says the object is gone or cannot run
 * commands; otherwise fills outcome (its out/err buffers provided by the
 * caller, max_output bytes each).
 */
extern void PcrSandboxCallExecute(const PcrSandboxProvider *p, const PcrSandboxObject *obj,
								  const PcrExecSpec *spec, const bool *env_secret,
								  PcrExecOutcome *outcome);

/* ------------------------------------------------------------------------
 * driver_sandbox.c: what lease_execute needs of a sandbox lease
 * ------------------------------------------------------------------------ */
typedef struct PcrSandboxLease
{
	pg_uuid_t	lease_id;
	pg_uuid_t	company_id;
	pg_uuid_t	environment_id;
	const char *provider;		/* environment_leases.provider (metadata.provider wins) */
	const char *provider_lease_id;
	Jsonb	   *metadata;		/* the lease's */
	Jsonb	   *config;			/* its environment's, normalised */
} PcrSandboxLease;

/*
 * Run spec in the sandbox of a lease through its provider's execute entry
 * point, in a driver worker (the caller side of lease_execute's sandbox
 * path; env entries flagged in env_secret travel in secret ranges).  0A000
 * when the provider cannot execute (fake, ABI 1, no execute entry point) or
 * is not loaded; 58030 when the sandbox is gone or cannot run commands.
 */
extern void PcrSandboxExecuteLease(const PcrSandboxLease *lease, const PcrExecSpec *spec,
								   const bool *env_secret, PcrExecOutcome *outcome);

/* ------------------------------------------------------------------------
 * sandbox_inflight.c
 * ------------------------------------------------------------------------ */
extern int	pcr_max_pending_sandboxes;

extern void PcrInflightInit(bool preloading);	/* settings */
extern void PcrInflightShmemRequest(void);
extern void PcrInflightShmemStartup(void);

/*
 * Caller side, before the pool call: record that this (sub)transaction is
 * about to create or resume object name of provider p.  Waits (bounded by
 * the acquire timeout) while the reconciler destroys an object of the same
 * name; 53400 when the table is full.  Returns the slot; *generation
 * identifies this use of it.
 */
extern int	PcrInflightBegin(const PcrSandboxProvider *p, const PcrSandboxObject *obj,
							 uint32 *generation);

/* Caller side: the acquisition will not use its object (a concurrent acquire won). */
extern void PcrInflightAbandon(int slot, uint32 generation);

/*
 * Worker side, around the provider's create/resume: false when the entry
 * is no longer waiting for a worker (its caller gave up, or it was freed):
 * then nothing may be created.  created: a create is about to run.
 */
extern bool PcrInflightWorkerStart(int slot, uint32 generation);
extern void PcrInflightWorkerCreates(int slot, uint32 generation);
extern void PcrInflightWorkerDone(int slot, uint32 generation);

/* An object whose destroy the reconciler has claimed. */
typedef struct PcrInflightOrphan
{
	int			slot;
	uint32		generation;
	int			provider;		/* registry index */
	PcrSandboxObject obj;		/* name, ids, reusable (no config, no metadata) */
} PcrInflightOrphan;

/*
 * The reconciler: claim (DESTROYING) every entry whose acquisition is over
 * without a lease (aborted, or abandoned) and whose object a create may have
 * made; entries whose acquisition committed, or that made nothing, are
 * freed.  Returns how many were claimed (at most max).
 */
extern int	PcrInflightClaimOrphans(PcrInflightOrphan *out, int max);

/* The reconciler: a claimed destroy is done (freed) or failed (retried later). */
extern void PcrInflightOrphanDone(const PcrInflightOrphan *o, bool destroyed);

/* Has a committed transaction asked for a sweep (and clear the request)? */
extern bool PcrInflightTakeSweepRequest(void);

/* Is any acquisition of this object in flight (so a sweep must leave it)? */
extern bool PcrInflightHasObject(const char *name);

/*
 * A destroy of a reusable object outside the table (a sweep, a cleanup of an
 * archived environment): claim its name so that no acquirer resumes it
 * meanwhile; false when an acquisition of it is in flight (leave it).
 */
extern bool PcrInflightClaimName(const PcrSandboxProvider *p, const PcrSandboxObject *obj, int *slot,
								 uint32 *generation);
extern void PcrInflightReleaseName(int slot, uint32 generation);

/* ------------------------------------------------------------------------
 * sandbox_sweep.c
 * ------------------------------------------------------------------------ */
extern void PcrSandboxSweepInit(bool preloading);	/* the reconciler steps */

/* Ask for a sweep of owned objects at the next pass once this transaction commits. */
extern void PcrSandboxSweepAtCommit(void);

/* ------------------------------------------------------------------------
 * sandbox_exec.c: the sandbox driver's exec_prepare and execute (driver.h)
 * ------------------------------------------------------------------------ */
extern void PcrSandboxExecPrepare(const PcrExecLease *lease, PcrExecTarget *target);
extern void PcrSandboxExecute(const PcrExecLease *lease, const PcrExecCall *call, PcrExecOutcome *outcome);

#endif							/* PCR_SANDBOX_H */
