# paperclip_runtime — PGXS build
EXTENSION = paperclip_runtime
EXTVERSION = 0.2.0

MODULE_big = paperclip_runtime
OBJS = \
	src/init.o \
	src/jsonb_util.o \
	src/spi_util.o \
	src/rel_util.o \
	src/tenant.o \
	src/driver.o \
	src/driver_config.o \
	src/driver_local.o \
	src/driver_ssh.o \
	src/driver_sandbox.o \
	src/provider_fake.o \
	src/sandbox_registry.o \
	src/sandbox_ops.o \
	src/sandbox_inflight.o \
	src/sandbox_sweep.o \
	src/secret_ref.o \
	src/master_key.o \
	src/secret_crypto.o \
	src/secret_lookup.o \
	src/secret.o \
	src/triggers.o \
	src/lease_guard.o \
	src/lease_probe.o \
	src/lease_lookup.o \
	src/lease.o \
	src/reconciler.o \
	src/reconcile_pass.o \
	src/reconcile_steps.o \
	src/reconcile_retention.o \
	src/util.o \
	src/vocab.o \
	src/guc_ceiling.o \
	src/io_registry.o \
	src/io_shmem.o \
	src/io_call.o \
	src/io_wait.o \
	src/io_worker.o \
	src/ssh_ops.o \
	src/ssh_allow.o \
	src/ssh_client.o \
	src/ssh_workspace.o \
	src/ssh_api.o \
	src/ssh_exec.o \
	src/exec_pack.o \
	src/exec_text.o \
	src/lease_exec_args.o \
	src/lease_exec_audit.o \
	src/lease_exec.o \
	src/local_workspace.o \
	src/local_exec.o \
	src/sandbox_exec.o \
	src/probe.o \
	src/proc_spawn.o \
	src/proc_wait.o

DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out sql/$(EXTENSION)--$(EXTVERSION).sql $(wildcard sql/$(EXTENSION)--*--*.sql),$(wildcard sql/$(EXTENSION)--*.sql)) \
	$(wildcard sql/$(EXTENSION)--*--*.sql)
HEADERS = src/pcr_provider.h src/io.h src/pcr_exec.h src/pcr_proc.h src/jsonb_util.h

SHLIB_LINK += -lssh2 -lsodium
PG_CPPFLAGS += -I$(srcdir)/src
# CI builds with PCR_WERROR=1 so that any warning fails the build
ifdef PCR_WERROR
PG_CFLAGS += -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
endif

# make installcheck: the pgTAP files of test/sql through pg_regress, against a
# running server that preloads the extension and has paperclip.master_key_file
# set (PGHOST, PGPORT, PGUSER as usual).  pg_regress creates the database
# (contrib_regression) and the pgtap and paperclip_runtime extensions in it.
REGRESS = $(sort $(patsubst test/sql/%.sql,%,$(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --load-extension=pgtap --load-extension=$(EXTENSION)

EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

# Provider libraries that ship with the project (providers/<name>/, each with
# its own PGXS Makefile), built and installed with the extension.  They are
# compiled against exactly the header set that is installed (HEADERS),
# staged in build/include, never against src/.
PROVIDERS = providers/bwrap
STAGED_INCLUDEDIR = $(CURDIR)/build/include

all: providers

stage-headers: $(HEADERS)
	rm -rf build/include
	$(MKDIR_P) build/include
	cp $(HEADERS) build/include/

providers: stage-headers
	for p in $(PROVIDERS); do \
		$(MAKE) -C $$p PG_CONFIG=$(PG_CONFIG) PCR_INCLUDEDIR=$(STAGED_INCLUDEDIR) || exit 1; \
	done

install: install-providers

install-providers: providers
	for p in $(PROVIDERS); do \
		$(MAKE) -C $$p PG_CONFIG=$(PG_CONFIG) PCR_INCLUDEDIR=$(STAGED_INCLUDEDIR) install || exit 1; \
	done

clean: clean-providers

clean-providers:
	for p in $(PROVIDERS); do $(MAKE) -C $$p PG_CONFIG=$(PG_CONFIG) clean; done
	rm -rf build

.PHONY: stage-headers providers install-providers clean-providers
