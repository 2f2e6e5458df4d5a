/*
 * local_workspace.c — the local driver's per-lease directories: make, list, remove
 *
 * Made and removed in driver workers; listed by the reconciler (a readdir of
 * one local directory), which then has a worker remove each directory whose
 * lease is no longer active or gone (local_workspace.h).  Removal walks the
 * tree with openat/unlinkat and O_NOFOLLOW: a command can plant a symbolic
 * link to anywhere in its workspace, and the link is removed, never
 * followed.
 */
#include "pcr.h"
#include "local_workspace.h"
#include "reconciler.h"
#include "util.h"

#include <dirent.h>
#include <limits.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/transam.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(pcr_local_workspaces);

char	   *pcr_local_workspace_root = NULL;

#define LOCAL_REMOVE_MAX_DEPTH 128

/* ------------------------------------------------------------------------
 * Names and checks
 * ------------------------------------------------------------------------ */
static char *
cluster_label(void)
{
	return psprintf("%" INT64_MODIFIER "x", GetSystemIdentifier());
}

void
PcrLocalWorkspaceName(const pg_uuid_t *lease_id, char *out, size_t outlen)
{
	snprintf(out, outlen, "pcr-%s-db%u-%s", cluster_label(), MyDatabaseId, PcrUuidToCString(lease_id));
}

/*
 * Is name pcr-<this cluster>-db<oid>-<uuid>, for database db (InvalidOid:
 * any; the driver workers have none)?  The uuid into *lease_id.
 */
static bool
parse_name(const char *name, Oid db, pg_uuid_t *lease_id)
{
	char	   *prefix = psprintf("pcr-%s-db", cluster_label());
	size_t		plen = strlen(prefix);
	const char *p = name + plen;
	char	   *end;
	unsigned long oid;
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = false;

	if (strncmp(name, prefix, plen) != 0 || !isdigit((unsigned char) *p))
		return false;
	errno = 0;
	oid = strtoul(p, &end, 10);
	if (errno != 0 || *end != '-' || oid == 0 || oid > PG_UINT32_MAX ||
		(OidIsValid(db) && (Oid) oid != db))
		return false;
	p = end + 1;
	if (strlen(p) != 36 || strspn(p, "0123456789abcdef-") != 36)
		return false;
	PG_TRY();
	{
		memcpy(lease_id, DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(p))), sizeof(pg_uuid_t));
		ok = true;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
	}
	PG_END_TRY();
	return ok;
}

static void pg_attribute_noreturn()
refuse(const char *fmt, const char *arg)
{
	ereport(ERROR,
			(errcode(PCR_ERRCODE_REMOTE_IO),
			 errmsg("the local workspace cannot be used"),
			 errdetail_internal(fmt, arg),
			 errhint("paperclip.local_workspace_root must name a directory owned by the server's OS user, not writable by others, outside the data directory.")));
}

/* The root: absolute, outside the data directory (canonical paths compared). */
static void
check_root_path(const char *root)
{
	char		droot[PATH_MAX];	/* realpath() wants PATH_MAX */
	char		ddata[PATH_MAX];

	if (root == NULL || root[0] != '/')
		refuse("paperclip.local_workspace_root \"%s\" is not an absolute path", root ? root : "");
	if (realpath(DataDir, ddata) == NULL)
		strlcpy(ddata, DataDir, sizeof(ddata));
	if (realpath(root, droot) == NULL)
		strlcpy(droot, root, sizeof(droot));
	if (strcmp(droot, ddata) == 0 ||
		(strncmp(droot, ddata, strlen(ddata)) == 0 && droot[strlen(ddata)] == '/'))
		refuse("paperclip.local_workspace_root \"%s\" is inside the data directory", root);
}

