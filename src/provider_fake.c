/*
 * provider_fake.c — the built-in "fake" sandbox provider
 *
 * Deterministic and free of side effects: it creates nothing and destroys
 * nothing, so tests and probes can exercise sandbox leases (including
 * reusable ones) without a real provider.
 */
#include "pcr.h"
#include "driver.h"
#include "spi_util.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#define FAKE_DEFAULT_IMAGE "ubuntu:24.04"
#define FAKE_IMAGE_MAX_BYTES 1024	/* an image reference: name, tag and digest */

typedef struct FakeKeyCheck
{
	int			dummy;
} FakeKeyCheck;

static void
fake_check_key(const char *key, JsonbValue *val, void *arg)
{
	if (strcmp(key, "provider") == 0 || strcmp(key, "image") == 0 ||
		strcmp(key, "reuseLease") == 0 || PcrConfigIsCommonKey(key))
		return;
	ereport(ERROR,
			(errcode(PCR_ERRCODE_BAD_CONFIG),
			 errmsg("invalid sandbox environment config: unknown field \"%s\"", key),
			 errhint("The fake provider accepts provider, image, reuseLease and leaseTtlSeconds.")));
}

static Jsonb *
fake_validate(Jsonb *config)
{
	PcrJsonbBuilder b;
	JsonbValue	v;
	char	   *image;
	bool		reuse = false;
	FakeKeyCheck kc;

	PcrJsonbForEachKey(config, fake_check_key, &kc);

	image = PcrConfigGetText("sandbox", config, "image", PCR_TEXT_TRIM, FAKE_IMAGE_MAX_BYTES);
	if (image == NULL || image[0] == '\0')
		image = FAKE_DEFAULT_IMAGE;
	if (PcrJsonbGet(config, "reuseLease", &v) != NULL && v.type != jbvNull)
	{
		if (v.type != jbvBool)
			PcrConfigError("sandbox", "reuseLease", "must be a boolean, not %s", PcrJsonbTypeName(&v));
		reuse = v.val.boolean;
	}

	PcrJbBegin(&b);
	PcrJbAddText(&b, "provider", "fake");
	PcrJbAddText(&b, "image", image);
	PcrJbAddBool(&b, "reuseLease", reuse);
	PcrConfigAddTtl("sandbox", config, &b);
	return PcrJbFinish(&b);
}

static bool
fake_reuse_lease(Jsonb *config)
{
	return PcrJsonbGetBool(config, "reuseLease", false);
}

/*
 * Was an earlier lease of this environment, on the same reusable sandbox
 * and image, released?  Then this acquisition resumes it.
 */
static bool
fake_earlier_lease_exists(const pg_uuid_t *environment_id, const char *provider_lease_id,
						  const char *image)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[3];
	int			rc;

	Oid			types[3] = {UUIDOID, TEXTOID, TEXTOID};

	values[0] = UUIDPGetDatum((pg_uuid_t *) environment_id);
	values[1] = CStringGetTextDatum(provider_lease_id);
	values[2] = CStringGetTextDatum(image);
	rc = PcrRunKeptPlan(&plan, "SELECT 1 FROM paperclip.environment_leases "
						" WHERE environment_id = $1 AND provider_lease_id = $2 "
						"   AND status <> 'active' AND metadata->>'image' = $3 LIMIT 1",
						3, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	return SPI_processed > 0;
}

static void
fake_acquire(const PcrLeaseRequest *req, PcrLeaseGrant *grant)
{
	PcrJsonbBuilder b;
	char	   *image = PcrJsonbGetText(req->config, "image");
	bool		reuse = fake_reuse_lease(req->config);

	if (image == NULL)
		image = FAKE_DEFAULT_IMAGE;

	if (reuse)
		grant->provider_lease_id = psprintf("sandbox://fake/%s",
											PcrUuidToCString(&req->environment_id));
	else
	{
		Datum		u = DirectFunctionCall1(gen_random_uuid, (Datum) 0);

		grant->provider_lease_id = psprintf("sandbox://fake/%s/%s",
											PcrUuidToCString(&req->heartbeat_run_id),
											PcrUuidToCString(DatumGetUUIDP(u)));
	}
	grant->provider = "fake";

	PcrMetadataBegin(&b, "sandbox", req);
	PcrJbAddText(&b, "provider", "fake");
	PcrJbAddText(&b, "image", image);
	PcrJbAddBool(&b, "reuseLease", reuse);
	if (reuse && fake_earlier_lease_exists(&req->environment_id, grant->provider_lease_id, image))
		PcrJbAddBool(&b, "resumedLease", true);
	grant->metadata = PcrJbFinish(&b);
}

static bool
fake_release_needs_cleanup(Jsonb *lease_metadata)
{
	return false;
}

const PcrSandboxProvider pcr_provider_fake = {
	.abi_version = 1,			/* no objects: records only */
	.name = "fake",
	.validate = fake_validate,
	.reuse_lease = fake_reuse_lease,
	.acquire = fake_acquire,
	.release_needs_cleanup = fake_release_needs_cleanup,
};
