/*
 * lease_guard.c — the rules of environment_leases that hold whoever writes a row
 *
 * Rows may be written with plain SQL (docs/data-model.md), by the owner's control plane
 * as much as by the lease functions, so this BEFORE ROW trigger, not the C
 * functions, keeps lease state true:
 *
 * INSERT
 * - the fence is always drawn from the fence sequence, except in a restore
 *   (row_security = off, see restoring() below), which keeps its own;
 * - an active lease: its run exists and is not terminal, its environment is
 *   active; its lease_policy follows the environment's config (a reusable
 *   environment's leases are reuse_by_environment, whatever the row says, so
 *   the partial unique index keeps one holder; reuse_by_environment is
 *   nobody else's); acquired_at and last_used_at are the clock time at
 *   which the fence is drawn, serialised so that a larger fence never has an
 *   earlier acquired_at; a missing expires_at gets the environment's TTL and
 *   none may be further ahead than that TTL.
 * UPDATE
 * - id, company, environment, fence, policy, provider, provider lease id,
 *   acquired_at and created_at never change; the run only goes to NULL (its
 *   deletion, by the foreign key);
 * - a terminal lease never becomes active again, and nothing of it changes
 *   but its cleanup columns: cleanup_status pending -> pending, success or
 *   failed, failed -> pending (a retry), cleanup_attempts never decreasing;
 * - leaving "active": cleanup_status is what the lease's driver says
 *   (pending when the release has side effects, except for "retained"), and
 *   the reconciler is woken when the transaction commits;
 * - a renewal of an active lease is capped at its environment's TTL.
 * DELETE
 * - an active lease is never deleted (it would be lost unreleased), nor a
 *   lease whose cleanup is pending (its sandbox would never be destroyed).
 */
#include "pcr.h"
#include "driver.h"
#include "vocab.h"
#include "reconciler.h"
#include "rel_util.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(pcr_environment_leases_guard);

#define PCR_GUARD_NAME "environment_leases_guard"

/* The columns read, in this order (checked against the table's types). */
enum
{
	L_ID, L_COMPANY, L_ENVIRONMENT, L_RUN, L_STATUS, L_POLICY, L_PROVIDER,
	L_PROVIDER_LEASE_ID, L_FENCE, L_ACQUIRED, L_LAST_USED, L_EXPIRES,
	L_CLEANUP_STATUS, L_CLEANUP_ATTEMPTS, L_CLEANUP_ERROR, L_METADATA,
	L_UPDATED, L_CREATED, L_NCOLS
};

static const PcrColumn lease_cols[L_NCOLS] = {
	[L_ID] = {"id", UUIDOID},
	[L_COMPANY] = {"company_id", UUIDOID},
	[L_ENVIRONMENT] = {"environment_id", UUIDOID},
	[L_RUN] = {"heartbeat_run_id", UUIDOID},
	[L_STATUS] = {"status", TEXTOID},
	[L_POLICY] = {"lease_policy", TEXTOID},
	[L_PROVIDER] = {"provider", TEXTOID},
	[L_PROVIDER_LEASE_ID] = {"provider_lease_id", TEXTOID},
	[L_FENCE] = {"fence", INT8OID},
	[L_ACQUIRED] = {"acquired_at", TIMESTAMPTZOID},
	[L_LAST_USED] = {"last_used_at", TIMESTAMPTZOID},
	[L_EXPIRES] = {"expires_at", TIMESTAMPTZOID},
	[L_CLEANUP_STATUS] = {"cleanup_status", TEXTOID},
	[L_CLEANUP_ATTEMPTS] = {"cleanup_attempts", INT4OID},
	[L_CLEANUP_ERROR] = {"cleanup_error", TEXTOID},
	[L_METADATA] = {"metadata", JSONBOID},
	[L_UPDATED] = {"updated_at", TIMESTAMPTZOID},
	[L_CREATED] = {"created_at", TIMESTAMPTZOID},
};

