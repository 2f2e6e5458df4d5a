/*
 * rel_util.c — the extension's own relations, by OID, and typed column access
 *
 * The relations are looked up in the extension's schema ("paperclip", fixed
 * by the control file) once per backend and forgotten on
 * any relcache invalidation of one of them, so a DROP and CREATE EXTENSION
 * or an ALTER TABLE is noticed.  Nobody else can create objects in that
 * schema (no CREATE is granted on it), so its OIDs are the identity of the
 * extension's tables: a trigger function fired on any other relation can
 * tell, whatever that relation is called.
 */
#include "pcr.h"
#include "rel_util.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#define PCR_EXTENSION_NAME "paperclip_runtime"

static const char *const rel_names[PCR_REL_COUNT] = {
	[PCR_REL_COMPANIES] = "companies",
	[PCR_REL_COMPANY_ROLES] = "company_roles",
	[PCR_REL_COMPANY_ROLES_PKEY] = "company_roles_pkey",
	[PCR_REL_ENVIRONMENTS] = "environments",
	[PCR_REL_ENVIRONMENTS_PKEY] = "environments_pkey",
	[PCR_REL_HEARTBEAT_RUNS] = "heartbeat_runs",
	[PCR_REL_HEARTBEAT_RUNS_PKEY] = "heartbeat_runs_pkey",
	[PCR_REL_ENVIRONMENT_LEASES] = "environment_leases",
	[PCR_REL_ENVIRONMENT_LEASES_PKEY] = "environment_leases_pkey",
	[PCR_REL_LEASES_ACTIVE_BY_RUN_ENVIRONMENT] = "environment_leases_one_active_per_run_environment",
	[PCR_REL_LEASES_ACTIVE_BY_ENVIRONMENT] = "environment_leases_active_by_environment",
	[PCR_REL_LEASES_ACTIVE_BY_EXPIRY] = "environment_leases_active_expiry",
	[PCR_REL_FENCE_SEQ] = "environment_lease_fence_seq",
};

static Oid	relids[PCR_REL_COUNT];
static uint64 generation = 1;
static bool callback_registered = false;

static void
forget_relids(Datum arg, Oid relid)
{
	bool		ours = !OidIsValid(relid);

	for (int i = 0; i < PCR_REL_COUNT && !ours; i++)
		ours = relids[i] == relid;
	if (ours)
		memset(relids, 0, sizeof(relids));
	/* column caches are cheap to refill: any invalidation may be an ALTER TABLE of theirs */
	generation++;
}

static void
register_callback(void)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_relids, (Datum) 0);
		callback_registered = true;
	}
}

/* The control file fixes the schema (schema = paperclip, not relocatable). */
static Oid
extension_schema(void)
{
	Oid			ext = get_extension_oid(PCR_EXTENSION_NAME, true);
	Oid			nsp = OidIsValid(ext) ? get_namespace_oid("paperclip", true) : InvalidOid;

	if (!OidIsValid(nsp))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"%s\" is not installed in this database", PCR_EXTENSION_NAME)));
	return nsp;
}

Oid
PcrRelid(PcrRel rel)
{
	Assert(rel >= 0 && rel < PCR_REL_COUNT);
	if (!OidIsValid(relids[rel]))
	{
		Oid			nsp = extension_schema();
		Oid			relid;

		register_callback();
		relid = get_relname_relid(rel_names[rel], nsp);
		if (!OidIsValid(relid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation \"%s.%s\" of extension \"%s\" does not exist",
							get_namespace_name(nsp), rel_names[rel], PCR_EXTENSION_NAME)));
		relids[rel] = relid;
	}
	return relids[rel];
}

const char *
PcrRelName(PcrRel rel)
{
	Assert(rel >= 0 && rel < PCR_REL_COUNT);
	return psprintf("paperclip.%s", rel_names[rel]);
}

const AttrNumber *
PcrResolveColumns(Relation rel, const PcrColumn *cols, int ncols, PcrColumns *cache)
{
	TupleDesc	desc = RelationGetDescr(rel);

	Assert(ncols <= PCR_MAX_COLUMNS);
	register_callback();
	if (cache->relid == RelationGetRelid(rel) && cache->generation == generation)
		return cache->att;

	cache->relid = InvalidOid;
	for (int i = 0; i < ncols; i++)
	{
		AttrNumber	found = InvalidAttrNumber;

		for (int a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			if (!att->attisdropped && strcmp(NameStr(att->attname), cols[i].name) == 0)
			{
				if (att->atttypid != cols[i].type)
					ereport(ERROR,
							(errcode(ERRCODE_DATATYPE_MISMATCH),
							 errmsg("column \"%s\" of relation \"%s\" has type %s, not %s",
									cols[i].name, RelationGetRelationName(rel),
									format_type_be(att->atttypid), format_type_be(cols[i].type))));
				found = att->attnum;
				break;
			}
		}
		if (found == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							cols[i].name, RelationGetRelationName(rel))));
		cache->att[i] = found;
	}
	cache->relid = RelationGetRelid(rel);
	cache->generation = generation;
	return cache->att;
}

bool
PcrFetchByPkey(Relation rel, Relation pkey, const pg_uuid_t *id, Snapshot snapshot,
			   TupleTableSlot *slot)
{
	IndexScanDesc scan;
	ScanKeyData key;
	bool		found;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum((pg_uuid_t *) id));
	scan = index_beginscan(rel, pkey, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	return found;
}

Snapshot
PcrRegisterStatementSnapshot(void)
{
	return RegisterSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
}

TriggerData *
PcrTriggerOn(FunctionCallInfo fcinfo, const char *fname, PcrRel rel)
{
	TriggerData *td;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be called as a trigger", fname)));
	td = (TriggerData *) fcinfo->context;
	if (RelationGetRelid(td->tg_relation) != PcrRelid(rel))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger function \"%s\" fires only on %s, not on \"%s\"", fname,
						PcrRelName(rel), RelationGetRelationName(td->tg_relation))));
	return td;
}
