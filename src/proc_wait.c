/*
 * proc_wait.c — talking to, waiting for, killing and reaping a child (pcr_proc.h)
 *
 * All waits are PcrIoWait() on the child's pidfd and its non-blocking pipes,
 * so a driver worker stays responsive to its latch, SIGTERM, postmaster
 * death and its caller giving up.  A child is reaped with waitpid(pid,
 * WNOHANG) only; its exit is first seen with waitid(WNOWAIT), so that its
 * process group can be killed while the pid still belongs to the zombie
 * (never a reused pid).
 *
 * Every started child is in a per-process list until it is reaped and its
 * descriptors are closed: the reset callback of the memory context it was
 * started in kills and reaps it, and an on_proc_exit callback SIGKILLs
 * whatever is left when the worker exits.
 */
#include "pcr.h"
#include "proc_internal.h"
#include "io.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/memutils.h"

#include <limits.h>

/* how long a killed child may take to go (only a child stuck in the kernel takes any) */
#define PCR_PROC_REAP_WAIT_MS 5000
/* poll interval when the kernel gives no pidfd */
#define PCR_PROC_POLL_MS 20
/* reads of one pipe per wake-up, so that a flood on one never starves the others */
#define PCR_PROC_READS_PER_WAKE 16

static dlist_head live_children = DLIST_STATIC_INIT(live_children);
static bool exit_hook_installed = false;
static char discard[65536];

/* ------------------------------------------------------------------------
 * Bookkeeping
 * ------------------------------------------------------------------------ */