/* Never changed by an UPDATE (the run only to NULL, checked apart). */
static const int immutable_cols[] = {
	L_ID, L_COMPANY, L_ENVIRONMENT, L_FENCE, L_POLICY, L_PROVIDER,
	L_PROVIDER_LEASE_ID, L_ACQUIRED, L_CREATED
};

/* What of a terminal lease may change. */
static const int cleanup_cols[] = {L_CLEANUP_STATUS, L_CLEANUP_ATTEMPTS, L_CLEANUP_ERROR, L_UPDATED, L_RUN};

typedef struct Guard
{
	Relation	rel;
	TupleDesc	desc;
	const AttrNumber *att;
} Guard;

/* ------------------------------------------------------------------------
 * Reading and writing the row
 * ------------------------------------------------------------------------ */
static Datum
get(const Guard *g, HeapTuple tup, int col, bool *isnull)
{
	return heap_getattr(tup, g->att[col], g->desc, isnull);
}

static char *
get_text(const Guard *g, HeapTuple tup, int col)
{
	bool		isnull;
	Datum		d = get(g, tup, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static bool
text_is(const char *value, const char *expected)
{
	return value != NULL && strcmp(value, expected) == 0;
}

static char *
lease_id(const Guard *g, HeapTuple tup)
{
	bool		isnull;
	Datum		d = get(g, tup, L_ID, &isnull);

	return isnull ? pstrdup("(no id)") : PcrUuidToCString(DatumGetUUIDP(d));
}

static HeapTuple
set(const Guard *g, HeapTuple tup, int col, Datum value, bool isnull)
{
	int			cols[1] = {g->att[col]};
	Datum		values[1] = {value};
	bool		nulls[1] = {isnull};

	return heap_modify_tuple_by_cols(tup, g->desc, 1, cols, values, nulls);
}

/* Is attribute attnum the same in both rows (binary image, NULLs equal)? */
static bool
same_attr(const Guard *g, HeapTuple a, HeapTuple b, AttrNumber attnum)
{
	Form_pg_attribute att = TupleDescAttr(g->desc, attnum - 1);
	bool		n1,
				n2;
	Datum		d1 = heap_getattr(a, attnum, g->desc, &n1);
	Datum		d2 = heap_getattr(b, attnum, g->desc, &n2);

	if (n1 || n2)
		return n1 == n2;
	return datum_image_eq(d1, d2, att->attbyval, att->attlen);
}

/* ------------------------------------------------------------------------
 * The environment and the run of a lease, by primary key (no SQL: the
 * writer's privileges and row-level security do not apply, as for a
 * foreign key check)
 * ------------------------------------------------------------------------ */
typedef struct GuardEnvironment
{
	bool		found;
	char	   *name;
	char	   *status;
	char	   *driver;
	Jsonb	   *config;
} GuardEnvironment;

static bool
fetch_row(PcrRel rel, PcrRel pkey, Datum id, Datum company, const PcrColumn *cols, int ncols,
		  PcrColumns *cache, Datum *values, bool *nulls)
{
	Relation	heap = table_open(PcrRelid(rel), AccessShareLock);
	Relation	index = index_open(PcrRelid(pkey), AccessShareLock);
	const AttrNumber *att = PcrResolveColumns(heap, cols, ncols, cache);
	Snapshot	snapshot = PcrRegisterStatementSnapshot();
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	bool		found = PcrFetchByPkey(heap, index, DatumGetUUIDP(id), snapshot, slot);

	/* cols[0] is company_id: a row of another company is not the lease's */
	if (found)
	{
		slot_getallattrs(slot);
		for (int i = 0; i < ncols; i++)
		{
			Form_pg_attribute a = TupleDescAttr(slot->tts_tupleDescriptor, att[i] - 1);

			Datum		d = slot->tts_values[att[i] - 1];

			/* copied (and detoasted) while the snapshot and the table are still ours */
			nulls[i] = slot->tts_isnull[att[i] - 1];
			if (nulls[i])
				values[i] = (Datum) 0;
			else if (a->attlen == -1)
				values[i] = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
			else
				values[i] = datumCopy(d, a->attbyval, a->attlen);
		}
		found = !nulls[0] && memcmp(DatumGetUUIDP(values[0])->data, DatumGetUUIDP(company)->data, UUID_LEN) == 0;
	}
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	return found;
}

static void
fetch_environment(const Guard *g, HeapTuple lease, GuardEnvironment *env)
{
	static PcrColumns cache;
	static const PcrColumn cols[] = {
		{"company_id", UUIDOID}, {"name", TEXTOID}, {"status", TEXTOID},
		{"driver", TEXTOID}, {"config", JSONBOID}
	};
	Datum		values[lengthof(cols)];
	bool		nulls[lengthof(cols)];
	bool		n1,
				n2;
	Datum		id = get(g, lease, L_ENVIRONMENT, &n1);
	Datum		company = get(g, lease, L_COMPANY, &n2);

	memset(env, 0, sizeof(*env));
	if (n1 || n2 || !fetch_row(PCR_REL_ENVIRONMENTS, PCR_REL_ENVIRONMENTS_PKEY, id, company,
							   cols, lengthof(cols), &cache, values, nulls))
		return;					/* the foreign key check will say so */
	env->found = true;
	env->name = nulls[1] ? "" : TextDatumGetCString(values[1]);
	env->status = nulls[2] ? NULL : TextDatumGetCString(values[2]);
	env->driver = nulls[3] ? NULL : TextDatumGetCString(values[3]);
	env->config = nulls[4] ? NULL : DatumGetJsonbP(values[4]);
}

/* The run's status; NULL when the run is not found (the foreign key check will say so). */
static char *
fetch_run_status(const Guard *g, HeapTuple lease)
{
	static PcrColumns cache;
	static const PcrColumn cols[] = {{"company_id", UUIDOID}, {"status", TEXTOID}};
	Datum		values[lengthof(cols)];
	bool		nulls[lengthof(cols)];
	bool		n1,
				n2;
	Datum		id = get(g, lease, L_RUN, &n1);
	Datum		company = get(g, lease, L_COMPANY, &n2);

	if (n1 || n2 || !fetch_row(PCR_REL_HEARTBEAT_RUNS, PCR_REL_HEARTBEAT_RUNS_PKEY, id, company,
							   cols, lengthof(cols), &cache, values, nulls) || nulls[1])
		return NULL;
	return TextDatumGetCString(values[1]);
}

/* expires_at may be at most the environment's lease TTL ahead of now (23514). */
static void
check_expiry_cap(const Guard *g, HeapTuple tup, const GuardEnvironment *env, TimestampTz now)
{
	bool		isnull;
	Datum		d = get(g, tup, L_EXPIRES, &isnull);
	int64		ttl = PcrLeaseTtlSeconds(env->config);

	if (!isnull && DatumGetTimestampTz(d) > now + (TimestampTz) ttl * USECS_PER_SEC)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("expires_at of lease %s is further ahead than the lease TTL of environment \"%s\"",
						lease_id(g, tup), env->name),
				 errdetail("The lease TTL is %lld seconds.", (long long) ttl),
				 errhint("Renew the lease with paperclip.renew_run_lease() instead.")));
}

