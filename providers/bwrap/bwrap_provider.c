/*
 * bwrap_provider.c — the "bwrap" sandbox provider: registration, settings, config
 *
 * A provider library of paperclip_runtime (pcr_provider.h, ABI 2), loaded
 * with shared_preload_libraries = 'paperclip_runtime, paperclip_bwrap'.
 * Each lease gets a workspace directory under paperclip_bwrap.sandbox_root,
 * and every command runs in its own bwrap (bubblewrap) over it: all
 * namespaces unshared, a read-only root, private /proc, /dev and /tmp, the
 * workspace at /workspace, loopback only unless network is "host"
 * (bwrap_run.c).
 *
 * Config (docs/providers.md): provider "bwrap"; image "host" (the default: the
 * host's /usr read-only with a minimal /etc) or an absolute path to a root
 * filesystem directory; reuseLease (false); network "none" (the default)
 * or "host"; timeoutMs (default execute timeout of the environment);
 * memoryLimitMb (address-space limit of every command); env (default
 * variables: strings or secret refs); leaseTtlSeconds.  Anything else is
 * refused (22023).  An image that would show the server's own files (the
 * host's root, a directory holding the data directory, the master key file
 * or sandbox_root) is refused when stored and again when used.
 */
#include "postgres.h"

#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "bwrap.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *bwrap_sandbox_root = NULL;
char	   *bwrap_path = NULL;

#define BWRAP_MAX_TIMEOUT_MS	3600000
#define BWRAP_MIN_MEMORY_MB		64
#define BWRAP_MAX_MEMORY_MB		1048576
#define BWRAP_MAX_PATH_BYTES	1024
#define BWRAP_MAX_ENV			256
#define BWRAP_MAX_ENV_NAME		128
#define BWRAP_MAX_ENV_VALUE		32768

/* ------------------------------------------------------------------------
 * Paths
 * ------------------------------------------------------------------------ */
bool
BwrapPathWithin(const char *path, const char *dir)
{
	size_t		len = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return path[0] == '/';
	return strncmp(path, dir, len) == 0 && (path[len] == '\0' || path[len] == '/');
}

/* path with symbolic links resolved as far as it exists (palloc'd, canonical) */
static char *
resolved(const char *path)
{
	char		buf[PATH_MAX];
	char	   *copy = pstrdup(path);
	char	   *slash;

	canonicalize_path(copy);
	if (realpath(copy, buf) != NULL)
		return pstrdup(buf);
	slash = strrchr(copy, '/');
	if (slash == NULL || slash == copy)
		return copy;
	*slash = '\0';
	return psprintf("%s/%s", resolved(copy), slash + 1);
}

const char *
BwrapImageProblem(const char *image)
{
	char	   *img = resolved(image);
	const char *key = GetConfigOption("paperclip.master_key_file", true, false);

	if (strcmp(img, "/") == 0)
		return "must not be the host's root directory";
	if (DataDir != NULL && BwrapPathWithin(resolved(DataDir), img))
		return "must not contain the server's data directory";
	if (key != NULL && key[0] != '\0' && BwrapPathWithin(resolved(key), img))
		return "must not contain the master key file";
	if (bwrap_sandbox_root != NULL && BwrapPathWithin(resolved(bwrap_sandbox_root), img))
		return "must not contain paperclip_bwrap.sandbox_root";
	return NULL;
}

/* ------------------------------------------------------------------------
 * Settings
 * ------------------------------------------------------------------------ */
static bool
check_sandbox_root(char **newval, void **extra, GucSource source)
{
	char	   *path = *newval;

	if (path == NULL || path[0] != '/')
	{
		GUC_check_errdetail("paperclip_bwrap.sandbox_root must be an absolute path.");
		return false;
	}
	if (strlen(path) > BWRAP_MAX_PATH_BYTES || strstr(path, "/../") != NULL ||
		(strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0))
	{
		GUC_check_errdetail("paperclip_bwrap.sandbox_root must be a canonical path of at most %d bytes.",
							BWRAP_MAX_PATH_BYTES);
		return false;
	}
	if (DataDir != NULL && BwrapPathWithin(resolved(path), resolved(DataDir)))
	{
		GUC_check_errdetail("paperclip_bwrap.sandbox_root \"%s\" is inside the data directory.", path);
		return false;
	}
	if (strcmp(resolved(path), "/") == 0)
	{
		GUC_check_errdetail("paperclip_bwrap.sandbox_root must not be the root directory.");
		return false;
	}
	return true;
}

/* <home of the server's OS user>/paperclip_bwrap, or /var/tmp/paperclip_bwrap without one */
static char *
default_sandbox_root(void)
{
	struct passwd *pw = getpwuid(geteuid());

	if (pw != NULL && pw->pw_dir != NULL && pw->pw_dir[0] == '/' && strcmp(pw->pw_dir, "/") != 0)
		return psprintf("%s/paperclip_bwrap", pw->pw_dir);
	return pstrdup("/var/tmp/paperclip_bwrap");
}

