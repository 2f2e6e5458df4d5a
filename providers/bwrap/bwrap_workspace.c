/*
 * bwrap_workspace.c — workspaces under paperclip_bwrap.sandbox_root (worker side)
 *
 * An object is the directory <sandbox_root>/<object name> (0700, owned by
 * the server's OS user), bound read-write at /workspace in every command of
 * its lease, and its labels <sandbox_root>/<object name>.json (cluster,
 * database, company, environment, lease, reusable, createdAt): outside the
 * workspace, so a sandbox can neither read nor forge them.  Creating
 * writes the labels first, so a crash between the two steps leaves an
 * object that list_owned still finds.
 *
 * Destroy never follows a symbolic link: the workspace is walked with
 * openat(O_NOFOLLOW | O_DIRECTORY) from a descriptor of sandbox_root, its
 * entries removed with unlinkat, one directory descriptor open at a time
 * (going back up with "..", checked against the device and inode it came
 * from), so neither a link planted by the sandbox nor a deep tree can make
 * it touch anything outside.
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "bwrap.h"

#define LABELS_SUFFIX ".json"
#define LABELS_TMP_SUFFIX ".json.tmp"

char *
BwrapWorkspacePath(const char *name)
{
	return psprintf("%s/%s", bwrap_sandbox_root, name);
}

const char *
BwrapRootProblem(bool create)
{
	struct stat st;

	if (lstat(bwrap_sandbox_root, &st) != 0)
	{
		if (errno != ENOENT)
			return psprintf("paperclip_bwrap.sandbox_root \"%s\" cannot be examined: %m", bwrap_sandbox_root);
		if (!create)
			return NULL;		/* created with the first sandbox */
		if (mkdir(bwrap_sandbox_root, 0700) != 0 && errno != EEXIST)
			return psprintf("could not create paperclip_bwrap.sandbox_root \"%s\": %m", bwrap_sandbox_root);
		if (lstat(bwrap_sandbox_root, &st) != 0)
			return psprintf("paperclip_bwrap.sandbox_root \"%s\" cannot be examined: %m", bwrap_sandbox_root);
	}
	if (!S_ISDIR(st.st_mode))
		return psprintf("paperclip_bwrap.sandbox_root \"%s\" is not a directory (a symbolic link is refused)",
						bwrap_sandbox_root);
	if (st.st_uid != geteuid())
		return psprintf("paperclip_bwrap.sandbox_root \"%s\" is not owned by the server's OS user",
						bwrap_sandbox_root);
	if ((st.st_mode & 077) != 0)
		return psprintf("paperclip_bwrap.sandbox_root \"%s\" is accessible to group or others (mode %04o, want 0700)",
						bwrap_sandbox_root, (unsigned) (st.st_mode & 07777));
	return NULL;
}

/* A descriptor of sandbox_root, or -1 (errno set). */
static int
open_root(void)
{
	return open(bwrap_sandbox_root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* ------------------------------------------------------------------------
 * Labels
 * ------------------------------------------------------------------------ */
static int64
to_unix_ms(TimestampTz t)
{
	return t / 1000 + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
}

static TimestampTz
from_unix_ms(int64 ms)
{
	return (ms - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000) * 1000;
}

static char *
uuid_text(const pg_uuid_t *u)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum((pg_uuid_t *) u)));
}

