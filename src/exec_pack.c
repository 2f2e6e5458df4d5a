/*
 * exec_pack.c — a command call as a pool request, and its outcome back
 *
 * Request: a fixed head, the driver's own bytes (at a MAXALIGN'd offset,
 * so that the driver can read its structs in place), then the command, the
 * cwd, the arguments and the "NAME=value" variables, each NUL-terminated,
 * and stdin.  The values of secret variables and the driver's secret ranges
 * are the pool call's secret ranges.
 *
 * Answer: a fixed head (PCR_EXEC_REPLY_HEAD bytes), then stdout, then
 * stderr.  The worker writes stdout and stderr in place, each into a region
 * of max_output bytes (reply_begin), and closes the gap between them at the
 * end (reply_end), so the caller copies only what was written, once.
 *
 * Every execute operation, of a driver or of a sandbox provider, is
 * PcrExecServe with its executor: one format, one deadline rule, one path.
 */
#include "pcr.h"
#include "exec.h"

#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#define EXEC_REQUEST_MAGIC	0x50435245	/* "PCRE" */
#define EXEC_REPLY_MAGIC	0x50435258	/* "PCRX" */

typedef struct ExecRequestHead
{
	uint32		magic;
	int32		timeout_ms;
	uint64		max_output;
	uint32		nargs;
	uint32		nvars;
	bool		has_stdin;
	uint64		driver_len;
	uint64		command_len;	/* each string region: its bytes, NULs included */
	uint64		cwd_len;
	uint64		args_len;
	uint64		vars_len;
	uint64		stdin_len;
} ExecRequestHead;

typedef struct ExecReplyHead
{
	uint32		magic;
	bool		started;
	bool		transport_lost;
	bool		exited;
	bool		timed_out;
	bool		out_truncated;
	bool		err_truncated;
	int32		exit_code;
	int32		signal;
	int32		duration_ms;
	uint64		out_len;
	uint64		err_len;
	char		message[PCR_EXEC_MESSAGE_MAX];
} ExecReplyHead;

StaticAssertDecl(sizeof(ExecReplyHead) <= PCR_EXEC_REPLY_HEAD, "the answer's head must fit its room");

/* Time beyond the command's timeout and setup for the kill and the answer. */
#define EXEC_DEADLINE_MARGIN_MS 10000

/* ------------------------------------------------------------------------
 * Caller side
 * ------------------------------------------------------------------------ */
typedef struct ExecPacked
{
	char	   *data;
	Size		len;
	PcrIoRange *secrets;
	int			nsecrets;
} ExecPacked;

static Size
put(char *buf, Size off, const void *src, Size len)
{
	memcpy(buf + off, src, len);
	return off + len;
}

static void
pack(const PcrExecCall *call, const PcrExecInvokeArgs *a, ExecPacked *p)
{
	ExecRequestHead head;
	Size		off;
	Size		driver_off = MAXALIGN(sizeof(ExecRequestHead));
	int			nsecret_vars = 0;

	memset(&head, 0, sizeof(head));
	head.magic = EXEC_REQUEST_MAGIC;
	head.timeout_ms = call->timeout_ms;
	head.max_output = call->max_output;
	head.nargs = call->nargs;
	head.nvars = call->nvars;
	head.has_stdin = call->stdin_data != NULL;
	head.driver_len = a->driver_len;
	head.command_len = strlen(call->command) + 1;
	head.cwd_len = strlen(call->cwd) + 1;
	for (int i = 0; i < call->nargs; i++)
		head.args_len += strlen(call->args[i]) + 1;
	for (int i = 0; i < call->nvars; i++)
	{
		head.vars_len += strlen(call->vars[i].name) + 1 + call->vars[i].len + 1;
		nsecret_vars += call->vars[i].secret ? 1 : 0;
	}
	head.stdin_len = call->stdin_data ? call->stdin_len : 0;

	p->len = driver_off + head.driver_len + head.command_len + head.cwd_len + head.args_len +
		head.vars_len + head.stdin_len;
	/* exactly the right size: no reallocation leaves a copy of a secret behind */
	p->data = palloc0(p->len);
	p->nsecrets = a->ndriver_secrets + nsecret_vars;
	p->secrets = palloc0(sizeof(PcrIoRange) * Max(p->nsecrets, 1));

	memcpy(p->data, &head, sizeof(head));
	off = put(p->data, driver_off, a->driver_data, a->driver_len);
	for (int i = 0; i < a->ndriver_secrets; i++)
	{
		p->secrets[i].offset = driver_off + a->driver_secrets[i].offset;
		p->secrets[i].len = a->driver_secrets[i].len;
		/* the driver's copy goes at once: ours is the pool's to wipe */
		explicit_bzero(a->driver_data + a->driver_secrets[i].offset, a->driver_secrets[i].len);
	}
	off = put(p->data, off, call->command, head.command_len);
	off = put(p->data, off, call->cwd, head.cwd_len);
	for (int i = 0; i < call->nargs; i++)
		off = put(p->data, off, call->args[i], strlen(call->args[i]) + 1);
	nsecret_vars = a->ndriver_secrets;
	for (int i = 0; i < call->nvars; i++)
	{
		const PcrExecVar *v = &call->vars[i];

		off = put(p->data, off, v->name, strlen(v->name));
		p->data[off++] = '=';
		if (v->secret)
		{
			p->secrets[nsecret_vars].offset = off;
			p->secrets[nsecret_vars++].len = v->len;
		}
		off = put(p->data, off, v->value, v->len);
		p->data[off++] = '\0';
	}
	if (head.stdin_len > 0)
		off = put(p->data, off, call->stdin_data, head.stdin_len);
	Assert(off == p->len);
}

