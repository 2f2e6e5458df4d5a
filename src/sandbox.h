/*
 * sandbox.h — what the sandbox family shares (driver_sandbox.c, sandbox_*.c)
 *
 * sandbox_registry.c  the providers (pcr_provider.h), object names
 * sandbox_ops.c       one I/O operation per worker-side entry point, and the
 *                     caller side that packs a request and unpacks the answer
 *                     (execute: sandbox_exec.c, on the path of every driver)
 * sandbox_inflight.c  the shared-memory table of acquisitions whose outcome
 *                     is not known yet (so that an aborted one leaks nothing)
 * sandbox_sweep.c     the reconciler's steps: destroy the objects of aborted
 *                     acquisitions; the start-up and periodic sweep of
 *                     list_owned
 * driver_sandbox.c    the "sandbox" driver: routes to the provider, the
 *                     acquire and cleanup of objects
 * sandbox_exec.c      lease_execute on a sandbox lease: the caller side and
 *                     the executor that calls the provider's execute entry
 *                     point (exec.h: the same path as every driver's)
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

/*
 * The object of a lease of provider p, named after the id of its
 * provider_lease_id ("sandbox://<p>/<id>": the lease's own id, or for a
 * reusable lease its environment's): name, cluster, lease id and reusable
 * filled in, the rest zero; false when provider_lease_id names no object of p.
 */
extern bool PcrSandboxLeaseObject(const PcrSandboxProvider *p, const char *provider_lease_id,
								  const pg_uuid_t *lease_id, PcrSandboxObject *obj);

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
 * The object head of a request (the provider, the cluster, the object: its
 * name, ids, config and metadata), written by the caller side and read by
 * the worker side of an operation; the reader copies every field out, so
 * the object's jsonb are aligned.  Read fails (elog) on a malformed head or
 * a provider this worker does not have; obj->deadline is the given one.
 */
extern void PcrSandboxWriteObject(StringInfo b, const PcrSandboxProvider *p, const PcrSandboxObject *obj);
extern const PcrSandboxProvider *PcrSandboxReadObject(const char *data, Size len, TimestampTz deadline,
													  PcrSandboxObject *obj);

/* The provider's "<provider>.execute" operation, or 0A000 when it has none. */
extern const PcrIoOperation *PcrSandboxExecuteOperation(const PcrSandboxProvider *p);

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
 * sandbox_exec.c: lease_execute on a sandbox lease
 * ------------------------------------------------------------------------ */

/* The sandbox driver's exec_prepare and execute (driver.h): the caller side. */
extern void PcrSandboxExecPrepare(const PcrExecLease *lease, PcrExecTarget *target);
extern void PcrSandboxExecute(const PcrExecLease *lease, const PcrExecCall *call, PcrExecOutcome *outcome);

/* The run function of every provider's "<provider>.execute" operation (worker side). */
extern void PcrSandboxExecuteRun(PcrIoRequest *req, PcrIoResponse *resp);

#endif							/* PCR_SANDBOX_H */
