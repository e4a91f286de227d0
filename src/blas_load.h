/*
 * blas_load.h
 *	  OpenBLAS opened on first use (blas_load.c).
 */
#ifndef QDB_BLAS_LOAD_H
#define QDB_BLAS_LOAD_H

/* _PG_init: notes the process's own thread, the one that may raise ERRORs */
extern void QdbBlasInit(void);
/* before a training or a build: OpenBLAS and a buffer, or an ERROR */
extern void QdbBlasPrepare(void);

#endif