/* The outcome from the answer's bytes (palloc'd, ours). */
static void
unpack_outcome(const PcrIoResult *res, const PcrExecCall *call, PcrExecOutcome *out)
{
	ExecReplyHead head;

	if (res->len < PCR_EXEC_REPLY_HEAD)
		elog(ERROR, "malformed execute answer");
	memcpy(&head, res->data, sizeof(head));
	if (head.magic != EXEC_REPLY_MAGIC ||
		head.out_len > call->max_output || head.err_len > call->max_output ||
		PCR_EXEC_REPLY_HEAD + head.out_len + head.err_len != res->len)
		elog(ERROR, "malformed execute answer");
	memset(out, 0, sizeof(*out));
	out->started = head.started;
	out->transport_lost = head.transport_lost;
	head.message[PCR_EXEC_MESSAGE_MAX - 1] = '\0';
	strlcpy(out->message, head.message, sizeof(out->message));
	out->exited = head.exited;
	out->exit_code = head.exit_code;
	out->signal = head.signal;
	out->timed_out = head.timed_out;
	out->out = res->data + PCR_EXEC_REPLY_HEAD;
	out->out_len = head.out_len;
	out->out_truncated = head.out_truncated;
	out->err = out->out + head.out_len;
	out->err_len = head.err_len;
	out->err_truncated = head.err_truncated;
	out->duration_ms = head.duration_ms;
}

/* Raise 58030 for an outcome that did not start, 08006 for one whose transport died. */
static void
raise_outcome(const PcrExecOutcome *outcome)
{
	if (!outcome->started)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_REMOTE_IO),
				 errmsg("the environment could not start the command"),
				 errdetail_internal("%s", outcome->message[0] ? outcome->message : "no cause given")));
	if (outcome->transport_lost)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("the connection to the environment was lost while the command ran"),
				 errdetail("%s%sThe command's output may be incomplete.",
						   outcome->message, outcome->message[0] ? ". " : "")));
}

void
PcrExecInvoke(const PcrExecCall *call, const PcrExecInvokeArgs *a, PcrExecOutcome *outcome)
{
	ExecPacked	p;
	PcrIoCall	io;
	PcrIoResult res;
	TimestampTz now = GetCurrentTimestamp();
	int			acquire_ms;

	pack(call, a, &p);
	/* the pool's own setting, in ms: the time it may take to find a worker */
	acquire_ms = pg_strtoint32(GetConfigOption("paperclip.acquire_timeout", false, false));
	memset(&io, 0, sizeof(io));
	io.op = a->op;
	io.company_id = a->company_id;
	io.route = a->route;
	io.request = p.data;
	io.request_len = p.len;
	io.secrets = p.secrets;
	io.nsecrets = p.nsecrets;
	io.response_max = PCR_EXEC_RESPONSE_SIZE(call->max_output);
	/* finding a worker, setting up, the command, its kill: all bounded */
	io.deadline = TimestampTzPlusMilliseconds(now, (int64) acquire_ms + a->setup_ms +
											  call->timeout_ms + EXEC_DEADLINE_MARGIN_MS);
	io.target = a->target;
	io.deadline_label = psprintf("the command's timeout (%d ms)", call->timeout_ms);

	PcrIoInvoke(&io, &res);		/* the request's secret ranges are zero from here on */
	pfree(p.data);
	pfree(p.secrets);
	unpack_outcome(&res, call, outcome);
	raise_outcome(outcome);
}

void
PcrExecCallWipe(PcrExecCall *call)
{
	for (int i = 0; i < call->nvars; i++)
	{
		PcrExecVar *v = &call->vars[i];

		if (v->secret && v->value != NULL)
		{
			explicit_bzero(v->value, v->len);
			pfree(v->value);
			v->value = NULL;
			v->len = 0;
		}
	}
}

/* ------------------------------------------------------------------------
 * Worker side
 * ------------------------------------------------------------------------ */
static void pg_attribute_noreturn()
malformed(void)
{
	elog(ERROR, "malformed execute request");
}

/* n NUL-terminated strings at data[0..len): their starts in out; exactly len bytes. */
static void
split_strings(const char *data, Size len, uint32 n, const char **out)
{
	Size		off = 0;

	for (uint32 i = 0; i < n; i++)
	{
		const char *nul;

		if (off >= len || (nul = memchr(data + off, '\0', len - off)) == NULL)
			malformed();
		out[i] = data + off;
		off = (nul - data) + 1;
	}
	if (off != len)
		malformed();
}

