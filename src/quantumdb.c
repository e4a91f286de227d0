/*
 * quantumdb.c
 *	  Module entry point: picks the SIMD kernels once at load time.
 *
 * Nothing here touches a GPU: the CUDA backend (train_backend.c) is loaded
 * on the first training that asks for it, never in _PG_init or the
 * postmaster.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "blas_load.h"
#include "compressor.h"
#include "index.h"
#include "qdb_distance.h"

PG_MODULE_MAGIC;

void
_PG_init(void)
{
	QdbBlasInit();
	qdb_distance_init();
	QdbIndexInit();
	MarkGUCPrefixReserved("quantumdb");
}

PG_FUNCTION_INFO_V1(quantumdb_simd);

/* The kernel set chosen at load time, for tests and bug reports. */
Datum
quantumdb_simd(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(qdb_kernels.name));
}
