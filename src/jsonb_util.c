/*
 * jsonb_util.c — reading fields of, and building, jsonb objects in C
 */
#include "pcr.h"
#include "jsonb_util.h"

#include "utils/builtins.h"
#include "utils/numeric.h"

bool
PcrJsonbIsObject(Jsonb *jb)
{
	return jb != NULL && JB_ROOT_IS_OBJECT(jb) && !JB_ROOT_IS_SCALAR(jb);
}

JsonbValue *
PcrJsonbGet(Jsonb *jb, const char *key, JsonbValue *out)
{
	if (!PcrJsonbIsObject(jb))
		return NULL;
	return getKeyJsonValueFromContainer(&jb->root, key, strlen(key), out);
}

char *
PcrJsonbGetText(Jsonb *jb, const char *key)
{
	JsonbValue	v;

	if (PcrJsonbGet(jb, key, &v) == NULL || v.type != jbvString)
		return NULL;
	return pnstrdup(v.val.string.val, v.val.string.len);
}

bool
PcrJsonbGetBool(Jsonb *jb, const char *key, bool dflt)
{
	JsonbValue	v;

	if (PcrJsonbGet(jb, key, &v) == NULL || v.type != jbvBool)
		return dflt;
	return v.val.boolean;
}

const char *
PcrJsonbTypeName(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "string";
		case jbvNumeric:
			return "number";
		case jbvBool:
			return "boolean";
		case jbvArray:
			return "array";
		case jbvObject:
			return "object";
		case jbvBinary:
			if (JsonContainerIsArray(v->val.binary.data))
				return "array";
			if (JsonContainerIsObject(v->val.binary.data))
				return "object";
			return "scalar";
		default:
			return "unknown";
	}
}

void
PcrJbBegin(PcrJsonbBuilder *b)
{
	b->state = NULL;
	pushJsonbValue(&b->state, WJB_BEGIN_OBJECT, NULL);
}

static void
push_key(PcrJsonbBuilder *b, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(&b->state, WJB_KEY, &k);
}

void
PcrJbAddValue(PcrJsonbBuilder *b, const char *key, JsonbValue *val)
{
	push_key(b, key);
	pushJsonbValue(&b->state, WJB_VALUE, val);
}

void
PcrJbAddText(PcrJsonbBuilder *b, const char *key, const char *val)
{
	JsonbValue	v;

	if (val == NULL)
	{
		PcrJbAddNull(b, key);
		return;
	}
	v.type = jbvString;
	v.val.string.val = (char *) val;
	v.val.string.len = strlen(val);
	PcrJbAddValue(b, key, &v);
}

void
PcrJbAddInt(PcrJsonbBuilder *b, const char *key, int64 val)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(val);
	PcrJbAddValue(b, key, &v);
}

void
PcrJbAddBool(PcrJsonbBuilder *b, const char *key, bool val)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = val;
	PcrJbAddValue(b, key, &v);
}

void
PcrJbAddNull(PcrJsonbBuilder *b, const char *key)
{
	JsonbValue	v;

	v.type = jbvNull;
	PcrJbAddValue(b, key, &v);
}

void
PcrJbAddJsonb(PcrJsonbBuilder *b, const char *key, Jsonb *val)
{
	JsonbValue	v;

	if (val == NULL)
	{
		PcrJbAddNull(b, key);
		return;
	}
	if (JB_ROOT_IS_SCALAR(val))
	{
		JsonbValue	scalar;

		if (!JsonbExtractScalar(&val->root, &scalar))
			elog(ERROR, "could not extract jsonb scalar");
		PcrJbAddValue(b, key, &scalar);
		return;
	}
	v.type = jbvBinary;
	v.val.binary.data = &val->root;
	v.val.binary.len = VARSIZE(val) - VARHDRSZ;
	PcrJbAddValue(b, key, &v);
}

Jsonb *
PcrJbFinish(PcrJsonbBuilder *b)
{
	JsonbValue *res = pushJsonbValue(&b->state, WJB_END_OBJECT, NULL);

	return JsonbValueToJsonb(res);
}

void
PcrJsonbForEachKey(Jsonb *jb, PcrJsonbKeyCallback cb, void *arg)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	if (!PcrJsonbIsObject(jb))
		return;
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE)
		{
			cb(key, &v, arg);
			pfree(key);
			key = NULL;
		}
	}
}

bool
PcrNumericToInt64(Numeric n, int64 *out)
{
	Datum		d = NumericGetDatum(n);
	Datum		rounded;
	char	   *s;
	char	   *end;
	long long	v;

	if (numeric_is_nan(n) || numeric_is_inf(n))
		return false;
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, DirectFunctionCall1(numeric_floor, d), d)))
		return false;
	rounded = DirectFunctionCall2(numeric_round, d, Int32GetDatum(0));
	s = DatumGetCString(DirectFunctionCall1(numeric_out, rounded));
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = (int64) v;
	return true;
}
