/*
 * sandbox_exec.c — lease_execute on a sandbox lease
 *
 * The same path as every driver's (exec.h): the call goes through
 * PcrExecInvoke to the provider's "<provider>.execute" operation, its driver
 * part the lease's object (PcrSandboxWriteObject), the values of secret
 * variables in secret ranges of the request; in the worker, PcrExecServe
 * unpacks it and sandbox_executor calls the provider's execute entry point
 * (provider ABI 2, pcr_provider.h) with the outcome's buffers pointing into
 * the answer, so the command's output is written in place once.  fake, ABI
 * 1 providers and providers without execute: 0A000.  The environment's
 * defaults are the config's timeoutMs and env (docs/providers.md); HOME and
 * the base of cwd is the lease's remoteCwd (the workspace as the sandbox
 * sees it).
 */
#include "pcr.h"
#include "exec.h"
#include "driver.h"
#include "sandbox.h"
#include "util.h"

#include "miscadmin.h"

/* The provider of the lease, or 0A000 when it cannot run commands. */
static const PcrSandboxProvider *
exec_provider(const PcrExecLease *lease)
{
	char	   *name = PcrJsonbGetText(lease->metadata, "provider");
	const PcrSandboxProvider *p;

	if (name == NULL)
		name = lease->provider ? pstrdup(lease->provider) : "fake";
	p = PcrSandboxProviderByName(name);
	if (p == NULL || p->abi_version < 2 || p->execute == NULL)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_UNSUPPORTED),
				 errmsg("sandbox provider \"%s\" cannot execute commands", name),
				 errdetail(p == NULL ? "The provider is not loaded in this server."
						   : p->abi_version < 2 ? "The provider was built for provider ABI 1, which has no execute entry point."
						   : "The provider has no execute entry point.")));
	return p;
}

void
PcrSandboxExecPrepare(const PcrExecLease *lease, PcrExecTarget *target)
{
	const PcrSandboxProvider *p = exec_provider(lease);
	Jsonb	   *config = p->validate(lease->config);
	char	   *cwd = PcrJsonbGetText(lease->metadata, "remoteCwd");
	JsonbValue	v;
	int64		t;

	if (cwd == NULL || cwd[0] != '/')
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("sandbox lease %s has no workspace (remoteCwd) in its metadata",
						PcrUuidToCString(&lease->id)),
				 errhint("Acquire a new lease with paperclip.acquire_run_lease().")));
	target->workspace = cwd;
	if (PcrJsonbGet(config, "timeoutMs", &v) != NULL && v.type == jbvNumeric &&
		PcrNumericToInt64(v.val.numeric, &t) && t > 0)
		target->timeout_ms = (int) Min(t, PCR_EXEC_MAX_TIMEOUT_MS);
	if (PcrJsonbGet(config, "env", &v) != NULL && v.type == jbvBinary)
		target->env = JsonbValueToJsonb(&v);
}

void
PcrSandboxExecute(const PcrExecLease *lease, const PcrExecCall *call, PcrExecOutcome *outcome)
{
	const PcrSandboxProvider *p = exec_provider(lease);
	PcrSandboxObject obj;
	StringInfoData head;
	PcrExecInvokeArgs a;

	if (!PcrSandboxLeaseObject(p, lease->provider_lease_id, &lease->id, &obj))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("sandbox lease %s has no provider_lease_id of provider \"%s\"",
						PcrUuidToCString(&lease->id), p->name)));
	obj.company_id = lease->company_id;
	obj.environment_id = lease->environment_id;
	obj.database_id = MyDatabaseId;
	obj.config = p->validate(lease->config);
	obj.metadata = lease->metadata;
	initStringInfo(&head);
	PcrSandboxWriteObject(&head, p, &obj);

	memset(&a, 0, sizeof(a));
	a.op = PcrSandboxExecuteOperation(p);
	a.company_id = &lease->company_id;
	a.driver_data = head.data;
	a.driver_len = head.len;
	a.target = obj.name;		/* the sandbox's start counts in the command's timeout */
	PcrExecInvoke(call, &a, outcome);
}

/* The executor of "<provider>.execute" (PcrExecServe): the provider's entry point. */
static void
sandbox_executor(const PcrIoRequest *req, char *driver_data, Size driver_len, const PcrExecSpec *spec,
				 PcrExecOutcome *outcome)
{
	PcrSandboxObject obj;
	const PcrSandboxProvider *p = PcrSandboxReadObject(driver_data, driver_len, req->deadline, &obj);
	PcrProviderResult res = {0};
	PcrProviderStatus status;

	if (p->execute == NULL)
		elog(ERROR, "sandbox provider \"%s\" has no execute entry point", p->name);
	status = p->execute(&obj, spec, outcome, &res);
	if (status != PCR_PROVIDER_OK)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_REMOTE_IO),
				 errmsg("the environment could not start the command"),
				 errdetail("%s", res.message[0] ? res.message
						   : status == PCR_PROVIDER_NOT_FOUND ? psprintf("Sandbox \"%s\" no longer exists.", obj.name)
						   : "The provider gave no reason.")));
}

void
PcrSandboxExecuteRun(PcrIoRequest *req, PcrIoResponse *resp)
{
	PcrExecServe(req, resp, sandbox_executor);
}
