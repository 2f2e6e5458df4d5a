/*
 * spi_util.h — running kept SPI plans without leaking their text into errors
 */
#ifndef PCR_SPI_UTIL_H
#define PCR_SPI_UTIL_H

#include "pcr.h"
#include "executor/spi.h"

/*
 * SPI_execute_plan, except that an error raised while it runs loses the
 * "SQL statement ..." line SPI adds to its context: our statements are an
 * implementation detail, and STYLE says never to echo them to clients or
 * logs.  Everything else of the error (SQLSTATE, message, detail, hint,
 * other context lines) is kept.
 */
extern int	PcrExecutePlanQuietly(SPIPlanPtr plan, Datum *values, const char *nulls,
								  bool read_only, long limit);

/* Prepare sql once per backend into *slot (SPI_keepplan) and return it. */
extern SPIPlanPtr PcrKeepPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes);

/*
 * PcrKeepPlan, always with the generic plan: planned once (again only when
 * a table or an index changes), never per parameter value, so never
 * re-planned for each call of a statement whose custom plans look cheaper
 * (an array of ids).
 */
extern SPIPlanPtr PcrKeepGenericPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes);

/* PcrKeepPlan, then PcrExecutePlanQuietly. */
extern int	PcrRunKeptPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes,
						   Datum *values, const char *nulls, bool read_only, long limit);

/*
 * A file's table of kept statements: an enum of ids indexes both a const
 * array of PcrPlanDef and a static array of SPIPlanPtr (prepared on first
 * use).  PcrRunPlanDef runs one and raises unless SPI answers expected_rc.
 */
#define PCR_PLAN_MAX_ARGS 12

typedef struct PcrPlanDef
{
	const char *sql;
	int			nargs;
	Oid			argtypes[PCR_PLAN_MAX_ARGS];
} PcrPlanDef;

extern void PcrRunPlanDef(SPIPlanPtr *plans, const PcrPlanDef *defs, int id, Datum *values,
						  const char *nulls, bool read_only, long limit, int expected_rc);

/*
 * In a PG_CATCH: re-throw the error being handled (copied into cxt) so that
 * no report of it says where it came from — no STATEMENT line in the server
 * log (errhidestmt) and no CONTEXT lines, to the client or the log: a
 * caller's context can quote its statement, and with
 * log_parameter_max_length_on_error the bind parameters of the client's
 * statement.  For errors raised while a private value (a secret, a config
 * that may hold one) is an argument.  Clear error_context_stack inside the
 * PG_TRY as well, so that no context is collected in the first place (a
 * FATAL is not caught).
 */
extern void PcrRethrowPrivately(MemoryContext cxt) pg_attribute_noreturn();

/* Run fn(arg) so: no context collected, and an error re-thrown privately. */
extern void PcrRunPrivately(void (*fn) (void *arg), void *arg);

#endif							/* PCR_SPI_UTIL_H */
