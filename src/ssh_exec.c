/*
 * ssh_exec.c — one command over an exec channel of a pooled ssh session
 *
 * Runs in a driver worker ("ssh.execute").  Nothing the caller gave is ever
 * on a remote command line: the exec request is always the same,
 *
 *     exec env -i /bin/sh -c '<wrapper>' pcr-exec
 *
 * and the command, its arguments, the working directory and the variables
 * travel as a header on the channel's stdin, one line of shell words each,
 * every word single-quoted (newlines written as "$nl"), read and eval'd by
 * the wrapper; the command's own stdin follows the header.  So no argument
 * is ever interpreted, env -i keeps the remote login environment out, and no
 * secret shows up in a remote process's argv.
 *
 * Debian 12's libssh2 (1.10) cannot signal a channel.  OpenSSH starts a
 * command without a terminal in a session of its own (setsid), so the
 * wrapper, exec'd from the login shell, leads its process group; it checks
 * that, prints "pcr-exec <pgid> <state>" on stdout and exec's the command.
 * On timeout the group gets SIGTERM through a second exec channel of the
 * same session, SIGKILL 250 ms later; when the caller gives up, SIGKILL at
 * once.  A watchdog in the group (double-forked, so no child of the command)
 * kills the group within a second when the command has ended (what it left
 * running in its group goes too, as in a sandbox) or the session's sshd went
 * away (the worker was killed, the connection lost).  A process that leaves
 * the group (setsid, a daemon) is out of reach.
 *
 * Every wait is PcrIoWait on the session's socket, with the command's
 * deadline, the kill's, and the caller giving up.
 */
#include "pcr.h"
#include "exec.h"
#include "ssh_session.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/timestamp.h"

#define SSH_EXEC_READ_CHUNK		65536
#define SSH_EXEC_MARKER_MAX		4096	/* login noise tolerated before the marker */
#define SSH_EXEC_CLOSE_MS		2000	/* kill channels, closing the channel */

/*
 * The wrapper (a POSIX sh script): header, checks, watchdog, exec.  The
 * watchdog uses a fixed PATH for sleep, whatever the command's PATH is, and
 * tells "sshd is gone" (ESRCH) from "not ours to signal" by the message.
 * The watchdog is a member of the group, so its pgid cannot be reused while
 * it lives; its last act kills the group, itself included.
 */
static const char wrapper[] =
"nl='\n'\n"
"h=\n"
"while IFS= read -r l; do\n"
"  if [ \"$l\" = . ]; then h=1; break; fi\n"
"  eval \"$l\"\n"
"done\n"
"[ -n \"$h\" ] || exit 125\n"
"pg=$$\n"
"kill -s 0 -- \"-$pg\" 2>/dev/null || { echo \"pcr-exec $pg nopgrp\"; exit 0; }\n"
"cd -- \"$d\" 2>/dev/null || { echo \"pcr-exec $pg nocwd\"; exit 0; }\n"
"case $1 in\n"
"*/*) [ -f \"$1\" ] && [ -x \"$1\" ] ;;\n"
"*) command -v -- \"$1\" >/dev/null 2>&1 ;;\n"
"esac || { echo \"pcr-exec $pg notfound\"; echo \"$1: command not found\" >&2; exit 127; }\n"
"pp=$PPID\n"
"( ( exec </dev/null >/dev/null 2>&1\n"
"    PATH=/usr/local/bin:/usr/bin:/bin\n"
"    while sleep 1; do\n"
"      kill -s 0 -- \"$pg\" 2>/dev/null || break\n"
"      kill -s 0 -- \"$pp\" 2>/dev/null && continue\n"
"      case $(kill -s 0 -- \"$pp\" 2>&1) in *'o such process'*) break ;; esac\n"
"    done\n"
"    kill -s KILL -- \"-$pg\" ) & )\n"
"echo \"pcr-exec $pg ok\"\n"
"unset d h l nl pg pp PWD OLDPWD\n"
"exec \"$@\"\n";

/* ------------------------------------------------------------------------
 * Quoting
 * ------------------------------------------------------------------------ */

