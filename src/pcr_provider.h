/*
 * pcr_provider.h — the C interface for sandbox providers of paperclip_runtime (ABI 2)
 *
 * A sandbox provider is a shared library that, from its _PG_init, registers
 * a PcrSandboxProvider with PcrRegisterSandboxProvider().  The core then
 * routes every environment whose config says {"provider": "<name>"} to it.
 * Load the library through shared_preload_libraries *after*
 * paperclip_runtime, e.g.
 *     shared_preload_libraries = 'paperclip_runtime, my_provider'
 *
 * This header is installed with the extension, in
 * $(pg_config --includedir-server)/extension/paperclip_runtime/, with the
 * headers it includes: io.h (the driver I/O pool), pcr_exec.h (running a
 * command), pcr_proc.h (child processes) and jsonb_util.h (jsonb helpers).
 * docs/providers.md explains how to write, build and load a provider.
 *
 * Two sides:
 *
 * Caller side — runs in the backend that called acquire_run_lease() (or
 * wrote a row), inside its transaction; no I/O, nothing slow:
 * - validate(config): the whole config object (including "provider") →
 *   its normalised form; raise ERRCODE_INVALID_PARAMETER_VALUE (22023)
 *   naming the offending field (PcrConfigError) for anything invalid,
 *   including unknown keys.  Runs whenever a config is stored.
 * - reuse_lease(config): is a lease of this config reusable (one object per
 *   environment, held by one run at a time, kept across runs)?
 * - acquire(req, grant): records only.  Fill grant->metadata (camelCase
 *   keys; never a secret; PcrMetadataBegin gives driver and
 *   executionWorkspaceMode).  With ABI 2 the core has drawn the lease id
 *   and named the object (req->lease_id, req->object_name) before this call
 *   and sets grant->provider and grant->provider_lease_id itself
 *   ("sandbox://<provider>/<lease id>", reusable:
 *   "sandbox://<provider>/<environment id>"); an ABI 1 provider sets them.
 * - release_needs_cleanup(lease_metadata): does releasing a lease of this
 *   provider have side effects (cleanup_status 'pending')?  True for any
 *   provider with objects.
 *
 * Worker side (ABI 2; each entry point optional) — runs in a driver worker,
 * outside any transaction: no SPI, no catalog, no database; everything
 * comes in the arguments.  Waits only through PcrIoWait() (or the pcr_proc.h
 * helpers, which use it) and finishes before obj->deadline; when the caller
 * gives up (PCR_IO_WAIT_ABANDONED, or the 57014 the helpers raise) stop
 * at once, leaving nothing running.  Each returns a PcrProviderStatus and,
 * unless OK, a message in res->message that never holds a secret (it
 * reaches errors, logs and cleanup_error).  Raising an ERROR is allowed
 * too and counts as PCR_PROVIDER_FATAL.  Every entry point must be
 * idempotent: a crash can repeat any of them.
 * - probe(obj, res): can a sandbox of obj->config be started here?  Write
 *   nothing; say what fails (not installed, user namespaces disabled, image
 *   missing, ...) in res->message, or what works when OK.
 * - create(obj, res): make the object named obj->name, labelled with
 *   obj->cluster, company, environment, lease and database (so that
 *   list_owned finds it again, and the reconciler of that database alone
 *   judges it).  It may exist already (a repeated create): then reuse it.
 * - resume(obj, res) (reusable leases): the object exists → OK; it is gone
 *   → NOT_FOUND, and the core calls create.
 * - execute(obj, spec, outcome, res): run one command in the object as
 *   pcr_exec.h says; OK when the outcome is filled (also when the sandbox
 *   could not start the command: outcome->started false); NOT_FOUND when
 *   the object is gone.
 * - release(obj, res) (reusable leases, after their release committed): the
 *   object is kept for the environment's next run; bring it to rest (stop
 *   what runs in it).  NULL: nothing to do.
 * - destroy(obj, res): remove the object and everything of it; an object
 *   that is already gone is OK (or NOT_FOUND: the same for the core).
 * - list_owned(cluster, list, res): every object of this provider labelled
 *   with this cluster, added with PcrOwnedListAdd().
 * A provider with create must have resume, destroy and list_owned: the core
 * refuses to register it otherwise (an object it could not find again or
 * remove would leak).
 *
 * Who calls what: acquire_run_lease() calls resume (reusable) or create
 * through the pool before it writes the lease row; the reconciler calls
 * release (reusable lease, environment still active) or destroy (ephemeral
 * lease, or its reusable environment archived or deleted) for leases with
 * cleanup_status 'pending', destroy for the objects of acquires whose
 * (sub)transaction aborted or whose backend died, and list_owned at its
 * start-up sweep and periodically, destroying objects whose lease is gone
 * (after a grace longer than paperclip.acquire_timeout) or terminal with
 * its cleanup done; lease_execute() calls execute.  The core registers one
 * I/O operation per worker-side entry point ("<provider>.acquire",
 * "<provider>.destroy", ...): a provider writes no pool code.
 *
 * Credentials (tokens, passwords, keys) never sit in a config: a config is
 * plain text in the table, its WAL and its dumps.  Accept them as secret
 * refs (PcrConfigSecretRef checks one) and resolve them when used;
 * PcrConfigRefuseInlineCredentials() below refuses what the core refuses
 * for providers that are not loaded.
 */
