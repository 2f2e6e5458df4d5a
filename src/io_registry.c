/*
 * io_registry.c — the operations the I/O pool serves
 *
 * Backends (drivers' clients, provider libraries) register from their
 * _PG_init while shared_preload_libraries is processed: the postmaster
 * builds the registry before it forks, so every backend and worker holds the
 * same one and an operation's index means the same thing in all of them.
 * Callers name an operation by its PcrIoOperation; the slot carries its
 * index.  Nothing here knows any backend.
 */
#include "pcr.h"
#include "io_shmem.h"

#include "miscadmin.h"

#define PCR_IO_MAX_BACKENDS		16
#define PCR_IO_MAX_OPERATIONS	64

static const PcrIoBackend *backends[PCR_IO_MAX_BACKENDS];
static int	nbackends = 0;

static const PcrIoOperation *operations[PCR_IO_MAX_OPERATIONS];
static int	operation_backend[PCR_IO_MAX_OPERATIONS];
static int	noperations = 0;

static void
check_declaration(const PcrIoBackend *backend)
{
	if (backend == NULL || backend->name == NULL || backend->nops < 0 ||
		(backend->nops > 0 && backend->ops == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("paperclip I/O backend declaration is incomplete")));
	if (backend->abi_version != PCR_IO_ABI_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("paperclip I/O backend \"%s\" was built for I/O ABI %d, this server has %d",
						backend->name, backend->abi_version, PCR_IO_ABI_VERSION)));
	for (int i = 0; i < nbackends; i++)
		if (strcmp(backends[i]->name, backend->name) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("paperclip I/O backend \"%s\" is already registered", backend->name)));
	if (nbackends >= PCR_IO_MAX_BACKENDS || noperations + backend->nops > PCR_IO_MAX_OPERATIONS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many paperclip I/O backends or operations (at most %d and %d)",
						PCR_IO_MAX_BACKENDS, PCR_IO_MAX_OPERATIONS)));
	for (int k = 0; k < backend->nops; k++)
	{
		const PcrIoOperation *op = backend->ops[k];

		if (op == NULL || op->name == NULL || op->run == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("operation %d of paperclip I/O backend \"%s\" is incomplete",
							k, backend->name)));
		if (PcrIoOperationByName(op->name) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("paperclip I/O operation \"%s\" is already registered", op->name)));
	}
}

void
PcrIoRegisterBackend(const PcrIoBackend *backend)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("paperclip I/O backend \"%s\" must be registered while shared_preload_libraries is processed",
						backend && backend->name ? backend->name : "?"),
				 errhint("Load the library through shared_preload_libraries, after paperclip_runtime.")));
	check_declaration(backend);
	for (int k = 0; k < backend->nops; k++)
	{
		operations[noperations] = backend->ops[k];
		operation_backend[noperations++] = nbackends;
	}
	backends[nbackends++] = backend;
}

const PcrIoOperation *
PcrIoOperationByName(const char *name)
{
	for (int i = 0; i < noperations; i++)
		if (strcmp(operations[i]->name, name) == 0)
			return operations[i];
	return NULL;
}

int
PcrIoOperationIndex(const PcrIoOperation *op)
{
	for (int i = 0; i < noperations; i++)
		if (operations[i] == op)
			return i;
	return -1;
}

const PcrIoOperation *
PcrIoOperationAt(int index)
{
	return index >= 0 && index < noperations ? operations[index] : NULL;
}

const PcrIoBackend *
PcrIoBackendOf(int index)
{
	return index >= 0 && index < noperations ? backends[operation_backend[index]] : NULL;
}

int
PcrIoBackendCount(void)
{
	return nbackends;
}

const PcrIoBackend *
PcrIoBackendAt(int i)
{
	return backends[i];
}
