/*
 * vocab.h — the status words C uses, in one place (docs/data-model.md)
 *
 * Each list is written once, as an X-macro, and expands to both a C array
 * (vocab.c) and, where C code puts it into SQL, a quoted SQL list.  The
 * table CHECK constraints in sql/ are the SQL side; test/sql/12_vocabulary
 * compares them with paperclip.vocabulary(), which lists these.
 */
#ifndef PCR_VOCAB_H
#define PCR_VOCAB_H

#include "pcr.h"

/* heartbeat_runs.status: X(name, terminal) */
#define PCR_RUN_STATUSES(X, SEP) \
	X("queued", false) SEP X("scheduled_retry", false) SEP X("running", false) SEP \
	X("succeeded", true) SEP X("failed", true) SEP X("cancelled", true) SEP X("timed_out", true)

/* the terminal ones, for SQL: 'succeeded', 'failed', 'cancelled', 'timed_out' */
#define PCR_VOCAB_SQL_IF_TERMINAL(name, terminal) PCR_VOCAB_SQL_IF_##terminal(name)
#define PCR_VOCAB_SQL_IF_true(name) ", '" name "'"
#define PCR_VOCAB_SQL_IF_false(name) ""
#define PCR_VOCAB_NOTHING
/* starts with ", ": write it after a first element, e.g. IN (NULL PCR_RUN_TERMINAL_SQL) */
#define PCR_RUN_TERMINAL_SQL PCR_RUN_STATUSES(PCR_VOCAB_SQL_IF_TERMINAL, PCR_VOCAB_NOTHING)

/* environment_leases.status, .lease_policy, .cleanup_status; the statuses a release may set */
#define PCR_LEASE_STATUSES(X, SEP) X("active") SEP X("released") SEP X("expired") SEP X("failed") SEP X("retained")
#define PCR_LEASE_POLICIES(X, SEP) \
	X("ephemeral") SEP X("reuse_by_environment") SEP X("reuse_by_execution_workspace") SEP X("retain_on_failure")
#define PCR_CLEANUP_STATUSES(X, SEP) X("pending") SEP X("success") SEP X("failed")
#define PCR_RELEASE_STATUSES(X, SEP) X("released") SEP X("failed") SEP X("expired")

extern bool PcrRunStatusIsTerminal(const char *status);

/* The lease status a run's terminal status releases its leases with (the trigger's rule). */
extern const char *PcrLeaseStatusForRun(const char *run_status);

/* May release_run_leases() set this status? */
extern bool PcrReleaseStatusIsValid(const char *status);

#endif							/* PCR_VOCAB_H */
