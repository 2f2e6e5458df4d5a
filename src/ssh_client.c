/*
 * ssh_client.c — libssh2 sessions in non-blocking mode, every wait on the latch
 *
 * Runs in a driver worker.  One request: TCP connect (bounded by
 * paperclip.ssh_connect_timeout), handshake, host key checked against the
 * request's knownHosts, public-key authentication with the key from the
 * request; then the workspace over SFTP only (ssh_workspace.c) and the
 * paperclip API candidates through direct-tcpip channels (ssh_api.c).
 *
 * Sessions stay open in this process (never in shared memory) between
 * requests for the same host, port, user and key; before reuse the host key
 * is verified again against the new request and an SFTP round trip shows
 * the session is alive.  Idle sessions are closed after
 * PCR_SSH_IDLE_TIMEOUT_MS.
 */
#include "pcr.h"
#include "ssh_client.h"
#include "ssh_session.h"
#include "ssh_allow.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base64.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"

#define PCR_SSH_MAX_SESSIONS	8
#define PCR_SSH_IDLE_TIMEOUT_MS 60000
#define PCR_SSH_LIVENESS_MS		2000

static SshConn conns[PCR_SSH_MAX_SESSIONS];
static SshConn *current = NULL;		/* the session of the running request */
static pgsocket pending_sock = PGINVALID_SOCKET;	/* a socket not yet in a session */
static bool libssh2_ready = false;

/* ------------------------------------------------------------------------
 * Waiting
 * ------------------------------------------------------------------------ */

/* One wait on sock; false past the deadline; raises when the caller gave up. */
static bool
wait_socket(pgsocket sock, uint32 events, TimestampTz deadline, uint32 *ready)
{
	PcrIoWaitFd fd = {.fd = sock,.events = events};
	int			rc = PcrIoWait(&fd, 1, deadline);

	if (rc & PCR_IO_WAIT_ABANDONED)
		PcrIoCheckAbandoned();
	*ready = fd.ready;
	return !(rc & PCR_IO_WAIT_TIMEOUT);
}

bool
PcrSshWait(SshConn *c, TimestampTz deadline)
{
	int			dirs = libssh2_session_block_directions(c->session);
	uint32		events = 0;
	uint32		ready;

	if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		events |= WL_SOCKET_WRITEABLE;
	if ((dirs & LIBSSH2_SESSION_BLOCK_INBOUND) || !(dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND))
		events |= WL_SOCKET_READABLE;
	return wait_socket(c->sock, events, deadline, &ready);
}

static const char *
ssh_cause(SshConn *c)
{
	char	   *msg = NULL;

	if (c->session == NULL)
		return "no session";
	libssh2_session_last_error(c->session, &msg, NULL, 0);
	return (msg && msg[0]) ? msg : "unknown libssh2 error";
}

void
PcrSshTransportError(SshConn *c, int rc, const char *what, int timeout_ms)
{
	if (rc == PCR_SSH_TIMED_OUT)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_TRANSPORT),
				 errmsg("ssh %s with \"%s\" timed out", what, c->where),
				 errdetail("No progress within %d ms.", timeout_ms)));
	ereport(ERROR,
			(errcode(PCR_ERRCODE_TRANSPORT),
			 errmsg("ssh %s with \"%s\" failed", what, c->where),
			 errdetail("%s", ssh_cause(c))));
}

/* ------------------------------------------------------------------------
 * Sessions
 * ------------------------------------------------------------------------ */
int
PcrSshRoutes(uint64 *out, int max)
{
	int			n = 0;

	for (int i = 0; i < PCR_SSH_MAX_SESSIONS && n < max; i++)
		if (conns[i].used)
			out[n++] = conns[i].route_hash;
	return n;
}

/* Close a session without waiting on the peer: FIN first, so nothing blocks. */
static void
drop_conn(SshConn *c)
{
	if (c->sock != PGINVALID_SOCKET)
		shutdown(c->sock, SHUT_RDWR);
	if (c->session)
	{
		if (c->sftp)
			(void) libssh2_sftp_shutdown(c->sftp);
		(void) libssh2_session_free(c->session);
	}
	if (c->sock != PGINVALID_SOCKET)
		closesocket(c->sock);
	if (c->hostkey)
		free(c->hostkey);
	memset(c, 0, sizeof(SshConn));
	c->sock = PGINVALID_SOCKET;
	if (current == c)
		current = NULL;
}

