/*
 * pcr_provider.h — the C interface for sandbox providers of paperclip_runtime
 *
 * A sandbox provider is a shared library that, from its _PG_init, registers
 * a PcrSandboxProvider with PcrRegisterSandboxProvider().  The core then
 * routes every environment whose config says {"provider": "<name>"} to it.
 * Load the library through shared_preload_libraries *after*
 * paperclip_runtime, e.g.
 *     shared_preload_libraries = 'paperclip_runtime, my_provider'
 *
 * This header is installed with the extension (pg_config --includedir-server
 * then extension/paperclip_runtime/pcr_provider.h), with io.h beside it.
 *
 * Rules for a provider:
 * - validate() receives the whole config object (including "provider") and
 *   returns its normalised form; raise ERRCODE_INVALID_PARAMETER_VALUE
 *   (22023) naming the offending field for anything invalid.
 * - acquire() fills a PcrLeaseGrant.  It runs in the caller's transaction;
 *   anything slow must be handed to a worker.  It must not export host
 *   environment variables or secrets to the sandbox implicitly.
 * - release_needs_cleanup() says whether releasing a lease has side effects
 *   that a worker must carry out after commit (cleanup_status 'pending').
 */
#ifndef PCR_PROVIDER_H
#define PCR_PROVIDER_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* the I/O pool: worker-side operations, their wait helper, the caller side */
#include "io.h"

#define PCR_PROVIDER_ABI_VERSION 1

/* What the core knows about an acquisition when it calls a driver. */
typedef struct PcrLeaseRequest
{
	pg_uuid_t	company_id;
	pg_uuid_t	environment_id;
	pg_uuid_t	heartbeat_run_id;
	const char *environment_name;
	Jsonb	   *config;			/* the stored, normalised config */
	const char *execution_workspace_mode;	/* NULL when not given */
} PcrLeaseRequest;

/* What a driver hands back for the new lease row. */
typedef struct PcrLeaseGrant
{
	const char *provider;		/* environment_leases.provider */
	char	   *provider_lease_id;	/* may be NULL */
	Jsonb	   *metadata;		/* camelCase keys; never a secret */
} PcrLeaseGrant;

typedef struct PcrSandboxProvider
{
	int			abi_version;	/* PCR_PROVIDER_ABI_VERSION */
	const char *name;			/* config.provider */
	Jsonb	   *(*validate) (Jsonb *config);
	bool		(*reuse_lease) (Jsonb *config);
	void		(*acquire) (const PcrLeaseRequest *req, PcrLeaseGrant *grant);
	bool		(*release_needs_cleanup) (Jsonb *lease_metadata);
} PcrSandboxProvider;

/* Register a provider; call from _PG_init.  Names must be unique. */
extern void PcrRegisterSandboxProvider(const PcrSandboxProvider *provider);

/* Look a provider up by name; NULL when none is registered under it. */
extern const PcrSandboxProvider *PcrSandboxProviderByName(const char *name);

#endif							/* PCR_PROVIDER_H */
