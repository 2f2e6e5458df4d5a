/*
 * driver_config.c — the checks every driver and provider config shares
 *
 * Configs are validated when they are stored (the environments trigger) and
 * again before they are used (acquire, probe), always through a driver's
 * validate(), which builds on these: the config object and its size, the
 * lease TTL, strings (length, control characters, path segments), host
 * names, provider names, and credentials that belong in secrets.  Each
 * refusal is 22023 naming the field.  The ones a provider library may use
 * are declared in pcr_provider.h; the rest in driver.h.
 */
#include "pcr.h"
#include "driver.h"

#include <arpa/inet.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"

void
PcrConfigError(const char *driver, const char *field, const char *fmt,...)
{
	char		buf[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ereport(ERROR,
			(errcode(PCR_ERRCODE_BAD_CONFIG),
			 errmsg("invalid %s environment config: \"%s\" %s", driver, field, buf)));
	pg_unreachable();
}

/* An object of at most PCR_CONFIG_MAX_BYTES (as jsonb), or 22023. */
void
PcrConfigRequireObject(const char *driver, Jsonb *config)
{
	if (!PcrJsonbIsObject(config))
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("invalid %s environment config: \"config\" must be a JSON object", driver)));
	if (VARSIZE(config) > PCR_CONFIG_MAX_BYTES)
		PcrConfigError(driver, "config", "is too large (at most %d bytes)", PCR_CONFIG_MAX_BYTES);
}

bool
PcrConfigIsCommonKey(const char *key)
{
	return strcmp(key, "leaseTtlSeconds") == 0;
}

/*
 * Check config.leaseTtlSeconds (a positive integer of at most ten years):
 * false when absent or null, true with *ttl set, 22023 when invalid.
 */
bool
PcrConfigCheckTtl(const char *driver, Jsonb *config, int64 *ttl)
{
	JsonbValue	v;

	if (PcrJsonbGet(config, "leaseTtlSeconds", &v) == NULL || v.type == jbvNull)
		return false;
	if (v.type != jbvNumeric || !PcrNumericToInt64(v.val.numeric, ttl) ||
		*ttl < 1 || *ttl > PCR_MAX_LEASE_TTL_SECONDS)
		PcrConfigError(driver, "leaseTtlSeconds",
					   "must be an integer number of seconds between 1 and %d",
					   PCR_MAX_LEASE_TTL_SECONDS);
	return true;
}

/* Check config.leaseTtlSeconds and copy it into a normalised config. */
void
PcrConfigAddTtl(const char *driver, Jsonb *config, PcrJsonbBuilder *b)
{
	int64		ttl;

	if (PcrConfigCheckTtl(driver, config, &ttl))
		PcrJbAddInt(b, "leaseTtlSeconds", ttl);
}

/* ------------------------------------------------------------------------
 * Strings
 * ------------------------------------------------------------------------ */

/* Length of a control character at s[i] (C0, DEL, C1 in UTF-8), else 0. */
static int
control_char_at(const char *s, int len, int i)
{
	unsigned char c = (unsigned char) s[i];

	if (c < 0x20 || c == 0x7f)
		return 1;
	/* U+0080..U+009F; other encodings have no C1 controls we could tell */
	if (c == 0xc2 && i + 1 < len && GetDatabaseEncoding() == PG_UTF8 &&
		(unsigned char) s[i + 1] >= 0x80 && (unsigned char) s[i + 1] <= 0x9f)
		return 2;
	return 0;
}

static bool
has_dotdot_segment(const char *s, int len)
{
	for (int i = 0; i + 1 < len; i++)
		if (s[i] == '.' && s[i + 1] == '.' &&
			(i == 0 || s[i - 1] == '/') && (i + 2 == len || s[i + 2] == '/'))
			return true;
	return false;
}

/* What is wrong with s (len bytes) under flags, or NULL when nothing is. */
static const char *
text_problem(const char *s, int len, int flags, int max_bytes)
{
	if (len > max_bytes)
		return psprintf("is too long (at most %d bytes)", max_bytes);
	if ((flags & PCR_TEXT_NONEMPTY) && len == 0)
		return "must not be empty";
	for (int i = 0; i < len; i++)
	{
		char		c = s[i];
		bool		layout = c == '\t' || c == '\n' || c == '\r';

		if ((flags & PCR_TEXT_TOKEN) && (isspace((unsigned char) c) || control_char_at(s, len, i)))
			return "must not contain whitespace or control characters";
		if (layout && (flags & PCR_TEXT_MULTILINE))
			continue;
		if (control_char_at(s, len, i))
			return (flags & PCR_TEXT_MULTILINE)
				? "must not contain control characters other than tab, newline and carriage return"
				: "must not contain control characters";
	}
	if ((flags & PCR_TEXT_TOKEN) && len > 0 && s[0] == '-')
		return "must not start with \"-\"";
	if ((flags & PCR_TEXT_ABSOLUTE_PATH) && (len == 0 || s[0] != '/'))
		return "must be an absolute path";
	if ((flags & PCR_TEXT_NO_DOTDOT) && has_dotdot_segment(s, len))
		return "must not contain a \"..\" segment";
	return NULL;
}

