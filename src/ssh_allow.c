/*
 * ssh_allow.c — paperclip.ssh_allowed_hosts: which ssh destinations may be used
 *
 * A superuser setting (postgresql.conf or ALTER SYSTEM, applied on reload):
 * a list of entries separated by commas or whitespace, each
 *
 *     *                      any host
 *     build-*.corp.example   a host-name pattern ("*" any run of characters,
 *                            "?" one), matched case-insensitively against
 *                            the host as configured, never against an IP
 *                            address
 *     10.0.0.0/8  192.0.2.7  an IPv4 or IPv6 address or CIDR block, matched
 *     2001:db8::/32          against an IP-address host, and against the
 *                            addresses a host name resolves to
 *
 * optionally followed by :PORT (an IPv6 entry then in brackets:
 * [2001:db8::/32]:22); without a port an entry admits every port.  The
 * default "*" admits everything; an empty list admits nothing.
 *
 * Where each part is checked (the connect happens in a driver worker):
 * the calling backend checks the configured host against "*", the name
 * patterns, and (an IP-address host) the address entries, before the
 * request leaves it: no connection, no name lookup, no key decrypted for a
 * refused destination.  A host name that no pattern admits goes on to the
 * worker only if some address entry admits the port; the worker resolves it
 * and checks every address it got before connecting to any, the same
 * addresses connect() is then given, so an answer that changes between the
 * check and the connect (DNS rebinding) cannot slip through.  A name
 * admitted by a pattern is trusted to resolve where its owner says.
 *
 * Refusals are 42501: a policy decision, not a transport failure to retry.
 * The list is parsed once per reload by the GUC check hook.
 */
#include "pcr.h"
#include "ssh_allow.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "utils/guc.h"

#define ALLOW_PATTERN_MAX 253

typedef enum AllowKind
{
	ALLOW_ANY,
	ALLOW_NAME,
	ALLOW_ADDR
} AllowKind;

typedef struct AllowEntry
{
	AllowKind	kind;
	int			port;			/* 0: any port */
	int			family;			/* ALLOW_ADDR: AF_INET or AF_INET6 */
	int			bits;			/* ALLOW_ADDR: prefix length */
	unsigned char addr[16];		/* ALLOW_ADDR: network, host bits zero */
	char		pattern[ALLOW_PATTERN_MAX + 1];	/* ALLOW_NAME: lower case */
} AllowEntry;

/* The parsed list: one malloc'd block, the GUC's "extra". */
typedef struct AllowList
{
	int			n;
	AllowEntry	entries[FLEXIBLE_ARRAY_MEMBER];
} AllowList;

static char *ssh_allowed_hosts = NULL;
static const AllowList *allow_list = NULL;

/* An IP address in comparable form: IPv4-mapped IPv6 addresses become IPv4. */
typedef struct IpAddr
{
	int			family;
	unsigned char bytes[16];
} IpAddr;

static bool
parse_ip(const char *s, IpAddr *out)
{
	static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, s, out->bytes) == 1)
	{
		out->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, out->bytes) != 1)
		return false;
	out->family = AF_INET6;
	if (memcmp(out->bytes, v4mapped, 12) == 0)
	{
		memmove(out->bytes, out->bytes + 12, 4);
		memset(out->bytes + 4, 0, 12);
		out->family = AF_INET;
	}
	return true;
}

static bool
prefix_matches(const unsigned char *net, const unsigned char *addr, int bits)
{
	int			whole = bits / 8;
	int			rest = bits % 8;

	if (memcmp(net, addr, whole) != 0)
		return false;
	return rest == 0 || ((net[whole] ^ addr[whole]) & (0xff << (8 - rest))) == 0;
}

/* ------------------------------------------------------------------------
 * Parsing (GUC check hook: report problems with GUC_check_errdetail)
 * ------------------------------------------------------------------------ */
static bool
parse_port(const char *s, int *port)
{
	long		v = 0;

	if (*s == '\0' || strlen(s) > 5)
		return false;
	for (const char *p = s; *p; p++)
	{
		if (!isdigit((unsigned char) *p))
			return false;
		v = v * 10 + (*p - '0');
	}
	*port = (int) v;
	return v >= 1 && v <= 65535;
}

/* An address or CIDR: 1 when parsed, 0 when s is no address, -1 when invalid (detail set). */
static int
parse_addr_entry(char *s, AllowEntry *e)
{
	char	   *slash = strchr(s, '/');
	IpAddr		ip;
	int			maxbits;

	if (slash)
		*slash = '\0';
	if (!parse_ip(s, &ip))
	{
		if (slash)
			*slash = '/';
		return 0;
	}
	e->kind = ALLOW_ADDR;
	e->family = ip.family;
	memcpy(e->addr, ip.bytes, sizeof(e->addr));
	maxbits = ip.family == AF_INET ? 32 : 128;
	e->bits = maxbits;
	if (slash)
	{
		char	   *end;
		long		bits = strtol(slash + 1, &end, 10);

		if (slash[1] == '\0' || *end != '\0' || bits < 0 || bits > maxbits)
		{
			GUC_check_errdetail("\"%s/%s\" has an invalid prefix length.", s, slash + 1);
			return -1;
		}
		e->bits = (int) bits;
		for (int b = e->bits; b < maxbits; b++)
			if (e->addr[b / 8] & (0x80 >> (b % 8)))
			{
				GUC_check_errdetail("\"%s/%ld\" has bits set to the right of its prefix.", s, bits);
				return -1;
			}
	}
	return 1;
}