void
PcrSshAbort(void)
{
	if (pending_sock != PGINVALID_SOCKET)
	{
		closesocket(pending_sock);
		pending_sock = PGINVALID_SOCKET;
	}
	if (current)
		drop_conn(current);
}

long
PcrSshExpireIdle(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		next = -1;

	for (int i = 0; i < PCR_SSH_MAX_SESSIONS; i++)
	{
		SshConn    *c = &conns[i];
		long		idle;

		if (!c->used)
			continue;
		idle = TimestampDifferenceMilliseconds(c->last_used, now);
		if (idle >= PCR_SSH_IDLE_TIMEOUT_MS)
		{
			/* one polite try at a disconnect message, never a wait */
			(void) libssh2_session_disconnect(c->session, "idle");
			drop_conn(c);
		}
		else if (next < 0 || PCR_SSH_IDLE_TIMEOUT_MS - idle < next)
			next = PCR_SSH_IDLE_TIMEOUT_MS - idle;
	}
	return next;
}

/* A session for this host, port, user and key, if one is open and fresh. */
static SshConn *
find_conn(const PcrSshRequest *req)
{
	for (int i = 0; i < PCR_SSH_MAX_SESSIONS; i++)
		if (conns[i].used &&
			memcmp(conns[i].cache_key, req->cache_key, PCR_IO_ROUTE_KEY_LEN) == 0)
			return &conns[i];
	return NULL;
}

/* Liveness: the peer has not closed the socket, and an SFTP round trip works. */
static bool
conn_alive(SshConn *c)
{
	struct pollfd pfd = {.fd = c->sock,.events = POLLIN};
	char		buf[PCR_SSH_PATH_MAX];
	TimestampTz deadline;
	int			rc;

	if (TimestampDifferenceExceeds(c->last_used, GetCurrentTimestamp(), PCR_SSH_IDLE_TIMEOUT_MS))
		return false;
	if (poll(&pfd, 1, 0) > 0)
	{
		char		peek;
		ssize_t		r;

		if (pfd.revents & (POLLERR | POLLHUP))
			return false;
		r = recv(c->sock, &peek, 1, MSG_PEEK);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return false;		/* the peer closed the connection */
	}
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PCR_SSH_LIVENESS_MS);
	SSH_RETRY(c, deadline, rc,
			  libssh2_sftp_symlink_ex(c->sftp, ".", 1, buf, sizeof(buf) - 1, LIBSSH2_SFTP_REALPATH));
	return rc > 0;
}

static SshConn *
free_conn_slot(void)
{
	SshConn    *oldest = &conns[0];

	for (int i = 0; i < PCR_SSH_MAX_SESSIONS; i++)
	{
		if (!conns[i].used)
			return &conns[i];
		if (conns[i].last_used < oldest->last_used)
			oldest = &conns[i];
	}
	drop_conn(oldest);
	return oldest;
}