char *
PcrConfigCheckText(const char *driver, const char *field, const char *s, int len,
				   int flags, int max_bytes)
{
	const char *problem;

	if (flags & PCR_TEXT_TRIM)
	{
		while (len > 0 && isspace((unsigned char) *s))
			s++, len--;
		while (len > 0 && isspace((unsigned char) s[len - 1]))
			len--;
	}
	problem = text_problem(s, len, flags, max_bytes);
	if (problem != NULL)
		PcrConfigError(driver, field, "%s", problem);
	return pnstrdup(s, len);
}

char *
PcrConfigGetText(const char *driver, Jsonb *config, const char *field, int flags, int max_bytes)
{
	JsonbValue	v;

	if (PcrJsonbGet(config, field, &v) == NULL || v.type == jbvNull)
	{
		if (flags & PCR_TEXT_REQUIRED)
			PcrConfigError(driver, field, "is required");
		return NULL;
	}
	if (v.type != jbvString)
		PcrConfigError(driver, field, "must be a string, not %s", PcrJsonbTypeName(&v));
	return PcrConfigCheckText(driver, field, v.val.string.val, v.val.string.len, flags, max_bytes);
}

char *
PcrArgText(FunctionCallInfo fcinfo, int argno, const char *name, int flags, int max_bytes)
{
	text	   *t;
	const char *problem;

	if (PG_ARGISNULL(argno))
		return NULL;
	t = PG_GETARG_TEXT_PP(argno);
	problem = text_problem(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), flags, max_bytes);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_BAD_CONFIG),
				 errmsg("argument \"%s\" %s", name, problem)));
	return text_to_cstring(t);
}

/* ------------------------------------------------------------------------
 * Hosts and provider names
 * ------------------------------------------------------------------------ */

/* Labels of [A-Za-z0-9_-], 1..63 bytes, dot-separated, one trailing dot allowed. */
static bool
is_host_name(const char *s)
{
	int			label = 0;

	for (const char *p = s; *p; p++)
	{
		if (*p == '.')
		{
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!(isalnum((unsigned char) *p) || *p == '-' || *p == '_') || (unsigned char) *p >= 0x80)
			return false;
		if (++label > 63)
			return false;
	}
	return s[0] != '\0';
}

char *
PcrConfigCheckHost(const char *driver, const char *field, const char *host)
{
	unsigned char addr[16];
	struct in_addr loose;
	char	   *h = pstrdup(host);
	size_t		len = strlen(h);

	if (strlen(host) > PCR_HOST_MAX_BYTES)
		PcrConfigError(driver, field, "is too long (at most %d bytes)", PCR_HOST_MAX_BYTES);
	for (const char *p = h; *p; p++)
		if ((unsigned char) *p >= 0x80)
			PcrConfigError(driver, field, "must be an ASCII host name or an IP address");
	/* an IPv6 address may come in brackets; it is stored without */
	if (len > 2 && h[0] == '[' && h[len - 1] == ']')
	{
		h = pnstrdup(h + 1, len - 2);
		if (inet_pton(AF_INET6, h, addr) != 1)
			PcrConfigError(driver, field, "must be an ASCII host name or an IP address");
		return h;
	}
	if (inet_pton(AF_INET6, h, addr) == 1 || inet_pton(AF_INET, h, addr) == 1)
		return h;
	/* "127.1", "0x7f.1", "017.0.0.1": numbers the resolver would read as another address */
	if (inet_aton(h, &loose) != 0)
		PcrConfigError(driver, field, "must write an IPv4 address as four decimal numbers (a.b.c.d)");
	if (!is_host_name(h))
		PcrConfigError(driver, field, "must be an ASCII host name or an IP address");
	return h;
}

