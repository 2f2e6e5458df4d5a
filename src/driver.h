/*
 * driver.h — the environment driver interface
 *
 * A driver is one vtable; adding a driver means one file and one line in
 * the registry of driver.c.  Lease code only ever calls through here.
 */
#ifndef PCR_DRIVER_H
#define PCR_DRIVER_H

#include "pcr.h"
#include "pcr_provider.h"
#include "exec.h"
#include "jsonb_util.h"
#include "io.h"
#include "util.h"

/*
 * A released lease whose side effects a driver must carry out (cleanup_status
 * 'pending'), as the reconciler hands it over after the release committed.
 */
typedef struct PcrLeaseCleanup
{
	pg_uuid_t	lease_id;
	pg_uuid_t	company_id;
	const char *provider;		/* environment_leases.provider, may be NULL */
	const char *provider_lease_id;	/* may be NULL */
	Jsonb	   *metadata;		/* the lease's metadata, may be NULL */
	int			attempt;		/* 1 for the first try */
	pg_uuid_t	environment_id;
	Jsonb	   *environment_config; /* NULL when the environment is gone */

	/*
	 * The lease is reusable and its environment still active: keep what the
	 * lease used for the environment's next run (release, not destroy).
	 */
	bool		keep_object;
} PcrLeaseCleanup;

/*
 * A driver.  Entries marked optional may be NULL: the default applies, so a
 * driver writes only what it does differently.
 */
typedef struct PcrDriver
{
	const char *name;			/* environments.driver */

	/* Optional: from _PG_init, define the driver's settings and I/O backends. */
	void		(*init) (bool preloading);

	/*
	 * Optional: does a lease with this provider column (possibly NULL)
	 * belong to this driver?  Default: provider equals the driver's name.
	 * Used for rows written without metadata.driver; the registry is asked
	 * in order, so a catch-all comes last.
	 */
	bool		(*owns_provider) (const char *provider);

	/* Validate and normalise a config; ereport 22023 naming the field. */
	Jsonb	   *(*validate) (Jsonb *config);

	/*
	 * Optional: lease_policy of a new lease for this (normalised) config;
	 * "reuse_by_environment" makes the environment exclusive: one run at a
	 * time.  The lease trigger calls it for every active lease written, so
	 * it must answer for any stored config without raising.  Default: "ephemeral".
	 */
	const char *(*lease_policy) (Jsonb *config);

	/*
	 * Optional: raise 0A000/55000 when acquiring on this config cannot be
	 * done in this build or server (called before anything is written).
	 */
	void		(*check_available) (Jsonb *config);

	/* Fill in the grant for a new lease; runs inside the caller's SPI. */
	void		(*acquire) (const PcrLeaseRequest *req, PcrLeaseGrant *grant);

	/* Optional: does releasing a lease of this driver have side effects?  Default: no. */
	bool		(*release_needs_cleanup) (Jsonb *lease_metadata);

	/*
	 * Optional: the I/O operation that carries out the release side effects
	 * of one lease (destroy a sandbox, ...).  The reconciler calls it through
	 * the pool, after the release committed, outside any transaction, for
	 * leases with cleanup_status 'pending'; the request is a packed
	 * PcrLeaseCleanup (PcrLeaseCleanupUnpack), the answer is ignored.
	 * Returning is success (also when nothing was left to do); raising is a
	 * failed attempt, retried with backoff up to
	 * paperclip.cleanup_max_attempts, its message (never a secret) kept in
	 * cleanup_error.  NULL: no side effects, a pending cleanup is complete
	 * at once.
	 */
	const PcrIoOperation *cleanup_op;

	/*
	 * Optional: check that the environment can be used, without writing
	 * anything: returns {ok, driver, summary, details}.  May raise; the
	 * caller (environment_probe) turns an error into {ok: false, ...}.
	 * Default: ok, "driver <name> needs no connection".
	 */
	Jsonb	   *(*probe) (const PcrLeaseRequest *req);

	/*
	 * Optional: paperclip.lease_execute() on a lease of this driver (exec.h).
	 * Both run in the caller's transaction.  exec_prepare raises 0A000 (or
	 * 42501, 55000) when this lease cannot run commands, and fills in where
	 * they run: the workspace (HOME, the base of cwd) and the environment's
	 * defaults.  execute hands the call to the driver's I/O operation with
	 * PcrExecInvoke (credentials it resolves are secret ranges of the
	 * request) and returns the outcome.  NULL: 0A000.
	 */
	void		(*exec_prepare) (const PcrExecLease *lease, PcrExecTarget *target);
	void		(*execute) (const PcrExecLease *lease, const PcrExecCall *call,
							PcrExecOutcome *outcome);

	/*
	 * Optional: the lease core called acquire, but wrote no row with the
	 * grant (a concurrent acquire of the same run and environment won):
	 * undo what acquire prepared.  Called in the same transaction.
	 */
	void		(*grant_unused) (const PcrLeaseRequest *req, const PcrLeaseGrant *grant);
} PcrDriver;

