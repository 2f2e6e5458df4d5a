/*
 * secret_lookup.h — reading one secret version by index, without SQL
 */
#ifndef PCR_SECRET_LOOKUP_H
#define PCR_SECRET_LOOKUP_H

#include "pcr.h"

typedef struct PcrSecretVersionRow
{
	bool		secret_found;
	pg_uuid_t	company_id;
	char	   *name;			/* set only when no version was found */
	bool		version_found;
	int32		version;
	bool		revoked;
	char	   *key_id;			/* NULL when the row has none */
	Jsonb	   *material;		/* NULL when the row has none */
} PcrSecretVersionRow;

/*
 * Look up a secret and one of its versions (version 0: the highest version
 * that is not revoked), copying what was found into CurrentMemoryContext.
 * No privilege or company check: the caller does that.
 */
extern void PcrSecretLookup(const pg_uuid_t *secret_id, int32 version, PcrSecretVersionRow *out);

/* The secret's name for a message (its id when it has vanished). */
extern char *PcrSecretName(const pg_uuid_t *secret_id);

#endif							/* PCR_SECRET_LOOKUP_H */