/* ------------------------------------------------------------------------
 * INSERT
 * ------------------------------------------------------------------------ */

/*
 * Draw the fence and read the clock as one step for every lease inserted
 * active, so that fences and acquired_at increase together.  The lock is
 * an object lock no SQL can take, held only around these two reads.
 */
static int64
draw_fence(TimestampTz *stamp)
{
	Oid			seq = PcrRelid(PCR_REL_FENCE_SEQ);
	int64		fence;

	LockDatabaseObject(RelationRelationId, seq, 0, ExclusiveLock);
	fence = nextval_internal(seq, false);
	if (stamp != NULL)
		*stamp = GetCurrentTimestamp();
	UnlockDatabaseObject(RelationRelationId, seq, 0, ExclusiveLock);
	return fence;
}

/*
 * A restore writes leases back as they were.  A session with row_security =
 * off (pg_dump's scripts and pg_restore always set it, and a role subject to
 * row-level security cannot write these tables in it at all) keeps the fence,
 * acquired_at and last_used_at an INSERT gives, and the sequence is moved
 * past the fence, so that the next acquisition still draws a larger one.
 */
static bool
restoring(const Guard *g, HeapTuple tup)
{
	bool		isnull;

	(void) get(g, tup, L_FENCE, &isnull);
	return !isnull && !row_security;
}