/* Bytes of s quoted as one single-quoted sh word ("$nl" for newlines when in_header). */
static Size
quoted_len(const char *s, Size len, bool in_header)
{
	Size		n = 2;

	for (Size i = 0; i < len; i++)
		n += s[i] == '\'' ? 4 : (s[i] == '\n' && in_header) ? 7 : 1;
	return n;
}

static Size
quote_into(char *dst, const char *s, Size len, bool in_header)
{
	Size		o = 0;

	dst[o++] = '\'';
	for (Size i = 0; i < len; i++)
	{
		if (s[i] == '\'')
		{
			memcpy(dst + o, "'\\''", 4);
			o += 4;
		}
		else if (s[i] == '\n' && in_header)
		{
			memcpy(dst + o, "'\"$nl\"'", 7);
			o += 7;
		}
		else
			dst[o++] = s[i];
	}
	dst[o++] = '\'';
	return o;
}

/* The exec request: the wrapper quoted for the remote login shell. */
static char *
exec_request(void)
{
	static const char head[] = "exec env -i /bin/sh -c ";
	static const char tail[] = " pcr-exec";
	Size		wlen = strlen(wrapper);
	char	   *buf = palloc(sizeof(head) + quoted_len(wrapper, wlen, false) + sizeof(tail));
	Size		o = strlen(head);

	memcpy(buf, head, o);
	o += quote_into(buf + o, wrapper, wlen, false);
	memcpy(buf + o, tail, sizeof(tail));
	return buf;
}

/* The value of NAME in "NAME=value" strings, or NULL. */
static const char *
spec_var(const PcrExecSpec *spec, const char *name)
{
	size_t		n = strlen(name);

	for (int i = 0; i < spec->nenv; i++)
		if (strncmp(spec->env[i], name, n) == 0 && spec->env[i][n] == '=')
			return spec->env[i] + n + 1;
	return NULL;
}

/*
 * The header: "set -- <command> <args...>", "d=<cwd>", one "export
 * NAME=<value>" per variable, ".".  It holds the variables' values: sized
 * exactly (no reallocation leaves a copy), zeroed by the caller after use.
 */
static char *
build_header(const PcrExecSpec *spec, const char *cwd, Size *len)
{
	Size		n = strlen("set --") + 1 + 2 + quoted_len(cwd, strlen(cwd), true) + 1 + 2;
	Size		o = 0;
	char	   *buf;

	n += 1 + quoted_len(spec->command, strlen(spec->command), true);
	for (int i = 0; i < spec->nargs; i++)
		n += 1 + quoted_len(spec->args[i], strlen(spec->args[i]), true);
	for (int i = 0; i < spec->nenv; i++)
	{
		const char *eq = strchr(spec->env[i], '=');

		n += strlen("export ") + (eq - spec->env[i]) + 1 + quoted_len(eq + 1, strlen(eq + 1), true) + 1;
	}
	buf = palloc(n + 1);
	memcpy(buf + o, "set --", 6);
	o += 6;
	buf[o++] = ' ';
	o += quote_into(buf + o, spec->command, strlen(spec->command), true);
	for (int i = 0; i < spec->nargs; i++)
	{
		buf[o++] = ' ';
		o += quote_into(buf + o, spec->args[i], strlen(spec->args[i]), true);
	}
	buf[o++] = '\n';
	buf[o++] = 'd';
	buf[o++] = '=';
	o += quote_into(buf + o, cwd, strlen(cwd), true);
	buf[o++] = '\n';
	for (int i = 0; i < spec->nenv; i++)
	{
		const char *eq = strchr(spec->env[i], '=');

		memcpy(buf + o, "export ", 7);
		o += 7;
		memcpy(buf + o, spec->env[i], eq - spec->env[i] + 1);
		o += eq - spec->env[i] + 1;
		o += quote_into(buf + o, eq + 1, strlen(eq + 1), true);
		buf[o++] = '\n';
	}
	buf[o++] = '.';
	buf[o++] = '\n';
	Assert(o <= n);
	*len = o;
	return buf;
}

/* ------------------------------------------------------------------------
 * Waiting
 * ------------------------------------------------------------------------ */

