/*
 * bwrap_run.c — one bwrap per command (worker side)
 *
 * Every command of a lease runs in a bwrap of its own, started with
 * PcrProcStart (nothing inherited, own process group, killed with the
 * worker):
 *
 *   bwrap --args 5 -- /.paperclip_exec 4 COMMAND ARGS...
 *
 * where descriptor 5 is a memory file with the options — so that the
 * variables of --setenv, which may hold resolved secrets, are in no argv
 * that /proc shows — : --unshare-all (--share-net only for network
 * "host"), --die-with-parent, --new-session, --cap-drop ALL, --clearenv
 * and a --setenv per variable (PWD as PAPERCLIP_EXEC_PWD: bwrap sets PWD
 * itself, the exec helper puts the caller's back or takes bwrap's out); a root of the host's /usr (read-only, the
 * usual /bin, /lib... links, a minimal /etc) or of the image's top-level
 * entries (read-only); private /proc, /dev and /tmp; the workspace at
 * /workspace; the exec helper at /.paperclip_exec; the server's data
 * directory, master key file and sandbox_root masked should a bound
 * directory hold them; / remounted read-only; --chdir into the workspace;
 * --json-status-fd 3.
 *
 * The JSON status tells the sandbox's init pid (the kill goes to its
 * session: SIGTERM at the timeout, SIGKILL after the grace) and whether the
 * sandbox came up at all (an "exit-code" document once the command was
 * started: else "the sandbox did not start", with bwrap's own message);
 * the exec helper tells exactly what became of the command (descriptor 4):
 * could not be executed (127), exited, or killed by a signal — which bwrap
 * alone reports as exit codes 1 and 128 + N.
 */
#include "postgres.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "bwrap.h"

#define REPORT_STATUS	0		/* --json-status-fd: child descriptor 3 */
#define REPORT_HELPER	1		/* the exec helper's line: child descriptor 4 */
#define CHILD_ARGS_FD	"5"		/* the options: the input file after the two reports */
#define CHILD_HELPER_FD	"4"
#define CHECK_TIMEOUT_MS 10000

/* usr-merged links (or directories) of the host root that a host image mirrors */
static const char *const host_top[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};

/* the minimal /etc of a host image; more with network "host" */
static const char *const host_etc[] = {
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
	"/etc/nsswitch.conf", "/etc/localtime"
};
static const char *const host_etc_network[] = {
	"/etc/resolv.conf", "/etc/hosts", "/etc/host.conf", "/etc/gai.conf", "/etc/ssl", "/etc/ca-certificates"
};

static void
opt(StringInfo b, const char *arg)
{
	appendBinaryStringInfo(b, arg, strlen(arg) + 1);
}

static void
opt2(StringInfo b, const char *a, const char *c)
{
	opt(b, a);
	opt(b, c);
}

static void
opt3(StringInfo b, const char *a, const char *c, const char *d)
{
	opt(b, a);
	opt(b, c);
	opt(b, d);
}

static char *
helper_path(void)
{
	return psprintf("%s/%s", pkglib_path, BWRAP_HELPER_NAME);
}

/* The sandbox's root: the host's /usr and a minimal /etc. */
static void
host_root(StringInfo b, bool network_host)
{
	struct stat st;

	opt3(b, "--ro-bind", "/usr", "/usr");
	for (int i = 0; i < lengthof(host_top); i++)
	{
		char	   *path = psprintf("/%s", host_top[i]);
		char		target[PATH_MAX];
		ssize_t		n;

		if (lstat(path, &st) != 0)
			continue;
		if (S_ISLNK(st.st_mode) && (n = readlink(path, target, sizeof(target) - 1)) > 0)
		{
			target[n] = '\0';
			opt3(b, "--symlink", target, path);
		}
		else if (S_ISDIR(st.st_mode))
			opt3(b, "--ro-bind", path, path);
	}
	opt2(b, "--dir", "/etc");
	for (int i = 0; i < lengthof(host_etc); i++)
		opt3(b, "--ro-bind-try", host_etc[i], host_etc[i]);
	for (int i = 0; network_host && i < lengthof(host_etc_network); i++)
		opt3(b, "--ro-bind-try", host_etc_network[i], host_etc_network[i]);
}