static bool
parse_name_entry(const char *s, AllowEntry *e)
{
	size_t		len = strlen(s);
	bool		named = false;

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > ALLOW_PATTERN_MAX)
	{
		GUC_check_errdetail("\"%s\" is not a host-name pattern.", s);
		return false;
	}
	for (size_t i = 0; i < len; i++)
	{
		char		c = (char) tolower((unsigned char) s[i]);

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '-' || c == '_' || c == '*' || c == '?'))
		{
			GUC_check_errdetail("\"%s\" is not a host-name pattern (letters, digits, \".\", \"-\", \"_\", \"*\" and \"?\").", s);
			return false;
		}
		named |= !(isdigit((unsigned char) c) || c == '.' || c == '*' || c == '?');
		e->pattern[i] = c;
	}
	if (!named)
	{
		GUC_check_errdetail("\"%s\" looks like a partial address: write addresses as CIDR blocks (10.0.0.0/8).", s);
		return false;
	}
	e->pattern[len] = '\0';
	e->kind = ALLOW_NAME;
	return true;
}

/* One entry: HOST, HOST:PORT, [IPV6]:PORT or a bare IPv6 address/CIDR. */
static bool
parse_entry(char *tok, AllowEntry *e)
{
	char	   *host = tok;
	char	   *port = NULL;
	char	   *colon;

	memset(e, 0, sizeof(*e));
	if (tok[0] == '[')
	{
		char	   *close = strchr(tok, ']');

		if (close == NULL || (close[1] != '\0' && close[1] != ':'))
		{
			GUC_check_errdetail("\"%s\" is not a valid entry.", tok);
			return false;
		}
		*close = '\0';
		host = tok + 1;
		if (close[1] == ':')
			port = close + 2;
		switch (parse_addr_entry(host, e))
		{
			case 0:
				GUC_check_errdetail("\"[%s]\": only IP addresses go in brackets.", host);
				return false;
			case -1:
				return false;
		}
	}
	else
	{
		colon = strchr(tok, ':');
		if (colon && strchr(colon + 1, ':') == NULL)
		{
			*colon = '\0';
			port = colon + 1;
		}
		if (strcmp(host, "*") == 0)
			e->kind = ALLOW_ANY;
		else
		{
			int			rc = parse_addr_entry(host, e);

			if (rc < 0 || (rc == 0 && !parse_name_entry(host, e)))
				return false;
		}
	}
	if (port != NULL && !parse_port(port, &e->port))
	{
		GUC_check_errdetail("\"%s\" is not a port (1 to 65535).", port);
		return false;
	}
	return true;
}

static bool
check_allowed_hosts(char **newval, void **extra, GucSource source)
{
	const char *seps = ", \t\r\n";
	char	   *copy;
	char	   *tok;
	char	   *save;
	int			n = 0;
	AllowList  *list;

	copy = pstrdup(*newval ? *newval : "");
	for (tok = strtok_r(copy, seps, &save); tok; tok = strtok_r(NULL, seps, &save))
		n++;
	list = malloc(offsetof(AllowList, entries) + sizeof(AllowEntry) * Max(n, 1));
	if (list == NULL)
	{
		GUC_check_errdetail("Out of memory.");
		return false;
	}
	list->n = 0;
	strcpy(copy, *newval ? *newval : "");
	for (tok = strtok_r(copy, seps, &save); tok; tok = strtok_r(NULL, seps, &save))
	{
		if (!parse_entry(tok, &list->entries[list->n]))
		{
			free(list);
			pfree(copy);
			return false;
		}
		list->n++;
	}
	pfree(copy);
	*extra = list;
	return true;
}

static void
assign_allowed_hosts(const char *newval, void *extra)
{
	allow_list = (const AllowList *) extra;
}

void
PcrSshAllowInit(void)
{
	DefineCustomStringVariable("paperclip.ssh_allowed_hosts",
							   "SSH destinations environments may connect to.",
							   "Host-name patterns, IP addresses and CIDR blocks, each with an optional "
							   ":port, separated by commas or white space; \"*\" admits any host, an empty list none.",
							   &ssh_allowed_hosts, "*",
							   PGC_SIGHUP, 0, check_allowed_hosts, assign_allowed_hosts, NULL);
}

const char *
PcrSshAllowedHostsSetting(void)
{
	return ssh_allowed_hosts ? ssh_allowed_hosts : "";
}

/* ------------------------------------------------------------------------
 * Matching
 * ------------------------------------------------------------------------ */

