/*
 * driver_ssh.c — the "ssh" driver: agent work runs on a remote host
 *
 * The config contract of docs/drivers.md, and the caller's half of an ssh acquire or
 * probe: the request is built here (the private key resolved from its secret
 * in the caller's transaction), handed to a driver worker through the I/O
 * pool (io.h), whose ssh operations (ssh_ops.c) do the network I/O with
 * libssh2 (ssh_client.c); the lease row is then written by lease.c in the
 * caller's transaction.  The ssh settings are defined here.
 */
#include "pcr.h"
#include "driver.h"
#include "secret.h"
#include "secret_ref.h"
#include "ssh_allow.h"
#include "ssh_proto.h"
#include "guc_ceiling.h"
#include "util.h"

#include <limits.h>

#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/guc.h"
#include "utils/numeric.h"

/* the ssh driver's settings (docs/configuration.md) */
static int	pcr_ssh_connect_timeout = 10000;	/* milliseconds */
static char *pcr_runtime_api_candidates = NULL;
static PcrGucCeiling connect_timeout_ceiling = {"paperclip.ssh_connect_timeout", 10000};

static bool
check_connect_timeout(int *newval, void **extra, GucSource source)
{
	return PcrGucCeilingCheck(&connect_timeout_ceiling, *newval, source);
}

/* _PG_init: the settings, and the client's operations in the I/O pool. */
static void
ssh_init(bool preloading)
{
	DefineCustomIntVariable("paperclip.ssh_connect_timeout",
							"Longest time an SSH connection may take to establish.",
							"A ceiling: only superusers may set it above the server's value.",
							&pcr_ssh_connect_timeout, 10000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, check_connect_timeout, NULL, NULL);
	/*
	 * Read by the calling backend at acquire time, so a session may carry
	 * its own: superuser-set, and grantable with GRANT SET ON PARAMETER.
	 */
	DefineCustomStringVariable("paperclip.runtime_api_candidates",
							   "JSON array of control-plane API URLs tried from remote hosts.",
							   "When unset, the environment variable PAPERCLIP_RUNTIME_API_CANDIDATES_JSON is used.",
							   &pcr_runtime_api_candidates, NULL,
							   PGC_SUSET, 0, NULL, NULL, NULL);
	PcrSshAllowInit();
	if (preloading)
		PcrSshRegisterIo();
}

static const char *const ssh_keys[] = {
	"host", "port", "username", "remoteWorkspacePath", "privateKey",
	"privateKeySecretRef", "knownHosts", "strictHostKeyChecking", "leaseTtlSeconds",
};

static void
ssh_check_key(const char *key, JsonbValue *val, void *arg)
{
	for (int i = 0; i < lengthof(ssh_keys); i++)
		if (strcmp(ssh_keys[i], key) == 0)
			return;
	ereport(ERROR,
			(errcode(PCR_ERRCODE_BAD_CONFIG),
			 errmsg("invalid ssh environment config: unknown field \"%s\"", key),
			 errhint("Known fields: host, port, username, remoteWorkspacePath, privateKeySecretRef, knownHosts, strictHostKeyChecking, leaseTtlSeconds.")));
}

static char *
trimmed(const char *s, int len)
{
	while (len > 0 && isspace((unsigned char) *s))
		s++, len--;
	while (len > 0 && isspace((unsigned char) s[len - 1]))
		len--;
	return pnstrdup(s, len);
}

/*
 * Bounds of the stored config; each fits the worker request field it is
 * copied into (ssh_proto.h) with its terminating NUL.
 */
#define SSH_USERNAME_MAX_BYTES		255
#define SSH_PATH_MAX_BYTES			4095
#define SSH_KNOWN_HOSTS_MAX_BYTES	32767
StaticAssertDecl(PCR_HOST_MAX_BYTES < PCR_SSH_HOST_MAX, "host bound exceeds the request field");
StaticAssertDecl(SSH_USERNAME_MAX_BYTES < PCR_SSH_USER_MAX, "username bound exceeds the request field");
StaticAssertDecl(SSH_PATH_MAX_BYTES < PCR_SSH_PATH_MAX, "path bound exceeds the request field");
StaticAssertDecl(SSH_KNOWN_HOSTS_MAX_BYTES < PCR_SSH_KNOWN_HOSTS_MAX, "knownHosts bound exceeds the request field");

#define SSH_TOKEN (PCR_TEXT_REQUIRED | PCR_TEXT_TRIM | PCR_TEXT_NONEMPTY | PCR_TEXT_TOKEN)