static void
keep_restored_fence(const Guard *g, HeapTuple tup)
{
	Oid			seq = PcrRelid(PCR_REL_FENCE_SEQ);
	bool		isnull;
	int64		fence = DatumGetInt64(get(g, tup, L_FENCE, &isnull));
	LOCAL_FCINFO(last, 1);
	Datum		last_value;

	LockDatabaseObject(RelationRelationId, seq, 0, ExclusiveLock);
	InitFunctionCallInfoData(*last, NULL, 1, InvalidOid, NULL, NULL);
	last->args[0].value = ObjectIdGetDatum(seq);
	last->args[0].isnull = false;
	last_value = pg_sequence_last_value(last);	/* NULL: nothing drawn yet */
	if (last->isnull || DatumGetInt64(last_value) < fence)
		(void) DirectFunctionCall2(setval_oid, ObjectIdGetDatum(seq), Int64GetDatum(fence));
	UnlockDatabaseObject(RelationRelationId, seq, 0, ExclusiveLock);
}

static HeapTuple
guard_insert_active(const Guard *g, HeapTuple tup)
{
	GuardEnvironment env;
	const PcrDriver *driver;
	char	   *policy = get_text(g, tup, L_POLICY);
	char	   *run_status;
	bool		isnull;
	TimestampTz stamp;

	fetch_environment(g, tup, &env);
	if (env.found && !text_is(env.status, "active"))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("environment \"%s\" is not active", env.name),
				 errdetail("A lease cannot be active on an environment that is %s.",
						   env.status ? env.status : "without a status")));
	(void) get(g, tup, L_RUN, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("an active lease must belong to a heartbeat run")));
	run_status = fetch_run_status(g, tup);
	if (run_status != NULL && PcrRunStatusIsTerminal(run_status))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("heartbeat run %s is %s", PcrUuidToCString(DatumGetUUIDP(get(g, tup, L_RUN, &isnull))),
						run_status),
				 errdetail("A run in a terminal status cannot hold an active lease.")));

	/* the policy follows the environment: one holder of a reusable one, whatever the row says */
	driver = env.found ? PcrDriverByName(env.driver) : NULL;
	if (driver != NULL && env.config != NULL)
	{
		const char *wanted = PcrDriverLeasePolicy(driver, env.config);

		if (strcmp(wanted, "reuse_by_environment") == 0 || text_is(policy, "reuse_by_environment"))
			tup = set(g, tup, L_POLICY, CStringGetTextDatum(wanted), false);
	}

	if (restoring(g, tup))
	{
		keep_restored_fence(g, tup);
		stamp = GetCurrentTimestamp();
	}
	else
	{
		tup = set(g, tup, L_FENCE, Int64GetDatum(draw_fence(&stamp)), false);
		tup = set(g, tup, L_ACQUIRED, TimestampTzGetDatum(stamp), false);
		tup = set(g, tup, L_LAST_USED, TimestampTzGetDatum(stamp), false);
	}

	/* written without an expiry (as acquire_run_lease writes it): the environment's TTL (docs/leases.md) */
	(void) get(g, tup, L_EXPIRES, &isnull);
	if (isnull)
	{
		TimestampTz expires = stamp + (TimestampTz) PcrLeaseTtlSeconds(env.config) * USECS_PER_SEC;

		tup = set(g, tup, L_EXPIRES, TimestampTzGetDatum(expires), false);
	}
	if (env.found)
		check_expiry_cap(g, tup, &env, stamp);
	return tup;
}