/* The call of a request, pointing into the request; the driver's part beside it. */
static void
unpack_request(const PcrIoRequest *req, PcrExecSpec *spec, char **driver_data, Size *driver_len)
{
	ExecRequestHead head;
	Size		off = MAXALIGN(sizeof(ExecRequestHead));
	const char **args;
	const char **vars;
	const char *one[1];

	if (req->len < off)
		malformed();
	memcpy(&head, req->data, sizeof(head));
	if (head.magic != EXEC_REQUEST_MAGIC || head.timeout_ms <= 0 ||
		head.max_output > PCR_EXEC_MAX_OUTPUT ||
		head.nargs > PCR_EXEC_MAX_ARGS || head.nvars > PCR_EXEC_MAX_VARS ||
		head.driver_len > req->len || head.command_len > req->len || head.cwd_len > req->len ||
		head.args_len > req->len || head.vars_len > req->len || head.stdin_len > req->len ||
		off + head.driver_len + head.command_len + head.cwd_len + head.args_len +
		head.vars_len + head.stdin_len != req->len)
		malformed();

	memset(spec, 0, sizeof(*spec));
	*driver_data = req->data + off;
	*driver_len = head.driver_len;
	off += head.driver_len;
	split_strings(req->data + off, head.command_len, 1, one);
	spec->command = one[0];
	off += head.command_len;
	split_strings(req->data + off, head.cwd_len, 1, one);
	spec->cwd = one[0];
	off += head.cwd_len;
	args = palloc0(sizeof(char *) * (head.nargs + 1));
	split_strings(req->data + off, head.args_len, head.nargs, args);
	off += head.args_len;
	vars = palloc0(sizeof(char *) * (head.nvars + 1));
	split_strings(req->data + off, head.vars_len, head.nvars, vars);
	off += head.vars_len;
	for (uint32 i = 0; i < head.nvars; i++)
		if (strchr(vars[i], '=') == NULL)
			malformed();

	spec->nargs = head.nargs;
	spec->args = args;
	spec->nenv = head.nvars;
	spec->env = vars;
	spec->stdin_data = head.has_stdin ? req->data + off : NULL;
	spec->stdin_len = head.stdin_len;
	spec->timeout_ms = head.timeout_ms;
	spec->max_output = head.max_output;
}

/* Point the outcome's buffers into the answer; everything else zero, started true. */
static void
reply_begin(PcrIoResponse *resp, const PcrExecSpec *spec, PcrExecOutcome *outcome)
{
	char	   *buf = PcrIoReplyBuffer(resp, PCR_EXEC_RESPONSE_SIZE(spec->max_output));

	memset(buf, 0, PCR_EXEC_REPLY_HEAD);
	memset(outcome, 0, sizeof(*outcome));
	outcome->started = true;
	outcome->out = buf + PCR_EXEC_REPLY_HEAD;
	outcome->err = outcome->out + spec->max_output;
	/* an answer that is never ended is malformed: the caller sees the error instead */
	resp->len = 0;
}

/* Write the outcome's head and close up the answer. */
static void
reply_end(PcrIoResponse *resp, const PcrExecOutcome *outcome)
{
	ExecReplyHead head;
	char	   *buf = resp->data;
	char	   *out = buf + PCR_EXEC_REPLY_HEAD;

	Assert(outcome->out == out);
	memset(&head, 0, sizeof(head));
	head.magic = EXEC_REPLY_MAGIC;
	head.started = outcome->started;
	head.transport_lost = outcome->transport_lost;
	head.exited = outcome->exited && !outcome->timed_out;
	head.exit_code = head.exited ? outcome->exit_code : 0;
	head.signal = head.exited ? 0 : outcome->signal;
	head.timed_out = outcome->timed_out;
	head.out_len = outcome->out_len;
	head.err_len = outcome->err_len;
	head.out_truncated = outcome->out_truncated;
	head.err_truncated = outcome->err_truncated;
	head.duration_ms = outcome->duration_ms;
	strlcpy(head.message, outcome->message, sizeof(head.message));
	memcpy(buf, &head, sizeof(head));
	if (outcome->err != out + outcome->out_len && outcome->err_len > 0)
		memmove(out + outcome->out_len, outcome->err, outcome->err_len);
	resp->len = PCR_EXEC_REPLY_HEAD + outcome->out_len + outcome->err_len;
}

void
PcrExecServe(PcrIoRequest *req, PcrIoResponse *resp, PcrExecutor executor)
{
	PcrExecSpec spec;
	PcrExecOutcome outcome;
	char	   *driver_data;
	Size		driver_len;

	unpack_request(req, &spec, &driver_data, &driver_len);
	reply_begin(resp, &spec, &outcome);
	executor(req, driver_data, driver_len, &spec, &outcome);
	/* an executor writes at most max_output bytes per stream: hold it to that */
	if (outcome.out_len > spec.max_output || outcome.err_len > spec.max_output)
		elog(ERROR, "execute operation wrote more output than its room");
	reply_end(resp, &outcome);
}
