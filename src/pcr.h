/*
 * pcr.h — shared declarations of paperclip_runtime
 *
 * SQLSTATE choices, GUC variables, small shared helpers and the
 * PostgreSQL-version shims (the only place that tests PG_VERSION_NUM).
 */
#ifndef PCR_H
#define PCR_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* ------------------------------------------------------------------------
 * PostgreSQL version shims
 * ------------------------------------------------------------------------ */
#if PG_VERSION_NUM < 150000
#error "paperclip_runtime requires PostgreSQL 15 or later"
#endif

#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#define PCR_BGW_FLAGS_CONNECTION BGWORKER_BYPASS_ALLOWCONN
#else
#define PCR_BGW_FLAGS_CONNECTION 0
#endif

#if PG_VERSION_NUM >= 160000
#define PcrClassOwnercheck(relid, role) object_ownercheck(RelationRelationId, (relid), (role))
#else
#define PcrClassOwnercheck(relid, role) pg_class_ownercheck((relid), (role))
#endif

/* a WaitEventSet the caller frees (PG 16 tracks sets by resource owner, NULL: none) */
#if PG_VERSION_NUM >= 160000
#define PcrCreateWaitEventSet(n) CreateWaitEventSet(NULL, (n))
#else
#define PcrCreateWaitEventSet(n) CreateWaitEventSet(CurrentMemoryContext, (n))
#endif

#if PG_VERSION_NUM >= 170000
#define PcrWaitEventExtension() WaitEventExtensionNew("PaperclipRuntime")
#else
#define PcrWaitEventExtension() PG_WAIT_EXTENSION
#endif

/* ------------------------------------------------------------------------
 * SQLSTATE choices (docs/errors.md)
 * ------------------------------------------------------------------------ */
#define PCR_ERRCODE_NULL_ID          ERRCODE_NULL_VALUE_NOT_ALLOWED     /* 22004 */
#define PCR_ERRCODE_BAD_CONFIG       ERRCODE_INVALID_PARAMETER_VALUE    /* 22023 */
#define PCR_ERRCODE_NOT_FOUND        ERRCODE_UNDEFINED_OBJECT           /* 42704 */
#define PCR_ERRCODE_WRONG_STATE      ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE /* 55000 */
#define PCR_ERRCODE_HELD             ERRCODE_LOCK_NOT_AVAILABLE         /* 55P03 */
#define PCR_ERRCODE_UNSUPPORTED      ERRCODE_FEATURE_NOT_SUPPORTED      /* 0A000 */
#define PCR_ERRCODE_TRANSPORT        ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION /* 08001 */
#define PCR_ERRCODE_AUTH             ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION /* 28000 */
#define PCR_ERRCODE_REMOTE_IO        ERRCODE_IO_ERROR                   /* 58030 */
#define PCR_ERRCODE_NO_WORKER        ERRCODE_CONFIGURATION_LIMIT_EXCEEDED /* 53400 */
#define PCR_ERRCODE_FORBIDDEN        ERRCODE_INSUFFICIENT_PRIVILEGE     /* 42501 */
#define PCR_ERRCODE_DUPLICATE        ERRCODE_UNIQUE_VIOLATION           /* 23505 */
#define PCR_ERRCODE_UNDECRYPTABLE    ERRCODE_DATA_CORRUPTED             /* XX001 */

/* ------------------------------------------------------------------------
 * GUCs of the core (init.c; the I/O pool and the drivers define their own)
 * ------------------------------------------------------------------------ */
extern char *pcr_database;
extern char *pcr_master_key_file;
extern int	pcr_lease_ttl_guc;			/* seconds */
extern int	pcr_reconcile_interval; /* milliseconds */
extern int	pcr_cleanup_max_attempts;
extern int	pcr_lease_retention;	/* seconds; 0: keep lease history */
extern char *pcr_company_id;
extern bool pcr_check_lookup_paths;	/* lease_lookup.c: compare its two paths */
extern int	pcr_acquire_timeout;	/* milliseconds (io_shmem.c) */

/* true when loaded through shared_preload_libraries */
extern bool pcr_preloaded;

/* the longest lease TTL, whether from config.leaseTtlSeconds or paperclip.lease_ttl */
#define PCR_MAX_LEASE_TTL_SECONDS 315360000	/* ten years, fits an int GUC */

/* lease TTL for a (normalised) environment config, in seconds */
extern int64 PcrLeaseTtlSeconds(Jsonb *config);

#endif							/* PCR_H */
