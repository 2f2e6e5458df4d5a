/*
 * pcr_proc.h — child processes of a driver worker (installed)
 *
 * The one way paperclip_runtime and its providers start a process: from a
 * driver worker, inside an I/O operation.  A child inherits nothing
 * implicitly from PostgreSQL:
 * - only async-signal-safe calls between fork and exec; _exit(127) on
 *   failure, the exec errno reported to the parent through a close-on-exec
 *   pipe;
 * - empty signal mask and default dispositions for every signal;
 * - every inherited descriptor closed (close_range) except 0, 1, 2 and the
 *   ones the spec asks to keep;
 * - exactly the environment of the spec; umask 022; the spec's rlimits
 *   (CORE always 0, never NPROC);
 * - its own process group (setpgid), SIGKILL when the worker dies
 *   (PR_SET_PDEATHSIG, then getppid() checked against a race), and
 *   oom_score_adj 1000 so the kernel kills it before a backend.
 * The parent waits on a pidfd and non-blocking pipes through PcrIoWait(),
 * reaps with waitpid(pid, WNOHANG) (never waitpid(-1)), and kills and reaps
 * the child on every error path: a child never outlives the operation that
 * started it, nor the worker.
 *
 * Draft interface from the lead; the providers helper owns and refines it.
 */
#ifndef PCR_PROC_H
#define PCR_PROC_H

#include "postgres.h"

#include "utils/timestamp.h"

#include "pcr_exec.h"

#define PCR_PROC_MAX_KEEP_FDS 4

typedef struct PcrProcSpec
{
	const char *path;			/* absolute path of the program: execve, no PATH search */
	const char *const *argv;	/* NULL-terminated */
	const char *const *envp;	/* NULL-terminated: the child's whole environment */
	const char *cwd;			/* absolute; NULL: "/" */
	bool		stdin_pipe;		/* a pipe to the child's stdin (else /dev/null) */

	/* descriptors the child keeps open (e.g. bwrap --info-fd), numbered as in the child */
	int			nkeep;
	int			keep_fds[PCR_PROC_MAX_KEEP_FDS];

	uint64		rlimit_as;		/* bytes, 0: unlimited */
	uint64		rlimit_fsize;	/* bytes, 0: unlimited */
	int			rlimit_cpu;		/* seconds, 0: unlimited */
	int			rlimit_nofile;	/* 0: a fixed default */
} PcrProcSpec;

typedef struct PcrProc
{
	pid_t		pid;
	int			pidfd;
	int			stdin_fd;		/* parent ends, non-blocking, -1 when closed */
	int			stdout_fd;
	int			stderr_fd;
	bool		reaped;
	int			wait_status;	/* valid once reaped */
	TimestampTz started_at;
} PcrProc;

/*
 * Start a child (worker side).  Raises 58030 when it cannot be started
 * (fork, pipe or exec failure, errno in errdetail).
 */
extern PcrProc *PcrProcStart(const PcrProcSpec *spec);

/*
 * Feed stdin, drain stdout and stderr into the outcome's buffers (each
 * capped at max_output, drained to the end), and wait for the exit, all
 * through PcrIoWait().  After timeout_ms the process group gets SIGTERM,
 * then SIGKILL PCR_EXEC_KILL_GRACE_MS later; when the caller gives up it
 * gets SIGKILL at once.  Fills exited/exit_code/signal/timed_out, the
 * output fields and duration_ms; the child is reaped on return.
 */
extern void PcrProcCommunicate(PcrProc *proc, const char *stdin_data, Size stdin_len,
							   int timeout_ms, Size max_output, PcrExecOutcome *outcome);

/* SIGKILL the child's process group and reap it; idempotent, for error paths. */
extern void PcrProcKill(PcrProc *proc);

#endif							/* PCR_PROC_H */
