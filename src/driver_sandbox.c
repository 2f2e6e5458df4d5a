/*
 * driver_sandbox.c — the "sandbox" driver: routes to the lease's provider
 *
 * config.provider (default "fake") names a PcrSandboxProvider registered
 * through pcr_provider.h (sandbox_registry.c).  A config naming a provider
 * that is not registered can be stored (it may be loaded later) but not
 * acquired (0A000); its name must still be a provider name, and it must not
 * carry credentials in plain text.
 *
 * Providers with objects (ABI 2 with create; docs/providers.md): acquire names the
 * object after the lease id the core drew (reusable: the environment id),
 * records the acquisition in the in-flight table (sandbox_inflight.c) and
 * has a driver worker resume or create it before the lease row is written;
 * the lease's cleanup releases (reusable, environment still active) or
 * destroys it.  ABI 1 providers keep their records-only acquire.
 */
#include "pcr.h"
#include "driver.h"
#include "sandbox.h"
#include "util.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"

/*
 * config.provider, defaulting to "fake"; 22023 unless it is a provider name
 * (^[a-z0-9][a-z0-9._-]*$), whether or not such a provider is loaded.
 */
static char *
config_provider_name(Jsonb *config)
{
	char	   *name = PcrConfigGetText("sandbox", config, "provider", PCR_TEXT_NONEMPTY,
										PCR_PROVIDER_NAME_MAX);

	if (name == NULL)
		return "fake";
	PcrConfigCheckProviderName("sandbox", "provider", name);
	return name;
}

static const PcrSandboxProvider *
provider_for_acquire(Jsonb *config)
{
	const char *name = config_provider_name(config);
	const PcrSandboxProvider *p = PcrSandboxProviderByName(name);

	if (p == NULL)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_UNSUPPORTED),
				 errmsg("sandbox provider \"%s\" is not available", name),
				 errhint("Load the library that registers it through shared_preload_libraries.")));
	return p;
}

static Jsonb *
sandbox_validate(Jsonb *config)
{
	const PcrSandboxProvider *p;

	PcrConfigRequireObject("sandbox", config);
	p = PcrSandboxProviderByName(config_provider_name(config));
	if (p == NULL)
	{
		/*
		 * Stored as given (the provider may be loaded later), but the shared
		 * fields are checked, and nothing that looks like a credential is
		 * stored in plain text: nobody would refuse it before it is used.
		 */
		int64		ttl;

		(void) PcrConfigCheckTtl("sandbox", config, &ttl);
		PcrConfigRefuseInlineCredentials("sandbox", config);
		return config;
	}
	return p->validate(config);
}

/*
 * The lease trigger asks this of stored configs too, whose provider may not
 * be loaded (acquiring on them raises in check_available): then the shared
 * "reuseLease" field says.
 */
static const char *
sandbox_lease_policy(Jsonb *config)
{
	const PcrSandboxProvider *p = PcrSandboxProviderByName(config_provider_name(config));
	bool		reuse = p != NULL ? p->reuse_lease(config) : PcrJsonbGetBool(config, "reuseLease", false);

	return reuse ? "reuse_by_environment" : "ephemeral";
}

static void
sandbox_check_available(Jsonb *config)
{
	(void) provider_for_acquire(config);
}

/* The acquisition the lease core may still discard (sandbox_grant_unused). */
static int	pending_slot = -1;
static uint32 pending_generation = 0;

static void pg_attribute_noreturn()
acquire_failed(const PcrSandboxProvider *p, const PcrSandboxObject *obj, const PcrSandboxAcquired *a)
{
	ereport(ERROR,
			(errcode(a->status == PCR_PROVIDER_RETRY ? PCR_ERRCODE_TRANSPORT : PCR_ERRCODE_REMOTE_IO),
			 errmsg("sandbox provider \"%s\" could not %s sandbox \"%s\"", p->name,
					obj->reusable ? "resume or create" : "create", obj->name),
			 a->message[0] ? errdetail("%s", a->message) : 0,
			 a->status == PCR_PROVIDER_RETRY ? errhint("The failure may be transient: retry the acquisition.") : 0));
}

/* The provider's extra metadata and resumedLease, under the grant's own keys. */
static Jsonb *
merge_metadata(Jsonb *grant_metadata, const PcrSandboxAcquired *a)
{
	Jsonb	   *merged = grant_metadata;

	if (a->metadata != NULL && PcrJsonbIsObject(a->metadata))
		merged = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(a->metadata),
													JsonbPGetDatum(merged)));
	if (a->resumed)
	{
		PcrJsonbBuilder b;

		PcrJbBegin(&b);
		PcrJbAddBool(&b, "resumedLease", true);
		merged = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(merged),
													JsonbPGetDatum(PcrJbFinish(&b))));
	}
	return merged;
}