static int32
config_port(Jsonb *config)
{
	JsonbValue	v;
	int64		port = -1;

	if (PcrJsonbGet(config, "port", &v) == NULL || v.type == jbvNull)
		return 22;
	if (v.type == jbvNumeric)
	{
		if (!PcrNumericToInt64(v.val.numeric, &port))
			port = -1;
	}
	else if (v.type == jbvString)
	{
		char	   *s = trimmed(v.val.string.val, v.val.string.len);
		bool		digits = s[0] != '\0' && strlen(s) <= 5;

		for (const char *p = s; *p && digits; p++)
			digits = isdigit((unsigned char) *p);
		if (digits)
			port = strtol(s, NULL, 10);
	}
	if (port < 1 || port > 65535)
		PcrConfigError("ssh", "port", "must be an integer between 1 and 65535");
	return (int32) port;
}

static Jsonb *
ssh_validate(Jsonb *config)
{
	PcrJsonbBuilder b;
	JsonbValue	v;
	char	   *host;
	char	   *username;
	char	   *path;
	int32		port;
	char	   *known_hosts = NULL;
	bool		strict = true;
	Jsonb	   *ref = NULL;

	PcrConfigRequireObject("ssh", config);
	PcrJsonbForEachKey(config, ssh_check_key, NULL);

	host = PcrConfigGetText("ssh", config, "host", SSH_TOKEN, PCR_HOST_MAX_BYTES);
	host = PcrConfigCheckHost("ssh", "host", host);
	port = config_port(config);
	username = PcrConfigGetText("ssh", config, "username", SSH_TOKEN, SSH_USERNAME_MAX_BYTES);
	path = PcrConfigGetText("ssh", config, "remoteWorkspacePath",
							PCR_TEXT_REQUIRED | PCR_TEXT_ABSOLUTE_PATH | PCR_TEXT_NO_DOTDOT,
							SSH_PATH_MAX_BYTES);

	if (PcrJsonbGet(config, "privateKey", &v) != NULL && v.type != jbvNull)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid ssh environment config: \"privateKey\" must be null in a stored config"),
				 errhint("Store the key with paperclip.secret_create() and reference it with \"privateKeySecretRef\".")));

	if (PcrJsonbGet(config, "privateKeySecretRef", &v) != NULL && v.type != jbvNull)
	{
		PcrSecretRef parsed;

		PcrSecretRefParse(JsonbValueToJsonb(&v), "ssh environment config: \"privateKeySecretRef\"", &parsed);
		ref = PcrSecretRefToJsonb(&parsed);
	}

	/* kept as given (lines and all); blank means none */
	known_hosts = PcrConfigGetText("ssh", config, "knownHosts", PCR_TEXT_MULTILINE,
								   SSH_KNOWN_HOSTS_MAX_BYTES);
	if (known_hosts != NULL && known_hosts[strspn(known_hosts, " \t\r\n\v\f")] == '\0')
		known_hosts = NULL;

	if (PcrJsonbGet(config, "strictHostKeyChecking", &v) != NULL && v.type != jbvNull)
	{
		if (v.type != jbvBool)
			PcrConfigError("ssh", "strictHostKeyChecking", "must be a boolean, not %s", PcrJsonbTypeName(&v));
		strict = v.val.boolean;
	}

	PcrJbBegin(&b);
	PcrJbAddText(&b, "host", host);
	PcrJbAddInt(&b, "port", port);
	PcrJbAddText(&b, "username", username);
	PcrJbAddText(&b, "remoteWorkspacePath", path);
	PcrJbAddNull(&b, "privateKey");
	PcrJbAddJsonb(&b, "privateKeySecretRef", ref);
	PcrJbAddText(&b, "knownHosts", known_hosts);
	PcrJbAddBool(&b, "strictHostKeyChecking", strict);
	PcrConfigAddTtl("ssh", config, &b);
	return PcrJbFinish(&b);
}

static void
ssh_check_available(Jsonb *config)
{
	JsonbValue	v;

	if (PcrJsonbGet(config, "privateKeySecretRef", &v) == NULL || v.type == jbvNull)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid ssh environment config: \"privateKeySecretRef\" is required to connect"),
				 errhint("Store the key with paperclip.secret_create() and reference it with \"privateKeySecretRef\".")));
	PcrIoRequireWorkers();
}

/* A config string for a request field, or raise 22023 when it is too long. */
static const char *
field(Jsonb *config, const char *name, size_t max)
{
	char	   *v = PcrJsonbGetText(config, name);

	if (v == NULL)
		return "";
	if (strlen(v) >= max)
		PcrConfigError("ssh", name, "is too long (at most %d bytes)", (int) max - 1);
	return v;
}

