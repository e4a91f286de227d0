/*
 * graph_vec16.h
 *	  The build's graph vectors as 16-bit integers (graph_vec16.c): each row
 *	  scaled by its own largest magnitude, so that the vectors the build's
 *	  walks read at random take half the memory of floats.
 */
#ifndef QDB_GRAPH_VEC16_H
#define QDB_GRAPH_VEC16_H

#include "postgres.h"

#include <math.h>

#include "qdb_trainer.h"

/* rows are padded with zeros to a multiple of this many values (64 bytes) */
#define QDB_VEC16_ALIGN	32

/* What a row's integers stand for: x_i ~ scale * q_i. */
typedef struct QdbVec16Info
{
	float		scale;
	int32		sq;				/* sum of q_i^2 */
} QdbVec16Info;

/* sum a_i b_i of two rows of stride values */
typedef int32 (*QdbVec16DotFn) (const int16 *a, const int16 *b, int stride);
/* out[j] = the dot product of a with b[j], j < 4: what QdbVec16DotFn gives each */
typedef void (*QdbVec16Dot4Fn) (const int16 *a, const int16 *const *b, int stride, int32 *out);

extern int	QdbVec16Stride(int dim);
extern int	QdbVec16Limit(int dim);
extern void QdbVec16Quantize(const float *x, int dim, int stride, int16 *out, QdbVec16Info *info);
extern QdbVec16DotFn QdbVec16Kernel(void);
extern QdbVec16Dot4Fn QdbVec16Kernel4(QdbVec16DotFn one);
extern const char *QdbVec16KernelName(QdbVec16DotFn fn);

/*
 * The metric's distance (as QdbVectorDistance gives it) between the two
 * vectors rows a and b stand for, from the rows' integer dot product.
 */
static inline float
QdbVec16FromDot(QdbMetric metric, int32 dot, const QdbVec16Info *ia, const QdbVec16Info *ib)
{
	double		ab = (double) ia->scale * ib->scale * dot;

	switch (metric)
	{
		case QDB_METRIC_L2:
			{
				double		d2 = (double) ia->scale * ia->scale * ia->sq +
					(double) ib->scale * ib->scale * ib->sq - 2 * ab;

				return (float) sqrt(d2 > 0 ? d2 : 0);
			}
		case QDB_METRIC_IP:
			return (float) -ab;
		default:
			return (float) (1.0 - ab);
	}
}

/* The same, the dot product computed by dot. */
static inline float
QdbVec16Distance(QdbMetric metric, QdbVec16DotFn dot, int stride,
				 const int16 *a, const QdbVec16Info *ia, const int16 *b, const QdbVec16Info *ib)
{
	return QdbVec16FromDot(metric, dot(a, b, stride), ia, ib);
}

#endif							/* QDB_GRAPH_VEC16_H */