/*
 * One wait on the session's socket, in the directions libssh2 asks for.
 * Once the caller has given up, PcrIoWait answers ABANDONED at once; the
 * few round trips that kill the command then wait on the socket, the latch
 * (SIGTERM is still served) and the time left, and nothing else.
 */
static int
session_wait(SshConn *c, TimestampTz until, bool want_write)
{
	int			dirs = libssh2_session_block_directions(c->session);
	PcrIoWaitFd fd = {.fd = c->sock};
	long		ms;
	int			rc;

	if ((dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND) || want_write)
		fd.events |= WL_SOCKET_WRITEABLE;
	if ((dirs & LIBSSH2_SESSION_BLOCK_INBOUND) || !(dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND))
		fd.events |= WL_SOCKET_READABLE;
	if (!PcrIoAbandoned())
		return PcrIoWait(&fd, 1, until);

	ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);
	if (ms <= 0)
		return PCR_IO_WAIT_ABANDONED | PCR_IO_WAIT_TIMEOUT;
	rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | fd.events,
						   c->sock, ms, PcrWaitEventExtension());
	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return PCR_IO_WAIT_ABANDONED | ((rc & WL_TIMEOUT) ? PCR_IO_WAIT_TIMEOUT : 0);
}

/* Repeat a libssh2 call while it asks to wait, until `until`; abandonment does not stop it. */
#define SSH_PERSIST(c, until, rc, call) \
	do { \
		while (((rc) = (call)) == LIBSSH2_ERROR_EAGAIN) \
			if (session_wait((c), (until), false) & PCR_IO_WAIT_TIMEOUT) { (rc) = PCR_SSH_TIMED_OUT; break; } \
	} while (0)

/*
 * Run "kill -s <sig> -- -<pgid>" on the remote host through a channel of its
 * own, bounded by SSH_EXEC_CLOSE_MS; false when that could not be done (the
 * session is then not to be reused: dropping it sets the watchdog off).
 */
static bool
remote_kill(SshConn *c, int pgid, const char *sig)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), SSH_EXEC_CLOSE_MS);
	LIBSSH2_CHANNEL *ch;
	char		cmd[96];
	char		buf[256];
	int			rc;

	if (pgid < 2)
		return false;			/* never "kill -- -1" */
	snprintf(cmd, sizeof(cmd), "kill -s %s -- -%d 2>/dev/null; exit 0", sig, pgid);
	for (;;)
	{
		ch = libssh2_channel_open_session(c->session);
		if (ch != NULL || libssh2_session_last_errno(c->session) != LIBSSH2_ERROR_EAGAIN)
			break;
		if (session_wait(c, until, false) & PCR_IO_WAIT_TIMEOUT)
			break;
	}
	if (ch == NULL)
		return false;
	SSH_PERSIST(c, until, rc, libssh2_channel_process_startup(ch, "exec", 4, cmd, strlen(cmd)));
	while (rc == 0)
	{
		ssize_t		n = libssh2_channel_read(ch, buf, sizeof(buf));

		if (n > 0)
			continue;
		if (n == LIBSSH2_ERROR_EAGAIN)
		{
			if (session_wait(c, until, false) & PCR_IO_WAIT_TIMEOUT)
				rc = PCR_SSH_TIMED_OUT;
			continue;
		}
		if (n < 0 || libssh2_channel_eof(ch))
			break;
	}
	if (rc == 0)
		SSH_PERSIST(c, until, rc, libssh2_channel_close(ch));
	SSH_PERSIST(c, until, rc, libssh2_channel_free(ch));
	return rc == 0;
}

/* ------------------------------------------------------------------------
 * The run
 * ------------------------------------------------------------------------ */
typedef enum KillStage
{
	KILL_NONE,
	KILL_TERM_SENT,				/* SIGKILL at kill_at */
	KILL_KILL_SENT				/* waiting for the channel to close until kill_at */
} KillStage;

