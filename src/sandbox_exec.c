/*
 * sandbox_exec.c — lease_execute on a sandbox lease
 *
 * The provider's execute entry point (provider ABI 2, pcr_provider.h) runs
 * the command in the lease's object, in a driver worker; the call goes
 * through the provider's "<provider>.execute" operation (sandbox_ops.c),
 * the values of secret variables in secret ranges of the request.  fake,
 * ABI 1 providers and providers without execute: 0A000.  The environment's
 * defaults are the config's timeoutMs and env (docs/providers.md); HOME and the base
 * of cwd is the lease's remoteCwd (the workspace as the sandbox sees it).
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

/* The lease's object, named after the id in its provider_lease_id ("sandbox://<p>/<id>"). */
static void
lease_object(const PcrSandboxProvider *p, const PcrExecLease *lease, PcrSandboxObject *obj)
{
	char	   *prefix = psprintf("sandbox://%s/", p->name);
	pg_uuid_t	id;

	if (lease->provider_lease_id == NULL ||
		strncmp(lease->provider_lease_id, prefix, strlen(prefix)) != 0 ||
		!PcrSandboxObjectNameParse(psprintf("pcr-%s-%s", PcrSandboxCluster(),
											lease->provider_lease_id + strlen(prefix)),
								   PcrSandboxCluster(), &id))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("sandbox lease %s has no provider_lease_id of provider \"%s\"",
						PcrUuidToCString(&lease->id), p->name)));
	memset(obj, 0, sizeof(*obj));
	obj->name = PcrSandboxObjectName(&id);
	obj->cluster = PcrSandboxCluster();
	obj->lease_id = lease->id;
	obj->company_id = lease->company_id;
	obj->environment_id = lease->environment_id;
	obj->database_id = MyDatabaseId;
	obj->reusable = memcmp(&id, &lease->id, sizeof(id)) != 0;
	obj->config = p->validate(lease->config);
	obj->metadata = lease->metadata;
}

void
PcrSandboxExecute(const PcrExecLease *lease, const PcrExecCall *call, PcrExecOutcome *outcome)
{
	const PcrSandboxProvider *p = exec_provider(lease);
	PcrSandboxObject obj;
	PcrExecSpec spec;
	char	  **env = palloc0(sizeof(char *) * (call->nvars + 1));
	bool	   *secret = palloc0(sizeof(bool) * (call->nvars + 1));
	Size		room = Max(call->max_output, 1);	/* the operation wants room for a byte */

	lease_object(p, lease, &obj);
	memset(&spec, 0, sizeof(spec));
	spec.command = call->command;
	spec.nargs = call->nargs;
	spec.args = call->args;
	for (int i = 0; i < call->nvars; i++)
	{
		const PcrExecVar *v = &call->vars[i];
		Size		nlen = strlen(v->name);

		/* exactly sized: no copy of a secret left behind by a reallocation */
		env[i] = palloc(nlen + 1 + v->len + 1);
		memcpy(env[i], v->name, nlen);
		env[i][nlen] = '=';
		memcpy(env[i] + nlen + 1, v->value, v->len);
		env[i][nlen + 1 + v->len] = '\0';
		secret[i] = v->secret;
	}
	spec.nenv = call->nvars;
	spec.env = (const char *const *) env;
	spec.cwd = call->cwd;
	spec.stdin_data = call->stdin_data;
	spec.stdin_len = call->stdin_len;
	spec.timeout_ms = call->timeout_ms;
	spec.max_output = room;

	memset(outcome, 0, sizeof(*outcome));
	outcome->out = palloc(room);
	outcome->err = palloc(room);
	PG_TRY();
	{
		PcrSandboxCallExecute(p, &obj, &spec, secret, outcome);
	}
	PG_FINALLY();
	{
		for (int i = 0; i < call->nvars; i++)
			if (secret[i])
				explicit_bzero(env[i], strlen(env[i]));
	}
	PG_END_TRY();

	if (call->max_output == 0)
	{
		outcome->out_truncated |= outcome->out_len > 0;
		outcome->err_truncated |= outcome->err_len > 0;
		outcome->out_len = outcome->err_len = 0;
	}
	PcrExecRaiseOutcome(outcome);
}
