/*
 * secret.c — company secrets: create, rotate, revoke, resolve, re-encrypt
 *
 * Values are sealed in C before the first INSERT (secret_crypto.c), so a
 * plaintext never reaches a table, a dead tuple or WAL.  The writing SQL
 * functions are SECURITY DEFINER with a pinned search_path; resolving runs no
 * SQL at all (secret_lookup.c), so the SQL function and PcrSecretResolve, the
 * C entry point for drivers, share one code path that works in any context.
 * Either way a role that row-level security restricts may only touch its
 * effective company (tenant.h), exactly as the RLS policies say.
 *
 * Errors raised while a plaintext argument is in play are re-thrown with
 * errhidestmt and without CONTEXT, so neither the statement text (through
 * log_min_error_statement) nor the bind parameters (through
 * log_parameter_max_length_on_error) carry the value to the log or the
 * client.  Another company's secret is answered like an unknown one.
 */
#include "pcr.h"
#include "spi_util.h"
#include "secret.h"
#include "secret_crypto.h"
#include "secret_ref.h"
#include "secret_lookup.h"
#include "master_key.h"
#include "util.h"
#include "tenant.h"

#include <sodium.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(pcr_secret_create);
PG_FUNCTION_INFO_V1(pcr_secret_rotate);
PG_FUNCTION_INFO_V1(pcr_secret_revoke);
PG_FUNCTION_INFO_V1(pcr_secret_resolve);
PG_FUNCTION_INFO_V1(pcr_secret_reencrypt_all);

#define PCR_REENCRYPT_BATCH 100

/* ------------------------------------------------------------------------
 * Kept SPI plans
 * ------------------------------------------------------------------------ */
typedef enum SecretPlanId
{
	SPLAN_COMPANY,
	SPLAN_INSERT_SECRET,
	SPLAN_INSERT_VERSION,
	SPLAN_SECRET,
	SPLAN_BUMP,
	SPLAN_REVOKE,
	SPLAN_TOUCH,
	SPLAN_STALE,
	SPLAN_REENCRYPT,
	SPLAN_COUNT
} SecretPlanId;


static const PcrPlanDef plan_defs[SPLAN_COUNT] = {
	[SPLAN_COMPANY] = {
		"SELECT 1 FROM paperclip.companies WHERE id = $1",
		1, {UUIDOID}
	},
	[SPLAN_INSERT_SECRET] = {
		"INSERT INTO paperclip.company_secrets AS s "
		"  (company_id, name, description, provider, latest_version) "
		"VALUES ($1, $2, $3, 'local_encrypted', 1) "
		"ON CONFLICT (company_id, name) DO NOTHING "
		"RETURNING s.id, s",
		3, {UUIDOID, TEXTOID, TEXTOID}
	},
	[SPLAN_INSERT_VERSION] = {
		"INSERT INTO paperclip.company_secret_versions "
		"  (company_id, secret_id, version, material, value_fingerprint, key_id) "
		"VALUES ($1, $2, $3, $4, $5, $6)",
		6, {UUIDOID, UUIDOID, INT4OID, JSONBOID, TEXTOID, TEXTOID}
	},
	[SPLAN_SECRET] = {
		"SELECT company_id, name FROM paperclip.company_secrets WHERE id = $1",
		1, {UUIDOID}
	},
	[SPLAN_BUMP] = {
		/* the row lock serialises rotations: each one sees the previous one's version */
		"UPDATE paperclip.company_secrets AS s "
		"   SET latest_version = s.latest_version + 1, updated_at = now() "
		" WHERE s.id = $1 "
		"RETURNING s.latest_version, s",
		1, {UUIDOID}
	},
	[SPLAN_REVOKE] = {
		"UPDATE paperclip.company_secret_versions "
		"   SET revoked_at = coalesce(revoked_at, now()) "
		" WHERE secret_id = $1 AND version = $2 "
		"RETURNING 1",
		2, {UUIDOID, INT4OID}
	},
	[SPLAN_TOUCH] = {
		"UPDATE paperclip.company_secrets AS s SET updated_at = now() WHERE s.id = $1 RETURNING s",
		1, {UUIDOID}
	},
	[SPLAN_STALE] = {
		"SELECT v.id, v.company_id, v.secret_id, v.version, v.key_id, v.material, s.name "
		"  FROM paperclip.company_secret_versions AS v "
		"  JOIN paperclip.company_secrets AS s ON s.company_id = v.company_id AND s.id = v.secret_id "
		" WHERE v.key_id IS DISTINCT FROM $1 "
		" ORDER BY v.id LIMIT " CppAsString2(PCR_REENCRYPT_BATCH) " FOR UPDATE OF v",
		1, {TEXTOID}
	},
	[SPLAN_REENCRYPT] = {
		"UPDATE paperclip.company_secret_versions "
		"   SET material = $2, value_fingerprint = $3, key_id = $4 "
		" WHERE id = $1",
		4, {UUIDOID, JSONBOID, TEXTOID, TEXTOID}
	},
};