/*
 * The paperclip API candidates, one per line: paperclip.runtime_api_candidates,
 * else PAPERCLIP_RUNTIME_API_CANDIDATES_JSON; a JSON array of URLs.
 */
static char *
api_candidates(size_t max)
{
	const char *json = pcr_runtime_api_candidates;
	const char *source = "paperclip.runtime_api_candidates";
	Jsonb	   *jb;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	StringInfoData buf;

	if (json == NULL || json[0] == '\0')
	{
		json = getenv("PAPERCLIP_RUNTIME_API_CANDIDATES_JSON");
		source = "PAPERCLIP_RUNTIME_API_CANDIDATES_JSON";
	}
	if (json == NULL || json[0] == '\0')
		return "";
	/* check the syntax first, so that bad JSON is our 22023, not a parse error */
	if (pg_parse_json(makeJsonLexContextCstringLen(pstrdup(json), strlen(json), PG_UTF8, true),
					  &nullSemAction) != JSON_SUCCESS)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid %s: must be a JSON array of URLs", source),
				 errdetail("The value is not valid JSON.")));
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	if (!JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid %s: must be a JSON array of URLs", source)));
	initStringInfo(&buf);
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *url;

		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvString)
			ereport(ERROR,
					(errcode(PCR_ERRCODE_BAD_CONFIG),
					 errmsg("invalid %s: must be a JSON array of URLs", source),
					 errdetail("An element is a %s.", PcrJsonbTypeName(&v))));
		url = pnstrdup(v.val.string.val, v.val.string.len);
		for (const char *p = url; *p; p++)
			if (isspace((unsigned char) *p) || iscntrl((unsigned char) *p))
				ereport(ERROR,
						(errcode(PCR_ERRCODE_BAD_CONFIG),
						 errmsg("invalid %s: a URL contains whitespace or control characters", source)));
		if (url[0] == '\0')
			continue;
		if (buf.len > 0)
			appendStringInfoChar(&buf, '\n');
		appendStringInfoString(&buf, url);
	}
	if ((size_t) buf.len >= max)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid %s: too long (at most %d bytes)", source, (int) max - 1)));
	return buf.data;
}

/* An ssh request for the pool, and what the lease row needs of it. */
typedef struct SshCall
{
	const char *host;
	const char *username;
	const char *path;
	int32		port;
	bool		strict_host_key_checking;
	char	   *packed;			/* PcrSshRequestHead, then the fields (ssh_proto.h) */
	Size		packed_len;
	PcrIoRange	key_range;
	uint64		route;
} SshCall;

/* The private key from its secret: 22023 when empty or too large. */
static PcrPlaintext
resolve_key(const PcrLeaseRequest *req)
{
	JsonbValue	v;
	PcrPlaintext key;

	PcrJsonbGet(req->config, "privateKeySecretRef", &v);
	key = PcrSecretResolve(&req->company_id, JsonbValueToJsonb(&v));
	if (key.len == 0)
	{
		PcrPlaintextFree(&key);
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("the secret in privateKeySecretRef is empty, not a private key")));
	}
	if (key.len >= PCR_SSH_KEY_MAX)
	{
		PcrPlaintextFree(&key);
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("the private key in privateKeySecretRef is too large (at most %d bytes)",
						PCR_SSH_KEY_MAX - 1)));
	}
	return key;
}

/*
 * Pack head and fields into one buffer of exactly the right size (so that no
 * reallocation leaves a copy of the key behind); the key goes last.
 */
static void
pack(SshCall *r, const char *const *fields, PcrPlaintext *key, int32 connect_timeout_ms)
{
	PcrSshRequestHead head;
	PcrIoHashPart parts[5];
	Size		off = sizeof(head);

	memset(&head, 0, sizeof(head));
	head.port = r->port;
	head.connect_timeout_ms = connect_timeout_ms;
	head.strict_host_key_checking = r->strict_host_key_checking;
	r->packed_len = sizeof(head);
	for (int i = 0; i < SSH_KEY; i++)
		r->packed_len += (head.len[i] = strlen(fields[i])) + 1;
	head.len[SSH_KEY] = key->len;
	r->packed_len += key->len + 1;
	r->packed = palloc0(r->packed_len);
	for (int i = 0; i < SSH_KEY; i++)
	{
		memcpy(r->packed + off, fields[i], head.len[i]);
		off += head.len[i] + 1;
	}
	/* the session's identity: host, port, user and key, keyed per server start */
	parts[0] = (PcrIoHashPart) {r->host, strlen(r->host) + 1};
	parts[1] = (PcrIoHashPart) {&r->port, sizeof(r->port)};
	parts[2] = (PcrIoHashPart) {r->username, strlen(r->username) + 1};
	parts[3] = (PcrIoHashPart) {key->data, key->len};
	/* a session opened under another allow-list is not reused */
	parts[4] = (PcrIoHashPart) {PcrSshAllowedHostsSetting(), strlen(PcrSshAllowedHostsSetting()) + 1};
	PcrIoRouteKey(parts, lengthof(parts), head.cache_key);
	r->route = PcrIoRouteOf(head.cache_key);
	memcpy(r->packed, &head, sizeof(head));

	/* the key last: from here on only PcrIoInvoke() holds it, and zeroes it */
	r->key_range.offset = off;
	r->key_range.len = key->len;
	memcpy(r->packed + off, key->data, key->len);
	PcrPlaintextFree(key);
}

