/*
 * sandbox_ops.c — the I/O operations of sandbox providers, both sides
 *
 * When a provider with worker-side entry points registers, the core
 * registers an I/O backend named after it with one operation per entry
 * point it has: "<provider>.probe", "<provider>.acquire" (resume, falling
 * back to create), "<provider>.destroy", "<provider>.list_owned" and
 * "<provider>.execute".  The run functions here are shared by every
 * provider: the request names the provider (registry index and name), the
 * object and the arguments; the answer carries the provider's status, its
 * message and what the entry point produced.  A provider writes no pool
 * code.  Execute is the exception in its format: a call of lease_execute()
 * like every driver's (exec.h), with this object head as its driver part
 * (sandbox_exec.c).
 *
 * Wire format: a sequence of fields, each a uint32 length (PCR_WIRE_NULL
 * for NULL) and its bytes; integers travel as 8 bytes, jsonb as its whole
 * varlena.  The reader copies every field out (aligned), so a jsonb can be
 * read in place.
 */
#include "pcr.h"
#include "sandbox.h"
#include "util.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#define PCR_WIRE_NULL 0xFFFFFFFFu

/* the object head (its config is at most PCR_CONFIG_MAX_BYTES); answers are small but a list */
#define PCR_SANDBOX_MAX_REQUEST		(1024 * 1024)
#define PCR_SANDBOX_MAX_SMALL		(64 * 1024)
#define PCR_SANDBOX_MAX_LIST		(8 * 1024 * 1024)

typedef enum PcrSandboxOp
{
	OP_PROBE,
	OP_ACQUIRE,
	OP_DESTROY,
	OP_LIST,
	OP_EXECUTE,
	OP_COUNT
} PcrSandboxOp;

static const char *const op_suffix[OP_COUNT] = {"probe", "acquire", "destroy", "list_owned", "execute"};

/* A provider's backend and operations, built at registration (TopMemoryContext). */
typedef struct PcrProviderOps
{
	const PcrSandboxProvider *provider;
	PcrIoOperation ops[OP_COUNT];
	const PcrIoOperation *list[OP_COUNT];
	int			index[OP_COUNT];	/* position in list, -1 when the entry point is missing */
	PcrIoBackend backend;
} PcrProviderOps;

static PcrProviderOps *provider_ops[32];

/* ------------------------------------------------------------------------
 * Wire
 * ------------------------------------------------------------------------ */
typedef struct PcrWireReader
{
	const char *data;
	Size		len;
	Size		off;
} PcrWireReader;

static void
w_bytes(StringInfo b, const void *p, Size len)
{
	uint32		l = p == NULL ? PCR_WIRE_NULL : (uint32) len;

	appendBinaryStringInfo(b, (const char *) &l, sizeof(l));
	if (p != NULL && len > 0)
		appendBinaryStringInfo(b, p, len);
}

static void
w_str(StringInfo b, const char *s)
{
	w_bytes(b, s, s ? strlen(s) : 0);
}

static void
w_int(StringInfo b, int64 v)
{
	w_bytes(b, &v, sizeof(v));
}

static void
w_jsonb(StringInfo b, Jsonb *jb)
{
	w_bytes(b, jb, jb ? VARSIZE(jb) : 0);
}

/* The next field: a palloc'd, NUL-terminated copy (NULL for a NULL field). */
static char *
r_bytes(PcrWireReader *r, Size *len)
{
	uint32		l;
	char	   *copy;

	if (r->len - r->off < sizeof(l))
		elog(ERROR, "malformed sandbox provider message");
	memcpy(&l, r->data + r->off, sizeof(l));
	r->off += sizeof(l);
	if (l == PCR_WIRE_NULL)
	{
		if (len)
			*len = 0;
		return NULL;
	}
	if (r->len - r->off < l)
		elog(ERROR, "malformed sandbox provider message");
	copy = palloc(l + 1);
	memcpy(copy, r->data + r->off, l);
	copy[l] = '\0';
	r->off += l;
	if (len)
		*len = l;
	return copy;
}