/* Wait for a non-blocking connect on pending_sock; 0 or the socket error. */
static int
wait_connected(TimestampTz deadline)
{
	for (;;)
	{
		uint32		ready;
		int			soerr = 0;
		socklen_t	len = sizeof(soerr);

		if (!wait_socket(pending_sock, WL_SOCKET_CONNECTED, deadline, &ready))
			return ETIMEDOUT;
		if (!(ready & WL_SOCKET_CONNECTED))
			continue;
		if (getsockopt(pending_sock, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		return soerr;
	}
}

/* Non-blocking TCP connect to host:port, bounded by the deadline. */
static pgsocket
tcp_connect(const char *host, int port, const char *where, TimestampTz deadline, int timeout_ms)
{
	struct addrinfo hints;
	struct addrinfo *res;
	struct sockaddr_storage *addrs;
	int		   *families;
	socklen_t  *addrlens;
	int			naddrs = 0;
	char		portstr[16];
	char		cause[256] = "no address";
	int			err;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%d", port);
	/* name resolution is the one step that does not wait on the latch (docs/ssh.md) */
	err = getaddrinfo(host, portstr, &hints, &res);
	if (err != 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_TRANSPORT),
				 errmsg("could not resolve ssh host \"%s\"", host),
				 errdetail("%s", gai_strerror(err))));
	/* copy the addresses out, so nothing needs freeing if a wait raises */
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
		naddrs++;
	addrs = palloc0(sizeof(struct sockaddr_storage) * Max(naddrs, 1));
	families = palloc0(sizeof(int) * Max(naddrs, 1));
	addrlens = palloc0(sizeof(socklen_t) * Max(naddrs, 1));
	naddrs = 0;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
	{
		if (ai->ai_addrlen > sizeof(struct sockaddr_storage))
			continue;
		memcpy(&addrs[naddrs], ai->ai_addr, ai->ai_addrlen);
		addrlens[naddrs] = ai->ai_addrlen;
		families[naddrs++] = ai->ai_family;
	}
	freeaddrinfo(res);
	PcrSshCheckAddresses(host, port, addrs, naddrs);	/* exactly what connect() gets */

	for (int i = 0; i < naddrs; i++)
	{
		int			one = 1;

		pending_sock = socket(families[i], SOCK_STREAM, 0);
		if (pending_sock == PGINVALID_SOCKET)
		{
			snprintf(cause, sizeof(cause), "could not create socket: %m");
			continue;
		}
		(void) setsockopt(pending_sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!pg_set_noblock(pending_sock))
			snprintf(cause, sizeof(cause), "could not set socket non-blocking: %m");
		else if (connect(pending_sock, (struct sockaddr *) &addrs[i], addrlens[i]) == 0)
			return pending_sock;
		else if (errno != EINPROGRESS)
			snprintf(cause, sizeof(cause), "%m");
		else if ((err = wait_connected(deadline)) == 0)
			return pending_sock;
		else if (err == ETIMEDOUT && TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline) <= 0)
		{
			closesocket(pending_sock);
			pending_sock = PGINVALID_SOCKET;
			ereport(ERROR,
					(errcode(PCR_ERRCODE_TRANSPORT),
					 errmsg("could not connect to ssh host \"%s\"", where),
					 errdetail("Timed out after %d ms (paperclip.ssh_connect_timeout).", timeout_ms)));
		}
		else
		{
			errno = err;
			snprintf(cause, sizeof(cause), "%m");
		}
		closesocket(pending_sock);
		pending_sock = PGINVALID_SOCKET;
	}
	ereport(ERROR,
			(errcode(PCR_ERRCODE_TRANSPORT),
			 errmsg("could not connect to ssh host \"%s\"", where),
			 errdetail("%s", cause)));
	pg_unreachable();
}

/* ------------------------------------------------------------------------
 * Host key
 * ------------------------------------------------------------------------ */
static int
knownhost_key_bits(int hostkey_type)
{
	switch (hostkey_type)
	{
		case LIBSSH2_HOSTKEY_TYPE_RSA:
			return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
		case LIBSSH2_HOSTKEY_TYPE_DSS:
			return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
		case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
			return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
		case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
			return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
		case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
			return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
		case LIBSSH2_HOSTKEY_TYPE_ED25519:
			return LIBSSH2_KNOWNHOST_KEY_ED25519;
	}
	return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
}

static const char *
hostkey_type_name(int hostkey_type)
{
	switch (hostkey_type)
	{
		case LIBSSH2_HOSTKEY_TYPE_RSA:
			return "ssh-rsa";
		case LIBSSH2_HOSTKEY_TYPE_DSS:
			return "ssh-dss";
		case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
			return "ecdsa-sha2-nistp256";
		case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
			return "ecdsa-sha2-nistp384";
		case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
			return "ecdsa-sha2-nistp521";
		case LIBSSH2_HOSTKEY_TYPE_ED25519:
			return "ssh-ed25519";
	}
	return "unknown";
}

/* "SHA256:..." as OpenSSH prints it (base64 without padding). */
static void
hostkey_fingerprint(SshConn *c, char *out, size_t outlen)
{
	unsigned char digest[crypto_hash_sha256_BYTES];
	char		b64[64];
	int			n;

	crypto_hash_sha256(digest, (const unsigned char *) c->hostkey, c->hostkey_len);
	n = pg_b64_encode((const char *) digest, sizeof(digest), b64, sizeof(b64) - 1);
	if (n < 0)
		n = 0;
	while (n > 0 && b64[n - 1] == '=')
		n--;
	b64[n] = '\0';
	snprintf(out, outlen, "SHA256:%s", b64);
}