typedef struct SshRun
{
	SshConn    *c;
	LIBSSH2_CHANNEL *ch;
	PcrExecOutcome *out;
	Size		max;
	const char *cwd;

	/* stdin: the header, then the command's own */
	const char *in[2];
	Size		in_len[2];
	Size		in_off[2];
	bool		eof_sent;

	/* the marker line before the command's stdout */
	char		marker[SSH_EXEC_MARKER_MAX + 1];
	Size		marker_len;
	bool		marker_done;
	int			pgid;
	char		state[16];

	TimestampTz started;		/* the marker came: the command runs */
	TimestampTz deadline;		/* before the marker: the start's; then the command's */
	int			timeout_ms;		/* the command's */
	int			start_ms;		/* the remote login and the wrapper's checks */
	bool		start_timed_out;
	KillStage	kill;
	TimestampTz kill_at;
	bool		read_error;
	char		cause[256];
} SshRun;

static void
keep(char *buf, Size *len, bool *truncated, Size max, const char *data, Size n)
{
	Size		room = max - *len;

	if (n > room)
	{
		*truncated = true;
		n = room;
	}
	memcpy(buf + *len, data, n);
	*len += n;
}

/* Look for "pcr-exec <pgid> <state>\n" at a line start; what follows it is the command's. */
static void
take_marker(SshRun *r, const char *data, Size n)
{
	Size		used = Min(n, SSH_EXEC_MARKER_MAX - r->marker_len);
	char	   *line = r->marker;
	char	   *eol;

	memcpy(r->marker + r->marker_len, data, used);
	r->marker_len += used;
	r->marker[r->marker_len] = '\0';
	while ((eol = strchr(line, '\n')) != NULL)
	{
		int			pgid;
		char		state[16];

		if (strncmp(line, "pcr-exec ", 9) == 0 &&
			sscanf(line + 9, "%d %15[a-z]", &pgid, state) == 2)
		{
			r->pgid = pgid;
			strlcpy(r->state, state, sizeof(r->state));
			r->marker_done = true;
			/* the command's timeout counts from here: a slow remote login is not its time */
			r->started = GetCurrentTimestamp();
			r->deadline = TimestampTzPlusMilliseconds(r->started, r->timeout_ms);
			/* the rest of the buffer, and of this read, is the command's output */
			keep(r->out->out, &r->out->out_len, &r->out->out_truncated, r->max,
				 eol + 1, r->marker_len - (eol + 1 - r->marker));
			keep(r->out->out, &r->out->out_len, &r->out->out_truncated, r->max,
				 data + used, n - used);
			return;
		}
		line = eol + 1;			/* login noise (a .bashrc that prints): dropped */
	}
	if (r->marker_len >= SSH_EXEC_MARKER_MAX)
	{
		r->marker_done = true;	/* no marker: the wrapper did not run */
		r->state[0] = '\0';
	}
}

/* Read what is there from one stream; false when nothing was. */
static bool
read_stream(SshRun *r, int stream, char *chunk)
{
	ssize_t		n = libssh2_channel_read_ex(r->ch, stream, chunk, SSH_EXEC_READ_CHUNK);

	if (n == LIBSSH2_ERROR_EAGAIN || n == 0)
		return false;
	if (n < 0)
	{
		char	   *msg = NULL;

		libssh2_session_last_error(r->c->session, &msg, NULL, 0);
		snprintf(r->cause, sizeof(r->cause), "%s", msg && msg[0] ? msg : "read failed");
		r->read_error = true;
		return false;
	}
	if (stream == SSH_EXTENDED_DATA_STDERR)
		keep(r->out->err, &r->out->err_len, &r->out->err_truncated, r->max, chunk, n);
	else if (!r->marker_done)
		take_marker(r, chunk, n);
	else
		keep(r->out->out, &r->out->out_len, &r->out->out_truncated, r->max, chunk, n);
	return true;
}