static char *
r_str(PcrWireReader *r)
{
	return r_bytes(r, NULL);
}

static int64
r_int(PcrWireReader *r)
{
	Size		len;
	char	   *p = r_bytes(r, &len);
	int64		v;

	if (p == NULL || len != sizeof(v))
		elog(ERROR, "malformed sandbox provider message");
	memcpy(&v, p, sizeof(v));
	return v;
}

static Jsonb *
r_jsonb(PcrWireReader *r)
{
	Size		len;
	char	   *p = r_bytes(r, &len);

	if (p != NULL && (len < VARHDRSZ || VARSIZE(p) != len))
		elog(ERROR, "malformed sandbox provider message");
	return (Jsonb *) p;
}

static void
w_uuid(StringInfo b, const pg_uuid_t *u)
{
	w_bytes(b, u->data, UUID_LEN);
}

static void
r_uuid(PcrWireReader *r, pg_uuid_t *u)
{
	Size		len;
	char	   *p = r_bytes(r, &len);

	if (p == NULL || len != UUID_LEN)
		elog(ERROR, "malformed sandbox provider message");
	memcpy(u->data, p, UUID_LEN);
}

/* The head of every request: the provider, the cluster, then the object (if any). */
void
PcrSandboxWriteObject(StringInfo b, const PcrSandboxProvider *p, const PcrSandboxObject *obj)
{
	w_int(b, PcrSandboxProviderIndex(p));
	w_str(b, p->name);
	w_str(b, PcrSandboxCluster());
	w_int(b, obj != NULL);
	if (obj == NULL)
		return;
	w_str(b, obj->name);
	w_uuid(b, &obj->lease_id);
	w_uuid(b, &obj->company_id);
	w_uuid(b, &obj->environment_id);
	w_int(b, obj->database_id);
	w_int(b, obj->reusable);
	w_jsonb(b, obj->config);
	w_jsonb(b, obj->metadata);
}

static const PcrSandboxProvider *
r_head(PcrWireReader *r, TimestampTz deadline, PcrSandboxObject *obj)
{
	int			index = (int) r_int(r);
	char	   *name = r_str(r);
	const PcrSandboxProvider *p = PcrSandboxProviderAt(index);

	if (p == NULL || name == NULL || strcmp(p->name, name) != 0)
		elog(ERROR, "sandbox provider \"%s\" is not registered in this driver worker", name ? name : "?");
	memset(obj, 0, sizeof(*obj));
	obj->cluster = r_str(r);
	obj->deadline = deadline;
	if (r_int(r) == 0)
		return p;
	obj->name = r_str(r);
	r_uuid(r, &obj->lease_id);
	r_uuid(r, &obj->company_id);
	r_uuid(r, &obj->environment_id);
	obj->database_id = (Oid) r_int(r);
	obj->reusable = r_int(r) != 0;
	obj->config = r_jsonb(r);
	obj->metadata = r_jsonb(r);
	return p;
}

const PcrSandboxProvider *
PcrSandboxReadObject(const char *data, Size len, TimestampTz deadline, PcrSandboxObject *obj)
{
	PcrWireReader r = {data, len, 0};
	const PcrSandboxProvider *p = r_head(&r, deadline, obj);

	if (r.off != r.len)
		elog(ERROR, "malformed sandbox provider message");
	return p;
}

static void
reply(PcrIoResponse *resp, StringInfo b)
{
	PcrIoReply(resp, b->data, b->len);
}

static void
w_result(StringInfo b, PcrProviderStatus status, const PcrProviderResult *res)
{
	w_int(b, status);
	w_str(b, status == PCR_PROVIDER_OK && res->message[0] == '\0' ? NULL : res->message);
}

