/*
 * proc_internal.h — what the files of the child-process family share (proc_*.c only)
 */
#ifndef PCR_PROC_INTERNAL_H
#define PCR_PROC_INTERNAL_H

#include "pcr.h"
#include "pcr_proc.h"

/* proc_wait.c: remember a started child until it is reaped (kill it on reset and exit). */
extern void PcrProcTrack(PcrProc *proc);

/* proc_wait.c: close the parent's descriptors of a child (idempotent). */
extern void PcrProcCloseFds(PcrProc *proc);

/* proc_wait.c: reap without waiting; true once reaped. */
extern bool PcrProcTryReap(PcrProc *proc);

#endif							/* PCR_PROC_INTERNAL_H */
