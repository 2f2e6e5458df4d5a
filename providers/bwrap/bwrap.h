/*
 * bwrap.h — what the files of the bwrap provider share
 *
 * bwrap_provider.c   registration, settings, config and lease records (caller side)
 * bwrap_workspace.c  sandbox_root, workspaces and their labels, destroy
 *                    without following links, list_owned (worker side)
 * bwrap_run.c        one bwrap per command: the sandbox's command line, the
 *                    child process, what became of the command (worker side)
 *
 * Compiled only against the installed headers of paperclip_runtime.
 */
#ifndef PAPERCLIP_BWRAP_H
#define PAPERCLIP_BWRAP_H

#include "postgres.h"

#include "pcr_provider.h"

#define BWRAP_PROVIDER "bwrap"
#define BWRAP_DRIVER "sandbox"
#define BWRAP_WORKSPACE "/workspace"
#define BWRAP_HELPER_NAME "paperclip_bwrap_exec"
#define BWRAP_HELPER_IN_SANDBOX "/.paperclip_exec"

/* bwrap_provider.c: settings */
extern char *bwrap_sandbox_root;
extern char *bwrap_path;

/* bwrap_provider.c: a path (absolute, canonical) that is, or lies inside, another */
extern bool BwrapPathWithin(const char *path, const char *dir);

/* bwrap_provider.c: would an image directory show the server's own files?  (the reason, or NULL) */
extern const char *BwrapImageProblem(const char *image);

/* ------------------------------------------------------------------------
 * bwrap_workspace.c
 * ------------------------------------------------------------------------ */

/* <sandbox_root>/<name> (palloc'd) */
extern char *BwrapWorkspacePath(const char *name);

/*
 * Is sandbox_root usable (a directory of the server user, mode 0700)?  With
 * create, a missing root is created.  NULL when it is, else why not.
 */
extern const char *BwrapRootProblem(bool create);

extern PcrProviderStatus BwrapCreate(const PcrSandboxObject *obj, PcrProviderResult *res);
extern PcrProviderStatus BwrapResume(const PcrSandboxObject *obj, PcrProviderResult *res);
extern PcrProviderStatus BwrapDestroy(const PcrSandboxObject *obj, PcrProviderResult *res);
extern PcrProviderStatus BwrapListOwned(const char *cluster, PcrOwnedList *list, PcrProviderResult *res);

/* ------------------------------------------------------------------------
 * bwrap_run.c
 * ------------------------------------------------------------------------ */

/*
 * Run spec in a sandbox of config (with workspace bound at /workspace, or
 * none: probe); fills outcome as pcr_exec.h says.  Without the exec helper
 * (a check that the sandbox comes up) only started and message mean
 * anything.  Never raises for what the sandbox or the command did; 57014
 * when the caller gives up.
 */
extern void BwrapRun(Jsonb *config, Jsonb *metadata, const char *workspace, const PcrExecSpec *spec,
					 bool with_helper, PcrExecOutcome *outcome);

extern PcrProviderStatus BwrapProbe(const PcrSandboxObject *obj, PcrProviderResult *res);
extern PcrProviderStatus BwrapExecute(const PcrSandboxObject *obj, const PcrExecSpec *spec,
									  PcrExecOutcome *outcome, PcrProviderResult *res);

/* Start `true` in the sandbox of obj (create's check that it comes up); OK or FATAL. */
extern PcrProviderStatus BwrapCheckStarts(const PcrSandboxObject *obj, const char *workspace,
										  PcrProviderResult *res);

#endif							/* PAPERCLIP_BWRAP_H */