#ifndef PCR_PROVIDER_H
#define PCR_PROVIDER_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/* the I/O pool: worker-side operations, their wait helper, the caller side */
#include "io.h"
/* running a command, and child processes of a worker */
#include "pcr_exec.h"
#include "pcr_proc.h"
/* reading and building jsonb objects */
#include "jsonb_util.h"

#define PCR_PROVIDER_ABI_VERSION 2
#define PCR_PROVIDER_ABI_MIN 1	/* the oldest ABI the core still loads */

/* ------------------------------------------------------------------------
 * Caller side
 * ------------------------------------------------------------------------ */

/* What the core knows about an acquisition when it calls a driver. */
typedef struct PcrLeaseRequest
{
	pg_uuid_t	company_id;
	pg_uuid_t	environment_id;
	pg_uuid_t	heartbeat_run_id;
	const char *environment_name;
	Jsonb	   *config;			/* the stored, normalised config */
	const char *execution_workspace_mode;	/* NULL when not given */

	/* ABI 2: set by the core before acquire is called */
	pg_uuid_t	lease_id;		/* the id the new lease row will have */
	const char *object_name;	/* pcr-<cluster>-<lease id>, reusable: -<environment id> */
	bool		reusable;		/* reuse_lease(config) */
} PcrLeaseRequest;

/* What a driver hands back for the new lease row. */
typedef struct PcrLeaseGrant
{
	const char *provider;		/* environment_leases.provider (ABI 2: set by the core) */
	char	   *provider_lease_id;	/* may be NULL (ABI 2: set by the core) */
	Jsonb	   *metadata;		/* camelCase keys; never a secret */
} PcrLeaseGrant;

/* ------------------------------------------------------------------------
 * Worker side
 * ------------------------------------------------------------------------ */
typedef enum PcrProviderStatus
{
	PCR_PROVIDER_OK = 0,
	PCR_PROVIDER_NOT_FOUND,		/* the object does not exist */
	PCR_PROVIDER_RETRY,			/* a transient failure: the same call may work later */
	PCR_PROVIDER_FATAL			/* it will not work as it is */
} PcrProviderStatus;

#define PCR_PROVIDER_MESSAGE_MAX 512
#define PCR_OBJECT_NAME_MAX 128

typedef struct PcrProviderResult
{
	char		message[PCR_PROVIDER_MESSAGE_MAX];	/* never a secret */

	/*
	 * create and resume: keys to add to the lease metadata (e.g. a remote
	 * sandbox id), NULL for none; never a secret.  Other entry points: unused.
	 */
	Jsonb	   *metadata;
} PcrProviderResult;

/* The object a worker-side entry point works on. */
typedef struct PcrSandboxObject
{
	const char *name;			/* pcr-<cluster>-<lease id or environment id> */
	const char *cluster;		/* this server's label: the system identifier, in hex */
	pg_uuid_t	lease_id;		/* the lease (reusable: the lease this call is for) */
	pg_uuid_t	company_id;
	pg_uuid_t	environment_id;
	Oid			database_id;	/* the database of the lease (0 when unknown): a label too */
	bool		reusable;
	Jsonb	   *config;			/* the environment's normalised config; NULL when unknown
								 * (its environment is gone) */
	Jsonb	   *metadata;		/* the lease's metadata (execute, release, destroy of a
								 * lease); NULL for probe, create, resume, orphans */
	TimestampTz deadline;		/* the caller gives up then */
} PcrSandboxObject;

/* One object list_owned found. */
typedef struct PcrOwnedObject
{
	char		name[PCR_OBJECT_NAME_MAX];
	pg_uuid_t	lease_id;		/* the lease it was created for */
	pg_uuid_t	company_id;
	pg_uuid_t	environment_id;
	Oid			database_id;	/* the database label; 0 when unknown */
	bool		reusable;
	TimestampTz created_at;		/* 0 when unknown: treated as old */
} PcrOwnedObject;

