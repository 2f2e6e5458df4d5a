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

int
PcrDriverCount(void)
{
	return lengthof(pcr_drivers);
}

const PcrDriver *
PcrDriverAt(int i)
{
	return pcr_drivers[i];
}

void
PcrDriversInit(bool preloading)
{
	for (int i = 0; i < lengthof(pcr_drivers); i++)
		if (pcr_drivers[i]->init != NULL)
			pcr_drivers[i]->init(preloading);
}

static bool
owns_provider(const PcrDriver *driver, const char *provider)
{
	if (driver->owns_provider != NULL)
		return driver->owns_provider(provider);
	return provider != NULL && strcmp(provider, driver->name) == 0;
}

const PcrDriver *
PcrDriverOfLease(Jsonb *metadata, const char *provider)
{
	char	   *name = PcrJsonbGetText(metadata, "driver");

	if (name != NULL)
		return PcrDriverByName(name);
	for (int i = 0; i < lengthof(pcr_drivers); i++)
		if (owns_provider(pcr_drivers[i], provider))
			return pcr_drivers[i];
	return NULL;
}

/* ------------------------------------------------------------------------
 * The vtable's defaults
 * ------------------------------------------------------------------------ */
const char *
PcrDriverLeasePolicy(const PcrDriver *driver, Jsonb *config)
{
	return driver->lease_policy ? driver->lease_policy(config) : "ephemeral";
}

void
PcrDriverCheckAvailable(const PcrDriver *driver, Jsonb *config)
{
	if (driver->check_available)
		driver->check_available(config);
}

bool
PcrDriverReleaseNeedsCleanup(const PcrDriver *driver, Jsonb *lease_metadata)
{
	return driver->release_needs_cleanup ? driver->release_needs_cleanup(lease_metadata) : false;
}

Jsonb *
PcrDriverProbe(const PcrDriver *driver, const PcrLeaseRequest *req)
{
	if (driver->probe)
		return driver->probe(req);
	return PcrProbeResult(true, driver->name,
						  psprintf("driver \"%s\" needs no connection", driver->name), NULL);
}

void
PcrDriverGrantUnused(const PcrDriver *driver, const PcrLeaseRequest *req, const PcrLeaseGrant *grant)
{
	if (driver->grant_unused)
		driver->grant_unused(req, grant);
}

/* ------------------------------------------------------------------------
 * Cleanup requests: head, provider, provider_lease_id (NUL-terminated),
 * then the metadata and the environment's config, jsonb as they are stored
 * ------------------------------------------------------------------------ */
#define PCR_CLEANUP_PARTS 4

typedef struct PcrCleanupHead
{
	pg_uuid_t	lease_id;
	pg_uuid_t	company_id;
	pg_uuid_t	environment_id;
	int32		attempt;
	int32		flags;			/* which parts are present */
	bool		keep_object;
	uint32		len[PCR_CLEANUP_PARTS];
} PcrCleanupHead;

static bool
part_is_jsonb(int i)
{
	return i >= 2;
}

char *
PcrLeaseCleanupPack(const PcrLeaseCleanup *lease, Size *len)
{
	PcrCleanupHead head;
	const char *parts[PCR_CLEANUP_PARTS] = {lease->provider, lease->provider_lease_id,
		(const char *) lease->metadata, (const char *) lease->environment_config};
	char	   *buf;
	Size		off = sizeof(head);

	memset(&head, 0, sizeof(head));
	head.lease_id = lease->lease_id;
	head.company_id = lease->company_id;
	head.environment_id = lease->environment_id;
	head.attempt = lease->attempt;
	head.keep_object = lease->keep_object;
	*len = sizeof(head);
	for (int i = 0; i < PCR_CLEANUP_PARTS; i++)
	{
		if (parts[i] == NULL)
			continue;
		head.flags |= 1 << i;
		head.len[i] = part_is_jsonb(i) ? VARSIZE(parts[i]) : strlen(parts[i]) + 1;
		*len += head.len[i];
	}
	buf = palloc(*len);
	memcpy(buf, &head, sizeof(head));
	for (int i = 0; i < PCR_CLEANUP_PARTS; i++)
	{
		if (parts[i] == NULL)
			continue;
		memcpy(buf + off, parts[i], head.len[i]);
		off += head.len[i];
	}
	return buf;
}

void
PcrLeaseCleanupUnpack(const PcrIoRequest *req, PcrLeaseCleanup *lease)
{
	PcrCleanupHead head;
	Size		off = sizeof(head);
	char	   *parts[PCR_CLEANUP_PARTS] = {NULL};

	if (req->len < sizeof(head))
		elog(ERROR, "malformed cleanup request");
	memcpy(&head, req->data, sizeof(head));
	for (int i = 0; i < PCR_CLEANUP_PARTS; i++)
	{
		if (!(head.flags & (1 << i)))
			continue;
		if (head.len[i] == 0 || head.len[i] > req->len - off)
			elog(ERROR, "malformed cleanup request");
		parts[i] = palloc(head.len[i]);	/* aligned, for the jsonb */
		memcpy(parts[i], req->data + off, head.len[i]);
		off += head.len[i];
		if (part_is_jsonb(i) ? (head.len[i] < VARHDRSZ || VARSIZE(parts[i]) != head.len[i])
			: parts[i][head.len[i] - 1] != '\0')
			elog(ERROR, "malformed cleanup request");
	}
	memset(lease, 0, sizeof(*lease));
	lease->lease_id = head.lease_id;
	lease->company_id = head.company_id;
	lease->environment_id = head.environment_id;
	lease->attempt = head.attempt;
	lease->keep_object = head.keep_object;
	lease->provider = parts[0];
	lease->provider_lease_id = parts[1];
	lease->metadata = (Jsonb *) parts[2];
	lease->environment_config = (Jsonb *) parts[3];
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