static SPIPlanPtr plans[SPLAN_COUNT];

static void
run_plan(SecretPlanId id, Datum *values, const char *nulls, bool read_only, long limit, int expected_rc)
{
	PcrRunPlanDef(plans, plan_defs, id, values, nulls, read_only, limit, expected_rc);
}

static char *
spi_text(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* ------------------------------------------------------------------------
 * Who may act, and as whom
 * ------------------------------------------------------------------------ */

/*
 * A role that row-level security restricts may only act for its effective
 * company: the one paperclip.company_id selects, if the role is entitled to
 * it (tenant.h).  The role checked is the session's, not the owner of a
 * SECURITY DEFINER function (these, or a caller's) that is running.
 *
 * The company the session acts for: NULL when the role is not restricted
 * (any company), 42501 when it has no effective company.
 */
static pg_uuid_t *
session_company(void)
{
	PcrTenantScope scope = PcrTenantScopeRequire();
	pg_uuid_t  *mine;

	if (scope.all)
		return NULL;
	mine = palloc(sizeof(pg_uuid_t));
	*mine = scope.company;
	return mine;
}

/* 42501 unless the session may act for company (which the caller named). */
static void
check_company_access(const pg_uuid_t *company)
{
	PcrTenantRequireCompany(company);
}

/*
 * 42704 for a secret that does not exist, or that the caller may not see:
 * the same answer for both, so that asking tells nothing about other
 * companies' secrets (not even their existence).
 */
static void
raise_no_such_secret(const pg_uuid_t *secret) pg_attribute_noreturn();

static void
raise_no_such_secret(const pg_uuid_t *secret)
{
	ereport(ERROR,
			(errcode(PCR_ERRCODE_NOT_FOUND),
			 errmsg("secret %s does not exist", PcrUuidToCString(secret)),
			 errhidestmt(true)));
	pg_unreachable();
}

/* ------------------------------------------------------------------------
 * Arguments and errors
 * ------------------------------------------------------------------------ */
static void
require_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NULL_ID),
				 errmsg("%s must not be null", name),
				 errhidestmt(true)));
}

/*
 * Bounds of what secret_create stores besides the value (the table's CHECK
 * constraints say the same, for rows written by UPDATE).
 */
#define SECRET_NAME_MAX_CHARS			255
#define SECRET_DESCRIPTION_MAX_CHARS	4096

/* A text argument of at most max_chars characters with no control characters (but layout). */
static char *
checked_text_arg(FunctionCallInfo fcinfo, int argno, const char *what, int max_chars, bool multiline)
{
	text	   *t = PG_GETARG_TEXT_PP(argno);
	const char *p = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);

	/* the byte length first: a 10 MB argument is not walked character by character */
	if (len > max_chars * pg_database_encoding_max_length() ||
		pg_mbstrlen_with_len(p, len) > max_chars)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("secret %s must be at most %d characters", what, max_chars)));
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) p[i];

		if ((c < 0x20 || c == 0x7f) && !(multiline && (c == '\t' || c == '\n' || c == '\r')))
			ereport(ERROR,
					(errcode(PCR_ERRCODE_BAD_CONFIG),
					 errmsg("secret %s must not contain control characters", what)));
	}
	return text_to_cstring(t);
}

