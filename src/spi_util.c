/*
 * spi_util.c — running kept SPI plans without leaking their text into errors,
 * and re-throwing errors without the caller's statement or context
 */
#include "pcr.h"
#include "spi_util.h"
#include "util.h"


typedef struct PlanRun
{
	SPIPlanPtr	plan;
	Datum	   *values;
	const char *nulls;
	bool		read_only;
	long		limit;
	int			rc;
} PlanRun;

static void
run_plan(void *arg)
{
	PlanRun    *r = (PlanRun *) arg;

	r->rc = SPI_execute_plan(r->plan, r->values, r->nulls, r->read_only, r->limit);
}

int
PcrExecutePlanQuietly(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only, long limit)
{
	PlanRun		r = {plan, values, nulls, read_only, limit, 0};

	PcrRunHidingStatement(run_plan, &r, false, true);
	return r.rc;
}

static SPIPlanPtr
keep_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	p = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

		if (p == NULL)
			elog(ERROR, "could not prepare a paperclip query: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*slot = p;
	}
	return *slot;
}

SPIPlanPtr
PcrKeepPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	return keep_plan(slot, sql, nargs, argtypes, 0);
}

SPIPlanPtr
PcrKeepGenericPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	return keep_plan(slot, sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
}

int
PcrRunKeptPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes,
			   Datum *values, const char *nulls, bool read_only, long limit)
{
	return PcrExecutePlanQuietly(PcrKeepPlan(slot, sql, nargs, argtypes), values, nulls,
								 read_only, limit);
}

void
PcrRunPlanDef(SPIPlanPtr *plans, const PcrPlanDef *defs, int id, Datum *values,
			  const char *nulls, bool read_only, long limit, int expected_rc)
{
	int			rc = PcrRunKeptPlan(&plans[id], defs[id].sql, defs[id].nargs,
									(Oid *) defs[id].argtypes, values, nulls, read_only, limit);

	if (rc != expected_rc)
		elog(ERROR, "paperclip query %d failed: %s", id, SPI_result_code_string(rc));
}

void
PcrRethrowPrivately(MemoryContext cxt)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	edata->hide_stmt = true;
	edata->context = NULL;
	edata->internalquery = NULL;
	edata->internalpos = 0;
	ReThrowError(edata);
}

void
PcrRunPrivately(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorContextCallback *saved_context = error_context_stack;

	PG_TRY();
	{
		error_context_stack = NULL;
		fn(arg);
		error_context_stack = saved_context;
	}
	PG_CATCH();
	{
		PcrRethrowPrivately(cxt);
	}
	PG_END_TRY();
}