void
PcrConfigCheckProviderName(const char *driver, const char *field, const char *name)
{
	size_t		len = strlen(name);

	if (len > PCR_PROVIDER_NAME_MAX)
		PcrConfigError(driver, field, "is too long (at most %d bytes)", PCR_PROVIDER_NAME_MAX);
	if (!PcrIsProviderName(name))
		PcrConfigError(driver, field, "must match ^[a-z0-9][a-z0-9._-]*$");
}

bool
PcrIsProviderName(const char *name)
{
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
			  *p == '.' || *p == '_' || *p == '-'))
			return false;
	return strlen(name) <= PCR_PROVIDER_NAME_MAX;
}

/* ------------------------------------------------------------------------
 * Credentials
 * ------------------------------------------------------------------------ */
static const char *const credential_words[] = {
	"password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey",
	"privatekey", "credential", "credentials",
};

static bool
is_credential_word(const char *w)
{
	for (int i = 0; i < lengthof(credential_words); i++)
		if (strcmp(w, credential_words[i]) == 0)
			return true;
	return false;
}

/*
 * Does the key name a credential?  Words split at non-alphanumerics and
 * camelCase ("apiKey" → api key, "APIToken" → api token), lowercased; a
 * word or two adjacent words joined must be a credential word.
 */
static bool
is_credential_key(const char *key)
{
	char	   *words[64];
	int			n = 0;
	StringInfoData w;
	int			len = strlen(key);

	initStringInfo(&w);
	for (int i = 0; i <= len && n < lengthof(words); i++)
	{
		unsigned char c = i < len ? (unsigned char) key[i] : '\0';
		bool		boundary = !isalnum(c);

		if (!boundary && w.len > 0 && isupper(c))
		{
			unsigned char prev = (unsigned char) key[i - 1];
			unsigned char next = i + 1 < len ? (unsigned char) key[i + 1] : '\0';

			/* fooBar | FOOBar: a capital after a lower-case letter, or a capital starting a word after capitals */
			if (islower(prev) || isdigit(prev) || (isupper(prev) && islower(next)))
			{
				words[n++] = pstrdup(w.data);
				resetStringInfo(&w);
			}
		}
		if (boundary)
		{
			if (w.len > 0)
				words[n++] = pstrdup(w.data);
			resetStringInfo(&w);
			continue;
		}
		appendStringInfoChar(&w, (char) tolower(c));
	}
	for (int i = 0; i < n; i++)
	{
		if (is_credential_word(words[i]))
			return true;
		if (i + 1 < n && is_credential_word(psprintf("%s%s", words[i], words[i + 1])))
			return true;
	}
	return false;
}

static bool
is_secret_ref_object(JsonbContainer *c)
{
	JsonbValue	v;

	return JsonContainerIsObject(c) &&
		getKeyJsonValueFromContainer(c, "type", 4, &v) != NULL && v.type == jbvString &&
		v.val.string.len == 10 && memcmp(v.val.string.val, "secret_ref", 10) == 0;
}

static void
refuse_credential(const char *driver, const char *path, const char *why)
{
	ereport(ERROR,
			(errcode(PCR_ERRCODE_BAD_CONFIG),
			 errmsg("invalid %s environment config: \"%s\" %s", driver, path, why),
			 errhint("Store the value with paperclip.secret_create() and reference it with {\"type\": \"secret_ref\", \"secretId\": \"<uuid>\"}.")));
}

static void
check_credentials(const char *driver, JsonbContainer *c, const char *path, bool under_credential)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;
	int			index = 0;

	check_stack_depth();
	if (is_secret_ref_object(c))
		return;
	it = JsonbIteratorInit(c);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *here;
		bool		credential = under_credential;

		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE && tok != WJB_ELEM)
			continue;
		if (tok == WJB_VALUE)
		{
			here = path[0] ? psprintf("%s.%s", path, key) : key;
			credential |= is_credential_key(key);
		}
		else
			here = psprintf("%s[%d]", path, index++);

		if (v.type == jbvBinary)
			check_credentials(driver, v.val.binary.data, here, credential);
		else if (v.type == jbvString)
		{
			if (credential && v.val.string.len > 0)
				refuse_credential(driver, here, "looks like a credential: it must be a secret ref, not a string");
			if (v.val.string.len > 0 &&
				strstr(pnstrdup(v.val.string.val, v.val.string.len), "PRIVATE KEY-----") != NULL)
				refuse_credential(driver, here, "holds a private key");
		}
	}
}

void
PcrConfigRefuseInlineCredentials(const char *driver, Jsonb *config)
{
	if (config == NULL || JB_ROOT_IS_SCALAR(config))
		return;
	check_credentials(driver, &config->root, "", false);
}
