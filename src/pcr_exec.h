/*
 * pcr_exec.h — running one command in a leased environment (installed)
 *
 * paperclip.lease_execute() (caller side, in the core) validates its
 * arguments, resolves the secret refs of the command's environment in the
 * caller's transaction and hands a packed request to a driver worker.  There
 * the driver of the lease (local, ssh) or the sandbox provider's execute
 * entry point (bwrap) runs it and fills a PcrExecOutcome.  The core packs and
 * unpacks; drivers and providers only see the two structs below.
 *
 * Contract for whoever runs a command (worker side):
 * - argv is exactly command + args: never through a shell on our side;
 * - the command's environment is exactly env (PATH, HOME and the call's
 *   variables, already resolved): nothing of the server's own environment;
 *   env holds secret values: never copy them anywhere but into the child;
 * - cwd is relative to the lease's workspace, already normalised by the
 *   core (no "." or ".." components, not absolute); "" is the workspace;
 * - stdout and stderr are kept apart, each capped at max_output bytes with
 *   a truncated flag, and both are drained to the end (EOF) so that a
 *   capped command never stalls;
 * - stdin_data is written to the command's stdin, which is then closed;
 *   a command that exits without reading it all is not an error;
 * - on timeout (timeout_ms after the start) the command's whole process
 *   tree gets SIGTERM, then SIGKILL PCR_EXEC_KILL_GRACE_MS later; output read
 *   so far is kept, timed_out is set;
 * - when the caller gives up (PcrIoWait reports PCR_IO_WAIT_ABANDONED) the
 *   process tree gets SIGKILL at once and nothing is left running;
 * - "command not found / not executable" is exit_code 127, as shells
 *   report it; a command killed by a signal has signal set (its number in
 *   Linux numbering) and exited false, told apart from one exiting with
 *   128+N; on timeout exited is false whatever the command did;
 * - started = false means the environment could not start the command at
 *   all (the sandbox did not come up, the ssh channel was refused): the
 *   caller raises 58030 with message as errdetail; transport_lost means the
 *   transport died after the command started: 08006.  Either may also be
 *   raised directly with ereport(ERROR) and that SQLSTATE;
 * - the buffers out and err are provided by the core, each with room for
 *   max_output bytes; write at most that and set the lengths and flags.
 */
#ifndef PCR_EXEC_H
#define PCR_EXEC_H

#include "postgres.h"

#define PCR_EXEC_KILL_GRACE_MS		250
#define PCR_EXEC_MESSAGE_MAX		512

/* What to run. */
typedef struct PcrExecSpec
{
	const char *command;		/* argv[0]: a program name (looked up in env's PATH) or a path */
	int			nargs;
	const char *const *args;	/* argv[1..nargs] */
	int			nenv;
	const char *const *env;		/* "NAME=value" strings: the command's whole environment */
	const char *cwd;			/* relative to the workspace; "" for the workspace itself */
	const char *stdin_data;		/* NULL: stdin is empty */
	Size		stdin_len;
	int			timeout_ms;		/* > 0 */
	Size		max_output;		/* per stream, >= 0 */
} PcrExecSpec;

/* What happened. */
typedef struct PcrExecOutcome
{
	bool		started;		/* false: the environment could not start it (58030) */
	bool		transport_lost; /* the transport died after the start (08006) */
	char		message[PCR_EXEC_MESSAGE_MAX];	/* cause for 58030/08006; never a secret */

	bool		exited;			/* exit_code is valid */
	int			exit_code;
	int			signal;			/* the signal that killed it, 0 when none */
	bool		timed_out;		/* killed because timeout_ms passed */

	char	   *out;			/* core-provided, room for max_output bytes */
	Size		out_len;
	bool		out_truncated;
	char	   *err;
	Size		err_len;
	bool		err_truncated;

	int			duration_ms;	/* from the start of the command to its end */
} PcrExecOutcome;

#endif							/* PCR_EXEC_H */