static void
untrack(PcrProc *proc)
{
	if (proc->tracked)
	{
		dlist_delete(&proc->node);
		proc->tracked = false;
	}
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void
PcrProcCloseFds(PcrProc *proc)
{
	close_fd(&proc->stdin_fd);
	close_fd(&proc->stdout_fd);
	close_fd(&proc->stderr_fd);
	for (int i = 0; i < PCR_PROC_MAX_REPORTS; i++)
		close_fd(&proc->report_fd[i]);
	close_fd(&proc->lifeline_fd);	/* a supervisor still there SIGKILLs its group */
	if (proc->reaped)
		close_fd(&proc->pidfd);
}

bool
PcrProcTryReap(PcrProc *proc)
{
	int			status;
	pid_t		r;

	if (proc->reaped)
		return true;
	do
		r = waitpid(proc->pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == proc->pid || (r < 0 && errno == ECHILD))
	{
		proc->reaped = true;
		proc->wait_status = r == proc->pid ? status : 0;
		close_fd(&proc->pidfd);
		return true;
	}
	return false;
}

/* Has the child exited?  It stays a zombie (its pid and group taken) until reaped. */
static bool
has_exited(PcrProc *proc)
{
	siginfo_t	info;

	if (proc->reaped)
		return true;
	memset(&info, 0, sizeof(info));
	if (waitid(P_PID, proc->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
		return errno == ECHILD;
	return info.si_pid == proc->pid;
}

/* SIGKILL what the child may have left in its groups; only while its pid is still ours. */
static void
kill_groups(PcrProc *proc)
{
	if (proc->reaped)
		return;
	if (proc->signal_group > 0 && proc->signal_group != proc->pid)
		(void) kill(-proc->signal_group, SIGKILL);
	(void) kill(-proc->pid, SIGKILL);
	(void) kill(proc->pid, SIGKILL);
}

/* Wait (bounded) for a killed child and reap it; never raises. */
static void
reap_killed(PcrProc *proc)
{
	for (int waited = 0; !PcrProcTryReap(proc) && waited < PCR_PROC_REAP_WAIT_MS;
		 waited += PCR_PROC_POLL_MS)
	{
		if (proc->pidfd >= 0)
		{
			struct pollfd p = {.fd = proc->pidfd,.events = POLLIN};

			(void) poll(&p, 1, PCR_PROC_POLL_MS);
		}
		else
			pg_usleep(PCR_PROC_POLL_MS * 1000L);
	}
}

void
PcrProcKill(PcrProc *proc)
{
	if (proc == NULL)
		return;
	if (!proc->reaped)
	{
		kill_groups(proc);
		reap_killed(proc);
	}
	PcrProcCloseFds(proc);
	untrack(proc);
}

static void
proc_reset_callback(void *arg)
{
	PcrProcKill((PcrProc *) arg);
}

/* The worker exits: no child of it survives (nothing is waited for here). */
static void
proc_exit_kill_all(int code, Datum arg)
{
	dlist_iter	it;

	dlist_foreach(it, &live_children)
		kill_groups(dlist_container(PcrProc, node, it.cur));
}

void
PcrProcTrack(PcrProc *proc)
{
	if (!exit_hook_installed)
	{
		on_proc_exit(proc_exit_kill_all, (Datum) 0);
		exit_hook_installed = true;
	}
	dlist_push_tail(&live_children, &proc->node);
	proc->tracked = true;
	proc->reset_cb.func = proc_reset_callback;
	proc->reset_cb.arg = proc;
	MemoryContextRegisterResetCallback(GetMemoryChunkContext(proc), &proc->reset_cb);
}

/* ------------------------------------------------------------------------
 * Pipes
 * ------------------------------------------------------------------------ */

/* Read what a pipe has into buf (up to cap; the rest is counted as truncation). */
static void
drain(int *fd, char *buf, Size cap, Size *len, bool *truncated)
{
	for (int i = 0; i < PCR_PROC_READS_PER_WAKE && *fd >= 0; i++)
	{
		bool		keep = *len < cap;
		char	   *dst = keep ? buf + *len : discard;
		Size		room = keep ? Min(cap - *len, sizeof(discard)) : sizeof(discard);
		ssize_t		n = read(*fd, dst, room);

		if (n > 0)
		{
			if (keep)
				*len += n;
			else
				*truncated = true;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		close_fd(fd);			/* end of file, or an error: nothing more comes */
	}
}

static void
feed_stdin(PcrProc *proc, const char *data, Size len, Size *off)
{
	while (*off < len)
	{
		ssize_t		n = write(proc->stdin_fd, data + *off, Min(len - *off, 65536));

		if (n > 0)
			*off += n;
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		else
			break;				/* EPIPE: the child reads no more */
	}
	close_fd(&proc->stdin_fd);
}

/* ------------------------------------------------------------------------
 * Communicate
 * ------------------------------------------------------------------------ */
typedef struct PcrCommState
{
	TimestampTz term_at;		/* SIGTERM then */
	TimestampTz kill_at;		/* SIGKILL then (once timed out) */
	TimestampTz drain_until;	/* after the exit: stop reading then */
	bool		killed;
	Size		in_off;
} PcrCommState;

static void
fill_status(PcrProc *proc, PcrExecOutcome *o)
{
	o->exited = WIFEXITED(proc->wait_status);
	o->exit_code = o->exited ? WEXITSTATUS(proc->wait_status) : 0;
	o->signal = WIFSIGNALED(proc->wait_status) ? WTERMSIG(proc->wait_status) : 0;
	o->duration_ms = (int) Min((GetCurrentTimestamp() - proc->started_at) / 1000, INT_MAX);
}

/* An exec that failed reads like a shell's "command not found". */
static void
report_exec_failure(PcrProc *proc, Size max_output, PcrExecOutcome *o)
{
	char	   *msg = psprintf("%s: %s\n", proc->path, strerror(proc->exec_errno));
	Size		len = strlen(msg);

	o->err_len = Min(len, max_output);
	memcpy(o->err, msg, o->err_len);
	o->err_truncated = len > max_output;
	o->exited = true;
	o->exit_code = 127;
	o->signal = 0;
	o->duration_ms = 0;
}

/* Timers: SIGTERM at the timeout, SIGKILL after the grace. */
static void
apply_timers(PcrProc *proc, PcrCommState *st, PcrExecOutcome *o, TimestampTz now)
{
	if (proc->reaped)
		return;
	if (!o->timed_out && now >= st->term_at)
	{
		o->timed_out = true;
		(void) kill(-proc->signal_group, SIGTERM);
		st->kill_at = TimestampTzPlusMilliseconds(now, PCR_EXEC_KILL_GRACE_MS);
	}
	if (o->timed_out && !st->killed && now >= st->kill_at)
	{
		kill_groups(proc);
		st->killed = true;
	}
}

/* The child has exited: kill what it left in its group, reap, keep reading a little. */
static void
child_exited(PcrProc *proc, PcrCommState *st)
{
	(void) kill(-proc->pid, SIGKILL);
	(void) PcrProcTryReap(proc);
	st->drain_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PCR_PROC_DRAIN_MS);
}

static TimestampTz
next_wake(PcrProc *proc, PcrCommState *st, PcrExecOutcome *o, TimestampTz now)
{
	TimestampTz wake;

	if (proc->reaped)
		return st->drain_until;
	if (!o->timed_out)
		wake = st->term_at;
	else if (!st->killed)
		wake = st->kill_at;
	else
		wake = TimestampTzPlusMilliseconds(now, 1000);	/* killed: the pidfd will say */
	if (proc->pidfd < 0)
		wake = Min(wake, TimestampTzPlusMilliseconds(now, PCR_PROC_POLL_MS));
	return wake;
}

/* One wait and what it brought; false when there is nothing left to do. */
static bool
communicate_step(PcrProc *proc, PcrCommState *st, const char *in, Size in_len,
				 Size max_output, PcrExecOutcome *o)
{
	PcrIoWaitFd fds[4];
	int			nfds = 0;
	int			ipid = -1;
	int			rc;
	TimestampTz now = GetCurrentTimestamp();

	apply_timers(proc, st, o, now);
	if (proc->reaped && (now >= st->drain_until || (proc->stdout_fd < 0 && proc->stderr_fd < 0)))
		return false;

	if (proc->stdin_fd >= 0)
		fds[nfds++] = (PcrIoWaitFd) {.fd = proc->stdin_fd,.events = WL_SOCKET_WRITEABLE};
	if (proc->stdout_fd >= 0)
		fds[nfds++] = (PcrIoWaitFd) {.fd = proc->stdout_fd,.events = WL_SOCKET_READABLE};
	if (proc->stderr_fd >= 0)
		fds[nfds++] = (PcrIoWaitFd) {.fd = proc->stderr_fd,.events = WL_SOCKET_READABLE};
	if (!proc->reaped && proc->pidfd >= 0)
	{
		ipid = nfds;
		fds[nfds++] = (PcrIoWaitFd) {.fd = proc->pidfd,.events = WL_SOCKET_READABLE};
	}

	rc = PcrIoWait(fds, nfds, next_wake(proc, st, o, now));
	if (rc & PCR_IO_WAIT_ABANDONED)
	{
		PcrProcKill(proc);
		fill_status(proc, o);
		PcrIoCheckAbandoned();
	}
	/* whatever woke us, serve every descriptor: the calls do not block */
	if (proc->stdin_fd >= 0)
		feed_stdin(proc, in, in_len, &st->in_off);
	drain(&proc->stdout_fd, o->out, max_output, &o->out_len, &o->out_truncated);
	drain(&proc->stderr_fd, o->err, max_output, &o->err_len, &o->err_truncated);
	if (!proc->reaped && (ipid < 0 || fds[ipid].ready != 0) && has_exited(proc))
		child_exited(proc, st);
	return true;
}

void
PcrProcCommunicate(PcrProc *proc, const char *stdin_data, Size stdin_len,
				   int timeout_ms, Size max_output, PcrExecOutcome *o)
{
	PcrCommState st;

	memset(&st, 0, sizeof(st));
	o->out_len = o->err_len = 0;
	o->out_truncated = o->err_truncated = false;
	o->exited = o->timed_out = false;
	o->exit_code = o->signal = 0;
	if (proc->exec_errno != 0)
	{
		report_exec_failure(proc, max_output, o);
		close_fd(&proc->stdin_fd);
		close_fd(&proc->stdout_fd);
		close_fd(&proc->stderr_fd);
		return;
	}
	if (proc->stdin_fd >= 0 && (stdin_data == NULL || stdin_len == 0))
		close_fd(&proc->stdin_fd);
	st.term_at = TimestampTzPlusMilliseconds(proc->started_at, Max(timeout_ms, 1));

	while (communicate_step(proc, &st, stdin_data, stdin_len, max_output, o))
		;
	if (!proc->reaped)
		PcrProcKill(proc);		/* cannot happen: the loop ends only after the reap */
	close_fd(&proc->stdin_fd);
	close_fd(&proc->stdout_fd);
	close_fd(&proc->stderr_fd);
	fill_status(proc, o);
}

/* ------------------------------------------------------------------------
 * Report pipes
 * ------------------------------------------------------------------------ */

/* Append what the pipe has; 1: newline seen (when asked), 2: end of file, 0: nothing more now. */
static int
read_report(int *fd, StringInfo buf, Size max, bool stop_at_newline)
{
	char		chunk[1024];

	while (*fd >= 0)
	{
		Size		room = max > (Size) buf->len ? max - buf->len : 0;
		ssize_t		n;

		if (room == 0)
			return 0;
		n = read(*fd, chunk, Min(room, sizeof(chunk)));
		if (n > 0)
		{
			appendBinaryStringInfo(buf, chunk, n);
			if (stop_at_newline && memchr(chunk, '\n', n) != NULL)
				return 1;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		close_fd(fd);
		return 2;
	}
	return 2;
}

bool
PcrProcReadReport(PcrProc *proc, int index, StringInfo buf, Size max,
				  bool stop_at_newline, TimestampTz deadline)
{
	int		   *fd;

	if (index < 0 || index >= proc->nreports)
		elog(ERROR, "child process has no report pipe %d", index);
	fd = &proc->report_fd[index];
	for (;;)
	{
		PcrIoWaitFd fds[2];
		int			nfds = 0;
		int			got = read_report(fd, buf, max, stop_at_newline);
		int			rc;
		TimestampTz wake = deadline;

		if (got == 1)
			return true;
		if (got == 2)
			return !stop_at_newline;
		if ((Size) buf->len >= max)
			return false;
		/* the child is gone and the pipe is empty: nothing more will come from it */
		if (has_exited(proc))
			return read_report(fd, buf, max, stop_at_newline) == 1;

		fds[nfds++] = (PcrIoWaitFd) {.fd = *fd,.events = WL_SOCKET_READABLE};
		if (proc->pidfd >= 0)
			fds[nfds++] = (PcrIoWaitFd) {.fd = proc->pidfd,.events = WL_SOCKET_READABLE};
		else
			wake = Min(wake, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PCR_PROC_POLL_MS));
		rc = PcrIoWait(fds, nfds, wake);
		if (rc & PCR_IO_WAIT_ABANDONED)
		{
			PcrProcKill(proc);
			PcrIoCheckAbandoned();
		}
		if (GetCurrentTimestamp() >= deadline)
			return read_report(fd, buf, max, stop_at_newline) == 1;
	}
}
