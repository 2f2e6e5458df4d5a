/*
 * sandbox_registry.c — the registry of sandbox providers (pcr_provider.h)
 *
 * Providers register from their _PG_init.  The registry keeps its own copy
 * of each declaration, completed to the current ABI: an ABI 1 provider's
 * struct is shorter (it ends after release_needs_cleanup), so only those
 * fields are read from it and its worker-side entry points stay NULL.  A
 * provider with worker-side entry points also gets its I/O operations
 * registered with the pool (sandbox_ops.c), which is why it must register
 * while shared_preload_libraries is processed.
 *
 * Also the small helpers pcr_provider.h offers providers.
 */
#include "pcr.h"
#include "driver.h"
#include "sandbox.h"
#include "secret_ref.h"
#include "util.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#define PCR_MAX_SANDBOX_PROVIDERS 16

/* The ABI 1 declaration: what an ABI 1 library's struct holds. */
typedef struct PcrSandboxProviderAbi1
{
	int			abi_version;
	const char *name;
	Jsonb	   *(*validate) (Jsonb *config);
	bool		(*reuse_lease) (Jsonb *config);
	void		(*acquire) (const PcrLeaseRequest *req, PcrLeaseGrant *grant);
	bool		(*release_needs_cleanup) (Jsonb *lease_metadata);
} PcrSandboxProviderAbi1;

static PcrSandboxProvider providers[PCR_MAX_SANDBOX_PROVIDERS];
static int	nproviders = 0;

extern const PcrSandboxProvider pcr_provider_fake;

static void
ensure_builtin_providers(void)
{
	if (nproviders == 0)
		providers[nproviders++] = pcr_provider_fake;
}

static bool
has_worker_side(const PcrSandboxProvider *p)
{
	return p->probe || p->create || p->resume || p->execute || p->release ||
		p->destroy || p->list_owned;
}

/* The declaration, completed to the current ABI; raises when it is unusable. */
static PcrSandboxProvider
complete_declaration(const PcrSandboxProvider *provider)
{
	const PcrSandboxProviderAbi1 *v1 = (const PcrSandboxProviderAbi1 *) provider;
	PcrSandboxProvider p;

	if (v1->abi_version < PCR_PROVIDER_ABI_MIN || v1->abi_version > PCR_PROVIDER_ABI_VERSION)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_UNSUPPORTED),
				 errmsg("sandbox provider \"%s\" was built for provider ABI %d, this server has %d to %d",
						v1->name ? v1->name : "?", v1->abi_version,
						PCR_PROVIDER_ABI_MIN, PCR_PROVIDER_ABI_VERSION)));
	memset(&p, 0, sizeof(p));
	if (v1->abi_version == 1)
		memcpy(&p, v1, sizeof(PcrSandboxProviderAbi1));
	else
		p = *provider;
	if (p.name == NULL || p.validate == NULL || p.acquire == NULL || p.reuse_lease == NULL ||
		p.release_needs_cleanup == NULL)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("sandbox provider registration is incomplete")));
	if (!PcrIsProviderName(p.name))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("sandbox provider name \"%s\" is invalid", p.name),
				 errdetail("Provider names match ^[a-z0-9][a-z0-9._-]*$ and have at most %d bytes.",
						   PCR_PROVIDER_NAME_MAX)));
	if (p.create != NULL && (p.resume == NULL || p.destroy == NULL || p.list_owned == NULL))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("sandbox provider \"%s\" creates objects but cannot resume, destroy or list them",
						p.name),
				 errdetail("A provider with create must also have resume, destroy and list_owned.")));
	return p;
}

void
PcrRegisterSandboxProvider(const PcrSandboxProvider *provider)
{
	PcrSandboxProvider p;

	ensure_builtin_providers();
	if (provider == NULL)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("sandbox provider registration is incomplete")));
	p = complete_declaration(provider);
	if (PcrSandboxProviderByName(p.name) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("sandbox provider \"%s\" is already registered", p.name)));
	if (nproviders >= PCR_MAX_SANDBOX_PROVIDERS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many sandbox providers registered (at most %d)",
						PCR_MAX_SANDBOX_PROVIDERS)));
	if (has_worker_side(&p))
	{
		if (!process_shared_preload_libraries_in_progress)
			ereport(ERROR,
					(errcode(PCR_ERRCODE_WRONG_STATE),
					 errmsg("sandbox provider \"%s\" must be registered while shared_preload_libraries is processed",
							p.name),
					 errhint("Load the library through shared_preload_libraries, after paperclip_runtime.")));
	}
	providers[nproviders++] = p;
	if (has_worker_side(&p))
		PcrSandboxRegisterOperations(&providers[nproviders - 1]);
}

