/*
 * ssh_ops.c — the ssh client's operations in the I/O pool
 *
 * Three operations, "ssh.acquire" (connect, create the workspace, find the
 * API), "ssh.probe" (connect, look at the workspace, find the API) and
 * "ssh.execute" (connect, run one command: ssh_exec.c), and
 * the worker hooks of the ssh backend: drop the session of a failed request,
 * expire idle sessions, advertise the pooled ones for affinity.
 */
#include "pcr.h"
#include "ssh_proto.h"
#include "ssh_client.h"

/* Point the fields of req into the worker's copy of a packed request; 22023-free: a bad one is internal. */
void
PcrSshUnpack(char *data, Size len, PcrSshRequest *req)
{
	PcrSshRequestHead head;
	const char *fields[SSH_NFIELDS];
	Size		off = sizeof(head);

	if (len < sizeof(head))
		elog(ERROR, "malformed ssh request");
	memcpy(&head, data, sizeof(head));
	for (int i = 0; i < SSH_NFIELDS; i++)
	{
		if (head.len[i] >= len || off + head.len[i] >= len || data[off + head.len[i]] != '\0')
			elog(ERROR, "malformed ssh request");
		fields[i] = data + off;
		off += head.len[i] + 1;
	}
	req->port = head.port;
	req->connect_timeout_ms = head.connect_timeout_ms;
	req->strict_host_key_checking = head.strict_host_key_checking;
	memcpy(req->cache_key, head.cache_key, sizeof(req->cache_key));
	req->route_hash = PcrIoRouteOf(req->cache_key);
	req->host = fields[SSH_HOST];
	req->username = fields[SSH_USERNAME];
	req->path = fields[SSH_PATH];
	req->known_hosts = fields[SSH_KNOWN_HOSTS];
	req->candidates = fields[SSH_CANDIDATES];
	req->key = (char *) fields[SSH_KEY];
	req->key_len = head.len[SSH_KEY];
}

static void
run(PcrIoRequest *io, PcrIoResponse *out, bool acquire)
{
	PcrSshRequest req;
	PcrSshResponse *resp = palloc0(sizeof(PcrSshResponse));
	TimestampTz start = GetCurrentTimestamp();

	memset(&req, 0, sizeof(req));
	PcrSshUnpack(io->data, io->len, &req);
	req.acquire = acquire;
	PcrSshExecute(&req, resp);
	resp->elapsed_ms = (int32) TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());
	PcrIoReply(out, resp, sizeof(PcrSshResponse));
}

static void
run_acquire(PcrIoRequest *io, PcrIoResponse *out)
{
	run(io, out, true);
}

static void
run_probe(PcrIoRequest *io, PcrIoResponse *out)
{
	run(io, out, false);
}

const PcrIoOperation pcr_ssh_op_acquire = {
	.name = "ssh.acquire",
	.max_request = PCR_SSH_REQUEST_MAX,
	.max_response = sizeof(PcrSshResponse),
	.run = run_acquire,
};

const PcrIoOperation pcr_ssh_op_probe = {
	.name = "ssh.probe",
	.max_request = PCR_SSH_REQUEST_MAX,
	.max_response = sizeof(PcrSshResponse),
	.run = run_probe,
};

static const PcrIoOperation *const ssh_ops[] = {&pcr_ssh_op_acquire, &pcr_ssh_op_probe,
&pcr_ssh_op_execute};

static const PcrIoBackend ssh_backend = {
	.abi_version = PCR_IO_ABI_VERSION,
	.name = "ssh",
	.ops = ssh_ops,
	.nops = lengthof(ssh_ops),
	.abort = PcrSshAbort,
	.housekeeping = PcrSshExpireIdle,
	.routes = PcrSshRoutes,
};

void
PcrSshRegisterIo(void)
{
	PcrIoRegisterBackend(&ssh_backend);
}
