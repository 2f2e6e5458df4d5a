/*
 * pcr_proc.h — child processes of a driver worker (installed)
 *
 * The one way paperclip_runtime and its providers start a process: from a
 * driver worker, inside an I/O operation (PcrIoWait is the only wait).  A
 * child inherits nothing implicitly from PostgreSQL:
 * - only async-signal-safe calls between fork and exec; _exit(127) on
 *   failure, the failing step and its errno reported to the parent through a
 *   close-on-exec pipe;
 * - empty signal mask and default dispositions for every signal (the worker
 *   blocks every signal around the fork, so no PostgreSQL handler ever runs
 *   in the child);
 * - every inherited descriptor closed (close_range) except 0, 1, 2, the
 *   report pipes of the spec (3, 4, ...) and its input file (after them):
 *   the postmaster-death pipe, the pipe of whoever started the server,
 *   sockets, ... are not inherited;
 * - exactly the environment of the spec; umask 022; the spec's rlimits
 *   (soft = hard, so the child cannot raise them; CORE always 0; NPROC never
 *   touched: it counts every process of the server's OS user);
 * - its own process group (setpgid in child and parent), SIGKILL when the
 *   worker dies (PR_SET_PDEATHSIG, then getppid() checked against the race
 *   of a worker dying before the prctl), and oom_score_adj 1000 so the
 *   kernel kills it before any PostgreSQL process.
 * - supervised (PcrProcSpec.supervised): a small supervisor process between
 *   the worker and the program leads the group instead, and SIGKILLs the
 *   whole group when the worker dies, even by SIGKILL.
 *
 * The parent waits on a pidfd and non-blocking pipes through PcrIoWait(),
 * reaps with waitpid(pid, WNOHANG) (never waitpid(-1)), and kills and reaps
 * the child on every path: PcrProcCommunicate() does on timeouts and when the
 * caller gives up; a PcrProc is also killed and reaped when the memory
 * context it was started in is reset or deleted (a driver worker resets its
 * request context after every request, also after an error), and when the
 * worker exits (proc_exit: FATAL, SIGTERM, postmaster death).  A worker
 * killed with SIGKILL cannot clean up: its direct child gets SIGKILL from
 * the parent-death signal, and whatever the child started must die with it
 * (bwrap's --die-with-parent and PID namespace do; a plain process group
 * does not, unless the child is supervised).
 */
#ifndef PCR_PROC_H
#define PCR_PROC_H

#include "postgres.h"

#include "lib/ilist.h"
#include "utils/timestamp.h"

#include "pcr_exec.h"

/* extra pipes from the child to the parent (child descriptors 3, 4, ...) */
#define PCR_PROC_MAX_REPORTS 2

/* RLIMIT_NOFILE of a child whose spec leaves it 0 */
#define PCR_PROC_DEFAULT_NOFILE 1024

/*
 * How long output is still read after the child has exited (its process
 * group is killed then), for descriptors some escaped process keeps open.
 */
#define PCR_PROC_DRAIN_MS 1000

typedef struct PcrProcSpec
{
	const char *path;			/* absolute path of the program: execve, no PATH search */
	const char *const *argv;	/* NULL-terminated; argv[0] is what the program sees */
	const char *const *envp;	/* NULL-terminated: the child's whole environment */
	const char *cwd;			/* absolute; NULL: "/" */
	bool		stdin_pipe;		/* a pipe to the child's stdin (else /dev/null) */

	/*
	 * Pipes from the child: report i is the child's descriptor 3 + i (its
	 * write end), read by the parent through PcrProcReadReport(); e.g. bwrap
	 * --json-status-fd 3.
	 */
	int			nreports;

	/*
	 * Bytes the child reads from descriptor 3 + nreports, a memory file
	 * (memfd) at offset 0: NULL for none.  For what must not be in the
	 * child's argv, which /proc shows every user of the host: e.g. bwrap
	 * --args with the --setenv of secret values.  Once the child has it,
	 * only the child holds it.
	 */
	const char *input_data;
	Size		input_len;

	uint64		rlimit_as;		/* bytes; 0: the worker's hard limit */
	uint64		rlimit_fsize;	/* bytes; 0: the worker's hard limit */
	int			rlimit_cpu;		/* seconds; 0: the worker's hard limit */
	int			rlimit_nofile;	/* 0: PCR_PROC_DEFAULT_NOFILE */

	/*
	 * Start a supervisor (a copy of the worker that does not exec) which
	 * starts the program in its own process group and exits as the program
	 * does (its code or its signal), and SIGKILLs that group, with whatever
	 * the program started in it, when the worker dies, even by SIGKILL: for
	 * programs that may start processes of their own and have no
	 * --die-with-parent of their own (local execute).  pid is then the
	 * supervisor's, and the group its.
	 */
	bool		supervised;
} PcrProcSpec;