/* Run fn: the value is an argument, so no error may show the statement or its bind parameters. */
typedef struct SecretCall
{
	Datum		(*fn) (FunctionCallInfo fcinfo);
	FunctionCallInfo fcinfo;
	Datum		result;
} SecretCall;

static void
secret_call(void *arg)
{
	SecretCall *c = (SecretCall *) arg;

	c->result = c->fn(c->fcinfo);
}

static Datum
call_privately(Datum (*fn) (FunctionCallInfo fcinfo), FunctionCallInfo fcinfo)
{
	SecretCall	c = {fn, fcinfo, (Datum) 0};

	PcrRunPrivately(secret_call, &c);
	return c.result;
}

/* A detoasted copy of a value argument is ours: wipe it once sealed. */
static void
wipe_value_copy(FunctionCallInfo fcinfo, int argno, text *value)
{
	if ((Pointer) value != DatumGetPointer(PG_GETARG_DATUM(argno)))
	{
		sodium_memzero(value, VARSIZE_ANY(value));
		pfree(value);
	}
}

static void
raise_undecryptable(const char *name, int32 version, const char *why, const char *hint) pg_attribute_noreturn();

static void
raise_undecryptable(const char *name, int32 version, const char *why, const char *hint)
{
	ereport(ERROR,
			(errcode(PCR_ERRCODE_UNDECRYPTABLE),
			 errmsg("could not decrypt secret \"%s\" version %d: %s", name, version, why),
			 hint ? errhint("%s", hint) : 0));
}

static void
raise_wrong_key(const char *name, int32 version, const char *key_id, const char *hint) pg_attribute_noreturn();

static void
raise_wrong_key(const char *name, int32 version, const char *key_id, const char *hint)
{
	raise_undecryptable(name, version,
						key_id ? psprintf("master key \"%s\" is not loaded (wrong key)", key_id)
						: "the version names no master key",
						hint);
}

/* Decrypt, or raise XX001 telling malformed material from failed authentication. */
static void
open_or_raise(const PcrMasterKey *key, const pg_uuid_t *company, const pg_uuid_t *secret,
			  int32 version, Jsonb *material, const char *name,
			  MemoryContext mcxt, Size offset, char **out, Size *len)
{
	PcrOpenResult res = PcrSecretOpen(key, company, secret, version, material, mcxt, offset, out, len);

	if (res != PCR_OPEN_OK && name == NULL)
		name = PcrSecretName(secret);
	switch (res)
	{
		case PCR_OPEN_OK:
			return;
		case PCR_OPEN_MALFORMED:
			raise_undecryptable(name, version, "the stored material is malformed", NULL);
			break;
		case PCR_OPEN_AUTH_FAILED:
			raise_undecryptable(name, version,
								"authentication failed (the material was altered or belongs to another secret version)",
								NULL);
			break;
	}
}

