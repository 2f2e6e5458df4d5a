/*
 * secret_ref.h — the {"type":"secret_ref","secretId":…,"version":…} shape
 */
#ifndef PCR_SECRET_REF_H
#define PCR_SECRET_REF_H

#include "pcr.h"

typedef struct PcrSecretRef
{
	pg_uuid_t	secret_id;
	int32		version;		/* 0 = "latest" */
} PcrSecretRef;

/*
 * Parse and check a secret ref; on error raise 22023 with a message that
 * starts with "invalid <what>".  Never echoes the value itself.
 */
extern void PcrSecretRefParse(Jsonb *ref, const char *what, PcrSecretRef *out);

/* The normalised jsonb form: type, secretId, version ("latest" or int). */
extern Jsonb *PcrSecretRefToJsonb(const PcrSecretRef *ref);

#endif							/* PCR_SECRET_REF_H */
