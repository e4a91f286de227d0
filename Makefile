# QuantumDB: PostgreSQL extension (PGXS build).
#
#   make          build quantumdb.so and the trainer core (needs
#                 postgresql-server-dev and libopenblas-dev; `make test`
#                 installs them when run as root)
#   make install  install the extension into the server found by pg_config
#   make test     install what is missing, build, install, run every suite
#                 against a throwaway cluster; prints "N passed, N failed"
#   make demo     the same set-up, then the end-to-end job on real data
#   make check-cassert PG_CONFIG=/path/to/pg_config
#                 `make test` against a server built with --enable-cassert
#                 (memory checks; see "Checking memory" in README.md)
#   make check-valgrind PG_CONFIG=/path/to/pg_config [VALGRIND_SUPP=file]
#                 the pg_regress suite against that server under valgrind

EXTENSION = quantumdb
EXTVERSION = $(shell grep default_version $(EXTENSION).control | sed -e "s/default_version[[:space:]]*=[[:space:]]*'\([^']*\)'/\1/")

MODULE_big = quantumdb
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
# quantumdb_pgvector, the second extension: operator classes and functions
# for pgvector's vector and halfvec (requires quantumdb and vector); its
# control file lives beside its script, installed with it.
DATA = sql/pgvector/quantumdb_pgvector.control sql/pgvector/quantumdb_pgvector--0.1.0.sql \
	sql/pgvector/quantumdb_pgvector--0.1.0--0.1.1.sql sql/pgvector/quantumdb_pgvector--0.1.1.sql
# earlier releases' install scripts, kept as they were, and the update
# scripts from them (ALTER EXTENSION quantumdb UPDATE)
DATA += sql/$(EXTENSION)--0.1.0.sql sql/$(EXTENSION)--0.1.0--0.2.0.sql \
	sql/$(EXTENSION)--0.2.0.sql sql/$(EXTENSION)--0.2.0--0.3.0.sql \
	sql/$(EXTENSION)--0.3.0.sql sql/$(EXTENSION)--0.3.0--0.4.0.sql \
	sql/$(EXTENSION)--0.4.0.sql sql/$(EXTENSION)--0.4.0--0.5.0.sql \
	sql/$(EXTENSION)--0.5.0.sql sql/$(EXTENSION)--0.5.0--0.6.0.sql \
	sql/$(EXTENSION)--0.6.0.sql sql/$(EXTENSION)--0.6.0--0.7.0.sql \
	sql/$(EXTENSION)--0.7.0.sql sql/$(EXTENSION)--0.7.0--0.8.0.sql \
	sql/$(EXTENSION)--0.8.0.sql sql/$(EXTENSION)--0.8.0--0.8.1.sql \
	sql/$(EXTENSION)--0.8.1.sql sql/$(EXTENSION)--0.8.1--0.8.2.sql \
	sql/$(EXTENSION)--0.8.2.sql sql/$(EXTENSION)--0.8.2--0.8.3.sql \
	sql/$(EXTENSION)--0.8.3.sql sql/$(EXTENSION)--0.8.3--0.8.4.sql \
	sql/$(EXTENSION)--0.8.4.sql sql/$(EXTENSION)--0.8.4--0.8.5.sql \
	sql/$(EXTENSION)--0.8.5.sql sql/$(EXTENSION)--0.8.5--0.8.6.sql \
	sql/$(EXTENSION)--0.8.6.sql sql/$(EXTENSION)--0.8.6--0.8.7.sql \
	sql/$(EXTENSION)--0.8.7.sql sql/$(EXTENSION)--0.8.7--0.8.8.sql \
	sql/$(EXTENSION)--0.8.8.sql sql/$(EXTENSION)--0.8.8--0.8.9.sql \
	sql/$(EXTENSION)--0.8.9.sql sql/$(EXTENSION)--0.8.9--0.8.10.sql
EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql

# make installcheck: the pg_regress suites (sql/, expected/) against an
# installed, running server (PGHOST, PGPORT, PGUSER as for psql), as
# contrib modules and pgvector run theirs; make prove_installcheck: the TAP
# tests (test/t/), each with its own temporary clusters from the installed
# binaries (as a user other than root: initdb refuses root).  Both read the
# glove-2k slice as COPY files that regress-data makes here.
REGRESS = $(filter-out $(EXTENSION)--%,$(sort $(basename $(notdir $(wildcard sql/*.sql)))))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)
REGRESS_PREP = regress-data
REGRESS_DATA = glove_base.copy glove_query.copy glove_gt.copy
EXTRA_CLEAN += $(REGRESS_DATA)
PROVE_TESTS = test/t/*.pl
export QDB_GLOVE_COPY = $(CURDIR)/glove_base.copy

# cblas.h from OpenBLAS (pkg-config's, else Debian amd64's pthread flavour,
# which trainer/Makefile names), not whichever BLAS the system's cblas.h
# alternative names
OPENBLAS_CFLAGS := $(or $(shell pkg-config --cflags openblas 2>/dev/null),-I/usr/include/x86_64-linux-gnu/openblas-pthread)
PG_CPPFLAGS = -Itrainer $(OPENBLAS_CFLAGS)
PG_CFLAGS = -O3 -std=gnu11
# no -lopenblas: src/blas_load.c opens it on first use (check-blas-link)
SHLIB_LINK = trainer/libqdbtrainer.a -lm -ldl -lpthread

# Prefer the server's own pg_config (postgresql-server-dev-N) over libpq-dev's.
PG_MAJOR ?= $(shell ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/$(PG_MAJOR)/bin/pg_config) pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

.DEFAULT_GOAL := all
.PHONY: test demo trainer check-cassert check-valgrind unit-tests

test:
	bash test/run_tests.sh

# Memory checks against a server built from source (not part of `make
# test`; CI runs check-cassert after it against the server that
# test/cassert_server.sh builds).  PG_CONFIG names that server's pg_config.
QDB_PG_CONFIG_PATH = $(shell command -v $(PG_CONFIG))
# PostgreSQL's suppressions, from the source tree the server was built from
# (its installed Makefile.global names that tree)
VALGRIND_SUPP = $(shell sed -n 's/^abs_top_srcdir = //p' $(dir $(PGXS))../Makefile.global 2>/dev/null | head -1)/src/tools/valgrind.supp

check-cassert:
	@$(PG_CONFIG) --configure | grep -q -- '--enable-cassert' || { \
		echo "$(PG_CONFIG) is not a server built with --enable-cassert; see \"Checking memory\" in README.md" >&2; exit 1; }
	QDB_PG_CONFIG=$(QDB_PG_CONFIG_PATH) bash test/run_tests.sh

check-valgrind:
	@$(PG_CONFIG) --configure | grep -q -- 'USE_VALGRIND' || \
		echo "warning: $(PG_CONFIG) was not built with CPPFLAGS=-DUSE_VALGRIND: memory contexts are not instrumented" >&2
	QDB_PG_CONFIG=$(QDB_PG_CONFIG_PATH) QDB_VALGRIND=$(VALGRIND_SUPP) bash test/run_tests.sh

demo:
	bash test/demo.sh

ifneq ($(wildcard $(PGXS)),)
include $(PGXS)

# The install script is generated from the parts in sql/extension/.
sql/$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard sql/extension/*.sql))
	cat $^ > $@

trainer:
	$(MAKE) -C trainer libqdbtrainer.a

trainer/libqdbtrainer.a: trainer
	@true

$(OBJS): $(wildcard src/*.h) $(wildcard trainer/*.h)
$(shlib): trainer/libqdbtrainer.a

# quantumdb.so must not load libopenblas with itself (src/blas_load.c says
# why): no NEEDED entry for it and no BLAS or LAPACK symbol left undefined.
all: check-blas-link
.PHONY: check-blas-link
check-blas-link: $(shlib)
	@if readelf -d $(shlib) | grep -q 'NEEDED.*\(openblas\|blas\|lapack\)' || \
		nm -D --undefined-only $(shlib) | grep -E ' (cblas_|openblas_|LAPACKE_|[sdcz][a-z0-9]+_$$)'; then \
		echo "$(shlib) needs OpenBLAS at load: define the routine in src/blas_load.c" >&2; exit 1; fi
	@if nm -D --defined-only $(shlib) | grep -E ' (cblas_|openblas_|LAPACKE_|[sdcz][a-z0-9]+_$$)'; then \
		echo "$(shlib) exports a BLAS name, which other libraries would bind to: make it hidden" >&2; exit 1; fi

# Unit tests of the storage-free graph layer (src/graph_search.c,
# src/graph_link.c), of the build's 16-bit vectors (src/graph_vec16.c), of
# the pglz decoder (src/pglz_decode.c), of the calibration's grid
# (src/calibration_grid.c) and of the auto-tuner's work estimate
# (src/autotune_work.c), built with the server's headers
# only; make test runs them.
GRAPH_TEST_SRC = test/unit/test_graph.c src/graph_search.c src/beam_ties.c src/graph_link.c test/unit/assert_stub.c
VEC16_TEST_SRC = test/unit/test_vec16.c src/graph_vec16.c test/unit/assert_stub.c
PGLZ_TEST_SRC = test/unit/test_pglz.c src/pglz_decode.c test/unit/assert_stub.c
GRID_TEST_SRC = test/unit/test_calibration_grid.c src/calibration_grid.c test/unit/assert_stub.c
WORK_TEST_SRC = test/unit/test_autotune_work.c src/autotune_work.c test/unit/assert_stub.c
UNIT_CC = $(CC) -g -O1 -std=gnu11 -Wall -Isrc -Itrainer -I$(shell $(PG_CONFIG) --includedir-server)
# libpgport.a and libpgcommon.a: in pkglibdir on Debian's packages, in libdir
# on a server built from source (make check-cassert)
UNIT_LDIRS = -L$(shell $(PG_CONFIG) --pkglibdir) -L$(shell $(PG_CONFIG) --libdir)
UNIT_LIBS = trainer/libqdbtrainer.a $(UNIT_LDIRS) -lpgport -lopenblas -lm
unit-tests: test/unit/test_graph test/unit/test_vec16 test/unit/test_pglz test/unit/test_calibration_grid \
	test/unit/test_autotune_work
test/unit/test_graph: $(GRAPH_TEST_SRC) src/graph.h src/beam_ties.h trainer/qdb_trainer.h trainer/libqdbtrainer.a
	$(UNIT_CC) -o $@ $(GRAPH_TEST_SRC) $(UNIT_LIBS)
test/unit/test_vec16: $(VEC16_TEST_SRC) src/graph_vec16.h trainer/qdb_distance.h trainer/libqdbtrainer.a
	$(UNIT_CC) -o $@ $(VEC16_TEST_SRC) $(UNIT_LIBS)
test/unit/test_calibration_grid: $(GRID_TEST_SRC) src/calibration.h
	$(UNIT_CC) -o $@ $(GRID_TEST_SRC) $(UNIT_LDIRS) -lpgport
test/unit/test_autotune_work: $(WORK_TEST_SRC) src/autotune_work.h
	$(UNIT_CC) -o $@ $(WORK_TEST_SRC) $(UNIT_LDIRS) -lpgport -lm

# the server's own pglz (libpgcommon) to compare src/pglz_decode.c with
test/unit/test_pglz: $(PGLZ_TEST_SRC) src/pglz_decode.h
	$(UNIT_CC) -O2 -o $@ $(PGLZ_TEST_SRC) $(UNIT_LDIRS) -lpgcommon -lpgport

EXTRA_CLEAN += test/unit/test_graph test/unit/test_vec16 test/unit/test_pglz test/unit/test_calibration_grid \
	test/unit/test_autotune_work

.PHONY: regress-data prove_installcheck

# the suites' training needs the maintenance_work_mem of make test's cluster
installcheck: export PGOPTIONS := $(PGOPTIONS) -c maintenance_work_mem=256MB

# the COPY files of make installcheck and make prove_installcheck (above)
regress-data: $(REGRESS_DATA)
glove_base.copy: test/data/glove-2k/base.fvecs trainer/qdb-train
	trainer/qdb-train dump --input $< > $@
glove_query.copy: test/data/glove-2k/query.fvecs trainer/qdb-train
	trainer/qdb-train dump --input $< > $@
glove_gt.copy: test/data/glove-2k/gt_ip.ivecs trainer/qdb-train
	trainer/qdb-train dump --input $< > $@
trainer/qdb-train:
	$(MAKE) -C trainer qdb-train

prove_installcheck: regress-data
	$(prove_installcheck)

clean: clean-trainer
clean-trainer:
	$(MAKE) -C trainer clean
else
all install:
	@echo "PGXS not found (pg_config: $(PG_CONFIG)); install postgresql-server-dev-$(PG_MAJOR), or run 'make test' as root to install it" >&2
	@exit 1
endif

# The cuda backend (cuda/): its own shared object, loaded with dlopen by the
# trainer, built only where nvcc exists; quantumdb.so links no CUDA library.
NVCC ?= $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVCC_FLAGS = -O3 -Xcompiler -fPIC,-fvisibility=hidden -shared -Itrainer \
	-gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
CUDA_LIBS = -L$(CUDA_HOME)/lib64 -Xlinker -rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart
EXTRA_CLEAN += quantumdb_cuda.so

quantumdb_cuda.so: $(wildcard cuda/*.cu cuda/*.h) trainer/neural.h trainer/qdb_trainer.h
	$(NVCC) $(NVCC_FLAGS) --cudart shared -o $@ $(filter %.cu,$^) $(CUDA_LIBS)

ifneq ($(wildcard $(PGXS)),)
ifneq ($(NVCC),)
all: quantumdb_cuda.so
install: install-cuda
uninstall: uninstall-cuda
.PHONY: install-cuda uninstall-cuda

install-cuda: quantumdb_cuda.so installdirs
	$(INSTALL_SHLIB) quantumdb_cuda.so '$(DESTDIR)$(pkglibdir)/'

uninstall-cuda:
	rm -f '$(DESTDIR)$(pkglibdir)/quantumdb_cuda.so'
else
all: cuda-skipped
.PHONY: cuda-skipped
cuda-skipped:
	@echo "nvcc not found: quantumdb_cuda.so (the cuda backend) not built"
endif
endif
