/*
 * secret_ref.c — parsing and normalising secret references
 */
#include "pcr.h"
#include "secret_ref.h"
#include "jsonb_util.h"
#include "util.h"

#include "utils/builtins.h"
#include "utils/numeric.h"

typedef struct RefKeyCheck
{
	const char *what;
} RefKeyCheck;

static void
ref_bad(const char *what, const char *detail)
{
	ereport(ERROR,
			(errcode(PCR_ERRCODE_BAD_CONFIG),
			 errmsg("invalid %s: %s", what, detail),
			 errhint("A secret reference looks like {\"type\": \"secret_ref\", \"secretId\": \"<uuid>\", \"version\": \"latest\"}.")));
}

static void
ref_check_key(const char *key, JsonbValue *val, void *arg)
{
	RefKeyCheck *kc = (RefKeyCheck *) arg;

	if (strcmp(key, "type") == 0 || strcmp(key, "secretId") == 0 || strcmp(key, "version") == 0)
		return;
	ref_bad(kc->what, psprintf("unknown field \"%s\"", key));
}

static bool
parse_uuid(const char *s, int len, pg_uuid_t *out)
{
	/* canonical form only: 8-4-4-4-12 hex digits */
	static const int dashes[] = {8, 13, 18, 23};
	int			d = 0;
	int			j = 0;

	if (len != 36)
		return false;
	for (int i = 0; i < 36; i++)
	{
		if (d < 4 && i == dashes[d])
		{
			if (s[i] != '-')
				return false;
			d++;
			continue;
		}
		if (!isxdigit((unsigned char) s[i]))
			return false;
	}
	for (int i = 0; i < 36; i += 2)
	{
		int			hi,
					lo;

		if (s[i] == '-')
			i++;
		hi = isdigit((unsigned char) s[i]) ? s[i] - '0' : (tolower((unsigned char) s[i]) - 'a' + 10);
		lo = isdigit((unsigned char) s[i + 1]) ? s[i + 1] - '0' : (tolower((unsigned char) s[i + 1]) - 'a' + 10);
		out->data[j++] = (unsigned char) ((hi << 4) | lo);
	}
	return j == UUID_LEN;
}

void
PcrSecretRefParse(Jsonb *ref, const char *what, PcrSecretRef *out)
{
	JsonbValue	v;
	RefKeyCheck kc = {what};

	if (!PcrJsonbIsObject(ref))
		ref_bad(what, "must be a JSON object");
	PcrJsonbForEachKey(ref, ref_check_key, &kc);

	if (PcrJsonbGet(ref, "type", &v) == NULL || v.type != jbvString ||
		v.val.string.len != strlen("secret_ref") ||
		memcmp(v.val.string.val, "secret_ref", v.val.string.len) != 0)
		ref_bad(what, "\"type\" must be \"secret_ref\"");

	if (PcrJsonbGet(ref, "secretId", &v) == NULL || v.type != jbvString ||
		!parse_uuid(v.val.string.val, v.val.string.len, &out->secret_id))
		ref_bad(what, "\"secretId\" must be a UUID string");

	out->version = 0;
	if (PcrJsonbGet(ref, "version", &v) == NULL || v.type == jbvNull)
		return;
	if (v.type == jbvString)
	{
		if (v.val.string.len == 6 && memcmp(v.val.string.val, "latest", 6) == 0)
			return;
		ref_bad(what, "\"version\" must be \"latest\" or a positive integer");
	}
	if (v.type == jbvNumeric)
	{
		int64		ver;

		if (PcrNumericToInt64(v.val.numeric, &ver) && ver >= 1 && ver <= PG_INT32_MAX)
		{
			out->version = (int32) ver;
			return;
		}
	}
	ref_bad(what, "\"version\" must be \"latest\" or a positive integer");
}

Jsonb *
PcrSecretRefToJsonb(const PcrSecretRef *ref)
{
	PcrJsonbBuilder b;

	PcrJbBegin(&b);
	PcrJbAddText(&b, "type", "secret_ref");
	PcrJbAddText(&b, "secretId", PcrUuidToCString(&ref->secret_id));
	if (ref->version == 0)
		PcrJbAddText(&b, "version", "latest");
	else
		PcrJbAddInt(&b, "version", ref->version);
	return PcrJbFinish(&b);
}
