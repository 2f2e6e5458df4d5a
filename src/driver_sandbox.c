/*
 * driver_sandbox.c — the "sandbox" driver and the registry of its providers
 *
 * The driver itself only routes: config.provider (default "fake") names a
 * PcrSandboxProvider registered through pcr_provider.h.  A config naming a
 * provider that is not registered can be stored (it may be loaded later) but
 * not acquired (0A000); its name must still be a provider name, and it must
 * not carry credentials in plain text.
 */
#include "pcr.h"
#include "driver.h"

#include "utils/memutils.h"

#define PCR_MAX_SANDBOX_PROVIDERS 16

static const PcrSandboxProvider *providers[PCR_MAX_SANDBOX_PROVIDERS];
static int	nproviders = 0;

extern const PcrSandboxProvider pcr_provider_fake;

static void
ensure_builtin_providers(void)
{
	if (nproviders == 0)
		providers[nproviders++] = &pcr_provider_fake;
}

void
PcrRegisterSandboxProvider(const PcrSandboxProvider *provider)
{
	ensure_builtin_providers();
	if (provider == NULL || provider->name == NULL || provider->validate == NULL ||
		provider->acquire == NULL || provider->reuse_lease == NULL ||
		provider->release_needs_cleanup == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sandbox provider registration is incomplete")));
	if (!PcrIsProviderName(provider->name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sandbox provider name \"%s\" is invalid", provider->name),
				 errdetail("Provider names match ^[a-z0-9][a-z0-9._-]*$ and have at most %d bytes.",
						   PCR_PROVIDER_NAME_MAX)));
	if (provider->abi_version != PCR_PROVIDER_ABI_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("sandbox provider \"%s\" was built for provider ABI %d, this server has %d",
						provider->name, provider->abi_version, PCR_PROVIDER_ABI_VERSION)));
	if (PcrSandboxProviderByName(provider->name) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("sandbox provider \"%s\" is already registered", provider->name)));
	if (nproviders >= PCR_MAX_SANDBOX_PROVIDERS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many sandbox providers registered (at most %d)",
						PCR_MAX_SANDBOX_PROVIDERS)));
	providers[nproviders++] = provider;
}

const PcrSandboxProvider *
PcrSandboxProviderByName(const char *name)
{
	ensure_builtin_providers();
	for (int i = 0; i < nproviders; i++)
		if (strcmp(providers[i]->name, name) == 0)
			return providers[i];
	return NULL;
}

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

static void
sandbox_acquire(const PcrLeaseRequest *req, PcrLeaseGrant *grant)
{
	provider_for_acquire(req->config)->acquire(req, grant);
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

/*
 * Release side effects of a sandbox lease: the "sandbox.cleanup" operation,
 * run in a driver worker when the reconciler calls it through the pool.  The
 * provider is the one recorded on the lease; one that is not registered in
 * this server cannot be reached, which fails the attempt (and after
 * paperclip.cleanup_max_attempts, the cleanup) with a message naming it.
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

	/*
	 * PCR_PROVIDER_ABI_VERSION 1 has no teardown entry point, so a provider
	 * that asks for cleanup cannot be served yet: say so rather than report
	 * a sandbox destroyed that was not.
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
	if (preloading)
		PcrIoRegisterBackend(&sandbox_backend);
}

/* The catch-all of the registry: any provider the drivers before it do not own. */
static bool
sandbox_owns_provider(const char *provider)
{
	return provider != NULL;
}

/*
 * A sandbox is usable when its provider is registered and accepts the
 * config; the provider interface has no probe of its own (ABI 1), so no
 * sandbox is created here.
 */
static Jsonb *
sandbox_probe(const PcrLeaseRequest *req)
{
	const char *name = config_provider_name(req->config);
	const PcrSandboxProvider *p = PcrSandboxProviderByName(name);
	PcrJsonbBuilder details;

	PcrJbBegin(&details);
	PcrJbAddText(&details, "provider", name);
	if (p == NULL)
		return PcrProbeResult(false, "sandbox",
							  psprintf("sandbox provider \"%s\" is not available", name),
							  PcrJbFinish(&details));
	PcrJbAddText(&details, "image", PcrJsonbGetText(req->config, "image"));
	PcrJbAddBool(&details, "reuseLease", p->reuse_lease(req->config));
	return PcrProbeResult(true, "sandbox",
						  psprintf("sandbox provider \"%s\" is available", name),
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
};
