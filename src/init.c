/*
 * init.c — _PG_init: GUCs, hooks and background-worker registration
 */
#include "pcr.h"
#include "reconciler.h"
#include "ssh_allow.h"
#include "tenant.h"
#include "worker.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

char	   *pcr_database = NULL;
int			pcr_driver_workers = 2;
char	   *pcr_master_key_file = NULL;
int			pcr_lease_ttl_guc = 6 * 3600;
int			pcr_acquire_timeout = 30000;
int			pcr_ssh_connect_timeout = 10000;
char	   *pcr_runtime_api_candidates = NULL;
int			pcr_reconcile_interval = 10000;
int			pcr_cleanup_max_attempts = 5;
int			pcr_lease_retention = 0;
bool		pcr_preloaded = false;

void		_PG_init(void);

void
_PG_init(void)
{
	/*
	 * Settings that only the postmaster's workers read.  PostgreSQL refuses
	 * (FATAL) to define a PGC_POSTMASTER setting after start-up, which is
	 * when a library that is not preloaded gets loaded: there are no workers
	 * then, so the settings are plain reloadable ones with no effect.
	 */
	GucContext	worker_context;

	pcr_preloaded = process_shared_preload_libraries_in_progress;
	worker_context = pcr_preloaded ? PGC_POSTMASTER : PGC_SIGHUP;

	DefineCustomStringVariable("paperclip.database",
							   "Database the paperclip reconciler connects to.",
							   NULL, &pcr_database, "postgres",
							   worker_context, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.driver_workers",
							"Number of driver workers doing network and process I/O.",
							NULL, &pcr_driver_workers, 2, 0, 64,
							worker_context, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paperclip.master_key_file",
							   "File holding the master key(s) that encrypt company secrets.",
							   NULL, &pcr_master_key_file, NULL,
							   PGC_SUSET, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.lease_ttl",
							"Default lease time-to-live, unless config.leaseTtlSeconds is set.",
							NULL, &pcr_lease_ttl_guc, 6 * 3600, 1, PCR_MAX_LEASE_TTL_SECONDS,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.acquire_timeout",
							"Longest time an acquire waits for a driver worker.",
							NULL, &pcr_acquire_timeout, 30000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.ssh_connect_timeout",
							"Longest time an SSH connection may take to establish.",
							NULL, &pcr_ssh_connect_timeout, 10000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	/*
	 * Read by the calling backend at acquire time, so a session may carry
	 * its own: superuser-set, and grantable with GRANT SET ON PARAMETER.
	 */
	DefineCustomStringVariable("paperclip.runtime_api_candidates",
							   "JSON array of control-plane API URLs tried from remote hosts.",
							   "When unset, the environment variable PAPERCLIP_RUNTIME_API_CANDIDATES_JSON is used.",
							   &pcr_runtime_api_candidates, NULL,
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.reconcile_interval",
							"Time between two passes of the reconciler.",
							NULL, &pcr_reconcile_interval, 10000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.cleanup_max_attempts",
							"Attempts at a lease's release side effects before it is marked failed.",
							NULL, &pcr_cleanup_max_attempts, 5, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.lease_retention",
							"Age after which the reconciler deletes lease history that is done; 0 keeps it.",
							"Terminal leases released longer ago than this whose cleanup is not pending or failed, and that are not retained.",
							&pcr_lease_retention, 0, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	PcrTenantInit();

	PcrSshAllowInit();

	MarkGUCPrefixReserved("paperclip");

	PcrReconcilerInit();
	PcrDriverWorkersInit();
}
