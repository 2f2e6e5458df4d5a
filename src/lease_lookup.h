/*
 * lease_lookup.h — what acquire_run_lease reads before it writes
 */
#ifndef PCR_LEASE_LOOKUP_H
#define PCR_LEASE_LOOKUP_H

#include "pcr.h"
#include "pcr_provider.h"

typedef struct PcrAcquireLookup
{
	bool		found_environment;	/* in the request's company */
	bool		found_run;			/* in the request's company; locked FOR SHARE */
	char	   *environment_name;
	char	   *environment_status;
	char	   *driver_name;
	Jsonb	   *config;				/* as stored */
	char	   *run_status;
	bool		has_active_lease;	/* of this run on this environment */
	pg_uuid_t	active_lease_id;	/* its id, when it has one */
} PcrAcquireLookup;

/* Must be called with SPI connected; results are palloc'd in the current context. */
extern void PcrLookupForAcquire(const PcrLeaseRequest *req, PcrAcquireLookup *out);

#endif							/* PCR_LEASE_LOOKUP_H */
