/*
 * exec_text.c — a command's output as text, and signal names
 *
 * Output is bytes; the result columns are text.  Valid UTF-8 is kept as it
 * is; every byte that does not start a valid sequence, and every NUL (text
 * cannot hold one), becomes U+FFFD; never an error.  A database whose
 * encoding is not UTF-8 gets the text converted, with '?' for characters it
 * cannot hold.
 *
 * Signals travel as numbers in Linux numbering (local, bwrap) or as names
 * without "SIG" (ssh, RFC 4254 section 6.10); the result column holds "SIGKILL".
 */
#include "pcr.h"
#include "exec.h"

#include <limits.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

static const char replacement[] = "\xEF\xBF\xBD";	/* U+FFFD */

/*
 * Valid UTF-8 with replacements, in one text of exactly the right size: one
 * pass to verify (and count what is replaced), one copy.  Output can be
 * 16 MiB, so no buffer that grows by doubling.
 */
static int
valid_prefix(const char *data, Size len)
{
	Size		max = Min(len, (Size) (INT_MAX / 2));
	Size		off = 0;

	/* plain ASCII without NULs, eight bytes at a time: most output is */
	while (off + 8 <= max)
	{
		uint64		w;

		memcpy(&w, data + off, 8);
		/* a byte with its high bit set, or a zero byte, ends the fast path */
		if ((w & UINT64CONST(0x8080808080808080)) != 0 ||
			((w - UINT64CONST(0x0101010101010101)) & ~w & UINT64CONST(0x8080808080808080)) != 0)
			break;
		off += 8;
	}
	return (int) off + pg_encoding_verifymbstr(PG_UTF8, data + off, (int) (max - off));
}

static text *
sanitise_utf8(const char *data, Size len)
{
	Size		bad = 0;
	Size		off = 0;
	text	   *t;
	char	   *o;

	while (off < len)
	{
		off += valid_prefix(data + off, len - off);
		if (off < len)
		{
			bad++;				/* a NUL, or a byte that starts no valid sequence */
			off++;
		}
	}
	t = (text *) palloc(VARHDRSZ + len + 2 * bad);
	SET_VARSIZE(t, VARHDRSZ + len + 2 * bad);
	if (bad == 0)
	{
		memcpy(VARDATA(t), data, len);
		return t;
	}
	o = VARDATA(t);
	for (off = 0; off < len;)
	{
		int			valid = valid_prefix(data + off, len - off);

		memcpy(o, data + off, valid);
		o += valid;
		off += valid;
		if (off < len)
		{
			memcpy(o, replacement, 3);
			o += 3;
			off++;
		}
	}
	return t;
}

/* UTF-8 to a database encoding, one character at a time where a whole conversion failed. */
static char *
to_database_encoding(const char *utf8, int len)
{
	StringInfoData buf;
	volatile bool ok = true;
	char	   *volatile whole = NULL;

	PG_TRY();
	{
		whole = pg_any_to_server(utf8, len, PG_UTF8);
	}
	PG_CATCH();
	{
		FlushErrorState();
		ok = false;
	}
	PG_END_TRY();
	if (ok)
		return whole;

	initStringInfo(&buf);
	for (int off = 0; off < len;)
	{
		int			clen = pg_utf_mblen((const unsigned char *) utf8 + off);

		if (clen == 1)
			appendStringInfoChar(&buf, utf8[off]);
		else
			appendStringInfoChar(&buf, '?');
		off += clen;
	}
	return buf.data;
}

text *
PcrExecOutputText(const char *data, Size len)
{
	text	   *t = sanitise_utf8(data, len);

	if (GetDatabaseEncoding() != PG_UTF8 && GetDatabaseEncoding() != PG_SQL_ASCII)
		t = cstring_to_text(to_database_encoding(VARDATA(t), VARSIZE(t) - VARHDRSZ));
	return t;
}

/* The signals of Linux (x86, arm; the numbers most architectures share). */
static const struct
{
	int			signo;
	const char *name;
}			signals[] =
{
	{1, "SIGHUP"}, {2, "SIGINT"}, {3, "SIGQUIT"}, {4, "SIGILL"}, {5, "SIGTRAP"},
	{6, "SIGABRT"}, {7, "SIGBUS"}, {8, "SIGFPE"}, {9, "SIGKILL"}, {10, "SIGUSR1"},
	{11, "SIGSEGV"}, {12, "SIGUSR2"}, {13, "SIGPIPE"}, {14, "SIGALRM"}, {15, "SIGTERM"},
	{16, "SIGSTKFLT"}, {17, "SIGCHLD"}, {18, "SIGCONT"}, {19, "SIGSTOP"}, {20, "SIGTSTP"},
	{21, "SIGTTIN"}, {22, "SIGTTOU"}, {23, "SIGURG"}, {24, "SIGXCPU"}, {25, "SIGXFSZ"},
	{26, "SIGVTALRM"}, {27, "SIGPROF"}, {28, "SIGWINCH"}, {29, "SIGIO"}, {30, "SIGPWR"},
	{31, "SIGSYS"},
};

const char *
PcrExecSignalName(int signo)
{
	static char rt[16];

	for (int i = 0; i < lengthof(signals); i++)
		if (signals[i].signo == signo)
			return signals[i].name;
	if (signo >= 34 && signo <= 64)
	{
		snprintf(rt, sizeof(rt), "SIGRTMIN+%d", signo - 34);
		return rt;
	}
	return NULL;
}

int
PcrExecSignalNumber(const char *name)
{
	if (pg_strncasecmp(name, "SIG", 3) == 0)
		name += 3;
	for (int i = 0; i < lengthof(signals); i++)
		if (pg_strcasecmp(signals[i].name + 3, name) == 0)
			return signals[i].signo;
	/* RFC 4254 names that differ from Linux's */
	if (pg_strcasecmp(name, "IOT") == 0)
		return 6;
	return 0;
}