/* The sandbox's root: each top-level entry of the image, read-only; NULL or why not. */
static const char *
image_root(StringInfo b, const char *image)
{
	DIR		   *dir;
	struct dirent *de;
	const char *problem = BwrapImageProblem(image);

	if (problem != NULL)
		return psprintf("image \"%s\" %s", image, problem);
	if ((dir = opendir(image)) == NULL)
		return psprintf("image directory \"%s\" cannot be opened: %m", image);
	while ((de = readdir(dir)) != NULL)
	{
		char	   *src = psprintf("%s/%s", image, de->d_name);
		char	   *dst = psprintf("/%s", de->d_name);
		char		target[PATH_MAX];
		struct stat st;
		ssize_t		n;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
			strcmp(dst, "/proc") == 0 || strcmp(dst, "/dev") == 0 || strcmp(dst, "/tmp") == 0 ||
			strcmp(dst, BWRAP_WORKSPACE) == 0 || strcmp(dst, BWRAP_HELPER_IN_SANDBOX) == 0 ||
			lstat(src, &st) != 0)
			continue;
		if (S_ISLNK(st.st_mode) && (n = readlink(src, target, sizeof(target) - 1)) > 0)
		{
			target[n] = '\0';
			opt3(b, "--symlink", target, dst);
		}
		else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))
			opt3(b, "--ro-bind", src, dst);
	}
	closedir(dir);
	return NULL;
}

/*
 * Mask the server's own files should a bound directory hold them (the data
 * directory under /usr, ...): a tmpfs over a directory, /dev/null over a file.
 */
static void
mask_server_files(StringInfo b, const char *image)
{
	const char *key = GetConfigOption("paperclip.master_key_file", true, false);
	const char *paths[3] = {DataDir, key, bwrap_sandbox_root};
	char		root[PATH_MAX];

	if (image != NULL && realpath(image, root) == NULL)
		return;
	for (int i = 0; i < lengthof(paths); i++)
	{
		char		real[PATH_MAX];
		const char *inside;
		struct stat st;

		if (paths[i] == NULL || paths[i][0] == '\0' || realpath(paths[i], real) == NULL ||
			stat(real, &st) != 0)
			continue;
		if (image == NULL)
			inside = BwrapPathWithin(real, "/usr") ? real : NULL;
		else
			inside = BwrapPathWithin(real, root) ? psprintf("/%s", real + strlen(root)) : NULL;
		if (inside == NULL)
			continue;
		if (S_ISDIR(st.st_mode))
			opt2(b, "--tmpfs", inside);
		else
			opt3(b, "--ro-bind", "/dev/null", inside);
	}
}

/*
 * The command's environment, last: the room for it is made first, so that
 * no reallocation leaves a copy of a secret value in freed memory (the
 * caller zeroes the one buffer).
 */
static void
set_environment(StringInfo b, const PcrExecSpec *spec)
{
	Size		room = sizeof("--clearenv");

	for (int i = 0; i < spec->nenv; i++)
		room += sizeof("--setenv") + sizeof("PAPERCLIP_EXEC_PWD") + strlen(spec->env[i]) + 1;
	enlargeStringInfo(b, (int) room);
	opt(b, "--clearenv");
	for (int i = 0; i < spec->nenv; i++)
	{
		const char *eq = strchr(spec->env[i], '=');

		if (eq == NULL || eq == spec->env[i])
			continue;
		opt(b, "--setenv");
		if (eq - spec->env[i] == 3 && strncmp(spec->env[i], "PWD", 3) == 0)
			opt(b, "PAPERCLIP_EXEC_PWD");	/* the helper sets it (bwrap sets its own) */
		else
		{
			appendBinaryStringInfo(b, spec->env[i], eq - spec->env[i]);
			appendStringInfoChar(b, '\0');
		}
		opt(b, eq + 1);
	}
}

