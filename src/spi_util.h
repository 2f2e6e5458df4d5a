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

#endif							/* PCR_SPI_UTIL_H */