/* A directory of ours that nobody else can write, opened without following a link. */
static int
open_private_dir(int at, const char *path, const char *what)
{
	struct stat st;
	int			fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		refuse(psprintf("could not open %s \"%%s\": %m", what), path);
	if (fstat(fd, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
	{
		close(fd);
		refuse(psprintf("%s \"%%s\" is not a private directory of the server's OS user", what), path);
	}
	return fd;
}

char *
PcrLocalWorkspaceEnsure(const char *root, const char *name, TransactionId creator_xid)
{
	int			rootfd;
	int			wsfd;
	pg_uuid_t	lease_id;

	if (!parse_name(name, InvalidOid, &lease_id))
		elog(ERROR, "malformed local workspace name");
	check_root_path(root);
	if (mkdir(root, 0700) != 0 && errno != EEXIST)
		refuse(psprintf("could not create the workspace root \"%%s\": %m"), root);
	rootfd = open_private_dir(AT_FDCWD, root, "the workspace root");
	if (mkdirat(rootfd, name, 0700) != 0 && errno != EEXIST)
	{
		close(rootfd);
		refuse(psprintf("could not create the workspace \"%%s\": %m"), name);
	}
	wsfd = open_private_dir(rootfd, name, "the workspace");
	close(wsfd);
	if (TransactionIdIsValid(creator_xid))
	{
		char	   *marker = psprintf("%s.xid", name);
		char	   *text = psprintf("%u\n", creator_xid);
		int			fd = openat(rootfd, marker, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);

		if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text))
		{
			if (fd >= 0)
				close(fd);
			close(rootfd);
			refuse(psprintf("could not write the marker of the workspace \"%%s\": %m"), name);
		}
		close(fd);
	}
	close(rootfd);
	return psprintf("%s/%s", root, name);
}

/* ------------------------------------------------------------------------
 * Removal, in a driver worker
 * ------------------------------------------------------------------------ */
static void pg_attribute_noreturn()
remove_error(const char *name)
{
	ereport(ERROR,
			(errcode(PCR_ERRCODE_REMOTE_IO),
			 errmsg("could not remove the local workspace entry \"%s\": %m", name)));
}

/* Remove name (in the directory dirfd) and all below it, following no link. */
static void
remove_at(int dirfd, const char *name, int depth)
{
	struct stat st;
	int			fd;
	DIR		   *dir;
	struct dirent *de;

	CHECK_FOR_INTERRUPTS();
	PcrIoCheckAbandoned();
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
	{
		if (errno == ENOENT)
			return;
		remove_error(name);
	}
	if (!S_ISDIR(st.st_mode))
	{
		if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
			remove_error(name);
		return;
	}
	if (depth >= LOCAL_REMOVE_MAX_DEPTH)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_REMOTE_IO),
				 errmsg("the local workspace is nested deeper than %d directories", LOCAL_REMOVE_MAX_DEPTH)));
	/* a directory its command made unreadable is still ours to open */
	if ((st.st_mode & S_IRWXU) != S_IRWXU && fchmodat(dirfd, name, st.st_mode | S_IRWXU, 0) != 0)
		remove_error(name);
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		remove_error(name);
	dir = fdopendir(fd);
	if (dir == NULL)
	{
		close(fd);
		remove_error(name);
	}
	PG_TRY();
	{
		while ((de = readdir(dir)) != NULL)
		{
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			remove_at(fd, de->d_name, depth + 1);
		}
	}
	PG_FINALLY();
	{
		closedir(dir);
	}
	PG_END_TRY();
	if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		remove_error(name);
}

/* "local.remove": [root\0][name\0]; a workspace already gone is done. */
static void
run_remove(PcrIoRequest *req, PcrIoResponse *resp)
{
	const char *root = req->data;
	const char *name;
	pg_uuid_t	lease_id;
	int			rootfd;

	if (memchr(req->data, '\0', req->len) == NULL)
		elog(ERROR, "malformed local.remove request");
	name = root + strlen(root) + 1;
	if (name >= req->data + req->len || memchr(name, '\0', req->data + req->len - name) == NULL ||
		!parse_name(name, InvalidOid, &lease_id))
		elog(ERROR, "malformed local.remove request");
	check_root_path(root);
	rootfd = openat(AT_FDCWD, root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0)
	{
		if (errno == ENOENT)
			return;
		remove_error(root);
	}
	PG_TRY();
	{
		remove_at(rootfd, name, 0);
		if (unlinkat(rootfd, psprintf("%s.xid", name), 0) != 0 && errno != ENOENT)
			remove_error(name);
	}
	PG_FINALLY();
	{
		close(rootfd);
	}
	PG_END_TRY();
}

const PcrIoOperation pcr_local_op_remove = {
	.name = "local.remove",
	.max_request = MAXPGPATH + PCR_LOCAL_NAME_MAX + 2,
	.max_response = 0,
	.run = run_remove,
};

/* ------------------------------------------------------------------------
 * The listing: paperclip.local_workspaces() (the reconciler's step)
 * ------------------------------------------------------------------------ */