const PcrSandboxProvider *
PcrSandboxProviderByName(const char *name)
{
	ensure_builtin_providers();
	if (name == NULL)
		return NULL;
	for (int i = 0; i < nproviders; i++)
		if (strcmp(providers[i].name, name) == 0)
			return &providers[i];
	return NULL;
}

bool
PcrSandboxProviderHasObjects(const PcrSandboxProvider *p)
{
	return p != NULL && p->abi_version >= 2 && p->create != NULL;
}

int
PcrSandboxProviderIndex(const PcrSandboxProvider *p)
{
	for (int i = 0; i < nproviders; i++)
		if (&providers[i] == p)
			return i;
	return -1;
}

int
PcrSandboxProviderCount(void)
{
	ensure_builtin_providers();
	return nproviders;
}

const PcrSandboxProvider *
PcrSandboxProviderAt(int i)
{
	ensure_builtin_providers();
	return i >= 0 && i < nproviders ? &providers[i] : NULL;
}

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */
const char *
PcrSandboxCluster(void)
{
	static char cluster[17];

	if (cluster[0] == '\0')
		snprintf(cluster, sizeof(cluster), "%016llx", (unsigned long long) GetSystemIdentifier());
	return cluster;
}

char *
PcrSandboxObjectName(const pg_uuid_t *id)
{
	return psprintf("pcr-%s-%s", PcrSandboxCluster(), PcrUuidToCString(id));
}

bool
PcrSandboxObjectNameParse(const char *name, const char *cluster, pg_uuid_t *id)
{
	int			clen = strlen(cluster);
	const char *u;
	Datum		d;

	if (strncmp(name, "pcr-", 4) != 0 || strncmp(name + 4, cluster, clen) != 0 || name[4 + clen] != '-')
		return false;
	u = name + 5 + clen;
	if (strlen(u) != 36)
		return false;
	for (int i = 0; i < 36; i++)
	{
		bool		dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? (u[i] != '-') : (!isxdigit((unsigned char) u[i]) || isupper((unsigned char) u[i])))
			return false;
	}
	d = DirectFunctionCall1(uuid_in, CStringGetDatum(u));
	memcpy(id, DatumGetUUIDP(d), sizeof(pg_uuid_t));
	return true;
}

bool
PcrSandboxLeaseObject(const PcrSandboxProvider *p, const char *provider_lease_id,
					  const pg_uuid_t *lease_id, PcrSandboxObject *obj)
{
	char	   *prefix = psprintf("sandbox://%s/", p->name);
	pg_uuid_t	id;

	if (provider_lease_id == NULL || strncmp(provider_lease_id, prefix, strlen(prefix)) != 0 ||
		!PcrSandboxObjectNameParse(psprintf("pcr-%s-%s", PcrSandboxCluster(),
											provider_lease_id + strlen(prefix)),
								   PcrSandboxCluster(), &id))
		return false;
	memset(obj, 0, sizeof(*obj));
	obj->name = PcrSandboxObjectName(&id);
	obj->cluster = PcrSandboxCluster();
	obj->lease_id = *lease_id;
	obj->reusable = memcmp(&id, lease_id, sizeof(id)) != 0;
	return true;
}

/* ------------------------------------------------------------------------
 * Helpers of pcr_provider.h
 * ------------------------------------------------------------------------ */
PcrProviderStatus
PcrProviderReport(PcrProviderResult *res, PcrProviderStatus status, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
	return status;
}

Jsonb *
PcrConfigSecretRef(Jsonb *ref, const char *what)
{
	PcrSecretRef parsed;

	PcrSecretRefParse(ref, what, &parsed);
	return PcrSecretRefToJsonb(&parsed);
}
