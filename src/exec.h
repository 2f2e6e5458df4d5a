/*
 * exec.h — paperclip.lease_execute(): what the core shares with the drivers
 *
 * lease_exec.c         the SQL entry point: checks, the lease, the result
 * lease_exec_args.c    argument checks, cwd normalisation, the environment
 * lease_exec_audit.c   paperclip.lease_executions: in the caller's
 *                      transaction, and out of band for calls that aborted
 * exec_pack.c          a call packed into a pool request, the outcome back
 * exec_text.c          output as text (invalid UTF-8 replaced), signal names
 *
 * One path for every driver and provider.  Caller side, in the caller's
 * transaction: the driver's exec_prepare (driver.h) says where the lease's
 * commands run (the workspace, the environment's defaults) and refuses what
 * it cannot do; its execute hands the call, behind the driver's own request
 * bytes, to PcrExecInvoke: one wire format, one pool call with one deadline
 * rule, the answer area sized by the output cap.  Worker side, every execute
 * operation ("local.execute", "ssh.execute", "<provider>.execute") is
 * PcrExecServe with the driver's PcrExecutor: the call unpacked into the
 * PcrExecSpec of pcr_exec.h (pointing into the request), the outcome's
 * buffers pointing into the answer, so the output is written in place.
 */
#ifndef PCR_EXEC_INTERNAL_H
#define PCR_EXEC_INTERNAL_H

#include "pcr.h"
#include "pcr_exec.h"
#include "io.h"

#include "utils/jsonb.h"

/* Limits (docs/execute.md) */
#define PCR_EXEC_MAX_TIMEOUT_MS		(60 * 60 * 1000)	/* one hour */
#define PCR_EXEC_MAX_OUTPUT			(16 * 1024 * 1024)	/* per stream */
#define PCR_EXEC_MAX_INPUT			(1024 * 1024)	/* args + env + stdin */
#define PCR_EXEC_MAX_COMMAND		4096
#define PCR_EXEC_MAX_PATH			4096	/* cwd, workspace */
#define PCR_EXEC_MAX_VARS			1024
#define PCR_EXEC_MAX_ARGS			(PCR_EXEC_MAX_INPUT / 2)

#define PCR_EXEC_DEFAULT_TIMEOUT_MS	(5 * 60 * 1000)
#define PCR_EXEC_DEFAULT_MAX_OUTPUT	(256 * 1024)
#define PCR_EXEC_DEFAULT_PATH		"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* The largest request and answer of an execute operation (beyond the driver's own bytes). */
#define PCR_EXEC_REQUEST_MAX(driver_max) \
	((Size) (driver_max) + 1024 + PCR_EXEC_MAX_COMMAND + PCR_EXEC_MAX_PATH + \
	 2 * PCR_EXEC_MAX_PATH + PCR_EXEC_MAX_INPUT + 2 * PCR_EXEC_MAX_VARS + PCR_EXEC_MAX_ARGS)
#define PCR_EXEC_REPLY_HEAD			1024	/* the fixed part of an answer */
#define PCR_EXEC_RESPONSE_SIZE(max_output) ((Size) PCR_EXEC_REPLY_HEAD + 2 * (Size) (max_output))
#define PCR_EXEC_RESPONSE_MAX		PCR_EXEC_RESPONSE_SIZE(PCR_EXEC_MAX_OUTPUT)

/* GUCs (lease_exec.c) */
extern int	pcr_execute_timeout;		/* milliseconds */
extern int	pcr_execute_max_output;		/* bytes */
extern void PcrExecInit(bool preloading);	/* _PG_init: settings, reconciler step */

/* ------------------------------------------------------------------------
 * Caller side
 * ------------------------------------------------------------------------ */

/* The lease a command runs in, as lease_execute found it (locked FOR KEY SHARE). */
typedef struct PcrExecLease
{
	pg_uuid_t	id;
	pg_uuid_t	company_id;
	pg_uuid_t	environment_id;
	bool		has_run;
	pg_uuid_t	heartbeat_run_id;
	const char *environment_name;
	const char *provider;		/* may be NULL */
	const char *provider_lease_id;	/* may be NULL */
	Jsonb	   *metadata;		/* the lease's, may be NULL */
	Jsonb	   *config;			/* the environment's, as stored */
	bool		written_here;	/* this transaction wrote the lease row (not committed yet) */
} PcrExecLease;