/* The options of one sandbox (the --args file); NULL or why it cannot be built. */
static const char *
sandbox_options(StringInfo b, Jsonb *config, Jsonb *metadata, const char *workspace, const PcrExecSpec *spec)
{
	char	   *image = metadata ? PcrJsonbGetText(metadata, "image") : NULL;
	char	   *network = metadata ? PcrJsonbGetText(metadata, "network") : NULL;
	const char *problem = NULL;

	if (image == NULL && config != NULL)
		image = PcrJsonbGetText(config, "image");
	if (network == NULL && config != NULL)
		network = PcrJsonbGetText(config, "network");
	if (image == NULL)
		image = "host";
	opt(b, "--unshare-all");
	if (network != NULL && strcmp(network, "host") == 0)
		opt(b, "--share-net");
	opt(b, "--die-with-parent");
	opt(b, "--new-session");
	opt2(b, "--cap-drop", "ALL");
	opt2(b, "--hostname", "sandbox");
	if (strcmp(image, "host") == 0)
		host_root(b, network != NULL && strcmp(network, "host") == 0);
	else if ((problem = image_root(b, image)) != NULL)
		return problem;
	opt2(b, "--proc", "/proc");
	opt2(b, "--dev", "/dev");
	opt2(b, "--tmpfs", "/tmp");
	if (workspace != NULL)
		opt3(b, "--bind", workspace, BWRAP_WORKSPACE);
	opt3(b, "--ro-bind", helper_path(), BWRAP_HELPER_IN_SANDBOX);
	mask_server_files(b, strcmp(image, "host") == 0 ? NULL : image);
	opt2(b, "--remount-ro", "/");
	opt2(b, "--chdir", workspace == NULL ? "/"
		 : spec->cwd && spec->cwd[0] ? psprintf("%s/%s", BWRAP_WORKSPACE, spec->cwd) : BWRAP_WORKSPACE);
	opt2(b, "--json-status-fd", "3");
	set_environment(b, spec);
	return NULL;
}

/* The value of "key": <int> in bwrap's JSON status, or -1. */
static long
status_int(const char *status, const char *key)
{
	const char *p = strstr(status, key);

	if (p == NULL || (p = strchr(p + strlen(key), ':')) == NULL)
		return -1;
	return strtol(p + 1, NULL, 10);
}

/* The first line of what bwrap wrote on stderr, for "did not start" */
static char *
first_line(const PcrExecOutcome *o)
{
	char	   *s = pnstrdup(o->err, o->err_len);
	char	   *nl = strchr(s, '\n');

	if (nl)
		*nl = '\0';
	return s[0] ? s : "bwrap exited without a message";
}

/* What became of the command, from the helper's line and bwrap's status. */
static void
interpret(const char *status, const char *helper, bool with_helper, PcrExecOutcome *o)
{
	char		what[16];
	int			value;
	bool		came_up = status_int(status, "\"exit-code\"") >= 0;
	bool		init_seen = status_int(status, "\"child-pid\"") > 0;

	if (!with_helper)
	{
		/* a check that the sandbox comes up: the command's own fate does not matter */
		o->started = came_up;
		if (!came_up)
			snprintf(o->message, sizeof(o->message), "the sandbox did not start: %s", first_line(o));
		return;
	}
	if (sscanf(helper, "%15s %d", what, &value) == 2)
	{
		o->started = true;
		o->exited = strcmp(what, "signaled") != 0;
		o->exit_code = strcmp(what, "exited") == 0 ? value : strcmp(what, "exec") == 0 ? 127 : 0;
		o->signal = strcmp(what, "signaled") == 0 ? value : 0;
		return;
	}
	if (o->timed_out && init_seen)
	{
		o->started = true;		/* killed with its sandbox: the signal of bwrap stands */
		return;
	}
	/* no word from the helper: bwrap failed before (or at) starting it */
	o->started = false;
	snprintf(o->message, sizeof(o->message), "the sandbox did not start: %s",
			 came_up ? psprintf("%s (the command could not be started)", first_line(o)) : first_line(o));
}