static void
define_settings(void)
{
	DefineCustomStringVariable("paperclip_bwrap.sandbox_root",
							   "Directory holding the workspaces of bwrap sandboxes.",
							   "Must not be inside the data directory; created (0700) when missing.",
							   &bwrap_sandbox_root, default_sandbox_root(),
							   PGC_POSTMASTER, 0, check_sandbox_root, NULL, NULL);
	DefineCustomStringVariable("paperclip_bwrap.bwrap_path",
							   "The bwrap (bubblewrap) program.",
							   NULL, &bwrap_path, "/usr/bin/bwrap",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	MarkGUCPrefixReserved("paperclip_bwrap");
}

/* ------------------------------------------------------------------------
 * Config (caller side)
 * ------------------------------------------------------------------------ */
static const char *const config_keys[] = {
	"provider", "image", "reuseLease", "network", "timeoutMs", "memoryLimitMb", "env"
};

static void
check_key(const char *key, JsonbValue *val, void *arg)
{
	for (int i = 0; i < lengthof(config_keys); i++)
		if (strcmp(key, config_keys[i]) == 0)
			return;
	if (PcrConfigIsCommonKey(key))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s environment config: unknown field \"%s\"", BWRAP_DRIVER,
					PcrConfigCheckText(BWRAP_DRIVER, "field name", key, strlen(key), 0, 128)),
			 errhint("The bwrap provider accepts provider, image, reuseLease, network, timeoutMs, memoryLimitMb, env and leaseTtlSeconds.")));
}

/* An integer field in [min, max], or absent (false). */
static bool
int_field(Jsonb *config, const char *field, int64 min, int64 max, int64 *out)
{
	JsonbValue	v;

	if (PcrJsonbGet(config, field, &v) == NULL || v.type == jbvNull)
		return false;
	if (v.type != jbvNumeric || !PcrNumericToInt64(v.val.numeric, out) || *out < min || *out > max)
		PcrConfigError(BWRAP_DRIVER, field, "must be an integer between " INT64_FORMAT " and " INT64_FORMAT,
					   min, max);
	return true;
}

static bool
valid_env_name(const char *name)
{
	if (!(isalpha((unsigned char) name[0]) || name[0] == '_'))
		return false;
	for (const char *p = name; *p; p++)
		if (!(isalnum((unsigned char) *p) || *p == '_'))
			return false;
	return strlen(name) <= BWRAP_MAX_ENV_NAME;
}

typedef struct EnvCheck
{
	PcrJsonbBuilder b;
	int			n;
} EnvCheck;

static void
check_env_entry(const char *key, JsonbValue *val, void *arg)
{
	EnvCheck   *ec = (EnvCheck *) arg;
	char	   *field = psprintf("env.%s", key);

	key = pstrdup(key);			/* the builder keeps it; the iteration frees its own */

	if (++ec->n > BWRAP_MAX_ENV)
		PcrConfigError(BWRAP_DRIVER, "env", "has more than %d variables", BWRAP_MAX_ENV);
	if (!valid_env_name(key))
		PcrConfigError(BWRAP_DRIVER, "env", "has a variable name that is not [A-Za-z_][A-Za-z0-9_]* (at most %d bytes)",
					   BWRAP_MAX_ENV_NAME);
	if (val->type == jbvString)
		PcrJbAddText(&ec->b, key, PcrConfigCheckText(BWRAP_DRIVER, field, val->val.string.val,
													 val->val.string.len, 0, BWRAP_MAX_ENV_VALUE));
	else if (val->type == jbvBinary)
		PcrJbAddJsonb(&ec->b, key,
					  PcrConfigSecretRef(JsonbValueToJsonb(val),
										 psprintf("%s environment config: \"%s\" secret ref", BWRAP_DRIVER, field)));
	else
		PcrConfigError(BWRAP_DRIVER, field, "must be a string or a secret ref, not %s", PcrJsonbTypeName(val));
}

static Jsonb *
validate_env(Jsonb *config)
{
	JsonbValue	v;
	EnvCheck	ec = {0};
	Jsonb	   *env;

	if (PcrJsonbGet(config, "env", &v) == NULL || v.type == jbvNull)
		return NULL;
	env = v.type == jbvBinary ? JsonbValueToJsonb(&v) : NULL;
	if (env == NULL || !PcrJsonbIsObject(env))
		PcrConfigError(BWRAP_DRIVER, "env", "must be an object of variables, not %s", PcrJsonbTypeName(&v));
	PcrJbBegin(&ec.b);
	PcrJsonbForEachKey(env, check_env_entry, &ec);
	return PcrJbFinish(&ec.b);
}