/* Write what the channel takes of stdin, then EOF; false when nothing moved. */
static bool
write_stdin(SshRun *r)
{
	for (int i = 0; i < 2; i++)
	{
		while (r->in_off[i] < r->in_len[i])
		{
			ssize_t		n = libssh2_channel_write(r->ch, r->in[i] + r->in_off[i], r->in_len[i] - r->in_off[i]);

			if (n == LIBSSH2_ERROR_EAGAIN)
				return false;
			if (n < 0)
			{
				/* the command closed its stdin or exited: the rest is not wanted */
				r->in_off[0] = r->in_len[0];
				r->in_off[1] = r->in_len[1];
				r->eof_sent = true;
				return true;
			}
			r->in_off[i] += n;
		}
	}
	if (!r->eof_sent)
	{
		int			rc = libssh2_channel_send_eof(r->ch);

		if (rc == LIBSSH2_ERROR_EAGAIN)
			return false;
		r->eof_sent = true;
		return true;
	}
	return false;
}

/* The deadline passed: TERM, then KILL, then give up on the channel. */
static bool
next_kill_stage(SshRun *r)
{
	TimestampTz now = GetCurrentTimestamp();

	switch (r->kill)
	{
		case KILL_NONE:
			r->out->timed_out = true;
			if (r->pgid < 2 || !remote_kill(r->c, r->pgid, "TERM"))
				r->c->broken = true;
			r->kill = KILL_TERM_SENT;
			r->kill_at = TimestampTzPlusMilliseconds(now, PCR_EXEC_KILL_GRACE_MS);
			return !r->c->broken;
		case KILL_TERM_SENT:
			if (!remote_kill(r->c, r->pgid, "KILL"))
				r->c->broken = true;
			r->kill = KILL_KILL_SENT;
			r->kill_at = TimestampTzPlusMilliseconds(now, SSH_EXEC_CLOSE_MS);
			return !r->c->broken;
		case KILL_KILL_SENT:
			r->c->broken = true;	/* the channel does not close: not reusable */
			return false;
	}
	return false;
}

/* Pump stdin, stdout and stderr until EOF; false when the channel had to be given up. */
static bool
pump(SshRun *r)
{
	char	   *chunk = palloc(SSH_EXEC_READ_CHUNK);

	for (;;)
	{
		bool		moved = false;
		int			rc;

		if (!r->eof_sent)
			moved |= write_stdin(r);
		while (read_stream(r, 0, chunk))
			moved = true;
		while (read_stream(r, SSH_EXTENDED_DATA_STDERR, chunk))
			moved = true;
		if (r->read_error)
			return false;
		if (r->marker_done && r->state[0] != '\0' && strcmp(r->state, "ok") != 0 &&
			strcmp(r->state, "notfound") != 0)
			return true;		/* the wrapper refused to start it: it exits at once */
		if (libssh2_channel_eof(r->ch))
			return true;
		if (moved)
			continue;
		/*
		 * Reading one stream may have pulled the other's packets off the
		 * socket into libssh2's queue: waiting on the socket then would stall
		 * (the remote side waits for window space those packets hold).
		 */
		if (libssh2_poll_channel_read(r->ch, 0) || libssh2_poll_channel_read(r->ch, 1))
			continue;

		rc = session_wait(r->c, r->kill == KILL_NONE ? r->deadline : r->kill_at,
						  !r->eof_sent);
		if (rc & PCR_IO_WAIT_ABANDONED)
		{
			/* the caller gave up: the whole group goes now */
			if (r->pgid < 2 || !remote_kill(r->c, r->pgid, "KILL"))
				r->c->broken = true;
			PcrIoCheckAbandoned();
		}
		if ((rc & PCR_IO_WAIT_TIMEOUT) && !r->marker_done)
		{
			/* the wrapper never reported: nothing to kill by group; dropping the session ends it */
			r->start_timed_out = true;
			r->c->broken = true;
			return false;
		}
		if ((rc & PCR_IO_WAIT_TIMEOUT) && !next_kill_stage(r))
			return false;
	}
}

