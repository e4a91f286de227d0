/*
 * blas_buffers.h
 *	  Room for OpenBLAS's work buffers, made sure of before it asks
 *	  (blas_buffers.c).
 */
#ifndef QDB_BLAS_BUFFERS_H
#define QDB_BLAS_BUFFERS_H

typedef void *(*QdbBlasMemAlloc) (int);
typedef void (*QdbBlasMemFree) (void *);

extern bool QdbBlasRoomToLoad(int *buffers);
extern void QdbBlasBuffersFound(QdbBlasMemAlloc alloc, QdbBlasMemFree free_fn);
extern bool QdbBlasEnter(void);
extern void QdbBlasLeave(void);

#endif
