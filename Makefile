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
	src/probe.o

DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out sql/$(EXTENSION)--$(EXTVERSION).sql $(wildcard sql/$(EXTENSION)--*--*.sql),$(wildcard sql/$(EXTENSION)--*.sql)) \
	$(wildcard sql/$(EXTENSION)--*--*.sql)
HEADERS = src/pcr_provider.h src/io.h

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
