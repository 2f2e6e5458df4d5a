/*
 * guc_ceiling.h — settings that hold shared workers, with superuser ceilings
 *
 * paperclip.acquire_timeout and paperclip.ssh_connect_timeout bound how long
 * one request may hold a driver worker, which every company shares.  Any
 * role may lower them for its session; only a superuser may go above the
 * server-wide value (postgresql.conf, ALTER SYSTEM, the command line).
 * Role and database settings (ALTER ROLE/DATABASE ... SET) are checked when
 * applied, against the role that logs in.
 */
#ifndef PCR_GUC_CEILING_H
#define PCR_GUC_CEILING_H

#include "pcr.h"

#include "utils/guc.h"

typedef struct PcrGucCeiling
{
	const char *name;			/* the setting, for messages */
	int			value;			/* the server-wide value: the ceiling */
	const char *unit;			/* for messages; NULL: "ms" */
} PcrGucCeiling;

/* For the setting's check hook: the new value, where it comes from. */
extern bool PcrGucCeilingCheck(PcrGucCeiling *ceiling, int newval, GucSource source);

#endif							/* PCR_GUC_CEILING_H */
