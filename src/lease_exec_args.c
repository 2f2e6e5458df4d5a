/*
 * lease_exec_args.c — lease_execute's arguments: checks and the environment
 *
 * Every check raises 22023 naming the argument, before any lookup
 * or I/O.  The command's environment is built here: PATH (the default
 * unless a variable sets it), HOME (the workspace), the environment's
 * defaults (a sandbox config's "env"), then the call's variables, which win.
 * A value is a string or a secret ref, resolved for the lease's company in
 * the caller's transaction; resolved values are marked secret so that the
 * pool wipes every copy, and are never put in a message.
 */
#include "pcr.h"
#include "exec.h"
#include "jsonb_util.h"
#include "secret.h"
#include "secret_ref.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

/* ------------------------------------------------------------------------
 * cwd
 * ------------------------------------------------------------------------ */
static void pg_attribute_noreturn()
bad_cwd(const char *why)
{
	ereport(ERROR,
			(errcode(PCR_ERRCODE_BAD_CONFIG),
			 errmsg("invalid cwd: %s", why),
			 errhint("cwd is a path relative to the lease's workspace, e.g. \"src/app\".")));
}

char *
PcrExecNormaliseCwd(const char *cwd)
{
	StringInfoData out;
	int		   *starts;
	int			depth = 0;
	const char *p = cwd;

	if (cwd == NULL)
		return "";
	if (strlen(cwd) >= PCR_EXEC_MAX_PATH)
		bad_cwd(psprintf("longer than %d bytes", PCR_EXEC_MAX_PATH - 1));
	if (cwd[0] == '/')
		bad_cwd("it is absolute");
	for (const char *q = cwd; *q; q++)
		if ((unsigned char) *q < 0x20 || *q == 0x7f)
			bad_cwd("it contains a control character");

	/* component by component: "" and "." vanish, ".." takes one back */
	initStringInfo(&out);
	starts = palloc(sizeof(int) * (strlen(cwd) / 2 + 2));
	while (*p)
	{
		size_t		len = strcspn(p, "/");

		if (len == 0 || (len == 1 && p[0] == '.'))
			;
		else if (len == 2 && p[0] == '.' && p[1] == '.')
		{
			if (depth == 0)
				bad_cwd("it leads out of the workspace");
			out.len = starts[--depth];
			out.data[out.len] = '\0';
		}
		else
		{
			starts[depth++] = out.len;
			if (out.len > 0)
				appendStringInfoChar(&out, '/');
			appendBinaryStringInfo(&out, p, len);
		}
		p += len;
		if (*p == '/')
			p++;
	}
	return out.data;
}

/* ------------------------------------------------------------------------
 * Variables
 * ------------------------------------------------------------------------ */
static bool
valid_name(const char *s, int len)
{
	if (len == 0 || !(isalpha((unsigned char) s[0]) || s[0] == '_'))
		return false;
	for (int i = 1; i < len; i++)
		if (!(isalnum((unsigned char) s[i]) || s[i] == '_') || (unsigned char) s[i] >= 0x80)
			return false;
	return !((unsigned char) s[0] >= 0x80);
}

typedef struct EnvCheck
{
	const char *what;
	int			n;
} EnvCheck;

static void
check_var(const char *key, JsonbValue *val, void *arg)
{
	EnvCheck   *ec = (EnvCheck *) arg;
	int			len = strlen(key);

	if (!valid_name(key, len))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid %s: variable name \"%s\" is not [A-Za-z_][A-Za-z0-9_]*", ec->what, key)));
	if (strcmp(key, "HOME") == 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid %s: \"HOME\" cannot be set", ec->what),
				 errdetail("HOME is always the lease's workspace.")));
	if (++ec->n > PCR_EXEC_MAX_VARS)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid %s: more than %d variables", ec->what, PCR_EXEC_MAX_VARS)));
	if (val->type == jbvString)
		return;
	if (val->type == jbvBinary)
	{
		PcrSecretRef ref;

		PcrSecretRefParse(JsonbValueToJsonb(val),
						  psprintf("%s: variable \"%s\"", ec->what, key), &ref);
		return;
	}
	ereport(ERROR,
			(errcode(PCR_ERRCODE_BAD_CONFIG),
			 errmsg("invalid %s: variable \"%s\" must be a string or a secret ref, not %s",
					ec->what, key, PcrJsonbTypeName(val)),
			 errhint("A secret reference looks like {\"type\": \"secret_ref\", \"secretId\": \"<uuid>\", \"version\": \"latest\"}.")));
}

void
PcrExecCheckEnv(Jsonb *env, const char *what)
{
	EnvCheck	ec = {what, 0};

	if (env == NULL)
		return;
	if (!PcrJsonbIsObject(env))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid %s: must be a JSON object of variables", what)));
	PcrJsonbForEachKey(env, check_var, &ec);
}

/* The variables of one object, in key order, into vars (a later one of the same name wins). */
typedef struct VarCollect
{
	PcrExecCall *call;
	const pg_uuid_t *company;
	int			max;
} VarCollect;

static PcrExecVar *
find_var(PcrExecCall *call, const char *name)
{
	for (int i = 0; i < call->nvars; i++)
		if (strcmp(call->vars[i].name, name) == 0)
			return &call->vars[i];
	return NULL;
}

static void
set_var(PcrExecCall *call, int max, const char *name, char *value, Size len, bool secret)
{
	PcrExecVar *v = find_var(call, name);

	if (v == NULL)
	{
		if (call->nvars >= max)
			elog(ERROR, "too many variables");	/* checked before: PCR_EXEC_MAX_VARS per object */
		v = &call->vars[call->nvars++];
		v->name = pstrdup(name);
	}
	else if (v->secret && v->value != NULL)
	{
		explicit_bzero(v->value, v->len);
		pfree(v->value);
	}
	v->value = value;
	v->len = len;
	v->secret = secret;
}

static void
collect_var(const char *key, JsonbValue *val, void *arg)
{
	VarCollect *vc = (VarCollect *) arg;

	if (val->type == jbvString)
		set_var(vc->call, vc->max, key, pnstrdup(val->val.string.val, val->val.string.len),
				val->val.string.len, false);
	else
	{
		PcrPlaintext p = PcrSecretResolve(vc->company, JsonbValueToJsonb(val));

		set_var(vc->call, vc->max, key, p.data, p.len, true);
	}
}

void
PcrExecBuildVars(PcrExecCall *call, const pg_uuid_t *company, const char *workspace,
				 Jsonb *defaults, Jsonb *env)
{
	VarCollect	vc = {call, company, 2 * PCR_EXEC_MAX_VARS + 2};

	call->nvars = 0;
	call->vars = palloc0(sizeof(PcrExecVar) * vc.max);
	set_var(call, vc.max, "PATH", pstrdup(PCR_EXEC_DEFAULT_PATH), strlen(PCR_EXEC_DEFAULT_PATH), false);
	set_var(call, vc.max, "HOME", pstrdup(workspace), strlen(workspace), false);
	if (defaults != NULL)
		PcrJsonbForEachKey(defaults, collect_var, &vc);
	if (env != NULL)
		PcrJsonbForEachKey(env, collect_var, &vc);
}