/* Glob with "*" and "?" over lower-case ASCII. */
static bool
glob_match(const char *pattern, const char *s)
{
	const char *star = NULL;
	const char *resume = NULL;

	while (*s)
	{
		if (*pattern == '?' || *pattern == *s)
			pattern++, s++;
		else if (*pattern == '*')
			star = pattern++, resume = s;
		else if (star)
			pattern = star + 1, s = ++resume;
		else
			return false;
	}
	while (*pattern == '*')
		pattern++;
	return *pattern == '\0';
}

/* host lower-cased, without one trailing dot and without IPv6 brackets */
static char *
normal_host(const char *host)
{
	size_t		len = strlen(host);
	char	   *h;

	if (len > 2 && host[0] == '[' && host[len - 1] == ']')
		host++, len -= 2;
	if (len > 0 && host[len - 1] == '.')
		len--;
	h = pnstrdup(host, len);
	for (char *p = h; *p; p++)
		*p = (char) tolower((unsigned char) *p);
	return h;
}

static bool
port_matches(const AllowEntry *e, int port)
{
	return e->port == 0 || e->port == port;
}

/* Admitted by "*" or, for a host that is not an IP address, a name pattern. */
static bool
admitted_by_name(const AllowList *list, const char *host, bool is_ip, int port)
{
	for (int i = 0; i < list->n; i++)
	{
		const AllowEntry *e = &list->entries[i];

		if (!port_matches(e, port))
			continue;
		if (e->kind == ALLOW_ANY || (e->kind == ALLOW_NAME && !is_ip && glob_match(e->pattern, host)))
			return true;
	}
	return false;
}

static bool
admitted_address(const AllowList *list, const IpAddr *ip, int port)
{
	for (int i = 0; i < list->n; i++)
	{
		const AllowEntry *e = &list->entries[i];

		if (e->kind == ALLOW_ADDR && port_matches(e, port) && e->family == ip->family &&
			prefix_matches(e->addr, ip->bytes, e->bits))
			return true;
	}
	return false;
}

static bool
any_address_entry(const AllowList *list, int port)
{
	for (int i = 0; i < list->n; i++)
		if (list->entries[i].kind == ALLOW_ADDR && port_matches(&list->entries[i], port))
			return true;
	return false;
}

static char *
destination(const char *host, int port)
{
	return strchr(host, ':') ? psprintf("[%s]:%d", host, port) : psprintf("%s:%d", host, port);
}

static void
raise_not_allowed(const char *host, int port, bool resolved) pg_attribute_noreturn();

static void
raise_not_allowed(const char *host, int port, bool resolved)
{
	ereport(ERROR,
			(errcode(PCR_ERRCODE_FORBIDDEN),
			 errmsg("ssh destination \"%s\" is not allowed by paperclip.ssh_allowed_hosts",
					destination(host, port)),
			 resolved
			 ? errdetail("The host name resolves to an address that no entry admits on this port.")
			 : errdetail("No entry admits this host on this port."),
			 errhint("A superuser can add the destination to paperclip.ssh_allowed_hosts and reload.")));
	pg_unreachable();
}

void
PcrSshCheckAllowed(const char *host, int port)
{
	const AllowList *list = allow_list;
	char	   *h = normal_host(host);
	IpAddr		ip;
	bool		is_ip = parse_ip(h, &ip);

	if (list == NULL)			/* not defined yet: cannot happen after _PG_init */
		raise_not_allowed(host, port, false);
	if (admitted_by_name(list, h, is_ip, port))
		return;
	if (is_ip ? admitted_address(list, &ip, port) : any_address_entry(list, port))
		return;
	raise_not_allowed(host, port, false);
}

void
PcrSshCheckAddresses(const char *host, int port, const struct sockaddr_storage *addrs, int n)
{
	const AllowList *list = allow_list;
	char	   *h = normal_host(host);
	IpAddr		probe;

	if (list == NULL)
		raise_not_allowed(host, port, true);
	if (admitted_by_name(list, h, parse_ip(h, &probe), port))
		return;
	for (int i = 0; i < n; i++)
	{
		char		text[INET6_ADDRSTRLEN];
		IpAddr		ip;
		const void *raw;

		if (addrs[i].ss_family == AF_INET)
			raw = &((const struct sockaddr_in *) &addrs[i])->sin_addr;
		else if (addrs[i].ss_family == AF_INET6)
			raw = &((const struct sockaddr_in6 *) &addrs[i])->sin6_addr;
		else
			raise_not_allowed(host, port, true);
		if (inet_ntop(addrs[i].ss_family, raw, text, sizeof(text)) == NULL || !parse_ip(text, &ip))
			raise_not_allowed(host, port, true);
		if (admitted_address(list, &ip, port))
			continue;
		ereport(LOG,
				(errmsg("ssh destination \"%s\" refused: it resolved to %s, which paperclip.ssh_allowed_hosts does not admit",
						destination(host, port), text)));
		raise_not_allowed(host, port, true);
	}
}
