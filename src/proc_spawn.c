/*
 * proc_spawn.c — starting a child process that inherits nothing (pcr_proc.h)
 *
 * Everything the child needs is computed before it is created (descriptor
 * numbers, rlimit values, the parent's pid); between clone and exec the
 * child makes only async-signal-safe calls (plain system calls) and reports
 * a failing step with its errno through a close-on-exec pipe, then
 * _exit(127).  The parent blocks every signal around the clone, so no
 * PostgreSQL signal handler can run in the child before it has reset every
 * disposition to the default.
 *
 * Descriptors: every pipe end the child will move into place is first moved
 * above PCR_PROC_FD_FLOOR in the parent, so that the child's dup2() onto
 * 0, 1, 2, 3, ... never overwrites a source it still needs.
 */
#include "pcr.h"
#include "proc_internal.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "miscadmin.h"

/* pipe ends the child moves into place live at or above this descriptor */
#define PCR_PROC_FD_FLOOR 16

/* The steps of the child that can fail, as reported to the parent. */
typedef enum PcrChildStep
{
	STEP_SETPGID = 1,
	STEP_PDEATHSIG,
	STEP_DUP,
	STEP_CLOSE,
	STEP_RLIMIT,
	STEP_CHDIR,
	STEP_EXEC,
	STEP_CLONE
} PcrChildStep;

static const char *const step_names[] = {
	[STEP_SETPGID] = "setpgid",
	[STEP_PDEATHSIG] = "prctl(PR_SET_PDEATHSIG)",
	[STEP_DUP] = "dup2",
	[STEP_CLOSE] = "close_range",
	[STEP_RLIMIT] = "setrlimit",
	[STEP_CHDIR] = "chdir",
	[STEP_EXEC] = "execve",
	[STEP_CLONE] = "clone",
};

typedef struct PcrChildReport
{
	int32		step;
	int32		err;
} PcrChildReport;

#define NLIMITS 5

/* What the child does, all decided before the fork. */
typedef struct PcrChildPlan
{
	const char *path;
	char	   *const *argv;
	char	   *const *envp;
	const char *cwd;
	pid_t		parent;
	bool		in_group;		/* stay in the parent's process group (under a supervisor) */
	int			lifeline[2];	/* supervised: the supervisor's end, the worker's; else -1 */
	int			src[3 + PCR_PROC_MAX_REPORTS + 1];	/* becomes descriptor i */
	int			nsrc;
	int			errpipe;		/* becomes descriptor nsrc, close-on-exec */
	int			maxfd;			/* for the close() loop when close_range is missing */
	int			limit_res[NLIMITS];
	struct rlimit limit_val[NLIMITS];
} PcrChildPlan;

static void pg_attribute_noreturn()
child_fail(int errpipe, PcrChildStep step)
{
	PcrChildReport r;

	r.step = step;
	r.err = errno;
	if (write(errpipe, &r, sizeof(r)) != sizeof(r))
		_exit(126);				/* the parent then sees a plain exit */
	_exit(127);
}

static void
child_reset_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void) sigaction(sig, &sa, NULL);	/* EINVAL for the libc-reserved ones */
}

static void
child_close_from(int first, int maxfd)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned int) first, ~0U, 0) == 0)
		return;
#endif
	for (int fd = first; fd <= maxfd; fd++)
		(void) close(fd);
}

/* The child, between fork and exec: only system calls from here on. */
static void pg_attribute_noreturn()
child_main(const PcrChildPlan *p)
{
	int			errpipe = p->errpipe;
	int			fd;
	sigset_t	none;

	child_reset_signals();
	if (!p->in_group && setpgid(0, 0) != 0)
		child_fail(errpipe, STEP_SETPGID);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		child_fail(errpipe, STEP_PDEATHSIG);
	if (getppid() != p->parent)
		_exit(127);				/* the worker died before the prctl: nobody waits for us */

	/* 0, 1, 2, the reports, then the error pipe right after them */
	for (int i = 0; i < p->nsrc; i++)
		if (dup2(p->src[i], i) < 0)
			child_fail(errpipe, STEP_DUP);
	if (dup2(errpipe, p->nsrc) < 0)
		child_fail(errpipe, STEP_DUP);
	errpipe = p->nsrc;
	if (fcntl(errpipe, F_SETFD, FD_CLOEXEC) != 0)
		child_fail(errpipe, STEP_DUP);
	child_close_from(p->nsrc + 1, p->maxfd);

	umask(022);
	for (int i = 0; i < NLIMITS; i++)
		if (setrlimit(p->limit_res[i], &p->limit_val[i]) != 0)
			child_fail(errpipe, STEP_RLIMIT);
	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd >= 0)
	{
		if (write(fd, "1000", 4) != 4)
			(void) 0;			/* best effort: the kernel may refuse it */
		(void) close(fd);
	}
	if (chdir(p->cwd) != 0)
		child_fail(errpipe, STEP_CHDIR);

	sigemptyset(&none);
	(void) sigprocmask(SIG_SETMASK, &none, NULL);
	execve(p->path, p->argv, p->envp);
	child_fail(errpipe, STEP_EXEC);
}

