/*
 * ssh_proto.h — what an ssh request and its answer carry through the I/O pool
 *
 * The caller (driver_ssh.c) packs a request: a fixed head, then host,
 * username, path, knownHosts, the API candidates (one per line) and the
 * private key, each NUL-terminated, key last: the key is the request's one
 * secret range.  The worker (ssh_ops.c) unpacks it in place.  The answer is
 * one fixed PcrSshResponse.
 */
#ifndef PCR_SSH_PROTO_H
#define PCR_SSH_PROTO_H

#include "pcr.h"
#include "io.h"

#include "lib/stringinfo.h"

#define PCR_SSH_HOST_MAX		256
#define PCR_SSH_USER_MAX		256
#define PCR_SSH_PATH_MAX		4096
#define PCR_SSH_KNOWN_HOSTS_MAX	32768
#define PCR_SSH_KEY_MAX			16384
#define PCR_SSH_CANDIDATES_MAX	8192
#define PCR_SSH_URL_MAX			2048

typedef enum PcrSshField
{
	SSH_HOST,
	SSH_USERNAME,
	SSH_PATH,
	SSH_KNOWN_HOSTS,
	SSH_CANDIDATES,
	SSH_KEY,					/* last: the secret range */
	SSH_NFIELDS
} PcrSshField;

typedef struct PcrSshRequestHead
{
	int32		port;
	int32		connect_timeout_ms;
	bool		strict_host_key_checking;
	uint8		cache_key[PCR_IO_ROUTE_KEY_LEN];	/* keyed hash: host, port, user, key */
	uint32		len[SSH_NFIELDS];	/* strlen of each field */
} PcrSshRequestHead;

/* The largest packed request. */
#define PCR_SSH_REQUEST_MAX \
	(sizeof(PcrSshRequestHead) + PCR_SSH_HOST_MAX + PCR_SSH_USER_MAX + PCR_SSH_PATH_MAX + \
	 PCR_SSH_KNOWN_HOSTS_MAX + PCR_SSH_CANDIDATES_MAX + PCR_SSH_KEY_MAX + SSH_NFIELDS)

/* A request as the worker sees it: pointers into its private copy. */
typedef struct PcrSshRequest
{
	bool		acquire;		/* create the workspace (else: only look at it) */
	int32		port;
	int32		connect_timeout_ms;
	bool		strict_host_key_checking;
	uint8		cache_key[PCR_IO_ROUTE_KEY_LEN];
	uint64		route_hash;
	const char *host;
	const char *username;
	const char *path;
	const char *known_hosts;	/* "" when none */
	const char *candidates;		/* URLs, one per line; "" when none */
	char	   *key;			/* zeroed right after authentication */
	uint32		key_len;
} PcrSshRequest;

/* The answer to a request. */
typedef struct PcrSshResponse
{
	bool		reused_session;
	bool		workspace_exists;
	int32		elapsed_ms;
	char		remote_cwd[PCR_SSH_PATH_MAX];	/* "" when unknown */
	char		api_url[PCR_SSH_URL_MAX];	/* "" when none */
	char		host_key_type[32];
	char		host_key_sha256[64];	/* base64, as OpenSSH prints it */
} PcrSshResponse;

/* ssh_ops.c: the operations, and their registration (from the ssh driver's init) */
extern const PcrIoOperation pcr_ssh_op_acquire;
extern const PcrIoOperation pcr_ssh_op_probe;
extern const PcrIoOperation pcr_ssh_op_execute;	/* ssh_exec.c */

/* The fields of a packed request, pointing into data (worker side). */
extern void PcrSshUnpack(char *data, Size len, PcrSshRequest *req);
extern void PcrSshRegisterIo(void);

#endif							/* PCR_SSH_PROTO_H */
