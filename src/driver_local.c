/*
 * driver_local.c — the "local" driver: agent work runs on the host itself
 *
 * No I/O and no release side effects: the lease row is the whole story.
 */
#include "pcr.h"
#include "driver.h"
#include "local_workspace.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "utils/acl.h"

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

/*
 * lease_execute on the local host: like COPY ... PROGRAM, only for roles with
 * the privileges of pg_execute_server_program, checked against the role that
 * calls (lease_execute is SECURITY INVOKER).  The workspace is the lease's
 * directory under paperclip.local_workspace_root (local_workspace.h).
 */
static void
local_exec_prepare(const PcrExecLease *lease, PcrExecTarget *target)
{
	char		name[PCR_LOCAL_NAME_MAX];

	if (!has_privs_of_role(GetUserId(), ROLE_PG_EXECUTE_SERVER_PROGRAM))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_FORBIDDEN),
				 errmsg("permission denied to run commands on the local host"),
				 errdetail("Only roles with privileges of the \"pg_execute_server_program\" role may run commands in local leases."),
				 errhint("Run agent commands in an ssh or sandbox environment.")));
	if (pcr_local_workspace_root == NULL || pcr_local_workspace_root[0] != '/')
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("paperclip.local_workspace_root must be an absolute path")));
	PcrLocalWorkspaceName(&lease->id, name, sizeof(name));
	target->workspace = psprintf("%s/%s", pcr_local_workspace_root, name);
}

static void
local_execute(const PcrExecLease *lease, const PcrExecCall *call, PcrExecOutcome *outcome)
{
	char		name[PCR_LOCAL_NAME_MAX];
	const char *root = pcr_local_workspace_root;
	/* a lease this transaction wrote is invisible to the reconciler's sweep: mark it */
	uint32		creator = lease->written_here ? GetTopTransactionId() : InvalidTransactionId;
	Size		len;
	char	   *data;
	PcrExecInvokeArgs a;

	PcrLocalWorkspaceName(&lease->id, name, sizeof(name));
	len = sizeof(uint32) + strlen(root) + 1 + strlen(name) + 1;
	data = palloc0(len);
	memcpy(data, &creator, sizeof(uint32));
	memcpy(data + sizeof(uint32), root, strlen(root));
	memcpy(data + sizeof(uint32) + strlen(root) + 1, name, strlen(name));

	memset(&a, 0, sizeof(a));
	a.op = &pcr_local_op_execute;
	a.company_id = &lease->company_id;
	a.driver_data = data;
	a.driver_len = len;
	a.target = "the local host";
	PcrExecInvoke(call, &a, outcome);
}

static void
local_init(bool preloading)
{
	PcrLocalWorkspaceInit(preloading);
}

const PcrDriver pcr_driver_local = {
	.name = "local",
	.init = local_init,
	.owns_provider = local_owns_provider,
	.validate = local_validate,
	.acquire = local_acquire,
	.probe = local_probe,
	.exec_prepare = local_exec_prepare,
	.execute = local_execute,
};