/* Seal value under the current key and insert it as (company, secret, version). */
static void
insert_version(const PcrMasterKey *key, const pg_uuid_t *company, const pg_uuid_t *secret,
			   int32 version, text *value)
{
	PcrSealed	sealed = PcrSecretSeal(key, company, secret, version,
									   VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
	Datum		values[6];

	values[0] = UUIDPGetDatum(company);
	values[1] = UUIDPGetDatum(secret);
	values[2] = Int32GetDatum(version);
	values[3] = JsonbPGetDatum(sealed.material);
	values[4] = CStringGetTextDatum(sealed.fingerprint);
	values[5] = CStringGetTextDatum(key->id);
	run_plan(SPLAN_INSERT_VERSION, values, NULL, false, 0, SPI_OK_INSERT);
}

/* Column col of row 0 (a whole-row value) copied out of SPI as the function's result. */
static Datum
return_row_column(int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	Assert(!isnull);
	return SPI_datumTransfer(d, false, -1);
}

/*
 * The secret's company and name; 42704 when it does not exist or belongs to
 * a company the session may not act for (42501 when it names none).
 */
static char *
lookup_secret(const pg_uuid_t *secret, pg_uuid_t *company)
{
	pg_uuid_t  *mine = session_company();
	Datum		values[1];
	bool		isnull;

	values[0] = UUIDPGetDatum(secret);
	run_plan(SPLAN_SECRET, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		raise_no_such_secret(secret);
	memcpy(company, DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
		   sizeof(pg_uuid_t));
	if (mine != NULL && memcmp(mine->data, company->data, UUID_LEN) != 0)
		raise_no_such_secret(secret);
	return spi_text(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
}

/* ------------------------------------------------------------------------
 * secret_create(company_id, name, value, description)
 * ------------------------------------------------------------------------ */
static Datum
secret_create(FunctionCallInfo fcinfo)
{
	pg_uuid_t  *company;
	char	   *name;
	text	   *value;
	const PcrMasterKey *key;
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	pg_uuid_t	secret;
	bool		isnull;
	Datum		result;

	require_arg(fcinfo, 0, "company_id");
	require_arg(fcinfo, 1, "name");
	require_arg(fcinfo, 2, "value");
	company = PG_GETARG_UUID_P(0);
	name = checked_text_arg(fcinfo, 1, "name", SECRET_NAME_MAX_CHARS, false);
	if (name[strspn(name, " ")] == '\0')
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("secret name must not be empty")));
	if (!PG_ARGISNULL(3))
		(void) checked_text_arg(fcinfo, 3, "description", SECRET_DESCRIPTION_MAX_CHARS, true);
	check_company_access(company);
	key = PcrMasterKeyCurrent();

	SPI_connect();
	values[0] = UUIDPGetDatum(company);
	run_plan(SPLAN_COMPANY, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NOT_FOUND),
				 errmsg("company %s does not exist", PcrUuidToCString(company))));

	values[1] = CStringGetTextDatum(name);
	if (PG_ARGISNULL(3))
		nulls[2] = 'n';
	else
		values[2] = PG_GETARG_DATUM(3);
	run_plan(SPLAN_INSERT_SECRET, values, nulls, false, 0, SPI_OK_INSERT_RETURNING);
	if (SPI_processed == 0)		/* the unique constraint's violation, as PostgreSQL would report it */
		ereport(ERROR,
				(errcode(PCR_ERRCODE_DUPLICATE),
				 errmsg("secret \"%s\" already exists in company %s", name, PcrUuidToCString(company)),
				 errhint("Use paperclip.secret_rotate to store a new value."),
				 err_generic_string(PG_DIAG_SCHEMA_NAME, "paperclip"),
				 err_generic_string(PG_DIAG_TABLE_NAME, "company_secrets"),
				 err_generic_string(PG_DIAG_CONSTRAINT_NAME, "company_secrets_company_id_name_key")));
	memcpy(&secret, DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
		   sizeof(pg_uuid_t));
	result = return_row_column(2);

	value = PG_GETARG_TEXT_PP(2);
	insert_version(key, company, &secret, 1, value);
	wipe_value_copy(fcinfo, 2, value);
	SPI_finish();
	return result;
}

Datum
pcr_secret_create(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(call_privately(secret_create, fcinfo));
}

/* ------------------------------------------------------------------------
 * secret_rotate(secret_id, value)
 * ------------------------------------------------------------------------ */