/* Build a worker request for this environment; the key comes from its secret. */
static SshCall *
ssh_request(const PcrLeaseRequest *req)
{
	SshCall    *r = palloc0(sizeof(SshCall));
	const char *fields[SSH_NFIELDS];
	JsonbValue	v;
	PcrPlaintext key;

	ssh_check_available(req->config);
	r->host = fields[SSH_HOST] = field(req->config, "host", PCR_SSH_HOST_MAX);
	r->username = fields[SSH_USERNAME] = field(req->config, "username", PCR_SSH_USER_MAX);
	r->path = fields[SSH_PATH] = field(req->config, "remoteWorkspacePath", PCR_SSH_PATH_MAX);
	fields[SSH_KNOWN_HOSTS] = field(req->config, "knownHosts", PCR_SSH_KNOWN_HOSTS_MAX);
	r->port = 22;
	if (PcrJsonbGet(req->config, "port", &v) != NULL && v.type == jbvNumeric)
	{
		int64		port;

		if (PcrNumericToInt64(v.val.numeric, &port))
			r->port = (int32) port;
	}
	PcrSshCheckAllowed(r->host, r->port);	/* before any I/O, and before the key is decrypted */
	r->strict_host_key_checking = PcrJsonbGetBool(req->config, "strictHostKeyChecking", true);
	fields[SSH_CANDIDATES] = api_candidates(PCR_SSH_CANDIDATES_MAX);

	key = resolve_key(req);
	pack(r, fields, &key, pcr_ssh_connect_timeout);
	return r;
}

/* Hand the request to a worker; the key is zeroed whatever happens. */
static PcrSshResponse *
ssh_call(const PcrLeaseRequest *req, SshCall *r, const PcrIoOperation *op)
{
	PcrIoCall	call = {
		.op = op,
		.company_id = &req->company_id,
		.route = r->route,
		.request = r->packed,
		.request_len = r->packed_len,
		.secrets = &r->key_range,
		.nsecrets = 1,
		.response_max = sizeof(PcrSshResponse),
		.target = r->host,
	};
	PcrIoResult result;

	PcrIoInvoke(&call, &result);
	if (result.len != sizeof(PcrSshResponse))
		elog(ERROR, "ssh answer of %zu bytes, expected %zu", result.len, sizeof(PcrSshResponse));
	return (PcrSshResponse *) result.data;
}

static char *
host_for_url(const char *host)
{
	return strchr(host, ':') ? psprintf("[%s]", host) : pstrdup(host);
}

static void
ssh_acquire(const PcrLeaseRequest *req, PcrLeaseGrant *grant)
{
	SshCall    *r = ssh_request(req);
	PcrSshResponse *resp = ssh_call(req, r, &pcr_ssh_op_acquire);
	PcrJsonbBuilder b;

	grant->provider = "ssh";
	grant->provider_lease_id = psprintf("ssh://%s@%s:%d%s", r->username, host_for_url(r->host),
										r->port, resp->remote_cwd);
	PcrMetadataBegin(&b, "ssh", req);
	PcrJbAddText(&b, "host", r->host);
	PcrJbAddInt(&b, "port", r->port);
	PcrJbAddText(&b, "username", r->username);
	PcrJbAddText(&b, "remoteWorkspacePath", r->path);
	PcrJbAddText(&b, "remoteCwd", resp->remote_cwd);
	PcrJbAddText(&b, "paperclipApiUrl", resp->api_url[0] ? resp->api_url : NULL);
	grant->metadata = PcrJbFinish(&b);
}

