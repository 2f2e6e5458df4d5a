/*
 * secret_lookup.c — reading one secret version by index, without SQL
 *
 * secret_resolve is on the hot path of every driver that needs a key, so it
 * reads the two secret tables with plain index scans (the primary key of
 * company_secrets, the unique (secret_id, version) index of
 * company_secret_versions) instead of an SPI query: no parse, no plan, no
 * executor, and no dependence on the caller's search_path.  The scans bypass
 * table privileges and RLS like a SECURITY DEFINER function would; the
 * caller (secret.c) has checked the company first.
 */
#include "pcr.h"
#include "secret_lookup.h"
#include "util.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

static Oid
paperclip_relid(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		elog(ERROR, "relation paperclip.%s does not exist", name);
	return relid;
}

/*
 * The version table and its (secret_id, version) index, looked up by name
 * once per backend and forgotten on any relcache invalidation of either (a
 * DROP EXTENSION, a REINDEX, ...).
 */
static Oid	versions_relid = InvalidOid;
static Oid	versions_indexid = InvalidOid;
static bool inval_callback_registered = false;

/* and the attribute numbers of the columns read, found when first opened */
static struct
{
	bool		valid;
	AttrNumber	company_id;
	AttrNumber	version;
	AttrNumber	revoked_at;
	AttrNumber	key_id;
	AttrNumber	material;
}			vatt;

static void
forget_versions_oids(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == versions_relid || relid == versions_indexid)
	{
		versions_relid = versions_indexid = InvalidOid;
		vatt.valid = false;
	}
}

static void
versions_oids(Oid *relid, Oid *indexid)
{
	if (!OidIsValid(versions_relid) || !OidIsValid(versions_indexid))
	{
		Oid			nsp = get_namespace_oid("paperclip", false);

		if (!inval_callback_registered)
		{
			CacheRegisterRelcacheCallback(forget_versions_oids, (Datum) 0);
			inval_callback_registered = true;
		}
		versions_relid = paperclip_relid(nsp, "company_secret_versions");
		versions_indexid = paperclip_relid(nsp, "company_secret_versions_secret_id_version_key");
	}
	*relid = versions_relid;
	*indexid = versions_indexid;
}

static AttrNumber
column(Relation rel, const char *name)
{
	int			attno = SPI_fnumber(RelationGetDescr(rel), name);

	if (attno <= 0)
		elog(ERROR, "column \"%s\" missing from paperclip.%s", name, RelationGetRelationName(rel));
	return (AttrNumber) attno;
}

static void
versions_attnums(Relation heap)
{
	if (vatt.valid)
		return;
	vatt.company_id = column(heap, "company_id");
	vatt.version = column(heap, "version");
	vatt.revoked_at = column(heap, "revoked_at");
	vatt.key_id = column(heap, "key_id");
	vatt.material = column(heap, "material");
	vatt.valid = true;
}

static bool
revoked_is_null(TupleTableSlot *slot)
{
	bool		isnull;

	(void) slot_getattr(slot, vatt.revoked_at, &isnull);
	return isnull;
}

/* The secret's company and name by primary key; false when there is none. */
static bool
lookup_secret(Oid nsp, Snapshot snapshot, const pg_uuid_t *secret_id, pg_uuid_t *company, char **name)
{
	Relation	heap = table_open(paperclip_relid(nsp, "company_secrets"), AccessShareLock);
	Relation	index = index_open(paperclip_relid(nsp, "company_secrets_pkey"), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	IndexScanDesc scan;
	ScanKeyData key;
	bool		found;
	bool		isnull;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(secret_id));
	scan = index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
	{
		memcpy(company, DatumGetUUIDP(slot_getattr(slot, column(heap, "company_id"), &isnull)),
			   sizeof(pg_uuid_t));
		*name = TextDatumGetCString(slot_getattr(slot, column(heap, "name"), &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(heap, NoLock);
	return found;
}

char *
PcrSecretName(const pg_uuid_t *secret_id)
{
	Oid			nsp = get_namespace_oid("paperclip", false);
	Snapshot	snapshot = RegisterSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
	pg_uuid_t	company;
	char	   *name = NULL;

	if (!lookup_secret(nsp, snapshot, secret_id, &company, &name))
		name = PcrUuidToCString(secret_id);
	UnregisterSnapshot(snapshot);
	return name;
}

void
PcrSecretLookup(const pg_uuid_t *secret_id, int32 version, PcrSecretVersionRow *out)
{
	Snapshot	snapshot;
	bool		registered = false;
	Oid			relid;
	Oid			indexid;
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData keys[2];
	bool		isnull;
	Datum		d;

	memset(out, 0, sizeof(*out));

	/* the statement's snapshot, as a query of the caller would see it */
	if (ActiveSnapshotSet())
		snapshot = GetActiveSnapshot();
	else
	{
		snapshot = RegisterSnapshot(GetTransactionSnapshot());
		registered = true;
	}

	/*
	 * The version first: the happy path needs only this one index scan
	 * (versions carry company_id).  Only when no version matched is the
	 * secret itself looked up, to tell "no such secret" from "no such version".
	 */
	versions_oids(&relid, &indexid);
	heap = table_open(relid, AccessShareLock);
	index = index_open(indexid, AccessShareLock);
	versions_attnums(heap);
	slot = table_slot_create(heap, NULL);
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(secret_id));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(version));
	scan = index_beginscan(heap, index, snapshot, version == 0 ? 1 : 2, 0);
	index_rescan(scan, keys, version == 0 ? 1 : 2, NULL, 0);
	/* "latest": walk down from the highest version to the first one not revoked */
	while (index_getnext_slot(scan, version == 0 ? BackwardScanDirection : ForwardScanDirection, slot))
	{
		if (version == 0 && !revoked_is_null(slot))
			continue;
		out->secret_found = true;
		out->version_found = true;
		d = slot_getattr(slot, vatt.company_id, &isnull);
		memcpy(&out->company_id, DatumGetUUIDP(d), sizeof(pg_uuid_t));
		out->version = DatumGetInt32(slot_getattr(slot, vatt.version, &isnull));
		out->revoked = !revoked_is_null(slot);
		d = slot_getattr(slot, vatt.key_id, &isnull);
		out->key_id = isnull ? NULL : TextDatumGetCString(d);
		d = slot_getattr(slot, vatt.material, &isnull);
		out->material = isnull ? NULL : DatumGetJsonbPCopy(d);
		break;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(heap, NoLock);

	if (!out->version_found)
		out->secret_found = lookup_secret(get_namespace_oid("paperclip", false), snapshot,
										  secret_id, &out->company_id, &out->name);
	if (registered)
		UnregisterSnapshot(snapshot);
}
