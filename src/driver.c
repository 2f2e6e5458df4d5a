/*
 * driver.c — the driver registry and what drivers share besides config checks
 *
 * The config checks are in driver_config.c.
 */
#include "pcr.h"
#include "driver.h"

#include "utils/builtins.h"
#include "utils/numeric.h"

/* The registry: one line per driver. */
static const PcrDriver *const pcr_drivers[] = {
	&pcr_driver_local,
	&pcr_driver_ssh,
	&pcr_driver_sandbox,
};


const PcrDriver *
PcrDriverByName(const char *name)
{
	if (name == NULL)
		return NULL;
	for (int i = 0; i < lengthof(pcr_drivers); i++)
		if (strcmp(pcr_drivers[i]->name, name) == 0)
			return pcr_drivers[i];
	return NULL;
}

const PcrDriver *
PcrDriverOfLease(Jsonb *metadata, const char *provider)
{
	char	   *name = PcrJsonbGetText(metadata, "driver");

	if (name != NULL)
		return PcrDriverByName(name);
	if (provider == NULL || strcmp(provider, "local") == 0)
		return &pcr_driver_local;
	if (strcmp(provider, "ssh") == 0)
		return &pcr_driver_ssh;
	return &pcr_driver_sandbox;
}

void
PcrMetadataBegin(PcrJsonbBuilder *b, const char *driver, const PcrLeaseRequest *req)
{
	PcrJbBegin(b);
	PcrJbAddText(b, "driver", driver);
	PcrJbAddText(b, "executionWorkspaceMode", req->execution_workspace_mode);
}

Jsonb *
PcrProbeResult(bool ok, const char *driver, const char *summary, Jsonb *details)
{
	PcrJsonbBuilder b;

	if (details == NULL)
	{
		PcrJsonbBuilder empty;

		PcrJbBegin(&empty);
		details = PcrJbFinish(&empty);
	}
	PcrJbBegin(&b);
	PcrJbAddBool(&b, "ok", ok);
	PcrJbAddText(&b, "driver", driver);
	PcrJbAddText(&b, "summary", summary);
	PcrJbAddJsonb(&b, "details", details);
	return PcrJbFinish(&b);
}

char *
PcrUuidToCString(const pg_uuid_t *uuid)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum((pg_uuid_t *) uuid)));
}

int64
PcrLeaseTtlSeconds(Jsonb *config)
{
	JsonbValue	v;
	int64		ttl;

	if (PcrJsonbGet(config, "leaseTtlSeconds", &v) != NULL && v.type == jbvNumeric &&
		PcrNumericToInt64(v.val.numeric, &ttl) && ttl >= 1)
		return Min(ttl, PCR_MAX_LEASE_TTL_SECONDS);	/* a row written past validation stays in range */
	return pcr_lease_ttl_guc;
}
