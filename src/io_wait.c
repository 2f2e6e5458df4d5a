/*
 * io_wait.c — the one way an operation waits, inside a driver worker
 *
 * PcrIoWait() puts the latch, postmaster death and up to PCR_IO_WAIT_MAX_FDS
 * descriptors (sockets, non-blocking pipes, pidfds) in one WaitEventSet and
 * sleeps until one of them fires, the deadline passes or the caller gives up.
 * The caller giving up sets this worker's latch (io_call.c), so abandonment is
 * seen at once, wherever the operation waits.  Also the answer helpers.
 */
#include "pcr.h"
#include "io_shmem.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"

PcrIoSlot  *pcr_io_current_slot = NULL;

bool
PcrIoAbandoned(void)
{
	bool		abandoned;

	if (pcr_io_current_slot == NULL)
		return false;
	SpinLockAcquire(&pcr_io_current_slot->mutex);
	abandoned = pcr_io_current_slot->abandoned;
	SpinLockRelease(&pcr_io_current_slot->mutex);
	return abandoned;
}

void
PcrIoCheckAbandoned(void)
{
	if (PcrIoAbandoned())
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("driver request cancelled by its caller")));
}

/* The set: the latch, postmaster death, then the fds (user_data = their entry). */
static WaitEventSet *
make_set(PcrIoWaitFd *fds, int nfds)
{
	WaitEventSet *set = PcrCreateWaitEventSet(nfds + 2);

	PG_TRY();
	{
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (int i = 0; i < nfds; i++)
			AddWaitEventToSet(set, fds[i].events, fds[i].fd, NULL, &fds[i]);
	}
	PG_CATCH();
	{
		FreeWaitEventSet(set);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return set;
}

int
PcrIoWait(PcrIoWaitFd *fds, int nfds, TimestampTz deadline)
{
	WaitEvent	events[PCR_IO_WAIT_MAX_FDS + 2];
	WaitEventSet *set;
	long		ms;
	int			n;
	int			result = 0;
	bool		latch = false;

	Assert(nfds >= 0 && nfds <= PCR_IO_WAIT_MAX_FDS);
	for (int i = 0; i < nfds; i++)
		fds[i].ready = 0;
	if (PcrIoAbandoned())
		return PCR_IO_WAIT_ABANDONED;
	ms = deadline == 0 ? -1 : TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
	if (deadline != 0 && ms <= 0)
		return PCR_IO_WAIT_TIMEOUT;

	set = make_set(fds, nfds);
	n = WaitEventSetWait(set, ms, events, nfds + 2, PcrWaitEventExtension());
	for (int i = 0; i < n; i++)
	{
		if (events[i].events & WL_LATCH_SET)
			latch = true;
		else if (events[i].user_data != NULL)
		{
			((PcrIoWaitFd *) events[i].user_data)->ready |= events[i].events;
			result |= PCR_IO_WAIT_READY;
		}
	}
	FreeWaitEventSet(set);

	if (latch)
	{
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (PcrIoAbandoned())
			result |= PCR_IO_WAIT_ABANDONED;
	}
	if (n == 0 && deadline != 0 &&
		TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline) <= 0)
		result |= PCR_IO_WAIT_TIMEOUT;
	return result;
}

void *
PcrIoReplyBuffer(PcrIoResponse *resp, Size len)
{
	if (len > resp->max)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("driver answer of %zu bytes does not fit in the %zu bytes its caller allowed",
						len, resp->max)));
	resp->len = len;
	return resp->data;
}

void
PcrIoReply(PcrIoResponse *resp, const void *data, Size len)
{
	memcpy(PcrIoReplyBuffer(resp, len), data, len);
}

void
PcrIoWipeSecrets(char *payload, int nsecrets, Size request_len)
{
	const PcrIoRange *ranges = (const PcrIoRange *) payload;
	char	   *request = payload + PcrIoRequestOffset(nsecrets);

	for (int i = 0; i < nsecrets; i++)
		if (ranges[i].offset <= request_len && ranges[i].len <= request_len - ranges[i].offset)
			explicit_bzero(request + ranges[i].offset, ranges[i].len);
}