static HeapTuple
guard_insert(const Guard *g, HeapTuple tup)
{
	if (text_is(get_text(g, tup, L_STATUS), "active"))
		return guard_insert_active(g, tup);
	/* history written by hand: only the fence is the database's (a restore keeps its own) */
	if (restoring(g, tup))
	{
		keep_restored_fence(g, tup);
		return tup;
	}
	return set(g, tup, L_FENCE, Int64GetDatum(draw_fence(NULL)), false);
}

/* ------------------------------------------------------------------------
 * UPDATE
 * ------------------------------------------------------------------------ */
static void
check_immutable(const Guard *g, HeapTuple oldtup, HeapTuple newtup)
{
	bool		isnull;

	for (int i = 0; i < (int) lengthof(immutable_cols); i++)
		if (!same_attr(g, oldtup, newtup, g->att[immutable_cols[i]]))
			ereport(ERROR,
					(errcode(PCR_ERRCODE_WRONG_STATE),
					 errmsg("column \"%s\" of lease %s cannot change",
							lease_cols[immutable_cols[i]].name, lease_id(g, oldtup))));
	(void) get(g, newtup, L_RUN, &isnull);
	if (!isnull && !same_attr(g, oldtup, newtup, g->att[L_RUN]))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("column \"heartbeat_run_id\" of lease %s cannot change", lease_id(g, oldtup)),
				 errdetail("It only becomes null when the run is deleted.")));
}

static bool
is_cleanup_col(AttrNumber attnum, const Guard *g)
{
	for (int i = 0; i < (int) lengthof(cleanup_cols); i++)
		if (g->att[cleanup_cols[i]] == attnum)
			return true;
	return false;
}

static bool
cleanup_transition_allowed(const char *from, const char *to)
{
	if (from == NULL || to == NULL)
		return from == to;
	if (strcmp(from, "pending") == 0)
		return true;			/* pending, success or failed (the CHECK constraint) */
	if (strcmp(from, "failed") == 0)
		return strcmp(to, "failed") == 0 || strcmp(to, "pending") == 0;
	return strcmp(from, to) == 0;	/* success stays success */
}

/* A terminal lease: only its cleanup columns change, in their allowed transitions. */
static void
guard_update_terminal(const Guard *g, HeapTuple oldtup, HeapTuple newtup, const char *old_status)
{
	char	   *from = get_text(g, oldtup, L_CLEANUP_STATUS);
	char	   *to = get_text(g, newtup, L_CLEANUP_STATUS);
	bool		n1,
				n2;
	Datum		a_old = get(g, oldtup, L_CLEANUP_ATTEMPTS, &n1);
	Datum		a_new = get(g, newtup, L_CLEANUP_ATTEMPTS, &n2);

	if (text_is(get_text(g, newtup, L_STATUS), "active"))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("lease %s is %s and cannot become active again", lease_id(g, oldtup), old_status),
				 errhint("Acquire a new lease with paperclip.acquire_run_lease().")));
	for (int a = 1; a <= g->desc->natts; a++)
	{
		if (TupleDescAttr(g->desc, a - 1)->attisdropped || is_cleanup_col(a, g))
			continue;
		if (!same_attr(g, oldtup, newtup, a))
			ereport(ERROR,
					(errcode(PCR_ERRCODE_WRONG_STATE),
					 errmsg("lease %s is %s: only its cleanup columns can change", lease_id(g, oldtup), old_status),
					 errdetail("Column \"%s\" was changed.", NameStr(TupleDescAttr(g->desc, a - 1)->attname))));
	}
	if (!cleanup_transition_allowed(from, to))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("cleanup of lease %s cannot go from %s to %s", lease_id(g, oldtup),
						from ? from : "none", to ? to : "none")));
	if (!n1 && !n2 && DatumGetInt32(a_new) < DatumGetInt32(a_old))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("cleanup_attempts of lease %s cannot decrease", lease_id(g, oldtup))));
}