void
BwrapRun(Jsonb *config, Jsonb *metadata, const char *workspace, const PcrExecSpec *spec,
		 bool with_helper, PcrExecOutcome *o)
{
	StringInfoData options;
	StringInfoData status;
	StringInfoData helper;
	const char **argv = palloc0(sizeof(char *) * (spec->nargs + 8));
	const char *envp[] = {NULL};
	const char *problem;
	PcrProcSpec ps = {0};
	PcrProc    *proc;
	JsonbValue	v;
	int64		memory_mb = 0;
	int			n = 0;
	long		init_pid;

	o->started = false;
	o->message[0] = '\0';
	if (geteuid() == 0)
	{
		snprintf(o->message, sizeof(o->message), "the bwrap provider refuses to run as root");
		return;
	}
	initStringInfo(&options);
	if ((problem = sandbox_options(&options, config, metadata, workspace, spec)) != NULL)
	{
		snprintf(o->message, sizeof(o->message), "%s", problem);
		return;
	}
	argv[n++] = "bwrap";
	argv[n++] = "--args";
	argv[n++] = CHILD_ARGS_FD;
	argv[n++] = "--";
	if (with_helper)
	{
		argv[n++] = BWRAP_HELPER_IN_SANDBOX;
		argv[n++] = CHILD_HELPER_FD;
	}
	argv[n++] = spec->command;
	for (int i = 0; i < spec->nargs; i++)
		argv[n++] = spec->args[i];
	if (config != NULL && PcrJsonbGet(config, "memoryLimitMb", &v) != NULL && v.type == jbvNumeric)
		(void) PcrNumericToInt64(v.val.numeric, &memory_mb);

	ps.path = bwrap_path;
	ps.argv = argv;
	ps.envp = envp;
	ps.cwd = "/";
	ps.stdin_pipe = spec->stdin_data != NULL;
	ps.nreports = 2;
	ps.input_data = options.data;
	ps.input_len = options.len;
	ps.rlimit_as = (uint64) memory_mb * 1024 * 1024;
	proc = PcrProcStart(&ps);
	explicit_bzero(options.data, options.len);	/* it held the variables */
	if (proc->exec_errno != 0)
	{
		snprintf(o->message, sizeof(o->message), "bwrap cannot be executed at \"%s\" (paperclip_bwrap.bwrap_path): %s",
				 bwrap_path, strerror(proc->exec_errno));
		PcrProcKill(proc);
		return;
	}

	/* the init's pid first: a timeout signals the sandbox's session */
	initStringInfo(&status);
	initStringInfo(&helper);
	if (PcrProcReadReport(proc, REPORT_STATUS, &status, 4096, true,
						  TimestampTzPlusMilliseconds(proc->started_at, spec->timeout_ms)) &&
		(init_pid = status_int(status.data, "\"child-pid\"")) > 0)
		proc->signal_group = (pid_t) init_pid;
	PcrProcCommunicate(proc, spec->stdin_data, spec->stdin_len, spec->timeout_ms, spec->max_output, o);
	(void) PcrProcReadReport(proc, REPORT_STATUS, &status, 4096, false,
							 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000));
	(void) PcrProcReadReport(proc, REPORT_HELPER, &helper, 256, false,
							 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000));
	PcrProcKill(proc);
	interpret(status.data, helper.data, with_helper, o);
}

/* ------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------ */
static int
ms_until(TimestampTz deadline, int cap)
{
	long		ms = deadline == 0 ? cap : TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

	return (int) Max(Min(ms, cap), 1);
}