/* Where the commands of a lease run, as its driver says (exec_prepare). */
typedef struct PcrExecTarget
{
	const char *workspace;		/* HOME and the base of cwd, as the command sees it */
	int			timeout_ms;		/* the environment's default timeout; 0: none */
	Jsonb	   *env;			/* the environment's default variables; NULL: none */
} PcrExecTarget;

/* One variable of the command's environment. */
typedef struct PcrExecVar
{
	const char *name;
	char	   *value;			/* palloc'd; zeroed by PcrExecCallWipe when secret */
	Size		len;
	bool		secret;			/* resolved from a secret ref */
} PcrExecVar;

/* A call, checked and resolved: what a driver's execute packs. */
typedef struct PcrExecCall
{
	pg_uuid_t	execution_id;
	const char *command;
	int			nargs;
	const char **args;
	const char *cwd;			/* normalised, relative; "" is the workspace */
	int			nvars;
	PcrExecVar *vars;			/* PATH, HOME, then the others */
	const char *stdin_data;		/* NULL: none */
	Size		stdin_len;
	int			timeout_ms;
	Size		max_output;
} PcrExecCall;

/* How a driver's execute hands a call to its I/O operation. */
typedef struct PcrExecInvokeArgs
{
	const PcrIoOperation *op;
	const pg_uuid_t *company_id;	/* the lease's company: its share of the pool */
	uint64		route;			/* affinity (PcrIoRouteOf), 0: any worker */
	char	   *driver_data;	/* the driver's own part of the request */
	Size		driver_len;
	const PcrIoRange *driver_secrets;	/* ranges of driver_data holding a secret: zeroed once copied */
	int			ndriver_secrets;
	int			setup_ms;		/* time the driver may need before the command starts */
	const char *target;			/* for messages, e.g. the ssh host */
} PcrExecInvokeArgs;

/*
 * Pack call behind the driver's bytes, hand it to a driver worker and wait
 * (cancellable: 57014, and the worker kills the command), then unpack the
 * outcome; raises 58030/08006 for an outcome that says so.  Every secret of
 * the request (the driver's ranges and the secret variables) is a secret
 * range of the pool call: zeroed in every copy.  The call's deadline is the
 * same for every driver: finding a worker (paperclip.acquire_timeout) + the
 * driver's setup_ms + the command's timeout + a margin for the kill and the
 * answer.  The outcome's buffers point into the answer (palloc'd).
 */
extern void PcrExecInvoke(const PcrExecCall *call, const PcrExecInvokeArgs *args,
						  PcrExecOutcome *outcome);

/* Zero (and free) the secret variables of a call. */
extern void PcrExecCallWipe(PcrExecCall *call);

/* lease_exec_args.c: the workspace-relative cwd ("" for the workspace), or 22023. */
extern char *PcrExecNormaliseCwd(const char *cwd);

/* A JSON object of variables (strings or secret refs) checked: 22023 naming the bad one. */
extern void PcrExecCheckEnv(Jsonb *env, const char *what);

/*
 * The command's environment: PATH (the default unless a variable sets it),
 * HOME = workspace, then defaults (the environment's), then env (the
 * call's), later ones winning; secret refs resolved for company (checked
 * with PcrExecCheckEnv before).  Wipe with PcrExecCallWipe.
 */
extern void PcrExecBuildVars(PcrExecCall *call, const pg_uuid_t *company, const char *workspace,
							 Jsonb *defaults, Jsonb *env);

/* exec_text.c */
extern text *PcrExecOutputText(const char *data, Size len);
extern const char *PcrExecSignalName(int signo);	/* "SIGKILL"; NULL when unknown */
extern int	PcrExecSignalNumber(const char *name);	/* "KILL" or "SIGKILL" → 9; 0 unknown */

/* ------------------------------------------------------------------------
 * Worker side (inside an execute operation)
 * ------------------------------------------------------------------------ */

/*
 * What a driver or provider does with one call, given its own request bytes
 * (MAXALIGN'd, read in place; a secret in it may be wiped there): fill outcome as pcr_exec.h says (started is
 * true, its out/err point into the answer with room for spec->max_output
 * bytes each, possibly 0), or raise (58030, 08006, 57014, ...).  spec and
 * driver_data point into the request, which the pool zeroes afterwards.
 */
typedef void (*PcrExecutor) (const PcrIoRequest *req, char *driver_data, Size driver_len,
							 const PcrExecSpec *spec, PcrExecOutcome *outcome);

/* The run function of every execute operation: unpack, executor, answer. */
extern void PcrExecServe(PcrIoRequest *req, PcrIoResponse *resp, PcrExecutor executor);

#endif							/* PCR_EXEC_INTERNAL_H */
