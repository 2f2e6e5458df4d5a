/*
 * ssh_allow.h — paperclip.ssh_allowed_hosts: which ssh destinations may be used
 *
 * Every ssh connection (acquire, probe, execute) is checked twice, each time
 * against what is exact at that point:
 *   - in the calling backend, before a request is handed to a worker:
 *     PcrSshCheckAllowed(host, port) on the host as configured;
 *   - in the driver worker, between name resolution and connect():
 *     PcrSshCheckAddresses() on the very addresses connect() will get.
 * Both raise 42501 for a destination the list does not admit.
 */
#ifndef PCR_SSH_ALLOW_H
#define PCR_SSH_ALLOW_H

#include "pcr.h"

#include <sys/socket.h>

/* _PG_init: defines paperclip.ssh_allowed_hosts. */
extern void PcrSshAllowInit(void);

/*
 * Caller side.  Returns when "*", a host-name pattern or (for an IP
 * address) an address entry admits host:port, or when host is a name that
 * only an address entry could admit (the worker then checks what it
 * resolves to); 42501 otherwise, before any I/O.
 */
extern void PcrSshCheckAllowed(const char *host, int port);

/*
 * Worker side, right before connecting: unless "*" or a host-name pattern
 * admits host:port, every one of the n resolved addresses must lie in an
 * address entry admitting the port; 42501 otherwise (the refused address is
 * logged for the operator, not told to the caller).
 */
extern void PcrSshCheckAddresses(const char *host, int port,
								 const struct sockaddr_storage *addrs, int n);

/* The setting as it is now, for keying pooled sessions (a change retires them). */
extern const char *PcrSshAllowedHostsSetting(void);

#endif							/* PCR_SSH_ALLOW_H */
