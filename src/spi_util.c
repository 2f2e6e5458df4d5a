/*
 * spi_util.c — running kept SPI plans without leaking their text into errors,
 * and re-throwing errors without the caller's statement or context
 */
#include "pcr.h"
#include "spi_util.h"

#include "lib/stringinfo.h"
#include "utils/memutils.h"

/* The context without the lines SPI adds for its statement ("SQL statement ..."). */
static char *
context_without_statements(const char *context)
{
	StringInfoData buf;
	const char *line = context;

	initStringInfo(&buf);
	while (line && *line)
	{
		const char *end = strchr(line, '\n');
		int			len = end ? (int) (end - line) : (int) strlen(line);

		if (strncmp(line, "SQL statement \"", 15) != 0)
		{
			if (buf.len > 0)
				appendStringInfoChar(&buf, '\n');
			appendBinaryStringInfo(&buf, line, len);
		}
		line = end ? end + 1 : NULL;
	}
	return buf.len > 0 ? buf.data : NULL;
}

int
PcrExecutePlanQuietly(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only, long limit)
{
	MemoryContext ctx = CurrentMemoryContext;
	int			rc = 0;

	PG_TRY();
	{
		rc = SPI_execute_plan(plan, values, nulls, read_only, limit);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(ctx);
		edata = CopyErrorData();
		FlushErrorState();
		if (edata->context)
			edata->context = context_without_statements(edata->context);
		edata->internalquery = NULL;
		edata->internalpos = 0;
		ReThrowError(edata);
	}
	PG_END_TRY();
	return rc;
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