/*
 * Verify the session's host key against this request.  With raise = false
 * (a pooled session about to be reused) a failure only returns false: the
 * host may have been re-keyed since, and a new session is checked in full.
 */
static bool
check_host_key(SshConn *c, const PcrSshRequest *req, PcrSshResponse *resp, bool raise)
{
	LIBSSH2_KNOWNHOSTS *kh;
	const char *p;
	int			rc;
	int			nread = 0;

	strlcpy(resp->host_key_type, hostkey_type_name(c->hostkey_type), sizeof(resp->host_key_type));
	hostkey_fingerprint(c, resp->host_key_sha256, sizeof(resp->host_key_sha256));
	if (!req->strict_host_key_checking)
		return true;
	if (req->known_hosts[0] == '\0' && !raise)
		return false;
	if (req->known_hosts[0] == '\0')
		ereport(ERROR,
				(errcode(PCR_ERRCODE_TRANSPORT),
				 errmsg("host key of \"%s\" cannot be verified: no knownHosts configured", c->where),
				 errdetail("strictHostKeyChecking is true and the environment config has no knownHosts; the server offered a %s key, %s.",
						   resp->host_key_type, resp->host_key_sha256),
				 errhint("Add the host's key to knownHosts, or set strictHostKeyChecking to false.")));

	kh = libssh2_knownhost_init(c->session);
	if (kh == NULL)
		PcrSshTransportError(c, LIBSSH2_ERROR_ALLOC, "host key check", 0);
	p = req->known_hosts;
	while (*p)
	{
		const char *eol = strchr(p, '\n');
		size_t		len = eol ? (size_t) (eol - p) : strlen(p);
		char	   *line = pnstrdup(p, len);
		size_t		l = strlen(line);

		while (l > 0 && (line[l - 1] == '\r' || isspace((unsigned char) line[l - 1])))
			line[--l] = '\0';
		/* lines libssh2 cannot read (comments, other key types) are skipped */
		if (l > 0 && line[0] != '#' &&
			libssh2_knownhost_readline(kh, line, l, LIBSSH2_KNOWNHOST_FILE_OPENSSH) == 0)
			nread++;
		pfree(line);
		p += len;
		if (*p == '\n')
			p++;
	}
	rc = libssh2_knownhost_checkp(kh, req->host, req->port, c->hostkey, c->hostkey_len,
								  LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
								  knownhost_key_bits(c->hostkey_type), NULL);
	libssh2_knownhost_free(kh);

	if (rc == LIBSSH2_KNOWNHOST_CHECK_MATCH)
		return true;
	if (!raise)
		return false;
	if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_TRANSPORT),
				 errmsg("host key of \"%s\" does not match knownHosts", c->where),
				 errdetail("The server offered a %s key, %s, which differs from the key knownHosts lists for this host.",
						   resp->host_key_type, resp->host_key_sha256),
				 errhint("If the host was re-keyed on purpose, update knownHosts in the environment config.")));
	if (rc == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_TRANSPORT),
				 errmsg("host key of \"%s\" is not in knownHosts", c->where),
				 errdetail("knownHosts has %d usable entries, none for this host and key type; the server offered a %s key, %s.",
						   nread, resp->host_key_type, resp->host_key_sha256)));
	ereport(ERROR,
			(errcode(PCR_ERRCODE_TRANSPORT),
			 errmsg("could not check the host key of \"%s\"", c->where),
			 errdetail("libssh2 could not compare the key with knownHosts.")));
}

/* ------------------------------------------------------------------------
 * Connect, verify, authenticate
 * ------------------------------------------------------------------------ */
