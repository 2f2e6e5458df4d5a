/*
 * vocab.c — the status words C uses, and paperclip.vocabulary()
 */
#include "pcr.h"
#include "vocab.h"
#include "driver.h"

#include "funcapi.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(pcr_vocabulary);

typedef struct PcrWord
{
	const char *name;
	bool		terminal;
} PcrWord;

#define PCR_WORD2(name, terminal) {name, terminal}
#define PCR_WORD1(name) {name, false}
#define PCR_COMMA ,

static const PcrWord run_statuses[] = {PCR_RUN_STATUSES(PCR_WORD2, PCR_COMMA)};
static const PcrWord lease_statuses[] = {PCR_LEASE_STATUSES(PCR_WORD1, PCR_COMMA)};
static const PcrWord lease_policies[] = {PCR_LEASE_POLICIES(PCR_WORD1, PCR_COMMA)};
static const PcrWord cleanup_statuses[] = {PCR_CLEANUP_STATUSES(PCR_WORD1, PCR_COMMA)};
static const PcrWord release_statuses[] = {PCR_RELEASE_STATUSES(PCR_WORD1, PCR_COMMA)};

static const PcrWord *
find(const PcrWord *words, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(words[i].name, name) == 0)
			return &words[i];
	return NULL;
}

bool
PcrRunStatusIsTerminal(const char *status)
{
	const PcrWord *w = find(run_statuses, lengthof(run_statuses), status);

	return w != NULL && w->terminal;
}

const char *
PcrLeaseStatusForRun(const char *run_status)
{
	return strcmp(run_status, "failed") == 0 || strcmp(run_status, "timed_out") == 0
		? "failed" : "released";
}

bool
PcrReleaseStatusIsValid(const char *status)
{
	return find(release_statuses, lengthof(release_statuses), status) != NULL;
}

static void
put_words(ReturnSetInfo *rsinfo, const char *kind, const PcrWord *words, int n)
{
	for (int i = 0; i < n; i++)
	{
		Datum		values[3] = {CStringGetTextDatum(kind), CStringGetTextDatum(words[i].name),
		BoolGetDatum(words[i].terminal)};
		bool		nulls[3] = {false, false, false};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* paperclip.vocabulary(): every word above, and the registered drivers. */
Datum
pcr_vocabulary(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	put_words(rsinfo, "run_status", run_statuses, lengthof(run_statuses));
	put_words(rsinfo, "lease_status", lease_statuses, lengthof(lease_statuses));
	put_words(rsinfo, "lease_policy", lease_policies, lengthof(lease_policies));
	put_words(rsinfo, "cleanup_status", cleanup_statuses, lengthof(cleanup_statuses));
	put_words(rsinfo, "release_status", release_statuses, lengthof(release_statuses));
	for (int i = 0; i < PcrDriverCount(); i++)
	{
		PcrWord		w = {PcrDriverAt(i)->name, false};

		put_words(rsinfo, "driver", &w, 1);
	}
	return (Datum) 0;
}