static PcrProviderStatus
r_result(PcrWireReader *r, char *message)
{
	PcrProviderStatus status = (PcrProviderStatus) r_int(r);
	char	   *m = r_str(r);

	if (status < PCR_PROVIDER_OK || status > PCR_PROVIDER_FATAL)
		elog(ERROR, "malformed sandbox provider message");
	if (message)
		strlcpy(message, m ? m : "", PCR_PROVIDER_MESSAGE_MAX);
	return status;
}

/* ------------------------------------------------------------------------
 * Worker side
 * ------------------------------------------------------------------------ */
static void
probe_run(PcrIoRequest *req, PcrIoResponse *resp)
{
	PcrWireReader r = {req->data, req->len, 0};
	PcrSandboxObject obj;
	const PcrSandboxProvider *p = r_head(&r, req->deadline, &obj);
	PcrProviderResult res = {0};
	StringInfoData b;

	initStringInfo(&b);
	w_result(&b, p->probe(&obj, &res), &res);
	reply(resp, &b);
}

/*
 * Resume (reusable) or create.  The in-flight entry says whether the caller
 * still waits: if it gave up before this worker started, nothing is created.
 * It is marked "creates" before create runs, so that an abort destroys
 * whatever create left, and "done" afterwards, even when the provider raised.
 */
static void
acquire_run(PcrIoRequest *req, PcrIoResponse *resp)
{
	PcrWireReader r = {req->data, req->len, 0};
	PcrSandboxObject obj;
	const PcrSandboxProvider *p = r_head(&r, req->deadline, &obj);
	int			slot = (int) r_int(&r);
	uint32		generation = (uint32) r_int(&r);
	PcrProviderResult res = {0};
	volatile PcrProviderStatus status = PCR_PROVIDER_NOT_FOUND;
	volatile bool resumed = false;
	StringInfoData b;

	if (!PcrInflightWorkerStart(slot, generation))
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("sandbox acquisition was abandoned before it started")));
	PG_TRY();
	{
		if (obj.reusable)
		{
			status = p->resume(&obj, &res);
			resumed = status == PCR_PROVIDER_OK;
		}
		if (status == PCR_PROVIDER_NOT_FOUND)
		{
			PcrIoCheckAbandoned();
			PcrInflightWorkerCreates(slot, generation);
			memset(&res, 0, sizeof(res));
			status = p->create(&obj, &res);
		}
	}
	PG_CATCH();
	{
		PcrInflightWorkerDone(slot, generation);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PcrInflightWorkerDone(slot, generation);

	initStringInfo(&b);
	w_result(&b, status, &res);
	w_int(&b, resumed);
	w_jsonb(&b, status == PCR_PROVIDER_OK ? res.metadata : NULL);
	reply(resp, &b);
}

static void
destroy_run(PcrIoRequest *req, PcrIoResponse *resp)
{
	PcrWireReader r = {req->data, req->len, 0};
	PcrSandboxObject obj;
	const PcrSandboxProvider *p = r_head(&r, req->deadline, &obj);
	bool		release = r_int(&r) != 0;
	PcrProviderResult res = {0};
	PcrProviderStatus status;
	StringInfoData b;

	if (release)
		status = p->release ? p->release(&obj, &res) : PCR_PROVIDER_OK;
	else
		status = p->destroy(&obj, &res);
	initStringInfo(&b);
	w_result(&b, status, &res);
	reply(resp, &b);
}

/* What list_owned fills (PcrOwnedListAdd). */
struct PcrOwnedList
{
	PcrOwnedObject *items;
	int			n;
	int			size;
};

void
PcrOwnedListAdd(PcrOwnedList *list, const PcrOwnedObject *obj)
{
	if (list->n == list->size)
	{
		list->size = list->size == 0 ? 64 : list->size * 2;
		list->items = list->items == NULL ? palloc(sizeof(PcrOwnedObject) * list->size)
			: repalloc(list->items, sizeof(PcrOwnedObject) * list->size);
	}
	list->items[list->n] = *obj;
	list->items[list->n].name[PCR_OBJECT_NAME_MAX - 1] = '\0';
	list->n++;
}

