/*
 * distance_ops.c
 *	  Exact distances between two real[] vectors, behind the SQL functions
 *	  quantumdb.l2_distance, cosine_distance, negative_inner_product and
 *	  inner_product and the operators <~>, <=> and <#>.
 *
 * The sums run in float with the kernels qdb_distance_init() chose.  A
 * float sum can overflow (elements beyond about 1e19) or, for cosine, a
 * squared norm can lose its precision to underflow (all elements below about
 * 1e-16); then the sums are redone in double, where neither can happen for at
 * most QDB_MAX_DIM finite floats.
 *
 * The elements are checked for NaN and infinity only when a float sum is not
 * finite: a NaN or infinite element always makes it so (NaN and infinity
 * propagate, infinity - infinity and infinity * 0 are NaN), and a finite sum
 * is the common case.  That saves two passes over the vectors in every call,
 * the exact re-scoring of an index scan's candidates included.
 */
#include "compressor.h"

#include <float.h>
#include <math.h>

#include "distance_memo.h"
#include "qdb_distance.h"

PG_FUNCTION_INFO_V1(quantumdb_l2_distance);
PG_FUNCTION_INFO_V1(quantumdb_cosine_distance);
PG_FUNCTION_INFO_V1(quantumdb_negative_inner_product);
PG_FUNCTION_INFO_V1(quantumdb_inner_product);

/* Both arguments as float arrays of the same length, elements unchecked. */
static int
GetTwoVectors(FunctionCallInfo fcinfo, float **a, float **b)
{
	int			da,
				db;

	*a = QdbArrayFloatsUnchecked((ArrayType *) QdbDetoastDatum(PG_GETARG_DATUM(0)), &da,
								 "first argument");
	*b = QdbArrayFloatsUnchecked((ArrayType *) QdbDetoastDatum(PG_GETARG_DATUM(1)), &db,
								 "second argument");
	QdbCheckSameDims(da, db);
	return da;
}

/* After a sum that is not finite: the ERROR for a NaN or infinite element. */
static void
CheckBothFinite(const float *a, const float *b, int n)
{
	QdbCheckFinite(a, n, "first argument");
	QdbCheckFinite(b, n, "second argument");
}

static double
L2SquaredDouble(const float *a, const float *b, int n)
{
	double		s = 0;

	for (int i = 0; i < n; i++)
	{
		double		d = (double) a[i] - b[i];

		s += d * d;
	}
	return s;
}

static double
InnerProduct(const float *a, const float *b, int n)
{
	float		s = qdb_kernels.dot(a, b, n);
	double		d = 0;

	if (isfinite(s))
		return s;
	CheckBothFinite(a, b, n);
	for (int i = 0; i < n; i++)
		d += (double) a[i] * b[i];
	return d;
}

static double
L2Distance(FunctionCallInfo fcinfo)
{
	float	   *a,
			   *b;
	int			n = GetTwoVectors(fcinfo, &a, &b);
	float		s = qdb_kernels.l2sq(a, b, n);

	if (isfinite(s))
		return sqrt((double) s);
	CheckBothFinite(a, b, n);
	return sqrt(L2SquaredDouble(a, b, n));
}

static double
CosineDistance(FunctionCallInfo fcinfo)
{
	float	   *a,
			   *b;
	int			n = GetTwoVectors(fcinfo, &a, &b);
	float		fdot,
				fna,
				fnb;
	double		dot,
				na,
				nb,
				sim;
	bool		finite;

	qdb_kernels.dot_norms(a, b, n, &fdot, &fna, &fnb);
	finite = isfinite(fdot) && isfinite(fna) && isfinite(fnb);
	if (!finite)
		CheckBothFinite(a, b, n);
	dot = fdot;
	na = fna;
	nb = fnb;
	/*
	 * squares near or below FLT_MIN have lost their precision: redo in
	 * double (a zero vector comes here too, with a float norm of 0)
	 */
	if (!finite || fna < FLT_MIN / FLT_EPSILON || fnb < FLT_MIN / FLT_EPSILON)
	{
		dot = na = nb = 0;
		for (int i = 0; i < n; i++)
		{
			dot += (double) a[i] * b[i];
			na += (double) a[i] * a[i];
			nb += (double) b[i] * b[i];
		}
	}

	/* a nonzero float's square is not 0 in double: only a zero vector is */
	if (na == 0)
		QdbCheckNonZero(a, n, "first argument");
	if (nb == 0)
		QdbCheckNonZero(b, n, "second argument");

	/* root of the product: one rounding fewer, and no overflow in double */
	sim = dot / sqrt(na * nb);
	/* rounding can push the similarity just outside [-1, 1] */
	if (sim > 1)
		sim = 1;
	else if (sim < -1)
		sim = -1;
	return 1 - sim;
}

static double
NegativeInnerProduct(FunctionCallInfo fcinfo)
{
	float	   *a,
			   *b;
	int			n = GetTwoVectors(fcinfo, &a, &b);

	/* 0 - x, not -x: orthogonal vectors give 0, not -0 */
	return 0 - InnerProduct(a, b, n);
}

static double
InnerProductOf(FunctionCallInfo fcinfo)
{
	float	   *a,
			   *b;
	int			n = GetTwoVectors(fcinfo, &a, &b);

	return InnerProduct(a, b, n);
}

/*
 * A distance an open index scan re-scored is found in its memo before the
 * stored vector is detoasted; one it asked for is kept (distance_memo.c).
 */
static Datum
Memoized(FunctionCallInfo fcinfo, double (*distance) (FunctionCallInfo))
{
	double		d;

	if (QdbDistanceMemoFind(fcinfo, &d))
		PG_RETURN_FLOAT8(d);
	d = distance(fcinfo);
	QdbDistanceMemoKeep(fcinfo, d);
	PG_RETURN_FLOAT8(d);
}

Datum
quantumdb_l2_distance(PG_FUNCTION_ARGS)
{
	return Memoized(fcinfo, L2Distance);
}

Datum
quantumdb_cosine_distance(PG_FUNCTION_ARGS)
{
	return Memoized(fcinfo, CosineDistance);
}

Datum
quantumdb_negative_inner_product(PG_FUNCTION_ARGS)
{
	return Memoized(fcinfo, NegativeInnerProduct);
}

Datum
quantumdb_inner_product(PG_FUNCTION_ARGS)
{
	return Memoized(fcinfo, InnerProductOf);
}
