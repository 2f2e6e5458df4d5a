/*
 * driver_ssh.c — the "ssh" driver: agent work runs on a remote host
 *
 * The config contract of docs/drivers.md, and the caller's half of an ssh acquire or
 * probe: the request is built here (the private key resolved from its secret
 * in the caller's transaction), handed to a driver worker (worker.c), which
 * does the network I/O with libssh2 (ssh_client.c); the lease row is then
 * written by lease.c in the caller's transaction.
 */
#include "pcr.h"
#include "driver.h"
#include "secret.h"
#include "secret_ref.h"
#include "ssh_allow.h"
#include "worker.h"

#include <sodium.h>

#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

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
 * copied into (worker.h) with its terminating NUL.
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

static const char *
ssh_lease_policy(Jsonb *config)
{
	return "ephemeral";
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
	PcrRequireDriverWorkers();
}

/* Copy a config string into a fixed request field, or raise 22023. */
static void
copy_field(char *dst, size_t dstlen, const char *src, const char *field)
{
	if (src == NULL)
		src = "";
	if (strlen(src) >= dstlen)
		PcrConfigError("ssh", field, "is too long (at most %d bytes)", (int) dstlen - 1);
	strlcpy(dst, src, dstlen);
}

/*
 * The paperclip API candidates, one per line: paperclip.runtime_api_candidates,
 * else PAPERCLIP_RUNTIME_API_CANDIDATES_JSON; a JSON array of URLs.
 */
static void
api_candidates(char *dst, size_t dstlen)
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
	dst[0] = '\0';
	if (json == NULL || json[0] == '\0')
		return;
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
	if ((size_t) buf.len >= dstlen)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid %s: too long (at most %d bytes)", source, (int) dstlen - 1)));
	strlcpy(dst, buf.data, dstlen);
}

/* Build a worker request for this environment; the key comes from its secret. */
static PcrSshRequest *
ssh_request(const PcrLeaseRequest *req, PcrWorkerOp op)
{
	PcrSshRequest *r = palloc0(sizeof(PcrSshRequest));
	JsonbValue	v;
	PcrPlaintext key;

	ssh_check_available(req->config);
	r->op = op;
	copy_field(r->host, sizeof(r->host), PcrJsonbGetText(req->config, "host"), "host");
	copy_field(r->username, sizeof(r->username), PcrJsonbGetText(req->config, "username"), "username");
	copy_field(r->path, sizeof(r->path), PcrJsonbGetText(req->config, "remoteWorkspacePath"),
			   "remoteWorkspacePath");
	copy_field(r->known_hosts, sizeof(r->known_hosts), PcrJsonbGetText(req->config, "knownHosts"),
			   "knownHosts");
	r->port = 22;
	if (PcrJsonbGet(req->config, "port", &v) != NULL && v.type == jbvNumeric)
	{
		int64		port;

		if (PcrNumericToInt64(v.val.numeric, &port))
			r->port = (int32) port;
	}
	PcrSshCheckAllowed(r->host, r->port);	/* before any I/O, and before the key is decrypted */
	r->strict_host_key_checking = PcrJsonbGetBool(req->config, "strictHostKeyChecking", true);
	r->connect_timeout_ms = pcr_ssh_connect_timeout;
	api_candidates(r->candidates, sizeof(r->candidates));

	PcrJsonbGet(req->config, "privateKeySecretRef", &v);
	key = PcrSecretResolve(&req->company_id, JsonbValueToJsonb(&v));
	if (key.len == 0)
	{
		PcrPlaintextFree(&key);
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("the secret in privateKeySecretRef is empty, not a private key")));
	}
	if (key.len >= sizeof(r->key))
	{
		PcrPlaintextFree(&key);
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("the private key in privateKeySecretRef is too large (at most %d bytes)",
						(int) sizeof(r->key) - 1)));
	}
	memcpy(r->key, key.data, key.len);
	r->key_len = key.len;
	PcrPlaintextFree(&key);
	PcrSshCacheKey(r);
	return r;
}

/* Hand the request to a worker; the key is zeroed whatever happens. */
static PcrSshResponse *
ssh_call(PcrSshRequest *r)
{
	PcrSshResponse *resp = palloc0(sizeof(PcrSshResponse));

	PcrDriverCall(r, resp);
	return resp;
}

static char *
host_for_url(const char *host)
{
	return strchr(host, ':') ? psprintf("[%s]", host) : pstrdup(host);
}

static void
ssh_acquire(const PcrLeaseRequest *req, PcrLeaseGrant *grant)
{
	PcrSshRequest *r = ssh_request(req, PCR_OP_SSH_ACQUIRE);
	PcrSshResponse *resp = ssh_call(r);
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
	PcrSshRequest *r = ssh_request(req, PCR_OP_SSH_PROBE);
	PcrSshResponse *resp = ssh_call(r);
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

static bool
ssh_release_needs_cleanup(Jsonb *lease_metadata)
{
	return false;
}

const PcrDriver pcr_driver_ssh = {
	.name = "ssh",
	.validate = ssh_validate,
	.lease_policy = ssh_lease_policy,
	.check_available = ssh_check_available,
	.acquire = ssh_acquire,
	.release_needs_cleanup = ssh_release_needs_cleanup,
	.probe = ssh_probe,
};