static void
list_run(PcrIoRequest *req, PcrIoResponse *resp)
{
	PcrWireReader r = {req->data, req->len, 0};
	PcrSandboxObject obj;
	const PcrSandboxProvider *p = r_head(&r, req->deadline, &obj);
	PcrOwnedList list = {0};
	PcrProviderResult res = {0};
	PcrProviderStatus status = p->list_owned(obj.cluster, &list, &res);
	StringInfoData b;

	initStringInfo(&b);
	w_result(&b, status, &res);
	w_int(&b, status == PCR_PROVIDER_OK ? list.n : 0);
	for (int i = 0; status == PCR_PROVIDER_OK && i < list.n; i++)
	{
		w_str(&b, list.items[i].name);
		w_uuid(&b, &list.items[i].lease_id);
		w_uuid(&b, &list.items[i].company_id);
		w_uuid(&b, &list.items[i].environment_id);
		w_int(&b, list.items[i].database_id);
		w_int(&b, list.items[i].reusable);
		w_int(&b, list.items[i].created_at);
	}
	reply(resp, &b);
}

/* ------------------------------------------------------------------------
 * Registration
 * ------------------------------------------------------------------------ */
static void
add_op(PcrProviderOps *po, PcrSandboxOp op, bool present, PcrIoRunFunc run, Size max_request,
	   Size max_response)
{
	po->index[op] = -1;
	if (!present)
		return;
	po->ops[op].name = psprintf("%s.%s", po->provider->name, op_suffix[op]);
	po->ops[op].max_request = max_request;
	po->ops[op].max_response = max_response;
	po->ops[op].run = run;
	po->index[op] = po->backend.nops;
	po->list[po->backend.nops++] = &po->ops[op];
}

void
PcrSandboxRegisterOperations(const PcrSandboxProvider *p)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	PcrProviderOps *po = palloc0(sizeof(PcrProviderOps));
	int			index = PcrSandboxProviderIndex(p);

	po->provider = p;
	po->backend.abi_version = PCR_IO_ABI_VERSION;
	po->backend.name = pstrdup(p->name);
	po->backend.ops = po->list;
	add_op(po, OP_PROBE, p->probe != NULL, probe_run, PCR_SANDBOX_MAX_REQUEST, PCR_SANDBOX_MAX_SMALL);
	add_op(po, OP_ACQUIRE, p->create != NULL, acquire_run, PCR_SANDBOX_MAX_REQUEST, PCR_SANDBOX_MAX_SMALL);
	add_op(po, OP_DESTROY, p->destroy != NULL, destroy_run, PCR_SANDBOX_MAX_REQUEST, PCR_SANDBOX_MAX_SMALL);
	add_op(po, OP_LIST, p->list_owned != NULL, list_run, PCR_SANDBOX_MAX_REQUEST, PCR_SANDBOX_MAX_LIST);
	/* a lease_execute() call like every driver's (exec.h), the object head its driver part */
	add_op(po, OP_EXECUTE, p->execute != NULL, PcrSandboxExecuteRun,
		   PCR_EXEC_REQUEST_MAX(PCR_SANDBOX_MAX_REQUEST), PCR_EXEC_RESPONSE_MAX);
	MemoryContextSwitchTo(old);
	if (index < 0 || index >= lengthof(provider_ops))
		elog(ERROR, "sandbox provider \"%s\" has no registry slot", p->name);
	PcrIoRegisterBackend(&po->backend);
	provider_ops[index] = po;
}

static const PcrIoOperation *
operation_of(const PcrSandboxProvider *p, PcrSandboxOp op)
{
	int			index = PcrSandboxProviderIndex(p);
	PcrProviderOps *po = index >= 0 && index < lengthof(provider_ops) ? provider_ops[index] : NULL;

	if (po == NULL || po->index[op] < 0)
		ereport(ERROR,
				(errcode(PCR_ERRCODE_UNSUPPORTED),
				 errmsg("sandbox provider \"%s\" has no %s entry point", p->name, op_suffix[op])));
	return &po->ops[op];
}

