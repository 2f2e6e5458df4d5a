/*
 * ssh_api.c — paperclipApiUrl, as seen from the remote host (docs/drivers.md)
 *
 * Each candidate URL gets GET <url>/api/health through a direct-tcpip
 * channel of the session: the remote sshd opens the TCP connection, so the
 * answer is the remote host's view.  The first 2xx wins; none configured
 * leaves paperclipApiUrl null; none healthy is 08001 with every cause.
 * Only http:// URLs can be checked this way.
 */
#include "pcr.h"
#include "ssh_session.h"

#include "lib/stringinfo.h"

static bool
parse_http_url(const char *url, char **host, int *port, char **hostport, char **base)
{
	const char *p;
	const char *end;

	if (pg_strncasecmp(url, "http://", 7) != 0)
		return false;
	p = url + 7;
	end = p + strcspn(p, "/?#");
	*hostport = pnstrdup(p, end - p);
	*base = pstrdup(end);
	/* drop a query or fragment, and trailing slashes */
	(*base)[strcspn(*base, "?#")] = '\0';
	for (size_t l = strlen(*base); l > 0 && (*base)[l - 1] == '/'; l--)
		(*base)[l - 1] = '\0';
	*port = 80;
	if ((*hostport)[0] == '[')
	{
		char	   *rb = strchr(*hostport, ']');

		if (rb == NULL)
			return false;
		*host = pnstrdup(*hostport + 1, rb - *hostport - 1);
		if (rb[1] == ':')
			*port = atoi(rb + 2);
	}
	else
	{
		char	   *colon = strrchr(*hostport, ':');

		*host = colon ? pnstrdup(*hostport, colon - *hostport) : pstrdup(*hostport);
		if (colon)
			*port = atoi(colon + 1);
	}
	return (*host)[0] != '\0' && *port > 0 && *port <= 65535;
}

/* Free a channel; if that cannot finish in time the session is not reused. */
static void
channel_free(SshConn *c, LIBSSH2_CHANNEL *ch, TimestampTz deadline)
{
	int			rc;

	SSH_RETRY(c, deadline, rc, libssh2_channel_free(ch));
	if (rc != 0)
		c->broken = true;
}

/* Does GET <url>/api/health answer 2xx from the remote host?  Cause in *cause. */
static bool
health_check(SshConn *c, const char *url, int timeout_ms, StringInfo cause)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	LIBSSH2_CHANNEL *ch;
	char	   *host;
	char	   *hostport;
	char	   *base;
	char	   *request;
	char		buf[512];
	size_t		len = 0;
	size_t		off = 0;
	int			port;
	int			status = 0;
	ssize_t		n = 0;

	if (!parse_http_url(url, &host, &port, &hostport, &base))
	{
		appendStringInfo(cause, "%s: not an http:// URL that can be checked through ssh", url);
		return false;
	}
	SSH_RETRY_PTR(c, deadline, ch,
				  libssh2_channel_direct_tcpip_ex(c->session, host, port, "127.0.0.1", 22));
	if (ch == NULL)
	{
		int			err = libssh2_session_last_errno(c->session);

		if (err == LIBSSH2_ERROR_EAGAIN)
			c->broken = true;
		else if (err != LIBSSH2_ERROR_CHANNEL_FAILURE)
			PcrSshTransportError(c, err, "channel open", timeout_ms);
		appendStringInfo(cause, "%s: %s", url,
						 err == LIBSSH2_ERROR_EAGAIN ? "timed out" : "the ssh host could not connect to it");
		return false;
	}

	request = psprintf("GET %s/api/health HTTP/1.1\r\nHost: %s\r\nUser-Agent: paperclip_runtime\r\n"
					   "Accept: */*\r\nConnection: close\r\n\r\n", base, hostport);
	while (off < strlen(request))
	{
		SSH_RETRY(c, deadline, n, libssh2_channel_write(ch, request + off, strlen(request) - off));
		if (n < 0)
			break;
		off += n;
	}
	/* the status line is all we need */
	while (off == strlen(request) && len < sizeof(buf) - 1 && memchr(buf, '\n', len) == NULL)
	{
		SSH_RETRY(c, deadline, n, libssh2_channel_read(ch, buf + len, sizeof(buf) - 1 - len));
		if (n < 0 || (n == 0 && libssh2_channel_eof(ch)))
			break;
		len += n;
	}
	buf[len] = '\0';
	if (len >= 12 && strncmp(buf, "HTTP/1.", 7) == 0)
		status = atoi(buf + 9);
	channel_free(c, ch, deadline);

	if (status >= 200 && status < 300)
		return true;
	if (status > 0)
		appendStringInfo(cause, "%s: /api/health answered %d", url, status);
	else if (n == PCR_SSH_TIMED_OUT)
		appendStringInfo(cause, "%s: no answer within %d ms", url, timeout_ms);
	else
		appendStringInfo(cause, "%s: no HTTP answer", url);
	return false;
}

void
PcrSshDiscoverApi(SshConn *c, const PcrSshRequest *req, PcrSshResponse *resp)
{
	StringInfoData causes;
	const char *p = req->candidates;

	if (*p == '\0')
		return;					/* none configured: paperclipApiUrl is null */
	initStringInfo(&causes);
	while (*p && !c->broken)
	{
		size_t		len = strcspn(p, "\n");
		char	   *url = pnstrdup(p, len);

		if (causes.len > 0)
			appendStringInfoString(&causes, "; ");
		if (url[0] && health_check(c, url, req->connect_timeout_ms, &causes))
		{
			strlcpy(resp->api_url, url, sizeof(resp->api_url));
			return;
		}
		p += len;
		if (*p == '\n')
			p++;
	}
	ereport(ERROR,
			(errcode(PCR_ERRCODE_TRANSPORT),
			 errmsg("no paperclip API candidate is reachable from ssh host \"%s\"", c->where),
			 errdetail("%s", causes.data),
			 errhint("Check paperclip.runtime_api_candidates; each candidate must answer GET /api/health as seen from the remote host.")));
}

