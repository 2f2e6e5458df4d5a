/*
 * util.h — small helpers every layer uses
 */
#ifndef PCR_UTIL_H
#define PCR_UTIL_H

#include "pcr.h"

#include "utils/resowner.h"

/* uuid → canonical text (palloc'd) */
extern char *PcrUuidToCString(const pg_uuid_t *uuid);

/*
 * Run fn(arg) in an internal subtransaction of the current transaction.
 * Returns true when it returned; when it raised, the subtransaction is rolled
 * back and false is returned with *edata the error (copied into the caller's
 * memory context, error state flushed), for the caller to record, rethrow or
 * drop.  The caller's memory context and resource owner are restored either
 * way.
 */
extern bool PcrRunInSubtransaction(void (*fn) (void *arg), void *arg, ErrorData **edata);

/*
 * Run fn(arg); if it raises, rethrow the same error with the statement kept
 * out of the server log (hide_stmt) and without the "SQL statement" context
 * lines and internal query SPI adds: our statements, or a statement carrying
 * a refused secret, never reach a log or a client.
 */
extern void PcrRunHidingStatement(void (*fn) (void *arg), void *arg, bool hide_stmt, bool hide_spi_context);

#endif							/* PCR_UTIL_H */
