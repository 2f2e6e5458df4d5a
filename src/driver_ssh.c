/*
 * driver_ssh.c — the "ssh" driver: agent work runs on a remote host
 *
 * This file holds the config contract of SPEC §4.  The transport (libssh2 in
 * a driver worker) is not built yet, so acquiring an ssh lease reports
 * 0A000 and writes nothing.
 */
#include "pcr.h"
#include "driver.h"
#include "secret_ref.h"

#include "utils/builtins.h"
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

/* A required, trimmed, non-empty string free of whitespace and control characters. */
static char *
required_token(Jsonb *config, const char *field)
{
	JsonbValue	v;
	char	   *s;

	if (PcrJsonbGet(config, field, &v) == NULL || v.type == jbvNull)
		PcrConfigError("ssh", field, "is required");
	if (v.type != jbvString)
		PcrConfigError("ssh", field, "must be a string, not %s", PcrJsonbTypeName(&v));
	s = trimmed(v.val.string.val, v.val.string.len);
	if (s[0] == '\0')
		PcrConfigError("ssh", field, "must not be empty");
	for (const char *p = s; *p; p++)
		if (isspace((unsigned char) *p) || iscntrl((unsigned char) *p))
			PcrConfigError("ssh", field, "must not contain whitespace or control characters");
	if (s[0] == '-')
		PcrConfigError("ssh", field, "must not start with \"-\"");
	return s;
}

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

	host = required_token(config, "host");
	port = config_port(config);
	username = required_token(config, "username");

	if (PcrJsonbGet(config, "remoteWorkspacePath", &v) == NULL || v.type == jbvNull)
		PcrConfigError("ssh", "remoteWorkspacePath", "is required");
	if (v.type != jbvString)
		PcrConfigError("ssh", "remoteWorkspacePath", "must be a string, not %s", PcrJsonbTypeName(&v));
	path = pnstrdup(v.val.string.val, v.val.string.len);
	if (path[0] != '/')
		PcrConfigError("ssh", "remoteWorkspacePath", "must be an absolute path");

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

	if (PcrJsonbGet(config, "knownHosts", &v) != NULL && v.type != jbvNull)
	{
		if (v.type != jbvString)
			PcrConfigError("ssh", "knownHosts", "must be a string, not %s", PcrJsonbTypeName(&v));
		known_hosts = trimmed(v.val.string.val, v.val.string.len);
		if (known_hosts[0] == '\0')
			known_hosts = NULL;
		else
			known_hosts = pnstrdup(v.val.string.val, v.val.string.len);
	}

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
	ereport(ERROR,
			(errcode(PCR_ERRCODE_UNSUPPORTED),
			 errmsg("acquiring a lease on an ssh environment is not supported yet"),
			 errdetail("The ssh transport (libssh2 in a driver worker) is not part of this build.")));
}

static void
ssh_acquire(const PcrLeaseRequest *req, PcrLeaseGrant *grant)
{
	ssh_check_available(req->config);
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
};