static Jsonb *
ssh_probe(const PcrLeaseRequest *req)
{
	SshCall    *r = ssh_request(req);
	PcrSshResponse *resp = ssh_call(req, r, &pcr_ssh_op_probe);
	PcrJsonbBuilder details;
	char	   *where = psprintf("%s@%s:%d", r->username, host_for_url(r->host), r->port);

	PcrJbBegin(&details);
	PcrJbAddText(&details, "host", r->host);
	PcrJbAddInt(&details, "port", r->port);
	PcrJbAddText(&details, "username", r->username);
	PcrJbAddText(&details, "remoteWorkspacePath", r->path);
	PcrJbAddBool(&details, "workspaceExists", resp->workspace_exists);
	PcrJbAddText(&details, "remoteCwd", resp->remote_cwd[0] ? resp->remote_cwd : NULL);
	PcrJbAddText(&details, "paperclipApiUrl", resp->api_url[0] ? resp->api_url : NULL);
	PcrJbAddText(&details, "hostKeyType", resp->host_key_type);
	PcrJbAddText(&details, "hostKeyFingerprint", resp->host_key_sha256);
	PcrJbAddBool(&details, "hostKeyVerified", r->strict_host_key_checking);
	PcrJbAddBool(&details, "reusedSession", resp->reused_session);
	PcrJbAddInt(&details, "elapsedMs", resp->elapsed_ms);

	return PcrProbeResult(true, "ssh",
						  resp->workspace_exists
						  ? psprintf("connected to %s; workspace %s is ready", where, resp->remote_cwd)
						  : psprintf("connected to %s; workspace %s will be created on first acquire", where, r->path),
						  PcrJbFinish(&details));
}


/* ------------------------------------------------------------------------
 * lease_execute: an exec channel on the pooled session (ssh_exec.c)
 * ------------------------------------------------------------------------ */

/*
 * The lease's target is its metadata (host, port, user, the canonical
 * workspace remoteCwd); the credentials are the environment's.  Should the
 * environment point elsewhere now, the lease is stale: 55000.
 */
static void
ssh_exec_prepare(const PcrExecLease *lease, PcrExecTarget *target)
{
	Jsonb	   *config = ssh_validate(lease->config);
	char	   *cwd = PcrJsonbGetText(lease->metadata, "remoteCwd");
	char	   *host = PcrJsonbGetText(lease->metadata, "host");
	char	   *user = PcrJsonbGetText(lease->metadata, "username");
	JsonbValue	v;
	int64		port = -1;

	if (PcrJsonbGet(lease->metadata, "port", &v) != NULL && v.type == jbvNumeric)
		(void) PcrNumericToInt64(v.val.numeric, &port);
	if (cwd == NULL || cwd[0] != '/' || host == NULL || user == NULL || port < 1)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("ssh lease %s has no remote workspace in its metadata", PcrUuidToCString(&lease->id)),
				 errhint("Acquire a new lease with paperclip.acquire_run_lease().")));
	if (strcmp(host, PcrJsonbGetText(config, "host")) != 0 ||
		strcmp(user, PcrJsonbGetText(config, "username")) != 0 ||
		port != config_port(config))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("environment \"%s\" no longer points at the host of lease %s",
						lease->environment_name, PcrUuidToCString(&lease->id)),
				 errdetail("The lease was acquired on %s@%s:%d.", user, host, (int) port),
				 errhint("Release the lease and acquire a new one.")));
	ssh_check_available(config);
	target->workspace = cwd;
}

static void
ssh_execute(const PcrExecLease *lease, const PcrExecCall *call, PcrExecOutcome *outcome)
{
	PcrLeaseRequest req;
	SshCall    *r;
	PcrExecInvokeArgs a;

	memset(&req, 0, sizeof(req));
	req.company_id = lease->company_id;
	req.environment_id = lease->environment_id;
	req.environment_name = lease->environment_name;
	req.config = ssh_validate(lease->config);
	r = ssh_request(&req);

	memset(&a, 0, sizeof(a));
	a.op = &pcr_ssh_op_execute;
	a.company_id = &lease->company_id;
	a.route = r->route;
	a.driver_data = r->packed;
	a.driver_len = r->packed_len;
	a.driver_secrets = &r->key_range;
	a.ndriver_secrets = 1;
	a.setup_ms = 2 * pcr_ssh_connect_timeout;
	a.target = r->host;
	PG_TRY();
	{
		PcrExecInvoke(call, &a, outcome);
	}
	PG_FINALLY();
	{
		explicit_bzero(r->packed + r->key_range.offset, r->key_range.len);
	}
	PG_END_TRY();
}

const PcrDriver pcr_driver_ssh = {
	.name = "ssh",
	.init = ssh_init,
	.validate = ssh_validate,
	.check_available = ssh_check_available,
	.acquire = ssh_acquire,
	.probe = ssh_probe,
	.exec_prepare = ssh_exec_prepare,
	.execute = ssh_execute,
};
