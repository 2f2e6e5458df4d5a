/*
 * secret.h — company secrets: the C interface other subsystems use
 *
 * The ssh driver resolves a private key through PcrSecretResolve; SQL callers
 * use paperclip.secret_resolve, which shares the same code.
 */
#ifndef PCR_SECRET_H
#define PCR_SECRET_H

#include "pcr.h"

typedef struct PcrPlaintext { char *data; Size len; } PcrPlaintext; /* data NUL-terminated, palloc'd in CurrentMemoryContext */

/* Resolve a company's secret ref (the jsonb shape parsed by secret_ref.h) to plaintext, raising the
 * SQLSTATEs of docs/secrets.md. Must be called inside a transaction; works whether or not the caller is already
 * connected to SPI (it calls SPI_connect/SPI_finish itself). */
extern PcrPlaintext PcrSecretResolve(const pg_uuid_t *company_id, Jsonb *ref);

/* sodium_memzero the buffer, then pfree it; sets p->data = NULL, p->len = 0. */
extern void PcrPlaintextFree(PcrPlaintext *p);

#endif							/* PCR_SECRET_H */