/*
 * Does a sandbox of obj's config come up (workspace NULL: none bound)?  It
 * runs the exec helper's --check, which every sandbox has whatever its
 * image holds, and exits at once.
 */
static void
run_true(const PcrSandboxObject *obj, const char *workspace, PcrExecOutcome *o)
{
	const char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin"};
	const char *args[] = {"--check"};
	PcrExecSpec spec = {0};

	spec.command = BWRAP_HELPER_IN_SANDBOX;
	spec.nargs = 1;
	spec.args = args;
	spec.nenv = 1;
	spec.env = env;
	spec.cwd = "";
	spec.timeout_ms = ms_until(obj->deadline, CHECK_TIMEOUT_MS);
	spec.max_output = 4096;
	memset(o, 0, sizeof(*o));
	o->out = palloc(spec.max_output);
	o->err = palloc(spec.max_output);
	BwrapRun(obj->config, obj->metadata, workspace, &spec, false, o);
}

PcrProviderStatus
BwrapCheckStarts(const PcrSandboxObject *obj, const char *workspace, PcrProviderResult *res)
{
	PcrExecOutcome o;

	run_true(obj, workspace, &o);
	if (!o.started)
		return PcrProviderReport(res, o.timed_out ? PCR_PROVIDER_RETRY : PCR_PROVIDER_FATAL, "%s", o.message);
	return PCR_PROVIDER_OK;
}

PcrProviderStatus
BwrapProbe(const PcrSandboxObject *obj, PcrProviderResult *res)
{
	char	   *image = PcrJsonbGetText(obj->config, "image");
	char	   *network = PcrJsonbGetText(obj->config, "network");
	const char *problem;
	struct stat st;
	PcrExecOutcome o;

	if (access(bwrap_path, X_OK) != 0)
		return PcrProviderReport(res, PCR_PROVIDER_FATAL,
								 "bwrap is not installed: \"%s\" (paperclip_bwrap.bwrap_path) cannot be executed: %m",
								 bwrap_path);
	if (access(helper_path(), X_OK) != 0)
		return PcrProviderReport(res, PCR_PROVIDER_FATAL, "the exec helper \"%s\" is missing: %m", helper_path());
	if (image != NULL && strcmp(image, "host") != 0)
	{
		if (stat(image, &st) != 0 || !S_ISDIR(st.st_mode))
			return PcrProviderReport(res, PCR_PROVIDER_FATAL, "image directory \"%s\" does not exist", image);
		if ((problem = BwrapImageProblem(image)) != NULL)
			return PcrProviderReport(res, PCR_PROVIDER_FATAL, "image \"%s\" %s", image, problem);
	}
	if ((problem = BwrapRootProblem(false)) != NULL)
		return PcrProviderReport(res, PCR_PROVIDER_FATAL, "%s", problem);
	run_true(obj, NULL, &o);
	if (!o.started)
	{
		if (strstr(o.message, "namespace") != NULL)
			return PcrProviderReport(res, PCR_PROVIDER_FATAL,
									 "user namespaces are disabled or not permitted here (%s)", o.message);
		return PcrProviderReport(res, PCR_PROVIDER_FATAL, "%s", o.message);
	}
	return PcrProviderReport(res, PCR_PROVIDER_OK, "bwrap can start a sandbox (image %s, network %s)",
							 image ? image : "host", network ? network : "none");
}

PcrProviderStatus
BwrapExecute(const PcrSandboxObject *obj, const PcrExecSpec *spec, PcrExecOutcome *outcome,
			 PcrProviderResult *res)
{
	char	   *workspace = BwrapWorkspacePath(obj->name);
	struct stat st;

	if (lstat(workspace, &st) != 0 || !S_ISDIR(st.st_mode))
		return PcrProviderReport(res, PCR_PROVIDER_NOT_FOUND, "the workspace of sandbox \"%s\" no longer exists",
								 obj->name);
	BwrapRun(obj->config, obj->metadata, workspace, spec, true, outcome);
	return PCR_PROVIDER_OK;
}
