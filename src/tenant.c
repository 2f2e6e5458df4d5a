/*
 * tenant.c — which companies the session may act for (docs/security.md)
 *
 * The rules are in tenant.h.  The mapping paperclip.company_roles is read
 * with an index scan, not SQL: the check runs inside row-level security
 * policies (as the querying role, which may not read the mapping) and inside
 * SECURITY DEFINER functions alike, and depends on no search_path.  It reads
 * under the statement's snapshot, so a change of the mapping applies from
 * the next statement on.
 */
#include "pcr.h"
#include "driver.h"
#include "tenant.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(pcr_current_company_id);

/* ------------------------------------------------------------------------
 * paperclip.company_id: empty, or a uuid (checked when it is set)
 * ------------------------------------------------------------------------ */
typedef struct PcrSelection
{
	bool		set;
	pg_uuid_t	company;
} PcrSelection;

static char *company_id_setting = NULL;
static const PcrSelection *selection = NULL;

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The forms uuid_in accepts: 32 hex digits, "-" after any group of four, optional braces. */
static bool
parse_uuid(const char *s, pg_uuid_t *out)
{
	const char *p = s;
	bool		braces = (*p == '{');
	int			digits = 0;

	memset(out, 0, sizeof(*out));
	if (braces)
		p++;
	for (; *p != '\0' && !(braces && *p == '}'); p++)
	{
		int			v = hex_value(*p);

		if (*p == '-' && digits > 0 && digits < 32 && digits % 4 == 0 && p[-1] != '-')
			continue;
		if (v < 0 || digits >= 32)
			return false;
		out->data[digits / 2] |= (unsigned char) (digits % 2 == 0 ? v << 4 : v);
		digits++;
	}
	if (braces && (*p != '}' || p[1] != '\0'))
		return false;
	return digits == 32 && p[-1] != '-';
}

static bool
check_company_id(char **newval, void **extra, GucSource source)
{
	PcrSelection sel;
	PcrSelection *copy;

	memset(&sel, 0, sizeof(sel));
	if (*newval != NULL && (*newval)[0] != '\0')
	{
		if (!parse_uuid(*newval, &sel.company))
		{
			GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
			GUC_check_errdetail("paperclip.company_id must be a company id (a uuid) or empty.");
			return false;
		}
		sel.set = true;
	}
	copy = malloc(sizeof(PcrSelection));	/* freed by the GUC machinery */
	if (copy == NULL)
		return false;
	*copy = sel;
	*extra = copy;
	return true;
}

static void
assign_company_id(const char *newval, void *extra)
{
	selection = (const PcrSelection *) extra;
}

void
PcrTenantInit(void)
{
	DefineCustomStringVariable("paperclip.company_id",
							   "Company the session acts for, among those its role is entitled to.",
							   "Entitlements are the rows of paperclip.company_roles; a company the role is not entitled to selects nothing.",
							   &company_id_setting, "",
							   PGC_USERSET, 0, check_company_id, assign_company_id, NULL);
}

/* ------------------------------------------------------------------------
 * Roles and entitlements
 * ------------------------------------------------------------------------ */
Oid
PcrActingRole(void)
{
	return GetOuterUserId();
}

bool
PcrRoleIsUnrestricted(Oid role)
{
	return superuser_arg(role) || has_bypassrls_privilege(role) ||
		PcrClassOwnercheck(PcrRelid(PCR_REL_COMPANIES), role);
}