static bool
lease_release_needs_cleanup(const Guard *g, HeapTuple tup)
{
	bool		isnull;
	Datum		md = get(g, tup, L_METADATA, &isnull);
	Jsonb	   *metadata = isnull ? NULL : DatumGetJsonbP(md);
	const PcrDriver *driver = PcrDriverOfLease(metadata, get_text(g, tup, L_PROVIDER));

	return driver != NULL && PcrDriverReleaseNeedsCleanup(driver, metadata);
}

static HeapTuple
guard_update(const Guard *g, HeapTuple oldtup, HeapTuple newtup)
{
	char	   *old_status = get_text(g, oldtup, L_STATUS);
	char	   *new_status = get_text(g, newtup, L_STATUS);

	check_immutable(g, oldtup, newtup);
	if (!text_is(old_status, "active"))
	{
		guard_update_terminal(g, oldtup, newtup, old_status ? old_status : "without a status");
		return newtup;
	}

	if (!text_is(new_status, "active"))
	{
		/*
		 * Leaving "active", by whatever path: the release side effects are
		 * the driver's to decide and the reconciler's to carry out, after
		 * commit; it hears of the change at commit.
		 */
		bool		pending = !text_is(new_status, "retained") && lease_release_needs_cleanup(g, newtup);

		PcrReconcilerWakeAtCommit();
		return set(g, newtup, L_CLEANUP_STATUS,
				   pending ? CStringGetTextDatum("pending") : (Datum) 0, !pending);
	}

	/* a renewal of an active lease: at most its environment's TTL ahead */
	if (!same_attr(g, oldtup, newtup, g->att[L_EXPIRES]))
	{
		GuardEnvironment env;

		fetch_environment(g, newtup, &env);
		if (env.found)
			check_expiry_cap(g, newtup, &env, GetCurrentTimestamp());
	}
	return newtup;
}

/* ------------------------------------------------------------------------
 * The trigger
 * ------------------------------------------------------------------------ */
Datum
pcr_environment_leases_guard(PG_FUNCTION_ARGS)
{
	static PcrColumns cache;
	TriggerData *td;
	Guard		g;

	td = PcrTriggerOn(fcinfo, PCR_GUARD_NAME, PCR_REL_ENVIRONMENT_LEASES);
	if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger function \"%s\" must fire BEFORE each row", PCR_GUARD_NAME)));
	g.rel = td->tg_relation;
	g.desc = RelationGetDescr(g.rel);
	g.att = PcrResolveColumns(g.rel, lease_cols, L_NCOLS, &cache);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		return PointerGetDatum(guard_insert(&g, td->tg_trigtuple));
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		return PointerGetDatum(guard_update(&g, td->tg_trigtuple, td->tg_newtuple));
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		HeapTuple	oldtup = td->tg_trigtuple;

		if (text_is(get_text(&g, oldtup, L_STATUS), "active"))
			ereport(ERROR,
					(errcode(PCR_ERRCODE_WRONG_STATE),
					 errmsg("cannot delete active lease %s", lease_id(&g, oldtup)),
					 errhint("Release it with paperclip.release_run_leases() first.")));

		/*
		 * Its release side effects (destroying a sandbox, ...) are still to
		 * be done, and the row is what tells the reconciler to do them.
		 */
		if (text_is(get_text(&g, oldtup, L_CLEANUP_STATUS), "pending"))
			ereport(ERROR,
					(errcode(PCR_ERRCODE_WRONG_STATE),
					 errmsg("cannot delete lease %s while its cleanup is pending", lease_id(&g, oldtup)),
					 errdetail("The reconciler has not yet carried out the side effects of its release."),
					 errhint("Wait until cleanup_status is success or failed (paperclip.reconciler_wake() asks for a pass now).")));
		return PointerGetDatum(oldtup);
	}
	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("trigger function \"%s\" must fire on INSERT, UPDATE or DELETE", PCR_GUARD_NAME)));
	pg_unreachable();
}