typedef struct PcrOwnedList PcrOwnedList;	/* the core's; filled with PcrOwnedListAdd */

typedef struct PcrSandboxProvider
{
	int			abi_version;	/* PCR_PROVIDER_ABI_VERSION (1 still loads) */
	const char *name;			/* config.provider; [a-z0-9_] */

	/* caller side (ABI 1 and 2): required */
	Jsonb	   *(*validate) (Jsonb *config);
	bool		(*reuse_lease) (Jsonb *config);
	void		(*acquire) (const PcrLeaseRequest *req, PcrLeaseGrant *grant);
	bool		(*release_needs_cleanup) (Jsonb *lease_metadata);

	/* worker side (ABI 2 only): optional, see above */
	PcrProviderStatus (*probe) (const PcrSandboxObject *obj, PcrProviderResult *res);
	PcrProviderStatus (*create) (const PcrSandboxObject *obj, PcrProviderResult *res);
	PcrProviderStatus (*resume) (const PcrSandboxObject *obj, PcrProviderResult *res);
	PcrProviderStatus (*execute) (const PcrSandboxObject *obj, const PcrExecSpec *spec,
								  PcrExecOutcome *outcome, PcrProviderResult *res);
	PcrProviderStatus (*release) (const PcrSandboxObject *obj, PcrProviderResult *res);
	PcrProviderStatus (*destroy) (const PcrSandboxObject *obj, PcrProviderResult *res);
	PcrProviderStatus (*list_owned) (const char *cluster, PcrOwnedList *list,
									 PcrProviderResult *res);
} PcrSandboxProvider;

/*
 * Register a provider; call from _PG_init while shared_preload_libraries is
 * processed (55000 otherwise, when it has worker-side entry points).  Names
 * must be unique (42710); an incomplete declaration is refused (22023), an
 * ABI this core does not know too (0A000).  The struct must stay valid for
 * the life of the process; for ABI 1 only its ABI 1 fields are read.
 */
extern PGDLLEXPORT void PcrRegisterSandboxProvider(const PcrSandboxProvider *provider);

/* Look a provider up by name; NULL when none is registered under it. */
extern PGDLLEXPORT const PcrSandboxProvider *PcrSandboxProviderByName(const char *name);

/* ------------------------------------------------------------------------
 * Helpers for providers
 * ------------------------------------------------------------------------ */

/* Fill res->message (formatted, truncated to fit) and return status. */
extern PGDLLEXPORT PcrProviderStatus PcrProviderReport(PcrProviderResult *res, PcrProviderStatus status,
													   const char *fmt,...) pg_attribute_printf(3, 4);

/* list_owned: add one object (copied). */
extern PGDLLEXPORT void PcrOwnedListAdd(PcrOwnedList *list, const PcrOwnedObject *obj);

/*
 * Parse an object name of this cluster, "pcr-<cluster>-<uuid>": true and
 * *id (the lease or, for a reusable object, the environment) when it is one.
 */
extern PGDLLEXPORT bool PcrSandboxObjectNameParse(const char *name, const char *cluster, pg_uuid_t *id);

/* Config checks for validate (the core's): 22023 "invalid <driver> environment config: ..." */
extern PGDLLEXPORT void PcrConfigRequireObject(const char *driver, Jsonb *config);
extern PGDLLEXPORT void PcrConfigError(const char *driver, const char *field, const char *fmt,...) pg_attribute_printf(3, 4) pg_attribute_noreturn();
/* keys every sandbox config may carry besides the provider's own (leaseTtlSeconds) */
extern PGDLLEXPORT bool PcrConfigIsCommonKey(const char *key);
/* check config.leaseTtlSeconds and copy it into the normalised config being built */
extern PGDLLEXPORT void PcrConfigAddTtl(const char *driver, Jsonb *config, PcrJsonbBuilder *b);

/*
 * Check a secret ref ({"type": "secret_ref", "secretId": uuid, "version":
 * "latest" | positive integer}) and return its normalised form; 22023
 * "invalid <what>: ..." when malformed.  Resolving it is the core's (in the
 * caller's transaction, for the lease's company).
 */
extern PGDLLEXPORT Jsonb *PcrConfigSecretRef(Jsonb *ref, const char *what);

/* Base metadata of a lease: driver ("sandbox") and executionWorkspaceMode. */
extern PGDLLEXPORT void PcrMetadataBegin(PcrJsonbBuilder *b, const char *driver, const PcrLeaseRequest *req);

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

/* (PcrConfigError: above) */

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
