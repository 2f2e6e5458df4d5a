/*
 * lease_exec_audit.h — paperclip.lease_executions: every call, also those that abort
 *
 * A call that completes is recorded by an INSERT in the caller's
 * transaction.  When that row does not survive — the call raised after its
 * checks passed (cancel, timeout of the pool, 58030, 08006, ...), or the
 * caller's transaction or subtransaction rolled back afterwards — the row
 * goes to a bounded queue in shared memory instead, and the reconciler
 * inserts it (with the call's SQLSTATE, if it raised) in a transaction of
 * its own.  Calls refused by their checks (22004, 22023, 42704, 55000, ...)
 * ran nothing and are not recorded.
 */
#ifndef PCR_LEASE_EXEC_AUDIT_H
#define PCR_LEASE_EXEC_AUDIT_H

#include "pcr.h"
#include "exec.h"

typedef struct PcrExecRecord
{
	pg_uuid_t	id;
	pg_uuid_t	company_id;
	pg_uuid_t	lease_id;
	bool		has_run;
	pg_uuid_t	heartbeat_run_id;
	const char *command;
	const char *cwd;			/* NULL: the workspace itself */
	TimestampTz started_at;
	TimestampTz finished_at;
	bool		completed;		/* the outcome fields are valid */
	bool		exited;
	int			exit_code;
	const char *signal;			/* "SIGKILL"; NULL when none */
	bool		timed_out;
	int64		stdout_bytes;
	int64		stderr_bytes;
	bool		truncated;
	int			sqlerrcode;		/* 0: the call did not raise */
	bool		queueable;		/* this database is the reconciler's (paperclip.database) */
} PcrExecRecord;

/* _PG_init: the reconciler step (when preloading). */
extern void PcrExecAuditInit(bool preloading);
extern void PcrExecAuditShmemRequest(void);
extern void PcrExecAuditShmemStartup(void);

/* A record for call, started now. */
extern void PcrExecRecordBegin(PcrExecRecord *r, const PcrExecCall *call, const PcrExecLease *lease,
							   bool queueable);

/* Its outcome; finished now. */
extern void PcrExecRecordOutcome(PcrExecRecord *r, const PcrExecOutcome *o);

/* Insert it in the current transaction (as the tables' owner), and keep it for an abort. */
extern void PcrExecRecordInsert(const PcrExecRecord *r);

/*
 * The command is about to run: should the backend end with a FATAL before
 * the call returns (no PG_CATCH runs then), the abort at exit queues r.  r
 * must live until PcrExecRecordInsert or PcrExecRecordFailed.
 */
extern void PcrExecRecordRunning(PcrExecRecord *r);

/* The call raised sqlerrcode: queue the record for the reconciler (never raises). */
extern void PcrExecRecordFailed(PcrExecRecord *r, int sqlerrcode);

#endif							/* PCR_LEASE_EXEC_AUDIT_H */
