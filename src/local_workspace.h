/*
 * local_workspace.h — the per-lease directories of the local driver
 *
 * A command run by lease_execute on a local lease gets the directory
 * <paperclip.local_workspace_root>/pcr-<cluster>-db<database oid>-<lease id>
 * as HOME and as the base of its cwd (0700, made on first use by the driver
 * worker, the root too).  <cluster> is the system identifier in hex, so
 * clusters and databases may share a root.  A command run in a lease whose row its own transaction
 * wrote (acquired, not yet committed) leaves a marker beside the directory,
 * <name>.xid, holding that transaction's id.
 *
 * Removal: the reconciler lists the root at every pass
 * (paperclip.local_workspaces(): the directories of its own database) and
 * has a driver worker remove each one whose lease is not active or does not
 * exist, unless the transaction named by its marker is still running;
 * removal never follows a symbolic link.  Workspaces of databases other
 * than paperclip.database are not swept.
 */
#ifndef PCR_LOCAL_WORKSPACE_H
#define PCR_LOCAL_WORKSPACE_H

#include "pcr.h"
#include "io.h"

#define PCR_LOCAL_NAME_MAX 96	/* pcr-<16 hex>-db<10>-<36 uuid> and more */

extern char *pcr_local_workspace_root;

/* _PG_init (local driver's init): the setting, the I/O backend, the reconciler step. */
extern void PcrLocalWorkspaceInit(bool preloading);

/* pcr-<cluster>-db<database oid>-<lease id> */
extern void PcrLocalWorkspaceName(const pg_uuid_t *lease_id, char *out, size_t outlen);

/*
 * Worker side: make sure the root (a private directory of the server's OS
 * user, outside the data directory) and the workspace exist, writing the
 * marker when creator_xid is valid; 58030 otherwise.  Returns the
 * workspace's path.
 */
extern char *PcrLocalWorkspaceEnsure(const char *root, const char *name, TransactionId creator_xid);

/* I/O operations (local_exec.c, local_workspace.c) */
extern const PcrIoOperation pcr_local_op_execute;
extern const PcrIoOperation pcr_local_op_remove;

#endif							/* PCR_LOCAL_WORKSPACE_H */
