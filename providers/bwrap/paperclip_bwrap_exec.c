/*
 * paperclip_bwrap_exec.c — the first process inside a bwrap sandbox
 *
 *     paperclip_bwrap_exec STATUS_FD COMMAND [ARGS...]
 *     paperclip_bwrap_exec --check      (exits 0: the sandbox came up)
 *
 * bwrap reports a command killed by signal N as exit code 128 + N, and a
 * command it could not execute as exit code 1: neither can be told apart
 * from a command that exits with that code.  This helper, bound read-only
 * into every sandbox as /.paperclip_exec and started by bwrap in the
 * command's place, starts the command (execvp, the sandbox's PATH) and
 * writes what became of it to STATUS_FD, a pipe bwrap passes through from
 * the driver worker, as one line:
 *     exec <errno>      the command could not be executed
 *     exited <code>     it exited
 *     signaled <signo>  a signal killed it
 * then exits as a shell would (127, <code>, 128 + <signo>).
 *
 * bwrap puts PWD in the environment when it changes directory; the
 * command's environment is exactly the caller's, so the helper takes it out
 * again, or sets the caller's own PWD, which bwrap_run.c passes as
 * PAPERCLIP_EXEC_PWD (bwrap would overwrite a PWD of --setenv).
 *
 * The helper ignores the terminating signals a timeout sends the sandbox's
 * process group (its child gets them, with default dispositions), so it
 * lives to report; SIGKILL ends it like everything else in the sandbox.
 * Statically linked: it runs over any image's root filesystem.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static const int passed_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE};

static void
report(int fd, const char *what, int value)
{
	char		line[64];
	int			len = snprintf(line, sizeof(line), "%s %d\n", what, value);

	if (fd >= 0 && write(fd, line, len) != len)
		_exit(125);
}

static void
set_signals(void (*handler) (int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(passed_signals) / sizeof(passed_signals[0]); i++)
		sigaction(passed_signals[i], &sa, NULL);
}

int
main(int argc, char **argv)
{
	int			status_fd;
	int			errpipe[2];
	int			child_errno = 0;
	int			status;
	pid_t		pid;
	char	   *end;

	if (argc == 2 && strcmp(argv[1], "--check") == 0)
		return 0;				/* the sandbox came up: all a create's check asks */
	if (argc < 3)
	{
		fprintf(stderr, "usage: paperclip_bwrap_exec STATUS_FD COMMAND [ARGS...]\n");
		return 127;
	}
	status_fd = (int) strtol(argv[1], &end, 10);
	if (*end != '\0' || status_fd < 3 || fcntl(status_fd, F_SETFD, FD_CLOEXEC) != 0)
	{
		fprintf(stderr, "paperclip_bwrap_exec: bad status descriptor \"%s\"\n", argv[1]);
		return 127;
	}
	if (pipe2(errpipe, O_CLOEXEC) != 0)
	{
		perror("paperclip_bwrap_exec: pipe");
		return 127;
	}
	if (getenv("PAPERCLIP_EXEC_PWD") != NULL)
	{
		if (setenv("PWD", getenv("PAPERCLIP_EXEC_PWD"), 1) != 0)
		{
			perror("paperclip_bwrap_exec: setenv");
			return 127;
		}
		unsetenv("PAPERCLIP_EXEC_PWD");
	}
	else
		unsetenv("PWD");
	set_signals(SIG_IGN);
	pid = fork();
	if (pid < 0)
	{
		perror("paperclip_bwrap_exec: fork");
		return 127;
	}
	if (pid == 0)
	{
		set_signals(SIG_DFL);
		close(errpipe[0]);
		execvp(argv[2], argv + 2);
		child_errno = errno;
		if (write(errpipe[1], &child_errno, sizeof(child_errno)) != sizeof(child_errno))
			_exit(126);
		fprintf(stderr, "%s: %s\n", argv[2], strerror(child_errno));
		_exit(127);
	}
	close(errpipe[1]);
	if (read(errpipe[0], &child_errno, sizeof(child_errno)) != sizeof(child_errno))
		child_errno = 0;
	close(errpipe[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
		{
			perror("paperclip_bwrap_exec: waitpid");
			return 127;
		}
	if (child_errno != 0)
	{
		report(status_fd, "exec", child_errno);
		return 127;
	}
	if (WIFSIGNALED(status))
	{
		report(status_fd, "signaled", WTERMSIG(status));
		return 128 + WTERMSIG(status);
	}
	report(status_fd, "exited", WEXITSTATUS(status));
	return WEXITSTATUS(status);
}
