/*
 * driver_local.c — the "local" driver: agent work runs on the host itself
 *
 * No I/O and no release side effects: the lease row is the whole story.
 */
#include "pcr.h"
#include "driver.h"

/* Any object is a valid local config; only leaseTtlSeconds is checked. */
static Jsonb *
local_validate(Jsonb *config)
{
	int64		ttl;

	PcrConfigRequireObject("local", config);
	(void) PcrConfigCheckTtl("local", config, &ttl);	/* every other key is kept as given */
	return config;
}

static void
local_acquire(const PcrLeaseRequest *req, PcrLeaseGrant *grant)
{
	PcrJsonbBuilder b;

	PcrMetadataBegin(&b, "local", req);
	grant->provider = "local";
	grant->provider_lease_id = NULL;
	grant->metadata = PcrJbFinish(&b);
}

/* Leases written by hand without a provider are local ones too. */
static bool
local_owns_provider(const char *provider)
{
	return provider == NULL || strcmp(provider, "local") == 0;
}

static Jsonb *
local_probe(const PcrLeaseRequest *req)
{
	return PcrProbeResult(true, "local", "the local host is always available", NULL);
}

const PcrDriver pcr_driver_local = {
	.name = "local",
	.owns_provider = local_owns_provider,
	.validate = local_validate,
	.acquire = local_acquire,
	.probe = local_probe,
};
