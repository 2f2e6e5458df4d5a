/*
 * jsonb_util.h — reading fields of, and building, jsonb objects in C
 *
 * Installed with pcr_provider.h (which includes it), for provider libraries.
 */
#ifndef PCR_JSONB_UTIL_H
#define PCR_JSONB_UTIL_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/* Look up a top-level key of an object; NULL when absent or jb is not an object. */
extern JsonbValue *PcrJsonbGet(Jsonb *jb, const char *key, JsonbValue *out);

/* The key's value as a palloc'd C string when it is a JSON string, else NULL. */
extern char *PcrJsonbGetText(Jsonb *jb, const char *key);

/* The key's value when it is a JSON boolean, else dflt. */
extern bool PcrJsonbGetBool(Jsonb *jb, const char *key, bool dflt);

/* A JSON type name for error messages ("string", "number", ...). */
extern const char *PcrJsonbTypeName(const JsonbValue *v);

/* Is the whole document a JSON object? */
extern bool PcrJsonbIsObject(Jsonb *jb);

/* Builder for a flat object whose values are scalars or nested jsonb. */
typedef struct PcrJsonbBuilder
{
	JsonbParseState *state;
} PcrJsonbBuilder;

extern void PcrJbBegin(PcrJsonbBuilder *b);
extern void PcrJbAddText(PcrJsonbBuilder *b, const char *key, const char *val);	/* NULL → null */
extern void PcrJbAddInt(PcrJsonbBuilder *b, const char *key, int64 val);
extern void PcrJbAddBool(PcrJsonbBuilder *b, const char *key, bool val);
extern void PcrJbAddNull(PcrJsonbBuilder *b, const char *key);
extern void PcrJbAddValue(PcrJsonbBuilder *b, const char *key, JsonbValue *val);
extern void PcrJbAddJsonb(PcrJsonbBuilder *b, const char *key, Jsonb *val);	/* NULL → null */
extern Jsonb *PcrJbFinish(PcrJsonbBuilder *b);

/* Iterate the keys of a top-level object: callback returns nothing, may ereport. */
typedef void (*PcrJsonbKeyCallback) (const char *key, JsonbValue *val, void *arg);
extern void PcrJsonbForEachKey(Jsonb *jb, PcrJsonbKeyCallback cb, void *arg);

/* An integral, finite numeric that fits int64 → true and *out; else false. */
extern bool PcrNumericToInt64(Numeric n, int64 *out);

#endif							/* PCR_JSONB_UTIL_H */