/* Resume or create the lease's object in a driver worker, before the row is written. */
static void
acquire_object(const PcrSandboxProvider *p, const PcrLeaseRequest *req, PcrLeaseGrant *grant)
{
	PcrSandboxObject obj = {0};
	PcrSandboxAcquired a = {0};
	uint32		generation;
	int			slot;

	obj.name = req->object_name;
	obj.cluster = PcrSandboxCluster();
	obj.lease_id = req->lease_id;
	obj.company_id = req->company_id;
	obj.environment_id = req->environment_id;
	obj.database_id = MyDatabaseId;
	obj.reusable = req->reusable;
	obj.config = req->config;
	PcrIoRequireWorkers();
	slot = PcrInflightBegin(p, &obj, &generation);
	pending_slot = slot;
	pending_generation = generation;
	PcrSandboxCallAcquire(p, &obj, slot, generation, &a);
	if (a.status != PCR_PROVIDER_OK)
		acquire_failed(p, &obj, &a);
	grant->metadata = merge_metadata(grant->metadata, &a);
}

static void
sandbox_acquire(const PcrLeaseRequest *req, PcrLeaseGrant *grant)
{
	const PcrSandboxProvider *p = provider_for_acquire(req->config);
	PcrLeaseRequest r = *req;
	const pg_uuid_t *id;

	pending_slot = -1;
	if (p->abi_version < 2)
	{
		p->acquire(req, grant);
		return;
	}
	r.reusable = p->reuse_lease(req->config);
	id = r.reusable ? &req->environment_id : &req->lease_id;
	r.object_name = PcrSandboxObjectName(id);
	p->acquire(&r, grant);
	grant->provider = p->name;
	grant->provider_lease_id = psprintf("sandbox://%s/%s", p->name, PcrUuidToCString(id));
	if (PcrSandboxProviderHasObjects(p))
		acquire_object(p, &r, grant);
}

/* A concurrent acquire's lease won: the object just made is nobody's. */
static void
sandbox_grant_unused(const PcrLeaseRequest *req, const PcrLeaseGrant *grant)
{
	if (pending_slot >= 0)
		PcrInflightAbandon(pending_slot, pending_generation);
	pending_slot = -1;
}

static bool
sandbox_release_needs_cleanup(Jsonb *lease_metadata)
{
	char	   *name = PcrJsonbGetText(lease_metadata, "provider");
	const PcrSandboxProvider *p = name ? PcrSandboxProviderByName(name) : NULL;

	/*
	 * A lease whose provider is not loaded any more still gets a cleanup
	 * attempt: the worker reports it if the provider stays missing.
	 */
	if (p == NULL)
		return true;
	return p->release_needs_cleanup(lease_metadata);
}

/* The object of a lease being cleaned up (PcrSandboxLeaseObject), with the cleanup's ids. */
static bool
lease_object(const PcrSandboxProvider *p, const PcrLeaseCleanup *lease, PcrSandboxObject *obj)
{
	if (!PcrSandboxLeaseObject(p, lease->provider_lease_id, &lease->lease_id, obj))
		return false;
	obj->company_id = lease->company_id;
	obj->environment_id = lease->environment_id;
	obj->config = lease->environment_config;
	obj->metadata = lease->metadata;
	return true;
}

/* Release (keep) or destroy a lease's object, in this worker. */
static void
cleanup_object(const PcrSandboxProvider *p, const PcrLeaseCleanup *lease, PcrIoRequest *req)
{
	PcrSandboxObject obj;
	PcrProviderResult res = {0};
	volatile PcrProviderStatus status;
	bool		keep;
	int			slot = -1;
	uint32		generation = 0;

	if (!lease_object(p, lease, &obj))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("sandbox lease has no provider_lease_id of provider \"%s\"", p->name)));
	obj.deadline = req->deadline;
	keep = obj.reusable && lease->keep_object;
	if (keep)
		status = p->release ? p->release(&obj, &res) : PCR_PROVIDER_OK;
	else
	{
		/* a reusable object: no acquirer may resume it while it goes */
		if (obj.reusable && !PcrInflightClaimName(p, &obj, &slot, &generation))
			ereport(ERROR,
					(errcode(PCR_ERRCODE_HELD),
					 errmsg("sandbox \"%s\" is being acquired", obj.name),
					 errdetail("Its destroy is retried later.")));
		PG_TRY();
		{
			status = p->destroy(&obj, &res);
		}
		PG_CATCH();
		{
			PcrInflightReleaseName(slot, generation);
			PG_RE_THROW();
		}
		PG_END_TRY();
		PcrInflightReleaseName(slot, generation);
	}
	if (status == PCR_PROVIDER_OK || status == PCR_PROVIDER_NOT_FOUND)
		return;					/* an object already gone is destroyed */
	ereport(ERROR,
			(errcode(status == PCR_PROVIDER_RETRY ? PCR_ERRCODE_TRANSPORT : PCR_ERRCODE_REMOTE_IO),
			 errmsg("sandbox provider \"%s\" could not %s sandbox \"%s\": %s", p->name,
					keep ? "release" : "destroy", obj.name,
					res.message[0] ? res.message : "no reason given")));
}

