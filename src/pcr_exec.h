/*
 * pcr_exec.h — running one command in a leased environment (installed)
 *
 * paperclip.lease_execute() (caller side, in the core) validates its
 * arguments, resolves secret refs of the environment in the caller's
 * transaction and hands a packed request to a driver worker.  There the
 * driver of the lease (local, ssh) or the sandbox provider's execute entry
 * point (bwrap) runs it and fills a PcrExecOutcome.  The core packs and
 * unpacks; drivers and providers only see the structs below.
 *
 * Contract for whoever runs a command (worker side):
 * - argv is exactly command + args: never through a shell on our side;
 * - the command's environment is exactly env (PATH, HOME and the call's
 *   variables, already resolved): nothing of the server's own environment;
 * - cwd is relative to the lease's workspace, already normalised by the
 *   core (no "..", not absolute); "" is the workspace itself;
 * - stdout and stderr are kept apart, each capped at max_output bytes with
 *   a truncated flag, and both are drained to the end so that a capped
 *   command never stalls;
 * - on timeout the command's whole process tree gets SIGTERM, then SIGKILL
 *   PCR_EXEC_KILL_GRACE_MS later; output read so far is kept;
 * - when the caller gives up (PcrIoWait reports PCR_IO_WAIT_ABANDONED) the
 *   process tree is killed at once and nothing is left running;
 * - "command not found / not executable" is exit_code 127, as shells
 *   report it; a command killed by a signal has signal set (exit_code is
 *   then meaningless), distinct from one exiting with 128+N;
 * - started = false means the environment could not start the command at
 *   all (the sandbox did not come up, the ssh channel was refused): the
 *   caller raises 58030 with message as errdetail; transport_lost means the
 *   transport died after the command started: 08006.
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
	const char *stdin_data;		/* NULL: stdin is empty (/dev/null) */
	Size		stdin_len;
	int			timeout_ms;		/* > 0 */
	Size		max_output;		/* per stream, > 0 */
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

	int			duration_ms;
} PcrExecOutcome;

#endif							/* PCR_EXEC_H */
