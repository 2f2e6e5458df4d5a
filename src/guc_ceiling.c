/*
 * guc_ceiling.c — settings that hold shared workers, with superuser ceilings
 *
 * The check hook sees every value before it is applied, and where it comes
 * from.  Values from the server's configuration (the file, ALTER SYSTEM,
 * the command line, the built-in default) become the ceiling; any other
 * value above it is refused unless the current role is a superuser.  Check
 * hooks also run when ALTER ROLE/DATABASE ... SET validates a value, and
 * when a role's or database's settings are applied at login (a refused one
 * is then a WARNING and the server's value stays).
 */
#include "pcr.h"
#include "guc_ceiling.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "miscadmin.h"

bool
PcrGucCeilingCheck(PcrGucCeiling *ceiling, int newval, GucSource source)
{
	if (source <= PGC_S_ARGV)
	{
		ceiling->value = newval;
		return true;
	}
	if (newval <= ceiling->value)
		return true;
	/* set by C code, or copied from a leader that was allowed to set it */
	if (source == PGC_S_OVERRIDE || InitializingParallelWorker || !IsTransactionState())
		return true;
	if (superuser())
		return true;
	GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
	GUC_check_errmsg("parameter \"%s\" cannot be raised above %d %s", ceiling->name, ceiling->value,
					 ceiling->unit ? ceiling->unit : "ms");
	GUC_check_errdetail("The server's setting is a ceiling: roles that are not superusers may only lower it.");
	GUC_check_errhint("A superuser can raise it in postgresql.conf or with ALTER SYSTEM.");
	return false;
}
