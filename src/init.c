/*
 * init.c — _PG_init: the core's GUCs, each family's Init(), one shmem hook pair
 *
 * The I/O pool (io_shmem.c) and each driver (driver.c → their init) define
 * their own settings and register their workers and I/O backends; the one
 * shmem request/startup hook pair here fans out to every family that keeps
 * shared memory.
 */
#include "pcr.h"
#include "driver.h"
#include "exec.h"
#include "io_shmem.h"
#include "lease_exec_audit.h"
#include "reconciler.h"
#include "sandbox.h"
#include "tenant.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

char	   *pcr_database = NULL;
char	   *pcr_master_key_file = NULL;
int			pcr_lease_ttl_guc = 6 * 3600;
int			pcr_reconcile_interval = 10000;
int			pcr_cleanup_max_attempts = 5;
int			pcr_lease_retention = 0;
char	   *pcr_company_id = NULL;
#ifdef USE_ASSERT_CHECKING
bool		pcr_check_lookup_paths = true;
#else
bool		pcr_check_lookup_paths = false;
#endif
bool		pcr_preloaded = false;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
pcr_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	PcrReconcilerShmemRequest();
	PcrIoShmemRequest();
	PcrExecAuditShmemRequest();
	PcrInflightShmemRequest();
}

static void
pcr_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	PcrReconcilerShmemStartup();
	PcrIoShmemStartup();
	PcrExecAuditShmemStartup();
	PcrInflightShmemStartup();
	LWLockRelease(AddinShmemInitLock);
}

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
	DefineCustomStringVariable("paperclip.master_key_file",
							   "File holding the master key(s) that encrypt company secrets.",
							   NULL, &pcr_master_key_file, NULL,
							   PGC_SUSET, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.lease_ttl",
							"Default lease time-to-live, unless config.leaseTtlSeconds is set.",
							NULL, &pcr_lease_ttl_guc, 6 * 3600, 1, PCR_MAX_LEASE_TTL_SECONDS,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.reconcile_interval",
							"Time between two passes of the reconciler.",
							NULL, &pcr_reconcile_interval, 10000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.cleanup_max_attempts",
							"Attempts at a lease's release side effects before it is marked failed.",
							NULL, &pcr_cleanup_max_attempts, 5, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paperclip.lease_retention",
							"Age after which the reconciler deletes history that is done; 0 keeps it.",
							"Execution records that finished longer ago than this, and terminal leases released longer ago whose cleanup is not pending or failed and that are not retained.",
							&pcr_lease_retention, 0, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	PcrTenantInit();

	DefineCustomBoolVariable("paperclip.check_lookup_paths",
							 "Repeat every direct acquire lookup through SPI and compare (for tests).",
							 NULL, &pcr_check_lookup_paths, pcr_check_lookup_paths,
							 PGC_SUSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
	PcrIoInit(pcr_preloaded);
	PcrDriversInit(pcr_preloaded);	/* the ssh driver's include paperclip.ssh_allowed_hosts */
	PcrExecInit(pcr_preloaded);
	MarkGUCPrefixReserved("paperclip");

	PcrReconcilerInit();
	if (pcr_preloaded)
	{
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = pcr_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = pcr_shmem_startup;
	}
}
