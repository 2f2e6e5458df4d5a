/*
 * pcr_provider.h — the C interface for sandbox providers of paperclip_runtime
 *
 * A sandbox provider is a shared library that, from its _PG_init, registers
 * a PcrSandboxProvider with PcrRegisterSandboxProvider().  The core then
 * routes every environment whose config says {"provider": "<name>"} to it.
 * Load the library through shared_preload_libraries *after*
 * paperclip_runtime, e.g.
 *     shared_preload_libraries = 'paperclip_runtime, my_provider'
 *
 * This header is installed with the extension (pg_config --includedir-server
 * then extension/paperclip_runtime/pcr_provider.h), with io.h beside it.
 *
 * Rules for a provider:
 * - validate() receives the whole config object (including "provider") and
 *   returns its normalised form; raise ERRCODE_INVALID_PARAMETER_VALUE
 *   (22023) naming the offending field for anything invalid.
 * - acquire() fills a PcrLeaseGrant.  It runs in the caller's transaction;
 *   anything slow must be handed to a worker.  It must not export host
 *   environment variables or secrets to the sandbox implicitly.
 * - release_needs_cleanup() says whether releasing a lease has side effects
 *   that a worker must carry out after commit (cleanup_status 'pending').
 * - Credentials (tokens, passwords, keys) never sit in a config: a config is
 *   plain text in the table, its WAL and its dumps.  Accept them as secret
 *   refs and resolve them when used; PcrConfigRefuseInlineCredentials()
 *   below refuses what the core refuses for providers that are not loaded.
 */
#ifndef PCR_PROVIDER_H
#define PCR_PROVIDER_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* the I/O pool: worker-side operations, their wait helper, the caller side */
#include "io.h"

#define PCR_PROVIDER_ABI_VERSION 1

/* What the core knows about an acquisition when it calls a driver. */
typedef struct PcrLeaseRequest
{
	pg_uuid_t	company_id;
	pg_uuid_t	environment_id;
	pg_uuid_t	heartbeat_run_id;
	const char *environment_name;
	Jsonb	   *config;			/* the stored, normalised config */
	const char *execution_workspace_mode;	/* NULL when not given */
} PcrLeaseRequest;

/* What a driver hands back for the new lease row. */
typedef struct PcrLeaseGrant
{
	const char *provider;		/* environment_leases.provider */
	char	   *provider_lease_id;	/* may be NULL */
	Jsonb	   *metadata;		/* camelCase keys; never a secret */
} PcrLeaseGrant;

typedef struct PcrSandboxProvider
{
	int			abi_version;	/* PCR_PROVIDER_ABI_VERSION */
	const char *name;			/* config.provider */
	Jsonb	   *(*validate) (Jsonb *config);
	bool		(*reuse_lease) (Jsonb *config);
	void		(*acquire) (const PcrLeaseRequest *req, PcrLeaseGrant *grant);
	bool		(*release_needs_cleanup) (Jsonb *lease_metadata);
} PcrSandboxProvider;

/* Register a provider; call from _PG_init.  Names must be unique. */
extern void PcrRegisterSandboxProvider(const PcrSandboxProvider *provider);

/* Look a provider up by name; NULL when none is registered under it. */
extern const PcrSandboxProvider *PcrSandboxProviderByName(const char *name);

/* ------------------------------------------------------------------------
 * Config checks shared with the core
 *
 * The core applies these to its own drivers' configs; a provider that uses
 * them for its fields refuses what the core refuses, with the same
 * messages.  Every refusal is 22023 naming the field, as
 *     invalid <driver> environment config: "<field>" <what is wrong>
 * Before a provider's validate() runs, the core has already checked that
 * the config is an object of at most PCR_CONFIG_MAX_BYTES and that
 * "provider" is a valid name; "leaseTtlSeconds" is the provider's to keep
 * (and check) in its normalised config.
 * ------------------------------------------------------------------------ */

/* Largest config stored for any driver or provider, as jsonb (bytes). */
#define PCR_CONFIG_MAX_BYTES	65536

/* Names of providers: ^[a-z0-9][a-z0-9._-]*$, at most this many bytes. */
#define PCR_PROVIDER_NAME_MAX	63

/* Raise 22023: invalid <driver> environment config: "<field>" <fmt...> */
extern void PcrConfigError(const char *driver, const char *field, const char *fmt,...) pg_attribute_printf(3, 4) pg_attribute_noreturn();

/*
 * What a config string may hold.  Control characters (C0, DEL, and C1 in
 * a UTF-8 database) are always refused; the flags add to that.
 */
#define PCR_TEXT_REQUIRED		0x0001	/* absent or null: "is required" */
#define PCR_TEXT_TRIM			0x0002	/* leading and trailing whitespace removed first */
#define PCR_TEXT_NONEMPTY		0x0004	/* "" (after trimming): "must not be empty" */
#define PCR_TEXT_TOKEN			0x0008	/* no whitespace at all, and no leading "-" */
#define PCR_TEXT_MULTILINE		0x0010	/* tab, newline and carriage return allowed */
#define PCR_TEXT_ABSOLUTE_PATH	0x0020	/* must start with "/" */
#define PCR_TEXT_NO_DOTDOT		0x0040	/* no ".." path segment */

/*
 * config.<field> checked as above and at most max_bytes long: a palloc'd
 * copy (trimmed with PCR_TEXT_TRIM), or NULL when absent or null and not
 * PCR_TEXT_REQUIRED.  A value that is not a string is refused.
 */
extern char *PcrConfigGetText(const char *driver, Jsonb *config, const char *field,
							  int flags, int max_bytes);

/* The same checks on a string of len bytes found elsewhere (a nested value). */
extern char *PcrConfigCheckText(const char *driver, const char *field, const char *s, int len,
								int flags, int max_bytes);

/*
 * Credentials belong in secrets, not in configs (a config sits in plain text
 * in the table, its WAL and its dumps).  Refuse, at any depth, a non-empty
 * string under a key naming a credential — a word (or two adjacent words) of
 * the key, split at "_", "-", "." and camelCase, is password, passwd,
 * passphrase, secret, token, apikey, accesskey, privatekey, credential or
 * credentials: "apiKey", "GITHUB_TOKEN", "clientSecret", not "maxTokens" or
 * "tokenizer" — unless it sits in a secret ref {"type": "secret_ref", ...};
 * and any string holding a PEM private key.  Numbers, booleans and null
 * pass.
 */
extern void PcrConfigRefuseInlineCredentials(const char *driver, Jsonb *config);

#endif							/* PCR_PROVIDER_H */
