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

static const char *
local_lease_policy(Jsonb *config)
{
	return "ephemeral";
}

static void
local_check_available(Jsonb *config)
{
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

static bool
local_release_needs_cleanup(Jsonb *lease_metadata)
{
	return false;
}

static Jsonb *
local_probe(const PcrLeaseRequest *req)
{
	return PcrProbeResult(true, "local", "the local host is always available", NULL);
}

const PcrDriver pcr_driver_local = {
	.name = "local",
	.validate = local_validate,
	.lease_policy = local_lease_policy,
	.check_available = local_check_available,
	.acquire = local_acquire,
	.release_needs_cleanup = local_release_needs_cleanup,
	.probe = local_probe,
};
