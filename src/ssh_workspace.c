/*
 * ssh_workspace.c — the remote workspace, over SFTP only
 *
 * mkdir -p, stat and realpath are SFTP requests: no remote shell ever sees
 * remoteWorkspacePath, so a path full of shell metacharacters is just a
 * name.  Failures the server reports are 58030 naming the component;
 * transport failures are 08001.
 */
#include "pcr.h"
#include "ssh_session.h"

/* An SFTP failure: a transport error, or the server's status for path. */
static void pg_attribute_noreturn()
sftp_status_error(SshConn *c, int rc, unsigned long status, const char *what, const char *path,
				  int timeout_ms)
{
	if (rc != LIBSSH2_ERROR_SFTP_PROTOCOL)
		PcrSshTransportError(c, rc, what, timeout_ms);
	ereport(ERROR,
			(errcode(PCR_ERRCODE_REMOTE_IO),
			 errmsg("could not %s remote workspace path \"%s\" on \"%s\"", what, path, c->where),
			 errdetail("SFTP status %lu%s.", status,
					   status == LIBSSH2_FX_PERMISSION_DENIED ? " (permission denied)" :
					   status == LIBSSH2_FX_NO_SUCH_FILE ? " (no such file)" : "")));
}

static void pg_attribute_noreturn()
sftp_error(SshConn *c, int rc, const char *what, const char *path, int timeout_ms)
{
	sftp_status_error(c, rc, rc == LIBSSH2_ERROR_SFTP_PROTOCOL ? libssh2_sftp_last_error(c->sftp) : 0,
					  what, path, timeout_ms);
}

/* 1 and *is_dir when path exists, 0 when it does not; raises otherwise. */
static int
sftp_stat(SshConn *c, const char *path, TimestampTz deadline, int timeout_ms, bool *is_dir)
{
	LIBSSH2_SFTP_ATTRIBUTES attrs;
	int			rc;

	SSH_RETRY(c, deadline, rc,
			  libssh2_sftp_stat_ex(c->sftp, path, strlen(path), LIBSSH2_SFTP_STAT, &attrs));
	if (rc == 0)
	{
		*is_dir = (attrs.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
			LIBSSH2_SFTP_S_ISDIR(attrs.permissions);
		return 1;
	}
	if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL)
	{
		unsigned long status = libssh2_sftp_last_error(c->sftp);

		if (status == LIBSSH2_FX_NO_SUCH_FILE || status == LIBSSH2_FX_NO_SUCH_PATH)
			return 0;
	}
	sftp_error(c, rc, "inspect", path, timeout_ms);
}

static void pg_attribute_noreturn()
not_a_directory(SshConn *c, const char *path)
{
	ereport(ERROR,
			(errcode(PCR_ERRCODE_REMOTE_IO),
			 errmsg("remote workspace path \"%s\" on \"%s\" is not a directory", path, c->where)));
}

/* mkdir -p over SFTP: every missing component, mode 0777 less the server's umask. */
void
PcrSshMakeWorkspace(SshConn *c, const char *path, TimestampTz deadline, int timeout_ms)
{
	char	   *buf = pstrdup(path);
	size_t		n = strlen(buf);
	bool		is_dir;

	if (sftp_stat(c, path, deadline, timeout_ms, &is_dir))
	{
		if (!is_dir)
			not_a_directory(c, path);
		return;
	}
	for (size_t i = 1; i <= n; i++)
	{
		int			rc;

		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		if (buf[i - 1] == '/')
			continue;			/* "//" or a trailing "/" */
		buf[i] = '\0';
		if (sftp_stat(c, buf, deadline, timeout_ms, &is_dir))
		{
			if (!is_dir)
				not_a_directory(c, buf);
		}
		else
		{
			SSH_RETRY(c, deadline, rc, libssh2_sftp_mkdir_ex(c->sftp, buf, strlen(buf), 0777));
			if (rc != 0)
			{
				unsigned long status = rc == LIBSSH2_ERROR_SFTP_PROTOCOL
					? libssh2_sftp_last_error(c->sftp) : 0;

				/* a concurrent creator is fine: look again */
				if (!(sftp_stat(c, buf, deadline, timeout_ms, &is_dir) && is_dir))
					sftp_status_error(c, rc, status, "create", buf, timeout_ms);
			}
		}
		if (i < n)
			buf[i] = '/';
	}
	pfree(buf);
}

void
PcrSshRealpath(SshConn *c, const char *path, char *out, size_t outlen,
			   TimestampTz deadline, int timeout_ms)
{
	int			rc;

	SSH_RETRY(c, deadline, rc,
			  libssh2_sftp_symlink_ex(c->sftp, path, strlen(path), out, outlen - 1,
									  LIBSSH2_SFTP_REALPATH));
	if (rc <= 0)
		sftp_error(c, rc == 0 ? LIBSSH2_ERROR_SFTP_PROTOCOL : rc, "canonicalise", path, timeout_ms);
	out[rc] = '\0';
}

/* Probe: does the workspace exist (as a directory)?  Creates nothing. */
bool
PcrSshWorkspaceExists(SshConn *c, const char *path, TimestampTz deadline, int timeout_ms)
{
	bool		is_dir;

	if (!sftp_stat(c, path, deadline, timeout_ms, &is_dir))
		return false;
	if (!is_dir)
		not_a_directory(c, path);
	return true;
}