/* Close the channel and read its exit status or signal. */
static void
finish(SshRun *r, bool channel_ok)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), SSH_EXEC_CLOSE_MS);
	PcrExecOutcome *out = r->out;
	char	   *signame = NULL;
	size_t		signame_len = 0;
	int			rc = channel_ok ? 0 : -1;

	if (rc == 0)
		SSH_PERSIST(r->c, until, rc, libssh2_channel_close(r->ch));
	if (rc == 0)
	{
		(void) libssh2_channel_get_exit_signal(r->ch, &signame, &signame_len, NULL, NULL, NULL, NULL);
		if (signame != NULL && signame_len > 0)
		{
			out->signal = PcrExecSignalNumber(signame);
			out->exited = false;
			if (out->signal == 0)
				out->signal = 6;	/* an unknown name: report an abnormal end rather than none */
		}
		else
		{
			out->exit_code = libssh2_channel_get_exit_status(r->ch);
			out->exited = true;
		}
		if (signame)
			libssh2_free(r->c->session, signame);
	}
	else
		r->c->broken = true;
	SSH_PERSIST(r->c, until, rc, libssh2_channel_free(r->ch));
	if (rc != 0)
		r->c->broken = true;
	r->ch = NULL;
	out->duration_ms = (int) TimestampDifferenceMilliseconds(r->started, GetCurrentTimestamp());
}

static void
start(SshRun *r, const char *request)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), SSH_EXEC_CLOSE_MS * 5);
	int			rc;

	for (;;)
	{
		r->ch = libssh2_channel_open_session(r->c->session);
		if (r->ch != NULL || libssh2_session_last_errno(r->c->session) != LIBSSH2_ERROR_EAGAIN)
			break;
		rc = session_wait(r->c, until, false);
		if (rc & PCR_IO_WAIT_ABANDONED)
			PcrIoCheckAbandoned();
		if (rc & PCR_IO_WAIT_TIMEOUT)
			break;
	}
	if (r->ch == NULL)
	{
		char	   *msg = NULL;

		libssh2_session_last_error(r->c->session, &msg, NULL, 0);
		r->c->broken = true;
		ereport(ERROR,
				(errcode(PCR_ERRCODE_REMOTE_IO),
				 errmsg("ssh host \"%s\" refused a channel for the command", r->c->where),
				 errdetail("%s", msg && msg[0] ? msg : "no channel within the time allowed")));
	}
	while ((rc = libssh2_channel_process_startup(r->ch, "exec", 4, request, strlen(request)))
		   == LIBSSH2_ERROR_EAGAIN)
	{
		int			w = session_wait(r->c, until, false);

		if (w & PCR_IO_WAIT_ABANDONED)
			PcrIoCheckAbandoned();
		if (w & PCR_IO_WAIT_TIMEOUT)
			break;
	}
	if (rc != 0)
	{
		char	   *msg = NULL;

		libssh2_session_last_error(r->c->session, &msg, NULL, 0);
		r->c->broken = true;
		ereport(ERROR,
				(errcode(PCR_ERRCODE_REMOTE_IO),
				 errmsg("ssh host \"%s\" refused to run the command", r->c->where),
				 errdetail("%s", msg && msg[0] ? msg : "the exec request timed out")));
	}
	r->started = GetCurrentTimestamp();
	r->deadline = TimestampTzPlusMilliseconds(r->started, r->start_ms);
}