const PcrIoOperation *
PcrSandboxExecuteOperation(const PcrSandboxProvider *p)
{
	return operation_of(p, OP_EXECUTE);
}

/* ------------------------------------------------------------------------
 * Caller side
 * ------------------------------------------------------------------------ */
static void
invoke(const PcrSandboxProvider *p, PcrSandboxOp op, const PcrSandboxObject *obj, StringInfo request,
	   Size response_max, PcrWireReader *answer)
{
	PcrIoCall	call = {0};
	PcrIoResult result;

	call.op = operation_of(p, op);
	call.company_id = obj ? &obj->company_id : NULL;
	call.request = request->data;
	call.request_len = request->len;
	call.response_max = response_max;
	call.target = obj && obj->name ? obj->name : p->name;
	PcrIoInvoke(&call, &result);
	answer->data = result.data;
	answer->len = result.len;
	answer->off = 0;
}

void
PcrSandboxCallAcquire(const PcrSandboxProvider *p, const PcrSandboxObject *obj, int slot,
					  uint32 generation, PcrSandboxAcquired *out)
{
	StringInfoData b;
	PcrWireReader r;

	initStringInfo(&b);
	PcrSandboxWriteObject(&b, p, obj);
	w_int(&b, slot);
	w_int(&b, generation);
	invoke(p, OP_ACQUIRE, obj, &b, PCR_SANDBOX_MAX_SMALL, &r);
	out->status = r_result(&r, out->message);
	out->resumed = r_int(&r) != 0;
	out->metadata = r_jsonb(&r);
}

PcrProviderStatus
PcrSandboxCallTeardown(const PcrSandboxProvider *p, const PcrSandboxObject *obj, bool release,
					   char *message)
{
	StringInfoData b;
	PcrWireReader r;

	initStringInfo(&b);
	PcrSandboxWriteObject(&b, p, obj);
	w_int(&b, release);
	invoke(p, OP_DESTROY, obj, &b, PCR_SANDBOX_MAX_SMALL, &r);
	return r_result(&r, message);
}

PcrProviderStatus
PcrSandboxCallProbe(const PcrSandboxProvider *p, const PcrSandboxObject *obj, char *message)
{
	StringInfoData b;
	PcrWireReader r;

	initStringInfo(&b);
	PcrSandboxWriteObject(&b, p, obj);
	invoke(p, OP_PROBE, obj, &b, PCR_SANDBOX_MAX_SMALL, &r);
	return r_result(&r, message);
}

PcrProviderStatus
PcrSandboxCallListOwned(const PcrSandboxProvider *p, PcrOwnedObject **objects, int *n, char *message)
{
	StringInfoData b;
	PcrWireReader r;
	PcrProviderStatus status;

	initStringInfo(&b);
	PcrSandboxWriteObject(&b, p, NULL);
	invoke(p, OP_LIST, NULL, &b, PCR_SANDBOX_MAX_LIST, &r);
	status = r_result(&r, message);
	*n = (int) r_int(&r);
	if (*n < 0 || *n > (int) (r.len / 8))
		elog(ERROR, "malformed sandbox provider message");
	*objects = palloc0(sizeof(PcrOwnedObject) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		char	   *name = r_str(&r);

		strlcpy((*objects)[i].name, name ? name : "", PCR_OBJECT_NAME_MAX);
		r_uuid(&r, &(*objects)[i].lease_id);
		r_uuid(&r, &(*objects)[i].company_id);
		r_uuid(&r, &(*objects)[i].environment_id);
		(*objects)[i].database_id = (Oid) r_int(&r);
		(*objects)[i].reusable = r_int(&r) != 0;
		(*objects)[i].created_at = (TimestampTz) r_int(&r);
	}
	return status;
}