extern const PcrDriver pcr_driver_local;
extern const PcrDriver pcr_driver_ssh;
extern const PcrDriver pcr_driver_sandbox;

/* _PG_init: every driver's init */
extern void PcrDriversInit(bool preloading);

/* NULL when unknown */
extern const PcrDriver *PcrDriverByName(const char *name);

/* The names of the registered drivers, in registry order (for the vocabulary). */
extern int	PcrDriverCount(void);
extern const PcrDriver *PcrDriverAt(int i);

/* The vtable's entries with their defaults applied. */
extern const char *PcrDriverLeasePolicy(const PcrDriver *driver, Jsonb *config);
extern void PcrDriverCheckAvailable(const PcrDriver *driver, Jsonb *config);
extern bool PcrDriverReleaseNeedsCleanup(const PcrDriver *driver, Jsonb *lease_metadata);
extern Jsonb *PcrDriverProbe(const PcrDriver *driver, const PcrLeaseRequest *req);
extern void PcrDriverGrantUnused(const PcrDriver *driver, const PcrLeaseRequest *req,
								 const PcrLeaseGrant *grant);

/* A PcrLeaseCleanup as the request of a cleanup operation, and back (worker side). */
extern char *PcrLeaseCleanupPack(const PcrLeaseCleanup *lease, Size *len);
extern void PcrLeaseCleanupUnpack(const PcrIoRequest *req, PcrLeaseCleanup *lease);

/*
 * The driver a lease was acquired with: metadata.driver, or for rows written
 * by hand without it, the first driver that owns the provider column.  NULL
 * when unknown.
 */
extern const PcrDriver *PcrDriverOfLease(Jsonb *metadata, const char *provider);

/*
 * Shared config checks (driver_config.c; PcrConfigError, PcrConfigGetText,
 * PcrConfigCheckText, PcrConfigRefuseInlineCredentials, PcrConfigRequireObject,
 * PcrConfigAddTtl and PcrConfigIsCommonKey are declared in pcr_provider.h, for
 * provider libraries too).
 */
#define PCR_HOST_MAX_BYTES				253	/* a DNS name */
#define PCR_WORKSPACE_MODE_MAX_BYTES	128	/* acquire_run_lease(execution_workspace_mode) */

/* (PcrConfigRequireObject, PcrConfigAddTtl, PcrConfigIsCommonKey: pcr_provider.h) */
extern bool PcrConfigCheckTtl(const char *driver, Jsonb *config, int64 *ttl);

/*
 * An ASCII host name (labels of letters, digits, "-" and "_") or an IP
 * address, at most PCR_HOST_MAX_BYTES; returns it normalised (an IPv6
 * address without brackets).  Numeric forms other than dotted decimal
 * ("127.1", "0x7f.1") are refused: the resolver would read them as another
 * address than they seem to name.
 */
extern char *PcrConfigCheckHost(const char *driver, const char *field, const char *host);

/* Provider names: ^[a-z0-9][a-z0-9._-]*$, at most PCR_PROVIDER_NAME_MAX bytes. */
extern bool PcrIsProviderName(const char *name);
extern void PcrConfigCheckProviderName(const char *driver, const char *field, const char *name);

/*
 * A text argument of a SQL function, checked like a config string (flags of
 * pcr_provider.h) before it is copied anywhere: NULL when the argument is
 * NULL, else a palloc'd C string; 22023 naming the argument otherwise.
 */
extern char *PcrArgText(FunctionCallInfo fcinfo, int argno, const char *name, int flags, int max_bytes);

/* (PcrMetadataBegin, the base metadata every driver writes: pcr_provider.h) */

/* {ok, driver, summary, details} for a probe; details may be NULL */
extern Jsonb *PcrProbeResult(bool ok, const char *driver, const char *summary, Jsonb *details);

#endif							/* PCR_DRIVER_H */
