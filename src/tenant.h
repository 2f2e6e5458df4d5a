/*
 * tenant.h — which companies the session may act for (docs/security.md)
 *
 * A role acts for a company it is entitled to: the company is mapped to the
 * role, or to a role whose privileges it has, in paperclip.company_roles (a
 * table only the owner writes).  paperclip.company_id selects one of those;
 * the effective company is that selection when the acting role is entitled
 * to it, and none otherwise.
 *
 * The acting role is the session's role outside every SECURITY DEFINER
 * function: the role of SET ROLE, or the session user (GetOuterUserId()).
 * A SECURITY DEFINER function, ours or anyone's, changes whose privileges
 * check table access, never which companies the session acts for.
 *
 * Roles that row-level security does not restrict (superusers, BYPASSRLS
 * roles, members of the tables' owner) act for every company; the lease and
 * secret functions let them name any company, as their plain SQL can.
 */
#ifndef PCR_TENANT_H
#define PCR_TENANT_H

#include "pcr.h"
#include "rel_util.h"

/* Defines paperclip.company_id; called once from _PG_init. */
extern void PcrTenantInit(void);

/* The role whose entitlements count (see above). */
extern Oid	PcrActingRole(void);

/* Does row-level security leave this role unrestricted on the extension's tables? */
extern bool PcrRoleIsUnrestricted(Oid role);

/* Is role entitled to company (paperclip.company_roles)? */
extern bool PcrRoleIsEntitled(Oid role, const pg_uuid_t *company);

/* The effective company of the acting role: false when there is none. */
extern bool PcrEffectiveCompany(pg_uuid_t *company);

/*
 * What the acting role may act for now: every company, or its effective
 * company.  Raises 42501 when it is restricted and has no effective company.
 */
typedef struct PcrTenantScope
{
	bool		all;
	pg_uuid_t	company;		/* when !all */
} PcrTenantScope;

extern PcrTenantScope PcrTenantScopeRequire(void);

/* Raises 42501 unless the acting role may act for company now. */
extern void PcrTenantRequireCompany(const pg_uuid_t *company);

/*
 * May the acting role act on the row of rel (a table with a uuid primary
 * key and a company_id column) whose id is id?  False when the row does not
 * exist or belongs to another company; raises 42501 as
 * PcrTenantScopeRequire does.
 */
extern bool PcrTenantMayActOnRow(PcrRel rel, PcrRel pkey, const pg_uuid_t *id);

#endif							/* PCR_TENANT_H */