static Datum
secret_rotate(FunctionCallInfo fcinfo)
{
	pg_uuid_t  *secret;
	pg_uuid_t	company;
	text	   *value;
	const PcrMasterKey *key;
	Datum		values[1];
	bool		isnull;
	int32		version;
	Datum		result;

	require_arg(fcinfo, 0, "secret_id");
	require_arg(fcinfo, 1, "value");
	secret = PG_GETARG_UUID_P(0);

	SPI_connect();
	(void) lookup_secret(secret, &company);
	key = PcrMasterKeyCurrent();

	values[0] = UUIDPGetDatum(secret);
	run_plan(SPLAN_BUMP, values, NULL, false, 0, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 0)		/* deleted since the lookup */
		raise_no_such_secret(secret);
	version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	result = return_row_column(2);

	value = PG_GETARG_TEXT_PP(1);
	insert_version(key, &company, secret, version, value);
	wipe_value_copy(fcinfo, 1, value);
	SPI_finish();
	return result;
}

Datum
pcr_secret_rotate(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(call_privately(secret_rotate, fcinfo));
}

/* ------------------------------------------------------------------------
 * secret_revoke(secret_id, version)
 * ------------------------------------------------------------------------ */
Datum
pcr_secret_revoke(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *secret;
	pg_uuid_t	company;
	int32		version;
	char	   *name;
	Datum		values[2];
	Datum		result;

	require_arg(fcinfo, 0, "secret_id");
	require_arg(fcinfo, 1, "version");
	secret = PG_GETARG_UUID_P(0);
	version = PG_GETARG_INT32(1);
	if (version < 1)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("version must be a positive integer")));

	SPI_connect();
	name = lookup_secret(secret, &company);
	values[0] = UUIDPGetDatum(secret);
	values[1] = Int32GetDatum(version);
	run_plan(SPLAN_REVOKE, values, NULL, false, 0, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NOT_FOUND),
				 errmsg("secret \"%s\" has no version %d", name, version)));
	run_plan(SPLAN_TOUCH, values, NULL, false, 0, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 0)
		elog(ERROR, "secret %s vanished while revoking a version", PcrUuidToCString(secret));
	result = return_row_column(1);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/* ------------------------------------------------------------------------
 * Resolving
 * ------------------------------------------------------------------------ */

/*
 * Resolve ref for company to plaintext, in a buffer of mcxt with `offset`
 * spare bytes in front.  The caller has checked access to company.
 */
static char *
resolve_ref(const pg_uuid_t *company, Jsonb *ref, MemoryContext mcxt, Size offset, Size *len)
{
	PcrSecretRef r;
	PcrSecretVersionRow row;
	const PcrMasterKey *key;
	char	   *out = NULL;

	PcrSecretRefParse(ref, "secret_ref", &r);
	PcrSecretLookup(&r.secret_id, r.version, &row);
	/* another company's secret is answered like an unknown one */
	if (!row.secret_found || memcmp(row.company_id.data, company->data, UUID_LEN) != 0)
		raise_no_such_secret(&r.secret_id);
	if (!row.version_found && r.version == 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("secret \"%s\" has no version that is not revoked", row.name),
				 errhint("Store a new value with paperclip.secret_rotate.")));
	if (!row.version_found)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_NOT_FOUND),
				 errmsg("secret \"%s\" has no version %d", row.name, r.version)));
	if (row.revoked)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_WRONG_STATE),
				 errmsg("version %d of secret \"%s\" is revoked", row.version,
						PcrSecretName(&r.secret_id))));

	key = PcrMasterKeyFind(row.key_id);
	if (key == NULL)
		raise_wrong_key(PcrSecretName(&r.secret_id), row.version, row.key_id,
						"Add the key this version was encrypted with to paperclip.master_key_file.");
	if (row.material == NULL)
		raise_undecryptable(PcrSecretName(&r.secret_id), row.version, "the stored material is malformed", NULL);
	open_or_raise(key, company, &r.secret_id, row.version, row.material, NULL, mcxt, offset, &out, len);
	return out;
}