static SshConn *
open_conn(const PcrSshRequest *req, PcrSshResponse *resp)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), req->connect_timeout_ms);
	SshConn    *c;
	const char *key;
	size_t		keylen;
	int			rc;

	if (!libssh2_ready)
	{
		if (libssh2_init(0) != 0)
			elog(ERROR, "could not initialise libssh2");
		libssh2_ready = true;
	}

	c = free_conn_slot();
	memcpy(c->cache_key, req->cache_key, PCR_IO_ROUTE_KEY_LEN);
	c->route_hash = req->route_hash;
	c->sock = PGINVALID_SOCKET;
	if (strchr(req->host, ':'))
		snprintf(c->where, sizeof(c->where), "[%s]:%d", req->host, req->port);
	else
		snprintf(c->where, sizeof(c->where), "%s:%d", req->host, req->port);
	current = c;

	c->sock = tcp_connect(req->host, req->port, c->where, deadline, req->connect_timeout_ms);
	pending_sock = PGINVALID_SOCKET;	/* now owned by c */
	c->used = true;					/* from here on drop_conn() cleans up */
	c->last_used = GetCurrentTimestamp();

	c->session = libssh2_session_init();
	if (c->session == NULL)
		elog(ERROR, "could not create an ssh session");
	libssh2_session_set_blocking(c->session, 0);
	SSH_RETRY(c, deadline, rc, libssh2_session_handshake(c->session, c->sock));
	if (rc != 0)
		PcrSshTransportError(c, rc, "handshake", req->connect_timeout_ms);

	key = libssh2_session_hostkey(c->session, &keylen, &c->hostkey_type);
	if (key == NULL || keylen == 0)
		PcrSshTransportError(c, LIBSSH2_ERROR_KEX_FAILURE, "handshake", 0);
	c->hostkey = malloc(keylen);
	if (c->hostkey == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	memcpy(c->hostkey, key, keylen);
	c->hostkey_len = keylen;
	(void) check_host_key(c, req, resp, true);

	SSH_RETRY(c, deadline, rc,
			  libssh2_userauth_publickey_frommemory(c->session, req->username, strlen(req->username),
													NULL, 0, req->key, req->key_len, NULL));
	if (rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_METHOD_NOT_SUPPORTED)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("the private key in privateKeySecretRef cannot be used"),
				 errdetail("It is not an unencrypted private key in OpenSSH or PEM format that libssh2 can read.")));
	if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_AUTH),
				 errmsg("ssh authentication of user \"%s\" on \"%s\" failed", req->username, c->where),
				 errdetail("The server refused the private key from privateKeySecretRef.")));
	if (rc != 0)
		PcrSshTransportError(c, rc, "authentication", req->connect_timeout_ms);

	SSH_RETRY_PTR(c, deadline, c->sftp, libssh2_sftp_init(c->session));
	if (c->sftp == NULL)
		PcrSshTransportError(c, libssh2_session_last_errno(c->session) == LIBSSH2_ERROR_EAGAIN
						? PCR_SSH_TIMED_OUT : -1, "sftp start", req->connect_timeout_ms);
	return c;
}

/* ------------------------------------------------------------------------
 * A request
 * ------------------------------------------------------------------------ */
SshConn *
PcrSshConnect(PcrSshRequest *req, PcrSshResponse *resp)
{
	SshConn    *c = find_conn(req);

	current = NULL;
	if (c != NULL)
	{
		current = c;
		if (!conn_alive(c) || !check_host_key(c, req, resp, false))
		{
			drop_conn(c);
			c = NULL;
		}
		else
			resp->reused_session = true;
	}
	if (c == NULL)
		c = open_conn(req, resp);
	/* the key is not needed any more */
	sodium_memzero(req->key, req->key_len);
	req->key_len = 0;
	current = c;
	return c;
}

void
PcrSshDone(SshConn *c)
{
	c->last_used = GetCurrentTimestamp();
	if (c->broken)
		drop_conn(c);
	current = NULL;
}

void
PcrSshExecute(PcrSshRequest *req, PcrSshResponse *resp)
{
	SshConn    *c = PcrSshConnect(req, resp);
	TimestampTz deadline;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), req->connect_timeout_ms);
	if (req->acquire)
	{
		PcrSshMakeWorkspace(c, req->path, deadline, req->connect_timeout_ms);
		resp->workspace_exists = true;
	}
	else
		resp->workspace_exists = PcrSshWorkspaceExists(c, req->path, deadline, req->connect_timeout_ms);
	if (resp->workspace_exists)
		PcrSshRealpath(c, req->path, resp->remote_cwd, sizeof(resp->remote_cwd),
					   deadline, req->connect_timeout_ms);

	PcrSshDiscoverApi(c, req, resp);
	PcrSshDone(c);
}
