/*
 * local_exec.c — "local.execute": one command on the server's own host
 *
 * Runs in a driver worker, for members of pg_execute_server_program only
 * (driver_local.c checks the calling role).  The command is a child process
 * of the worker started through pcr_proc.h with every rule of a child of a
 * background worker (nothing inherited, its own process group, killed when
 * the worker dies), in the lease's workspace (local_workspace.c), with no
 * namespaces: it sees the host as the server's OS user does.
 *
 * Request: the call (exec_pack.c) behind [creator xid (uint32)][root\0][name\0].
 */
#include "pcr.h"
#include "exec.h"
#include "local_workspace.h"
#include "pcr_proc.h"

#include "access/transam.h"

static const char *
spec_var(const PcrExecSpec *spec, const char *name)
{
	size_t		n = strlen(name);

	for (int i = 0; i < spec->nenv; i++)
		if (strncmp(spec->env[i], name, n) == 0 && spec->env[i][n] == '=')
			return spec->env[i] + n + 1;
	return NULL;
}

/* "<command>: command not found" on stderr and exit code 127, as a shell says it */
static void
not_found(const PcrExecSpec *spec, PcrExecOutcome *out)
{
	char	   *msg = psprintf("%s: command not found\n", spec->command);
	Size		len = Min(strlen(msg), spec->max_output);

	memcpy(out->err, msg, len);
	out->err_len = len;
	out->err_truncated = len < strlen(msg);
	out->exited = true;
	out->exit_code = 127;
}

/* The executor of "local.execute" (PcrExecServe) */
static void
local_executor(const PcrIoRequest *io, char *dd, Size dlen, const PcrExecSpec *spec,
			   PcrExecOutcome *outcome)
{
	uint32		creator_xid;
	const char *root;
	const char *name;
	char	   *workspace;
	char	   *cwd;
	char	   *path;
	const char **argv;
	PcrProcSpec ps;
	PcrProc    *proc;

	if (dlen < sizeof(uint32) + 2 || dd[dlen - 1] != '\0')
		elog(ERROR, "malformed local.execute request");
	memcpy(&creator_xid, dd, sizeof(uint32));
	root = dd + sizeof(uint32);
	name = root + strlen(root) + 1;
	if (name >= dd + dlen)
		elog(ERROR, "malformed local.execute request");

	workspace = PcrLocalWorkspaceEnsure(root, name, (TransactionId) creator_xid);
	cwd = spec->cwd[0] ? psprintf("%s/%s", workspace, spec->cwd) : workspace;
	path = PcrProcFindProgram(spec->command, spec_var(spec, "PATH"), cwd);
	if (path == NULL)
	{
		not_found(spec, outcome);
		return;
	}

	argv = palloc0(sizeof(char *) * (spec->nargs + 2));
	argv[0] = spec->command;
	for (int i = 0; i < spec->nargs; i++)
		argv[i + 1] = spec->args[i];

	memset(&ps, 0, sizeof(ps));
	ps.path = path;
	ps.argv = argv;
	ps.envp = spec->env;
	ps.cwd = cwd;
	ps.stdin_pipe = spec->stdin_data != NULL;
	ps.supervised = true;		/* its children die with a SIGKILLed worker too */
	proc = PcrProcStart(&ps);	/* 58030 when it cannot start (e.g. cwd missing) */
	PcrProcCommunicate(proc, spec->stdin_data, spec->stdin_len, spec->timeout_ms, spec->max_output, outcome);
}

static void
run_execute(PcrIoRequest *io, PcrIoResponse *resp)
{
	PcrExecServe(io, resp, local_executor);
}

const PcrIoOperation pcr_local_op_execute = {
	.name = "local.execute",
	.max_request = PCR_EXEC_REQUEST_MAX(sizeof(uint32) + MAXPGPATH + PCR_LOCAL_NAME_MAX + 2),
	.max_response = PCR_EXEC_RESPONSE_MAX,
	.run = run_execute,
};