/*
 * The child runs on a stack of its own in the parent's memory (CLONE_VM |
 * CLONE_VFORK, as posix_spawn does: no copy of the worker's page tables,
 * which costs most of a fork), while the parent waits until it has called
 * execve or _exit.  It writes nothing but its own stack (and errno); its
 * descriptor table, signal dispositions, rlimits, umask and cwd are its own
 * copies, since neither CLONE_FILES, CLONE_SIGHAND nor CLONE_FS is given.
 */
static char child_stack[64 * 1024] pg_attribute_aligned(16);

static int
child_entry(void *arg)
{
	child_main((const PcrChildPlan *) arg);
	return 127;
}

/* ------------------------------------------------------------------------
 * The supervisor of a supervised child (PcrProcSpec.supervised)
 *
 * A process of its own (a copy of the worker, no exec) between the worker
 * and the command, the leader of the process group the command and
 * everything it starts are in.  It starts the command as above (in its
 * group), closes every descriptor but its end of the lifeline, a pipe whose
 * other end only the worker holds, and waits.  When the command exits, it
 * exits the same way (the same code, or the same signal), so the worker
 * sees the command's status.  When the lifeline ends first (the worker died,
 * even by SIGKILL, or closed it), it SIGKILLs its whole group: the
 * command's children die with the worker too, which the parent-death signal
 * of the command alone cannot do.  Every signal stays blocked in it, so the
 * group's SIGTERM at a timeout reaches only the command's processes; the
 * SIGKILL after the grace takes it along.  Only system calls, as in the
 * child.
 * ------------------------------------------------------------------------ */
static char supervisor_stack[64 * 1024] pg_attribute_aligned(16);

/* Go the way the command went: its exit code, or its signal. */
static void pg_attribute_noreturn()
supervisor_exit_as(int status)
{
	struct rlimit none = {0, 0};
	sigset_t	others;
	int			sig;

	if (!WIFSIGNALED(status))
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
	sig = WTERMSIG(status);
	(void) setrlimit(RLIMIT_CORE, &none);
	sigfillset(&others);
	sigdelset(&others, sig);
	(void) sigprocmask(SIG_SETMASK, &others, NULL);
	(void) kill(getpid(), sig);	/* default disposition: it ends us here */
	_exit(128 + sig);
}