static char *
validate_image(Jsonb *config)
{
	char	   *image = PcrConfigGetText(BWRAP_DRIVER, config, "image", PCR_TEXT_TRIM, BWRAP_MAX_PATH_BYTES);
	const char *problem;

	if (image == NULL || image[0] == '\0' || strcmp(image, "host") == 0)
		return "host";
	image = PcrConfigCheckText(BWRAP_DRIVER, "image", image, strlen(image),
							   PCR_TEXT_ABSOLUTE_PATH | PCR_TEXT_NO_DOTDOT | PCR_TEXT_TOKEN,
							   BWRAP_MAX_PATH_BYTES);
	canonicalize_path(image);
	if ((problem = BwrapImageProblem(image)) != NULL)
		PcrConfigError(BWRAP_DRIVER, "image", "%s", problem);
	return image;
}

static Jsonb *
bwrap_validate(Jsonb *config)
{
	PcrJsonbBuilder b;
	JsonbValue	v;
	char	   *network;
	char	   *image;
	bool		reuse = false;
	int64		n;
	Jsonb	   *env;

	PcrJsonbForEachKey(config, check_key, NULL);
	PcrConfigRefuseInlineCredentials(BWRAP_DRIVER, config);
	image = validate_image(config);
	if (PcrJsonbGet(config, "reuseLease", &v) != NULL && v.type != jbvNull)
	{
		if (v.type != jbvBool)
			PcrConfigError(BWRAP_DRIVER, "reuseLease", "must be a boolean, not %s", PcrJsonbTypeName(&v));
		reuse = v.val.boolean;
	}
	network = PcrConfigGetText(BWRAP_DRIVER, config, "network", PCR_TEXT_TRIM, 16);
	if (network == NULL || network[0] == '\0')
		network = "none";
	else if (strcmp(network, "none") != 0 && strcmp(network, "host") != 0)
		PcrConfigError(BWRAP_DRIVER, "network", "must be \"none\" or \"host\"");
	env = validate_env(config);

	PcrJbBegin(&b);
	PcrJbAddText(&b, "provider", BWRAP_PROVIDER);
	PcrJbAddText(&b, "image", image);
	PcrJbAddBool(&b, "reuseLease", reuse);
	PcrJbAddText(&b, "network", network);
	if (int_field(config, "timeoutMs", 1, BWRAP_MAX_TIMEOUT_MS, &n))
		PcrJbAddInt(&b, "timeoutMs", n);
	if (int_field(config, "memoryLimitMb", BWRAP_MIN_MEMORY_MB, BWRAP_MAX_MEMORY_MB, &n))
		PcrJbAddInt(&b, "memoryLimitMb", n);
	if (env != NULL)
		PcrJbAddJsonb(&b, "env", env);
	PcrConfigAddTtl(BWRAP_DRIVER, config, &b);
	return PcrJbFinish(&b);
}

static bool
bwrap_reuse_lease(Jsonb *config)
{
	return PcrJsonbGetBool(config, "reuseLease", false);
}

/* Records only: the workspace is made by create, in a driver worker. */
static void
bwrap_acquire(const PcrLeaseRequest *req, PcrLeaseGrant *grant)
{
	PcrJsonbBuilder b;
	char	   *image = PcrJsonbGetText(req->config, "image");
	char	   *network = PcrJsonbGetText(req->config, "network");

	PcrMetadataBegin(&b, BWRAP_DRIVER, req);
	PcrJbAddText(&b, "provider", BWRAP_PROVIDER);
	PcrJbAddText(&b, "image", image ? image : "host");
	PcrJbAddBool(&b, "reuseLease", req->reusable);
	PcrJbAddText(&b, "network", network ? network : "none");
	PcrJbAddText(&b, "remoteCwd", BWRAP_WORKSPACE);
	grant->metadata = PcrJbFinish(&b);
}

/* Every lease has a workspace to release or destroy. */
static bool
bwrap_release_needs_cleanup(Jsonb *lease_metadata)
{
	return true;
}

static const PcrSandboxProvider bwrap_provider = {
	.abi_version = PCR_PROVIDER_ABI_VERSION,
	.name = BWRAP_PROVIDER,
	.validate = bwrap_validate,
	.reuse_lease = bwrap_reuse_lease,
	.acquire = bwrap_acquire,
	.release_needs_cleanup = bwrap_release_needs_cleanup,
	.probe = BwrapProbe,
	.create = BwrapCreate,
	.resume = BwrapResume,
	.execute = BwrapExecute,
	.release = NULL,			/* nothing of a sandbox runs between commands */
	.destroy = BwrapDestroy,
	.list_owned = BwrapListOwned,
};

void
_PG_init(void)
{
	define_settings();
	PcrRegisterSandboxProvider(&bwrap_provider);
}