bool
PcrRoleIsEntitled(Oid role, const pg_uuid_t *company)
{
	static PcrColumns cache;
	static const PcrColumn cols[] = {{"company_id", UUIDOID}, {"role", REGROLEOID}};
	Relation	heap;
	Relation	index;
	const AttrNumber *att;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	ScanKeyData key;
	Snapshot	snapshot;
	bool		entitled = false;

	if (superuser_arg(role))
		return true;
	heap = table_open(PcrRelid(PCR_REL_COMPANY_ROLES), AccessShareLock);
	index = index_open(PcrRelid(PCR_REL_COMPANY_ROLES_PKEY), AccessShareLock);
	att = PcrResolveColumns(heap, cols, lengthof(cols), &cache);
	snapshot = PcrRegisterStatementSnapshot();
	slot = table_slot_create(heap, NULL);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum((pg_uuid_t *) company));
	scan = index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	while (!entitled && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		mapped = slot_getattr(slot, att[1], &isnull);

		entitled = !isnull && has_privs_of_role(role, DatumGetObjectId(mapped));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	return entitled;
}

bool
PcrEffectiveCompany(pg_uuid_t *company)
{
	if (selection == NULL || !selection->set ||
		!PcrRoleIsEntitled(PcrActingRole(), &selection->company))
		return false;
	*company = selection->company;
	return true;
}

static const char *
acting_role_name(void)
{
	const char *name = GetUserNameFromId(PcrActingRole(), true);

	return name ? name : "(dropped role)";
}

PcrTenantScope
PcrTenantScopeRequire(void)
{
	PcrTenantScope scope;

	memset(&scope, 0, sizeof(scope));
	if (PcrRoleIsUnrestricted(PcrActingRole()))
	{
		scope.all = true;
		return scope;
	}
	if (selection == NULL || !selection->set)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_FORBIDDEN),
				 errmsg("role \"%s\" has selected no company", acting_role_name()),
				 errhint("Set paperclip.company_id to a company the role is entitled to in paperclip.company_roles."),
				 errhidestmt(true)));
	if (!PcrEffectiveCompany(&scope.company))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_FORBIDDEN),
				 errmsg("role \"%s\" is not entitled to company %s", acting_role_name(),
						PcrUuidToCString(&selection->company)),
				 errhint("Entitlements are kept by the owner in paperclip.company_roles."),
				 errhidestmt(true)));
	return scope;
}

void
PcrTenantRequireCompany(const pg_uuid_t *company)
{
	PcrTenantScope scope = PcrTenantScopeRequire();

	if (!scope.all && memcmp(scope.company.data, company->data, UUID_LEN) != 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_FORBIDDEN),
				 errmsg("role \"%s\" may not act for company %s", acting_role_name(),
						PcrUuidToCString(company)),
				 errdetail("The session acts for company %s (paperclip.company_id).",
						   PcrUuidToCString(&scope.company)),
				 errhidestmt(true)));
}

bool
PcrTenantMayActOnRow(PcrRel rel, PcrRel pkey, const pg_uuid_t *id)
{
	static PcrColumns caches[PCR_REL_COUNT];
	static const PcrColumn cols[] = {{"company_id", UUIDOID}};
	PcrTenantScope scope = PcrTenantScopeRequire();
	Relation	heap;
	Relation	index;
	const AttrNumber *att;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	bool		ours = false;

	if (scope.all)
		return true;
	heap = table_open(PcrRelid(rel), AccessShareLock);
	index = index_open(PcrRelid(pkey), AccessShareLock);
	att = PcrResolveColumns(heap, cols, lengthof(cols), &caches[rel]);
	snapshot = PcrRegisterStatementSnapshot();
	slot = table_slot_create(heap, NULL);
	if (PcrFetchByPkey(heap, index, id, snapshot, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, att[0], &isnull);

		ours = !isnull && memcmp(DatumGetUUIDP(d)->data, scope.company.data, UUID_LEN) == 0;
	}
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	return ours;
}

/* ------------------------------------------------------------------------
 * SQL: paperclip.current_company_id()
 * ------------------------------------------------------------------------ */
Datum
pcr_current_company_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *company = palloc(sizeof(pg_uuid_t));

	if (!PcrEffectiveCompany(company))
		PG_RETURN_NULL();
	PG_RETURN_UUID_P(company);
}