void
PcrSshRunCommand(SshConn *c, const PcrExecSpec *spec, int start_ms, PcrExecOutcome *outcome)
{
	SshRun		r;
	const char *home = spec_var(spec, "HOME");
	char	   *header;
	Size		header_len;
	volatile bool ok = false;

	memset(&r, 0, sizeof(r));
	r.c = c;
	r.out = outcome;
	r.max = spec->max_output;
	r.timeout_ms = spec->timeout_ms;
	r.start_ms = start_ms;
	if (home == NULL)
		elog(ERROR, "execute request without HOME");
	r.cwd = spec->cwd[0] ? psprintf("%s/%s", home, spec->cwd) : home;
	header = build_header(spec, r.cwd, &header_len);
	r.in[0] = header;
	r.in_len[0] = header_len;
	r.in[1] = spec->stdin_data ? spec->stdin_data : "";
	r.in_len[1] = spec->stdin_data ? spec->stdin_len : 0;

	PG_TRY();
	{
		start(&r, exec_request());
		ok = pump(&r);
	}
	PG_FINALLY();
	{
		explicit_bzero(header, header_len);
	}
	PG_END_TRY();

	/* SIGTERM sent: SIGKILL follows 250 ms later, also when the command is gone (its group may not be) */
	if (r.kill == KILL_TERM_SENT)
	{
		while (!(PcrIoWait(NULL, 0, r.kill_at) & (PCR_IO_WAIT_TIMEOUT | PCR_IO_WAIT_ABANDONED)))
			;
		if (!remote_kill(c, r.pgid, "KILL"))
			c->broken = true;
	}
	finish(&r, ok);

	if (!r.marker_done || r.state[0] == '\0')
	{
		outcome->started = false;
		if (r.read_error)
			snprintf(outcome->message, sizeof(outcome->message),
					 "the ssh connection to \"%s\" failed before the command started: %s", c->where, r.cause);
		else if (r.start_timed_out)
			snprintf(outcome->message, sizeof(outcome->message),
					 "the remote login shell on \"%s\" did not start the command within %d ms (paperclip.ssh_connect_timeout)",
					 c->where, start_ms);
		else
			snprintf(outcome->message, sizeof(outcome->message),
					 "the remote login shell on \"%s\" did not run the paperclip wrapper (a POSIX shell is required)",
					 c->where);
	}
	else if (strcmp(r.state, "nocwd") == 0)
	{
		outcome->started = false;
		snprintf(outcome->message, sizeof(outcome->message),
				 "working directory \"%s\" does not exist on \"%s\"", r.cwd, c->where);
	}
	else if (strcmp(r.state, "nopgrp") == 0)
	{
		outcome->started = false;
		snprintf(outcome->message, sizeof(outcome->message),
				 "the sshd of \"%s\" does not start commands in a process group of their own, so they could not be killed",
				 c->where);
	}
	else if (r.read_error)
	{
		outcome->transport_lost = true;
		snprintf(outcome->message, sizeof(outcome->message), "ssh host \"%s\": %s", c->where, r.cause);
		c->broken = true;
	}
}

/* ------------------------------------------------------------------------
 * The operation
 * ------------------------------------------------------------------------ */

/*
 * A session for the command.  Whatever keeps it from being there (the host
 * unreachable, its key refused, ours refused) means the environment could
 * not start the command: 58030, the cause in errdetail.
 */
static SshConn *
session_for_command(PcrSshRequest *req)
{
	MemoryContext cxt = CurrentMemoryContext;
	PcrSshResponse *resp = palloc0(sizeof(PcrSshResponse));
	SshConn    *volatile c = NULL;

	PG_TRY();
	{
		c = PcrSshConnect(req, resp);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		/* a cancel stays a cancel, and a destination the allow-list refuses stays 42501 */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED || edata->sqlerrcode == PCR_ERRCODE_FORBIDDEN)
			PG_RE_THROW();
		FlushErrorState();
		ereport(ERROR,
				(errcode(PCR_ERRCODE_REMOTE_IO),
				 errmsg("could not start the command on ssh host \"%s\"", req->host),
				 errdetail("%s%s%s", edata->message, edata->detail ? " " : "",
						   edata->detail ? edata->detail : "")));
	}
	PG_END_TRY();
	return c;
}

/* The executor of "ssh.execute" (PcrExecServe) */
static void
ssh_executor(const PcrIoRequest *io, char *driver_data, Size driver_len, const PcrExecSpec *spec,
			 PcrExecOutcome *outcome)
{
	PcrSshRequest req;
	SshConn    *c;

	memset(&req, 0, sizeof(req));
	PcrSshUnpack(driver_data, driver_len, &req);
	c = session_for_command(&req);
	PcrSshRunCommand(c, spec, req.connect_timeout_ms, outcome);
	PcrSshDone(c);
}

static void
run_execute(PcrIoRequest *io, PcrIoResponse *resp)
{
	PcrExecServe(io, resp, ssh_executor);
}

const PcrIoOperation pcr_ssh_op_execute = {
	.name = "ssh.execute",
	.max_request = PCR_EXEC_REQUEST_MAX(PCR_SSH_REQUEST_MAX),
	.max_response = PCR_EXEC_RESPONSE_MAX,
	.run = run_execute,
};
