/*
 * rel_util.h — the extension's own relations, by OID, and typed column access
 *
 * Code that reads a table without SQL (triggers, entitlement checks, index
 * probes) must be sure it reads the extension's table, not one that merely
 * has its name or some of its columns: the relations are found in the
 * extension's schema by name once, kept by OID (forgotten on any relcache
 * invalidation of them), and a column is used only after its type has been
 * checked.
 */
#ifndef PCR_REL_UTIL_H
#define PCR_REL_UTIL_H

#include "pcr.h"

#include "access/attnum.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"
#include "executor/tuptable.h"
#include "commands/trigger.h"
#include "fmgr.h"

typedef enum PcrRel
{
	PCR_REL_COMPANIES,
	PCR_REL_COMPANY_ROLES,
	PCR_REL_COMPANY_ROLES_PKEY,
	PCR_REL_ENVIRONMENTS,
	PCR_REL_ENVIRONMENTS_PKEY,
	PCR_REL_HEARTBEAT_RUNS,
	PCR_REL_HEARTBEAT_RUNS_PKEY,
	PCR_REL_ENVIRONMENT_LEASES,
	PCR_REL_ENVIRONMENT_LEASES_PKEY,
	PCR_REL_LEASES_ACTIVE_BY_RUN_ENVIRONMENT,	/* lease_probe.c */
	PCR_REL_LEASES_ACTIVE_BY_ENVIRONMENT,
	PCR_REL_LEASES_ACTIVE_BY_EXPIRY,
	PCR_REL_FENCE_SEQ,
	PCR_REL_COUNT
} PcrRel;

/* The OID of paperclip.<rel>; raises when the extension's schema lacks it. */
extern Oid	PcrRelid(PcrRel rel);

/* "paperclip.<name>" of rel, for messages. */
extern const char *PcrRelName(PcrRel rel);

/*
 * Column specifications and their resolution: attnums[i] is the attribute
 * number of cols[i].name, whose type must be cols[i].type (else 42804, or
 * 42703 when it is missing).  A PcrColumns cache is filled for one relation
 * and refilled after any relcache invalidation of it (an ALTER TABLE).
 */
typedef struct PcrColumn
{
	const char *name;
	Oid			type;
} PcrColumn;

#define PCR_MAX_COLUMNS 32

typedef struct PcrColumns
{
	Oid			relid;
	uint64		generation;
	AttrNumber	att[PCR_MAX_COLUMNS];
} PcrColumns;

extern const AttrNumber *PcrResolveColumns(Relation rel, const PcrColumn *cols, int ncols,
										   PcrColumns *cache);

/*
 * Fetch the row of rel (a table whose primary key is one uuid, pkey its
 * index) with primary key id into slot, under snapshot; false when none.
 */
extern bool PcrFetchByPkey(Relation rel, Relation pkey, const pg_uuid_t *id,
						   Snapshot snapshot, TupleTableSlot *slot);

/*
 * The TriggerData of a trigger function fname that must fire on rel: 39P01
 * when it was not called as a trigger or fired on another relation.  The
 * caller checks the timing and events it handles.
 */
extern TriggerData *PcrTriggerOn(FunctionCallInfo fcinfo, const char *fname, PcrRel rel);

/* The snapshot a statement of the caller would read with, registered. */
extern Snapshot PcrRegisterStatementSnapshot(void);

#endif							/* PCR_REL_UTIL_H */
