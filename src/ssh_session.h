/*
 * ssh_session.h — what the parts of the ssh client share (driver workers only)
 *
 * ssh_client.c owns the sessions (connect, host key, authentication, reuse),
 * ssh_workspace.c makes the workspace over SFTP, ssh_api.c finds the
 * paperclip API from the remote host.  Never included outside those files.
 */
#ifndef PCR_SSH_SESSION_H
#define PCR_SSH_SESSION_H

#include "pcr.h"
#include "ssh_proto.h"
#include "pcr_exec.h"

#include <libssh2.h>
#include <libssh2_sftp.h>

#include "utils/timestamp.h"

/* rc of SSH_RETRY when the deadline passed */
#define PCR_SSH_TIMED_OUT		(-1000)

/* An open ssh session of this worker (process memory, never shared). */
typedef struct SshConn
{
	bool		used;
	uint8		cache_key[PCR_IO_ROUTE_KEY_LEN];
	uint64		route_hash;
	pgsocket	sock;
	LIBSSH2_SESSION *session;
	LIBSSH2_SFTP *sftp;
	int			hostkey_type;
	size_t		hostkey_len;
	char	   *hostkey;		/* malloc'd copy of the server's key blob */
	TimestampTz last_used;
	bool		broken;			/* a channel could not be closed in time: do not reuse */
	char		where[PCR_SSH_HOST_MAX + 16];	/* host:port, for messages */
} SshConn;

/*
 * Wait (PcrIoWait) on the socket in the directions libssh2 asks for; false
 * when the deadline has passed.  Raises when the caller gave up.
 */
extern bool PcrSshWait(SshConn *c, TimestampTz deadline);

/* Raise 08001 for a failed (or, rc = PCR_SSH_TIMED_OUT, timed out) step. */
extern void PcrSshTransportError(SshConn *c, int rc, const char *what, int timeout_ms) pg_attribute_noreturn();

/* Repeat a libssh2 call returning int while it asks to wait. */
#define SSH_RETRY(c, deadline, rc, call) \
	do { \
		while (((rc) = (call)) == LIBSSH2_ERROR_EAGAIN) \
			if (!PcrSshWait((c), (deadline))) { (rc) = PCR_SSH_TIMED_OUT; break; } \
	} while (0)

/* Same for calls returning a pointer (NULL + EAGAIN means wait). */
#define SSH_RETRY_PTR(c, deadline, ptr, call) \
	do { \
		while (((ptr) = (call)) == NULL && \
			   libssh2_session_last_errno((c)->session) == LIBSSH2_ERROR_EAGAIN) \
			if (!PcrSshWait((c), (deadline))) break; \
	} while (0)

/*
 * ssh_client.c: a verified, authenticated session for the request (a pooled
 * one after its liveness and host key checks, else a new one); the request's
 * key is zeroed.  It is the session of the running request: dropped by the
 * backend's abort hook if the request raises.  PcrSshDone hands it back to
 * the pool (or drops it when marked broken).
 */
extern SshConn *PcrSshConnect(PcrSshRequest *req, PcrSshResponse *resp);
extern void PcrSshDone(SshConn *c);

/*
 * ssh_exec.c: run one command (the "ssh.execute" operation's work); start_ms
 * bounds the remote login until the command runs, spec->timeout_ms the
 * command from then on.
 */
extern void PcrSshRunCommand(SshConn *c, const PcrExecSpec *spec, int start_ms, PcrExecOutcome *outcome);

/* ssh_workspace.c: mkdir -p, stat and realpath over SFTP */
extern void PcrSshMakeWorkspace(SshConn *c, const char *path, TimestampTz deadline, int timeout_ms);
extern bool PcrSshWorkspaceExists(SshConn *c, const char *path, TimestampTz deadline, int timeout_ms);
extern void PcrSshRealpath(SshConn *c, const char *path, char *out, size_t outlen,
						   TimestampTz deadline, int timeout_ms);

/* ssh_api.c: resp->api_url from the candidates of the request, or raise 08001 */
extern void PcrSshDiscoverApi(SshConn *c, const PcrSshRequest *req, PcrSshResponse *resp);

#endif							/* PCR_SSH_SESSION_H */
