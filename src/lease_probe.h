/*
 * lease_probe.h — active leases found by direct index probes, never by a plan
 *
 * Each probe reads one partial index of paperclip.environment_leases keyed by
 * what the caller knows (the run; the run and the environment; the
 * environment; the expiry) under a fresh snapshot, and returns the visible
 * active leases it finds.  A probe ignores privileges and row-level security:
 * what it returns is never shown to a caller as it is, only used to address
 * the statement that then reads or changes those rows by primary key (or, in
 * the reconciler, by ctid), and that statement applies both.
 *
 * Must be called inside a transaction; results are palloc'd in the current
 * memory context.
 */
#ifndef PCR_LEASE_PROBE_H
#define PCR_LEASE_PROBE_H

#include "pcr.h"

#include "storage/itemptr.h"
#include "utils/timestamp.h"

/* The active leases of a run, on any environment: their ids (palloc'd). */
extern int	PcrProbeRunLeases(const pg_uuid_t *run_id, Datum **ids);

/* The run's active lease on the environment, if any. */
extern bool PcrProbeRunEnvironmentLease(const pg_uuid_t *run_id, const pg_uuid_t *environment_id,
										pg_uuid_t *lease_id);

/* An active lease on the environment held by another run (or by none), if any. */
extern bool PcrProbeEnvironmentHolder(const pg_uuid_t *environment_id, const pg_uuid_t *run_id,
									  pg_uuid_t *lease_id);

/*
 * Up to max active leases with expires_at <= now, most overdue first, none
 * of the nskip ids in skip: their tids, for a statement that locks them
 * (SKIP LOCKED) and changes them at once.  Returns how many.
 */
extern int	PcrProbeDueLeases(TimestampTz now, const Datum *skip, int nskip, int max,
							  ItemPointerData *tids);

#endif							/* PCR_LEASE_PROBE_H */