/* Is the transaction named by the workspace's marker still running? */
static bool
creator_running(int rootfd, const char *name)
{
	char		buf[32];
	int			fd = openat(rootfd, psprintf("%s.xid", name), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t		n;
	TransactionId xid;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	xid = (TransactionId) strtoul(buf, NULL, 10);
	return TransactionIdIsNormal(xid) && TransactionIdIsInProgress(xid);
}

Datum
pcr_local_workspaces(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *root = pcr_local_workspace_root;
	int			rootfd;
	DIR		   *dir;
	struct dirent *de;

	InitMaterializedSRF(fcinfo, 0);
	if (root == NULL || root[0] != '/')
		return (Datum) 0;
	rootfd = openat(AT_FDCWD, root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0)
		return (Datum) 0;		/* no root yet: nothing was ever made */
	dir = fdopendir(rootfd);
	if (dir == NULL)
	{
		close(rootfd);
		return (Datum) 0;
	}
	PG_TRY();
	{
		while ((de = readdir(dir)) != NULL)
		{
			pg_uuid_t	lease_id;
			Datum		values[2];
			bool		nulls[2] = {false, false};
			struct stat st;

			if (!parse_name(de->d_name, MyDatabaseId, &lease_id) ||
				fstatat(rootfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
				continue;
			values[0] = UUIDPGetDatum(&lease_id);
			values[1] = BoolGetDatum(creator_running(rootfd, de->d_name));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	PG_FINALLY();
	{
		closedir(dir);
	}
	PG_END_TRY();
	return (Datum) 0;
}

typedef struct RemoveWork
{
	pg_uuid_t	lease_id;
	char	   *root;
} RemoveWork;

static void *
remove_prepare(HeapTuple row, TupleDesc desc)
{
	RemoveWork *w = palloc0(sizeof(RemoveWork));

	memcpy(&w->lease_id, PcrRowUuid(row, desc, "id"), sizeof(pg_uuid_t));
	w->root = pstrdup(pcr_local_workspace_root);
	return w;
}

static void
remove_call(void *arg)
{
	RemoveWork *w = (RemoveWork *) arg;
	char		name[PCR_LOCAL_NAME_MAX];
	Size		len;
	char	   *req;
	PcrIoCall	call;
	PcrIoResult res;

	PcrLocalWorkspaceName(&w->lease_id, name, sizeof(name));
	len = strlen(w->root) + 1 + strlen(name) + 1;
	req = palloc0(len);
	memcpy(req, w->root, strlen(w->root));
	memcpy(req + strlen(w->root) + 1, name, strlen(name));
	memset(&call, 0, sizeof(call));
	call.op = &pcr_local_op_remove;
	call.request = req;
	call.request_len = len;
	call.target = "local workspace";
	PcrIoInvoke(&call, &res);
}

static PcrRowOutcome
remove_record(void *arg, ErrorData *call_error)
{
	RemoveWork *w = (RemoveWork *) arg;

	if (call_error != NULL)
		ereport(LOG,
				(errmsg("paperclip reconciler: could not remove the local workspace of lease %s: %s",
						PcrUuidToCString(&w->lease_id), call_error->message)));
	return PCR_ROW_NOTHING;
}

static const PcrReconcileStep remove_local_workspaces = {
	.name = "remove local workspaces of leases no longer active",
	.select_sql =
	"SELECT w.lease_id AS id FROM paperclip.local_workspaces() AS w "
	" WHERE NOT w.creator_running AND NOT (w.lease_id = ANY ($1)) "
	"   AND NOT EXISTS (SELECT FROM paperclip.environment_leases AS l "
	"                    WHERE l.id = w.lease_id AND l.status = 'active') "
	" LIMIT $2",
	.prepare_row = remove_prepare,
	.call = remove_call,
	.record = remove_record,
};

/* ------------------------------------------------------------------------
 * Registration
 * ------------------------------------------------------------------------ */
static const PcrIoOperation *const local_ops[] = {&pcr_local_op_execute, &pcr_local_op_remove};

static const PcrIoBackend local_backend = {
	.abi_version = PCR_IO_ABI_VERSION,
	.name = "local",
	.ops = local_ops,
	.nops = lengthof(local_ops),
};

void
PcrLocalWorkspaceInit(bool preloading)
{
	DefineCustomStringVariable("paperclip.local_workspace_root",
							   "Directory holding the workspaces of commands run on local leases.",
							   "Each lease gets <root>/pcr-<cluster>-db<database oid>-<lease id>, 0700; the root must be outside the data directory.",
							   &pcr_local_workspace_root, "/var/tmp/paperclip_local",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	if (preloading)
	{
		PcrIoRegisterBackend(&local_backend);
		PcrReconcilerAddStep(&remove_local_workspaces);
	}
}