static void pg_attribute_noreturn()
supervisor_main(PcrChildPlan *p)
{
	pid_t		child;
	int			pidfd;
	int			status;

	(void) close(p->lifeline[1]);	/* the worker's end: only the worker may hold it */
	(void) prctl(PR_SET_NAME, "pcr-supervisor");	/* its comm; argv still reads as the worker's */
	child_reset_signals();		/* the mask stays full (the worker's, at the clone) */
	if (setpgid(0, 0) != 0)
		child_fail(p->errpipe, STEP_SETPGID);
	p->parent = getpid();
	p->in_group = true;
	child = clone(child_entry, child_stack + sizeof(child_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, p);
	if (child < 0)
		child_fail(p->errpipe, STEP_CLONE);

	/* the command has called execve or _exit: nothing else of ours is needed */
	if (dup2(p->lifeline[0], 0) != 0)
	{
		(void) kill(0, SIGKILL);
		_exit(127);
	}
	child_close_from(1, p->maxfd);
	pidfd = (int) syscall(SYS_pidfd_open, child, 0);
	for (;;)
	{
		struct pollfd fds[2] = {{.fd = 0,.events = POLLIN}, {.fd = pidfd,.events = POLLIN}};
		pid_t		r;

		(void) poll(fds, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? -1 : 50);
		if (fds[0].revents != 0)
		{
			(void) kill(0, SIGKILL);	/* the worker is gone: our group with us */
			_exit(137);
		}
		r = waitpid(child, &status, WNOHANG);
		if (r == child)
			supervisor_exit_as(status);
		if (r < 0 && errno != EINTR)
			_exit(127);
	}
}

static int
supervisor_entry(void *arg)
{
	supervisor_main((PcrChildPlan *) arg);
	return 127;
}

/* ------------------------------------------------------------------------
 * The parent
 * ------------------------------------------------------------------------ */

/* A descriptor at or above the floor, close-on-exec; the original is closed. */
static int
above_floor(int fd)
{
	int			moved;

	if (fd < 0 || fd >= PCR_PROC_FD_FLOOR)
		return fd;
	moved = fcntl(fd, F_DUPFD_CLOEXEC, PCR_PROC_FD_FLOOR);
	close(fd);
	return moved;
}

/* A pipe whose ends are above the floor, close-on-exec; false with errno set. */
static bool
make_pipe(int ends[2])
{
	if (pipe2(ends, O_CLOEXEC) != 0)
		return false;
	ends[0] = above_floor(ends[0]);
	ends[1] = above_floor(ends[1]);
	if (ends[0] < 0 || ends[1] < 0)
	{
		int			save = errno;

		if (ends[0] >= 0)
			close(ends[0]);
		if (ends[1] >= 0)
			close(ends[1]);
		errno = save;
		return false;
	}
	return true;
}

static void
set_nonblocking(int fd)
{
	int			flags = fcntl(fd, F_GETFL);

	if (flags >= 0)
		(void) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* soft = hard = min(want, the worker's hard limit); want 0: the hard limit */
static void
plan_limit(PcrChildPlan *p, int i, int resource, rlim_t want)
{
	struct rlimit cur;

	if (getrlimit(resource, &cur) != 0)
		cur.rlim_max = RLIM_INFINITY;
	p->limit_res[i] = resource;
	p->limit_val[i].rlim_cur = (want == 0 || (cur.rlim_max != RLIM_INFINITY && want > cur.rlim_max))
		? cur.rlim_max : want;
	p->limit_val[i].rlim_max = p->limit_val[i].rlim_cur;
}

static void
plan_limits(PcrChildPlan *p, const PcrProcSpec *spec)
{
	struct rlimit nofile;

	plan_limit(p, 0, RLIMIT_AS, (rlim_t) spec->rlimit_as);
	plan_limit(p, 1, RLIMIT_FSIZE, (rlim_t) spec->rlimit_fsize);
	plan_limit(p, 2, RLIMIT_CPU, (rlim_t) spec->rlimit_cpu);
	plan_limit(p, 3, RLIMIT_NOFILE,
			   (rlim_t) (spec->rlimit_nofile > 0 ? spec->rlimit_nofile : PCR_PROC_DEFAULT_NOFILE));
	p->limit_res[4] = RLIMIT_CORE;
	p->limit_val[4].rlim_cur = p->limit_val[4].rlim_max = 0;
	p->maxfd = (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY)
		? (int) Min(nofile.rlim_cur, 65536) : 65536;
}

/* Every descriptor of a start in progress, so that a failure closes them all. */
typedef struct PcrStartFds
{
	int			devnull;
	int			in[2];
	int			out[2];
	int			err[2];
	int			rep[PCR_PROC_MAX_REPORTS][2];
	int			input;			/* the memory file of spec->input_data */
	int			errpipe[2];
	int			lifeline[2];	/* supervised: [0] the supervisor's, [1] the worker's */
} PcrStartFds;

static void
close_if_open(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void
close_start_fds(PcrStartFds *f)
{
	close_if_open(&f->devnull);
	close_if_open(&f->input);
	for (int i = 0; i < 2; i++)
	{
		close_if_open(&f->in[i]);
		close_if_open(&f->out[i]);
		close_if_open(&f->err[i]);
		close_if_open(&f->errpipe[i]);
		close_if_open(&f->lifeline[i]);
		for (int r = 0; r < PCR_PROC_MAX_REPORTS; r++)
			close_if_open(&f->rep[r][i]);
	}
}

static void pg_attribute_noreturn()
start_error(PcrStartFds *f, const char *path, const char *step, int err)
{
	close_start_fds(f);
	errno = err;
	ereport(ERROR,
			(errcode(PCR_ERRCODE_REMOTE_IO),
			 errmsg("could not start \"%s\"", path),
			 errdetail("%s failed: %m", step)));
}

/* A close-on-exec memory file holding data, at offset 0; -1 with errno set. */
static int
open_input(const char *data, Size len)
{
	int			fd = memfd_create("paperclip-input", MFD_CLOEXEC);
	Size		off = 0;

	if (fd < 0)
		return -1;
	while (off < len)
	{
		ssize_t		n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			int			save = errno;

			close(fd);
			errno = save;
			return -1;
		}
		off += n;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
	{
		close(fd);
		return -1;
	}
	return fd;
}

/* Make the pipes the spec asks for and fill the plan's descriptor table. */
static void
open_start_fds(const PcrProcSpec *spec, PcrStartFds *f, PcrChildPlan *plan)
{
	memset(f, -1, sizeof(*f));
	if (!make_pipe(f->errpipe) || !make_pipe(f->out) || !make_pipe(f->err))
		start_error(f, spec->path, "pipe", errno);
	if (spec->stdin_pipe)
	{
		if (!make_pipe(f->in))
			start_error(f, spec->path, "pipe", errno);
		plan->src[0] = f->in[0];
	}
	else
	{
		f->devnull = above_floor(open("/dev/null", O_RDONLY | O_CLOEXEC));
		if (f->devnull < 0)
			start_error(f, spec->path, "open(/dev/null)", errno);
		plan->src[0] = f->devnull;
	}
	plan->src[1] = f->out[1];
	plan->src[2] = f->err[1];
	for (int r = 0; r < spec->nreports; r++)
	{
		if (!make_pipe(f->rep[r]))
			start_error(f, spec->path, "pipe", errno);
		plan->src[3 + r] = f->rep[r][1];
	}
	plan->nsrc = 3 + spec->nreports;
	if (spec->input_data != NULL)
	{
		f->input = above_floor(open_input(spec->input_data, spec->input_len));
		if (f->input < 0)
			start_error(f, spec->path, "memfd_create", errno);
		plan->src[plan->nsrc++] = f->input;
	}
	plan->errpipe = f->errpipe[1];
	if (spec->supervised && !make_pipe(f->lifeline))
		start_error(f, spec->path, "pipe", errno);
	plan->lifeline[0] = f->lifeline[0];
	plan->lifeline[1] = f->lifeline[1];
}

/* Wait for the child's exec (end of the error pipe) or its report. */
static bool
read_child_report(int fd, PcrChildReport *r)
{
	ssize_t		n;

	do
		n = read(fd, r, sizeof(*r));
	while (n < 0 && errno == EINTR);
	return n == sizeof(*r);
}

/* The parent's ends go into the PcrProc; the child's are closed. */
static void
adopt_fds(PcrProc *proc, PcrStartFds *f, int nreports)
{
	close_if_open(&f->devnull);
	close_if_open(&f->input);
	close_if_open(&f->in[0]);
	close_if_open(&f->out[1]);
	close_if_open(&f->err[1]);
	close_if_open(&f->errpipe[1]);
	close_if_open(&f->lifeline[0]);
	proc->lifeline_fd = f->lifeline[1];
	f->lifeline[1] = -1;
	proc->stdin_fd = f->in[1];
	proc->stdout_fd = f->out[0];
	proc->stderr_fd = f->err[0];
	f->in[1] = f->out[0] = f->err[0] = -1;
	for (int r = 0; r < nreports; r++)
	{
		close_if_open(&f->rep[r][1]);
		proc->report_fd[r] = f->rep[r][0];
		f->rep[r][0] = -1;
	}
	for (int r = nreports; r < PCR_PROC_MAX_REPORTS; r++)
		proc->report_fd[r] = -1;
	proc->nreports = nreports;
	if (proc->stdin_fd >= 0)
		set_nonblocking(proc->stdin_fd);
	set_nonblocking(proc->stdout_fd);
	set_nonblocking(proc->stderr_fd);
	for (int r = 0; r < nreports; r++)
		set_nonblocking(proc->report_fd[r]);
}

static void
check_spec(const PcrProcSpec *spec)
{
	if (spec->path == NULL || spec->path[0] != '/' || spec->argv == NULL || spec->argv[0] == NULL ||
		spec->envp == NULL || (spec->cwd != NULL && spec->cwd[0] != '/') ||
		spec->nreports < 0 || spec->nreports > PCR_PROC_MAX_REPORTS)
		elog(ERROR, "invalid child process spec");
}

PcrProc *
PcrProcStart(const PcrProcSpec *spec)
{
	PcrChildPlan plan;
	PcrStartFds f;
	PcrProc    *proc;
	sigset_t	all,
				old;
	PcrChildReport report;
	pid_t		pid;
	int			fork_errno;

	check_spec(spec);
	memset(&plan, 0, sizeof(plan));
	plan.path = spec->path;
	plan.argv = (char *const *) spec->argv;
	plan.envp = (char *const *) spec->envp;
	plan.cwd = spec->cwd ? spec->cwd : "/";
	plan.parent = getpid();
	plan_limits(&plan, spec);
	proc = palloc0(sizeof(PcrProc));
	proc->path = pstrdup(spec->path);
	open_start_fds(spec, &f, &plan);

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	if (spec->supervised)		/* a copy of the worker: it outlives the worker's death */
		pid = clone(supervisor_entry, supervisor_stack + sizeof(supervisor_stack), SIGCHLD, &plan);
	else
		pid = clone(child_entry, child_stack + sizeof(child_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
	fork_errno = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0)
		start_error(&f, spec->path, "clone", fork_errno);

	/* both sides set the group, so it is in place whichever runs first */
	(void) setpgid(pid, pid);
	proc->pid = pid;
	proc->signal_group = pid;
	proc->started_at = GetCurrentTimestamp();
	proc->pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
	adopt_fds(proc, &f, spec->nreports);
	PcrProcTrack(proc);

	close_if_open(&f.errpipe[1]);
	if (!read_child_report(f.errpipe[0], &report))
	{
		close_if_open(&f.errpipe[0]);
		return proc;			/* exec'd */
	}
	close_if_open(&f.errpipe[0]);

	/* the child has failed and is exiting: reap it (it exits at once) */
	for (int i = 0; i < 5000 && !PcrProcTryReap(proc); i++)
		pg_usleep(1000L);
	if (!proc->reaped)
		PcrProcKill(proc);
	if (report.step == STEP_EXEC)
	{
		proc->exec_errno = report.err;
		return proc;
	}
	PcrProcCloseFds(proc);
	errno = report.err;
	ereport(ERROR,
			(errcode(PCR_ERRCODE_REMOTE_IO),
			 errmsg("could not start \"%s\"", spec->path),
			 report.step == STEP_CHDIR
			 ? errdetail("Could not change to directory \"%s\": %m.", plan.cwd)
			 : errdetail("%s failed in the child: %m.",
						 report.step > 0 && report.step < lengthof(step_names) && step_names[report.step]
						 ? step_names[report.step] : "a setup step")));
	pg_unreachable();
}

/* ------------------------------------------------------------------------
 * PATH lookup
 * ------------------------------------------------------------------------ */
static bool
is_executable_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

char *
PcrProcFindProgram(const char *command, const char *path_env, const char *cwd)
{
	const char *p;

	if (command == NULL || command[0] == '\0')
		return NULL;
	if (strchr(command, '/') != NULL)
	{
		if (command[0] == '/')
			return pstrdup(command);
		return psprintf("%s/%s", cwd && cwd[0] ? cwd : "/", command);
	}
	if (path_env == NULL)
		return NULL;
	p = path_env;
	for (;;)
	{
		const char *end = strchr(p, ':');
		int			len = end ? (int) (end - p) : (int) strlen(p);

		/* an empty or relative entry would mean the cwd: skipped */
		if (len > 0 && p[0] == '/')
		{
			char	   *candidate = psprintf("%.*s/%s", len, p, command);

			if (is_executable_file(candidate))
				return candidate;
			pfree(candidate);
		}
		if (end == NULL)
			return NULL;
		p = end + 1;
	}
}