static bool
write_labels(int rootfd, const PcrSandboxObject *obj, const char **problem)
{
	char	   *tmp = psprintf("%s" LABELS_TMP_SUFFIX, obj->name);
	char	   *final = psprintf("%s" LABELS_SUFFIX, obj->name);
	char	   *text = psprintf("{\"cluster\": \"%s\", \"database\": %u, \"company\": \"%s\", "
								"\"environment\": \"%s\", \"lease\": \"%s\", \"reusable\": %s, "
								"\"createdAt\": " INT64_FORMAT "}\n",
								obj->cluster, obj->database_id, uuid_text(&obj->company_id),
								uuid_text(&obj->environment_id), uuid_text(&obj->lease_id),
								obj->reusable ? "true" : "false", to_unix_ms(GetCurrentTimestamp()));
	int			fd = openat(rootfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	ssize_t		n;

	if (fd < 0)
	{
		*problem = psprintf("could not write the labels of sandbox \"%s\": %m", obj->name);
		return false;
	}
	n = write(fd, text, strlen(text));
	if (n != (ssize_t) strlen(text) || close(fd) != 0 || renameat(rootfd, tmp, rootfd, final) != 0)
	{
		*problem = psprintf("could not write the labels of sandbox \"%s\": %m", obj->name);
		(void) unlinkat(rootfd, tmp, 0);
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------------
 * create, resume
 * ------------------------------------------------------------------------ */
PcrProviderStatus
BwrapCreate(const PcrSandboxObject *obj, PcrProviderResult *res)
{
	const char *problem = BwrapRootProblem(true);
	struct stat st;
	int			rootfd;

	if (problem != NULL)
		return PcrProviderReport(res, PCR_PROVIDER_FATAL, "%s", problem);
	if ((rootfd = open_root()) < 0)
		return PcrProviderReport(res, PCR_PROVIDER_FATAL, "could not open paperclip_bwrap.sandbox_root: %m");
	if (!write_labels(rootfd, obj, &problem))
	{
		close(rootfd);
		return PcrProviderReport(res, PCR_PROVIDER_FATAL, "%s", problem);
	}
	if (mkdirat(rootfd, obj->name, 0700) != 0 &&
		(errno != EEXIST || fstatat(rootfd, obj->name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)))
	{
		PcrProviderStatus s = PcrProviderReport(res, PCR_PROVIDER_FATAL,
												"could not create the workspace of sandbox \"%s\": %m", obj->name);

		close(rootfd);
		return s;
	}
	close(rootfd);
	return BwrapCheckStarts(obj, BwrapWorkspacePath(obj->name), res);
}

PcrProviderStatus
BwrapResume(const PcrSandboxObject *obj, PcrProviderResult *res)
{
	struct stat st;
	int			rootfd = open_root();
	int			rc;

	if (rootfd < 0)
		return errno == ENOENT ? PCR_PROVIDER_NOT_FOUND
			: PcrProviderReport(res, PCR_PROVIDER_FATAL, "could not open paperclip_bwrap.sandbox_root: %m");
	rc = fstatat(rootfd, obj->name, &st, AT_SYMLINK_NOFOLLOW);
	close(rootfd);
	if (rc != 0 || !S_ISDIR(st.st_mode))
		return PCR_PROVIDER_NOT_FOUND;
	return PCR_PROVIDER_OK;
}

/* ------------------------------------------------------------------------
 * destroy: remove a tree without following links
 * ------------------------------------------------------------------------ */
typedef struct TreeLevel
{
	dev_t		dev;			/* of the directory above */
	ino_t		ino;
	char	   *name;			/* of this directory in the one above */
} TreeLevel;

/*
 * Remove every entry of dirfd that is not a directory; the name of a
 * subdirectory (palloc'd) when there is one left, else NULL.
 */
static char *
clear_files(int dirfd, const char **problem)
{
	int			fd = dup(dirfd);
	DIR		   *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	char	   *subdir = NULL;

	if (dir == NULL)
	{
		if (fd >= 0)
			close(fd);
		*problem = psprintf("could not read a directory: %m");
		return NULL;
	}
	rewinddir(dir);
	while ((de = readdir(dir)) != NULL)
	{
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;			/* gone meanwhile */
		if (S_ISDIR(st.st_mode))
		{
			if (subdir == NULL)
				subdir = pstrdup(de->d_name);
			continue;
		}
		if (unlinkat(dirfd, de->d_name, 0) != 0 && errno != ENOENT)
			*problem = psprintf("could not remove \"%s\": %m", de->d_name);
	}
	closedir(dir);
	return subdir;
}

/* Open a subdirectory without following a link; make it readable if the sandbox locked it. */
static int
open_subdir(int dirfd, const char *name)
{
	int			fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == EACCES && fchmodat(dirfd, name, 0700, 0) == 0)
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

/* Remove the tree name under rootfd; NULL when it is gone, else why not. */
static const char *
remove_tree(int rootfd, const char *name)
{
	TreeLevel  *stack = palloc(sizeof(TreeLevel) * 16);
	int			size = 16;
	int			depth = 0;
	const char *problem = NULL;
	int			cur = open_subdir(rootfd, name);

	if (cur < 0)
	{
		if (errno == ENOENT)
			return NULL;
		if (errno == ENOTDIR || errno == ELOOP)
			return unlinkat(rootfd, name, 0) == 0 || errno == ENOENT ? NULL
				: psprintf("could not remove \"%s\": %m", name);
		return psprintf("could not open \"%s\": %m", name);
	}
	for (;;)
	{
		char	   *sub = clear_files(cur, &problem);
		struct stat here;
		int			next;

		if (problem != NULL)
			break;
		if (sub != NULL)
		{
			/* down into the first subdirectory left */
			if (fstat(cur, &here) != 0 || (next = open_subdir(cur, sub)) < 0)
			{
				problem = psprintf("could not open \"%s\": %m", sub);
				break;
			}
			if (depth == size)
				stack = repalloc(stack, sizeof(TreeLevel) * (size *= 2));
			stack[depth++] = (TreeLevel) {here.st_dev, here.st_ino, sub};
			close(cur);
			cur = next;
			continue;
		}
		if (depth == 0)
			break;
		/* empty: back up, checking we are where we came from, and remove it */
		next = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 || fstat(next, &here) != 0 ||
			here.st_dev != stack[depth - 1].dev || here.st_ino != stack[depth - 1].ino)
		{
			problem = "a directory of the workspace moved while it was removed";
			if (next >= 0)
				close(next);
			break;
		}
		close(cur);
		cur = next;
		depth--;
		if (unlinkat(cur, stack[depth].name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		{
			problem = psprintf("could not remove \"%s\": %m", stack[depth].name);
			break;
		}
	}
	close(cur);
	if (problem == NULL && unlinkat(rootfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		problem = psprintf("could not remove \"%s\": %m", name);
	return problem;
}

PcrProviderStatus
BwrapDestroy(const PcrSandboxObject *obj, PcrProviderResult *res)
{
	int			rootfd = open_root();
	const char *problem;

	if (rootfd < 0)
		return errno == ENOENT ? PCR_PROVIDER_OK
			: PcrProviderReport(res, PCR_PROVIDER_RETRY, "could not open paperclip_bwrap.sandbox_root: %m");
	problem = remove_tree(rootfd, obj->name);
	if (problem == NULL &&
		((unlinkat(rootfd, psprintf("%s" LABELS_SUFFIX, obj->name), 0) != 0 && errno != ENOENT) ||
		 (unlinkat(rootfd, psprintf("%s" LABELS_TMP_SUFFIX, obj->name), 0) != 0 && errno != ENOENT)))
		problem = psprintf("could not remove the labels: %m");
	close(rootfd);
	if (problem != NULL)
		return PcrProviderReport(res, PCR_PROVIDER_RETRY, "could not destroy sandbox \"%s\": %s",
								 obj->name, problem);
	return PCR_PROVIDER_OK;
}

/* ------------------------------------------------------------------------
 * list_owned
 * ------------------------------------------------------------------------ */

/* The object a name of sandbox_root belongs to (strips the labels suffixes), or NULL. */
static char *
object_of(const char *entry, const char *cluster, pg_uuid_t *id)
{
	char	   *name = pstrdup(entry);
	size_t		len = strlen(name);

	if (len > strlen(LABELS_TMP_SUFFIX) &&
		strcmp(name + len - strlen(LABELS_TMP_SUFFIX), LABELS_TMP_SUFFIX) == 0)
		name[len - strlen(LABELS_TMP_SUFFIX)] = '\0';
	else if (len > strlen(LABELS_SUFFIX) && strcmp(name + len - strlen(LABELS_SUFFIX), LABELS_SUFFIX) == 0)
		name[len - strlen(LABELS_SUFFIX)] = '\0';
	return PcrSandboxObjectNameParse(name, cluster, id) ? name : NULL;
}

static void
label_uuid(Jsonb *labels, const char *key, pg_uuid_t *out)
{
	char	   *s = PcrJsonbGetText(labels, key);

	if (s != NULL && strlen(s) == 36)
		memcpy(out, DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(s))), sizeof(pg_uuid_t));
}

/* Fill o from the labels of name (what they say; the id from the name otherwise). */
static void
read_labels(int rootfd, const char *name, const pg_uuid_t *id, PcrOwnedObject *o)
{
	char		buf[2048];
	int			fd = openat(rootfd, psprintf("%s" LABELS_SUFFIX, name), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t		n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	struct stat st;

	memset(o, 0, sizeof(*o));
	strlcpy(o->name, name, sizeof(o->name));
	o->lease_id = *id;
	if (fd >= 0)
		close(fd);
	if (n > 0)
	{
		Jsonb	   *labels;
		JsonbValue	v;

		buf[n] = '\0';
		labels = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf)));
		label_uuid(labels, "lease", &o->lease_id);
		label_uuid(labels, "company", &o->company_id);
		label_uuid(labels, "environment", &o->environment_id);
		o->reusable = PcrJsonbGetBool(labels, "reusable", false);
		if (PcrJsonbGet(labels, "database", &v) != NULL && v.type == jbvNumeric)
		{
			int64		db;

			if (PcrNumericToInt64(v.val.numeric, &db) && db > 0 && db <= PG_UINT32_MAX)
				o->database_id = (Oid) db;
		}
		if (PcrJsonbGet(labels, "createdAt", &v) != NULL && v.type == jbvNumeric)
		{
			int64		ms;

			if (PcrNumericToInt64(v.val.numeric, &ms))
				o->created_at = from_unix_ms(ms);
		}
	}
	else if (fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		o->created_at = from_unix_ms((int64) st.st_mtime * 1000);	/* labels lost: a reusable
																	 * object cannot be told */
}

PcrProviderStatus
BwrapListOwned(const char *cluster, PcrOwnedList *list, PcrProviderResult *res)
{
	int			rootfd = open_root();
	int			fd;
	DIR		   *dir;
	struct dirent *de;
	List	   *seen = NIL;

	if (rootfd < 0)
		return errno == ENOENT ? PCR_PROVIDER_OK
			: PcrProviderReport(res, PCR_PROVIDER_RETRY, "could not open paperclip_bwrap.sandbox_root: %m");
	fd = dup(rootfd);
	dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (dir == NULL)
	{
		close(rootfd);
		return PcrProviderReport(res, PCR_PROVIDER_RETRY, "could not read paperclip_bwrap.sandbox_root: %m");
	}
	while ((de = readdir(dir)) != NULL)
	{
		pg_uuid_t	id;
		char	   *name = object_of(de->d_name, cluster, &id);
		PcrOwnedObject o;
		ListCell   *lc;
		bool		dup_name = false;

		if (name == NULL)
			continue;
		foreach(lc, seen)
			dup_name = dup_name || strcmp((char *) lfirst(lc), name) == 0;
		if (dup_name)
			continue;
		seen = lappend(seen, name);
		read_labels(rootfd, name, &id, &o);
		PcrOwnedListAdd(list, &o);
	}
	closedir(dir);
	close(rootfd);
	return PCR_PROVIDER_OK;
}