typedef struct PcrProc
{
	pid_t		pid;			/* also its process group */
	int			pidfd;			/* -1 when the kernel has none: then polled */
	int			stdin_fd;		/* parent ends, non-blocking; -1 when closed */
	int			stdout_fd;
	int			stderr_fd;
	int			report_fd[PCR_PROC_MAX_REPORTS];
	int			nreports;

	/*
	 * The process group that gets SIGTERM at a timeout (and SIGKILL with the
	 * child's own group).  PcrProcStart sets it to pid; a provider whose
	 * program runs the command in another session (bwrap --new-session:
	 * the sandbox's init and the command) points it there once it knows it.
	 */
	pid_t		signal_group;

	/*
	 * Non-zero: execve() of path failed with this errno (ENOENT, EACCES,
	 * ...).  The child has exited with 127 and is reaped; Communicate
	 * reports exit code 127 and "<path>: <strerror>" on stderr, as a shell
	 * does.
	 */
	int			exec_errno;

	bool		reaped;
	int			wait_status;	/* waitpid status, valid once reaped */
	TimestampTz started_at;
	char	   *path;			/* a copy, for messages */
	int			lifeline_fd;	/* supervised: the end whose closing ends the group; else -1 */

	/* bookkeeping of proc_*.c: the worker's list of children, the reset callback */
	dlist_node	node;
	bool		tracked;
	MemoryContextCallback reset_cb;
} PcrProc;

/*
 * Start a child (worker side).  Raises 58030 (errdetail: the step and its
 * errno) when it cannot be started: pipe, fork, or a setup step in the child
 * (chdir to cwd, setpgid, ...).  A program that cannot be executed is not an
 * error: see exec_errno.  The PcrProc lives in CurrentMemoryContext and is
 * killed and reaped when that context is reset or deleted.
 */
extern PGDLLEXPORT PcrProc *PcrProcStart(const PcrProcSpec *spec);

/*
 * Feed stdin_data to the child's stdin (then close it), drain stdout and
 * stderr into outcome->out and outcome->err (each capped at max_output
 * bytes with the truncated flags set; reading goes on to the end, so a
 * capped child never stalls on a full pipe) and wait for the exit, all
 * through PcrIoWait().  timeout_ms after the start, signal_group gets
 * SIGTERM (timed_out), and PCR_EXEC_KILL_GRACE_MS later SIGKILL with the
 * child's own group.  Once the child has exited its process group is
 * SIGKILLed (nothing it started in its group outlives it) and output is
 * read for at most PCR_PROC_DRAIN_MS more.  When the caller of the request
 * gives up, the child is SIGKILLed and reaped at once and 57014 is raised.
 * Fills exited/exit_code/signal/timed_out, the output lengths and flags and
 * duration_ms (outcome->started, message and transport_lost are left as
 * they are); the child is reaped on return.  Report pipes are not read.
 */
extern PGDLLEXPORT void PcrProcCommunicate(PcrProc *proc, const char *stdin_data, Size stdin_len,
										   int timeout_ms, Size max_output, PcrExecOutcome *outcome);

/*
 * Read report pipe `index` into buf (appending, at most max bytes in all)
 * until a newline has been read (stop_at_newline) or the child closes it,
 * waiting through PcrIoWait() until deadline.  Returns true when it stopped
 * at a newline or at the end of the pipe, false on the deadline or when the
 * child exited before writing a newline.  Raises 57014 (after killing the
 * child) when the caller gives up.  Other output of the child waits in its
 * pipes meanwhile.
 */
extern PGDLLEXPORT bool PcrProcReadReport(PcrProc *proc, int index, StringInfo buf, Size max,
										  bool stop_at_newline, TimestampTz deadline);

/* SIGKILL signal_group and the child's group, then reap; idempotent, for error paths. */
extern PGDLLEXPORT void PcrProcKill(PcrProc *proc);

/*
 * Resolve a command name the way execvp does: a name containing '/' is
 * taken as it is (made absolute against cwd when relative); otherwise the
 * first directory of path_env (a PATH value) holding an executable regular
 * file of that name.  Returns a palloc'd absolute path, or NULL when there
 * is none (a shell's "command not found", exit code 127).
 */
extern PGDLLEXPORT char *PcrProcFindProgram(const char *command, const char *path_env, const char *cwd);

#endif							/* PCR_PROC_H */