Datum
pcr_secret_resolve(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = CurrentMemoryContext;
	pg_uuid_t  *company;
	char	   *buf;
	Size		len;

	require_arg(fcinfo, 0, "company_id");
	company = PG_GETARG_UUID_P(0);
	check_company_access(company);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid secret_ref: must not be null")));

	buf = resolve_ref(company, PG_GETARG_JSONB_P(1), cxt, VARHDRSZ, &len);
	SET_VARSIZE(buf, VARHDRSZ + len);
	PG_RETURN_TEXT_P((text *) buf);
}

PcrPlaintext
PcrSecretResolve(const pg_uuid_t *company_id, Jsonb *ref)
{
	PcrPlaintext p;

	check_company_access(company_id);
	p.data = resolve_ref(company_id, ref, CurrentMemoryContext, 0, &p.len);
	return p;
}

void
PcrPlaintextFree(PcrPlaintext *p)
{
	if (p->data != NULL)
	{
		sodium_memzero(p->data, p->len + 1);
		pfree(p->data);
	}
	p->data = NULL;
	p->len = 0;
}

/* ------------------------------------------------------------------------
 * secret_reencrypt_all(): every version not under the current key
 * ------------------------------------------------------------------------ */
Datum
pcr_secret_reencrypt_all(PG_FUNCTION_ARGS)
{
	const PcrMasterKey *current;
	int32		count = 0;

	/* cross-company by nature: not for tenant roles, whatever the grants say */
	if (!superuser())
		ereport(ERROR,
				(errcode(PCR_ERRCODE_FORBIDDEN),
				 errmsg("only a superuser may re-encrypt every secret")));
	current = PcrMasterKeyCurrent();
	SPI_connect();
	for (;;)
	{
		Datum		values[4];
		SPITupleTable *batch;
		uint64		n;

		CHECK_FOR_INTERRUPTS();
		values[0] = CStringGetTextDatum(current->id);
		run_plan(SPLAN_STALE, values, NULL, false, 0, SPI_OK_SELECT);
		batch = SPI_tuptable;
		n = SPI_processed;
		if (n == 0)
			break;
		for (uint64 i = 0; i < n; i++)
		{
			HeapTuple	tup = batch->vals[i];
			TupleDesc	desc = batch->tupdesc;
			bool		isnull;
			Datum		id = SPI_getbinval(tup, desc, 1, &isnull);
			pg_uuid_t  *company = DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull));
			pg_uuid_t  *secret = DatumGetUUIDP(SPI_getbinval(tup, desc, 3, &isnull));
			int32		version = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
			char	   *key_id = spi_text(tup, desc, 5);
			Jsonb	   *material = DatumGetJsonbP(SPI_getbinval(tup, desc, 6, &isnull));
			char	   *name = spi_text(tup, desc, 7);
			const PcrMasterKey *old = PcrMasterKeyFind(key_id);
			char	   *plain = NULL;
			Size		len = 0;
			PcrSealed	sealed;

			CHECK_FOR_INTERRUPTS();
			if (old == NULL)
				raise_wrong_key(name, version, key_id,
								"Keep every key still in use in paperclip.master_key_file until re-encryption is done.");
			open_or_raise(old, company, secret, version, material, name,
						  CurrentMemoryContext, 0, &plain, &len);
			sealed = PcrSecretSeal(current, company, secret, version, plain, len);
			sodium_memzero(plain, len + 1);
			pfree(plain);

			values[0] = id;
			values[1] = JsonbPGetDatum(sealed.material);
			values[2] = CStringGetTextDatum(sealed.fingerprint);
			values[3] = CStringGetTextDatum(current->id);
			run_plan(SPLAN_REENCRYPT, values, NULL, false, 0, SPI_OK_UPDATE);
			count++;
		}
		SPI_freetuptable(batch);
	}
	SPI_finish();
	PG_RETURN_INT32(count);
}
