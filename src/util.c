/*
 * util.c — small helpers every layer uses: uuid text, error guards
 */
#include "pcr.h"
#include "util.h"

#include "access/xact.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

char *
PcrUuidToCString(const pg_uuid_t *uuid)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum((pg_uuid_t *) uuid)));
}

bool
PcrRunInSubtransaction(void (*fn) (void *arg), void *arg, ErrorData **edata)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = false;

	*edata = NULL;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		ok = true;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		*edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return ok;
}

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

void
PcrRunHidingStatement(void (*fn) (void *arg), void *arg, bool hide_stmt, bool hide_spi_context)
{
	MemoryContext ctx = CurrentMemoryContext;

	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(ctx);
		edata = CopyErrorData();
		FlushErrorState();
		if (hide_stmt)
			edata->hide_stmt = true;
		if (hide_spi_context)
		{
			if (edata->context)
				edata->context = context_without_statements(edata->context);
			edata->internalquery = NULL;
			edata->internalpos = 0;
		}
		ReThrowError(edata);
	}
	PG_END_TRY();
}