/*
 * Release side effects of a sandbox lease: the "sandbox.cleanup" operation,
 * run in a driver worker when the reconciler calls it through the pool.  The
 * provider is the one recorded on the lease; one that is not registered in
 * this server cannot be reached, which fails the attempt (and after
 * paperclip.cleanup_max_attempts, the cleanup) with a message naming it.
 * Returning is success.
 */
static void
sandbox_cleanup_run(PcrIoRequest *req, PcrIoResponse *resp)
{
	PcrLeaseCleanup lease;
	char	   *name;
	const PcrSandboxProvider *p;

	PcrLeaseCleanupUnpack(req, &lease);
	name = PcrJsonbGetText(lease.metadata, "provider");
	if (name == NULL && lease.provider != NULL)
		name = pstrdup(lease.provider);
	if (name == NULL)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("sandbox lease names no provider")));
	p = PcrSandboxProviderByName(name);
	if (p == NULL)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_UNSUPPORTED),
				 errmsg("sandbox provider \"%s\" is not registered in this server", name)));
	if (!p->release_needs_cleanup(lease.metadata))
		return;
	if (PcrSandboxProviderHasObjects(p))
	{
		cleanup_object(p, &lease, req);
		return;
	}

	/*
	 * A provider without objects (ABI 1, or ABI 2 without create) that still
	 * asks for cleanup has no teardown entry point to serve it: say so
	 * rather than report a sandbox destroyed that was not.
	 */
	ereport(ERROR,
			(errcode(PCR_ERRCODE_UNSUPPORTED),
			 errmsg("sandbox provider \"%s\" has no teardown entry point", name)));
}

static const PcrIoOperation sandbox_cleanup_op = {
	.name = "sandbox.cleanup",
	.max_request = 1024 * 1024,
	.max_response = 0,
	.run = sandbox_cleanup_run,
};

static const PcrIoOperation *const sandbox_ops[] = {&sandbox_cleanup_op};

static const PcrIoBackend sandbox_backend = {
	.abi_version = PCR_IO_ABI_VERSION,
	.name = "sandbox",
	.ops = sandbox_ops,
	.nops = lengthof(sandbox_ops),
};

static void
sandbox_init(bool preloading)
{
	PcrInflightInit(preloading);
	if (preloading)
	{
		PcrIoRegisterBackend(&sandbox_backend);
		PcrSandboxSweepInit(preloading);
	}
}

/* The catch-all of the registry: any provider the drivers before it do not own. */
static bool
sandbox_owns_provider(const char *provider)
{
	return provider != NULL;
}

/*
 * A sandbox is usable when its provider is registered and accepts the
 * config, and — for a provider with a probe entry point — when the provider
 * says it can start one (in a driver worker; nothing is created).
 */
static Jsonb *
sandbox_probe(const PcrLeaseRequest *req)
{
	const char *name = config_provider_name(req->config);
	const PcrSandboxProvider *p = PcrSandboxProviderByName(name);
	PcrJsonbBuilder details;
	PcrSandboxObject obj = {0};
	PcrProviderStatus status;
	char		message[PCR_PROVIDER_MESSAGE_MAX];
	static const char *const status_names[] = {"ok", "not found", "retry", "fatal"};

	PcrJbBegin(&details);
	PcrJbAddText(&details, "provider", name);
	if (p == NULL)
		return PcrProbeResult(false, "sandbox",
							  psprintf("sandbox provider \"%s\" is not available", name),
							  PcrJbFinish(&details));
	PcrJbAddText(&details, "image", PcrJsonbGetText(req->config, "image"));
	PcrJbAddBool(&details, "reuseLease", p->reuse_lease(req->config));
	if (p->abi_version < 2 || p->probe == NULL)
		return PcrProbeResult(true, "sandbox",
							  psprintf("sandbox provider \"%s\" is available", name),
							  PcrJbFinish(&details));
	PcrIoRequireWorkers();
	obj.cluster = PcrSandboxCluster();
	obj.company_id = req->company_id;
	obj.environment_id = req->environment_id;
	obj.reusable = p->reuse_lease(req->config);
	obj.config = req->config;
	status = PcrSandboxCallProbe(p, &obj, message);
	PcrJbAddText(&details, "status", status_names[status]);
	return PcrProbeResult(status == PCR_PROVIDER_OK, "sandbox",
						  message[0] ? message : psprintf("sandbox provider \"%s\" is available", name),
						  PcrJbFinish(&details));
}

const PcrDriver pcr_driver_sandbox = {
	.name = "sandbox",
	.init = sandbox_init,
	.owns_provider = sandbox_owns_provider,
	.validate = sandbox_validate,
	.lease_policy = sandbox_lease_policy,
	.check_available = sandbox_check_available,
	.acquire = sandbox_acquire,
	.release_needs_cleanup = sandbox_release_needs_cleanup,
	.probe = sandbox_probe,
	.cleanup_op = &sandbox_cleanup_op,
	.grant_unused = sandbox_grant_unused,
	.exec_prepare = PcrSandboxExecPrepare,	/* sandbox_exec.c */
	.execute = PcrSandboxExecute,
};
