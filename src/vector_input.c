/*
 * vector_input.c
 *	  Conversion between vector values (real[], and pgvector's vector and
 *	  halfvec through pgvector_types.c) and plain float arrays, with every
 *	  check on vectors that come from users: shape, nulls, NaN and
 *	  infinity, size.
 */
#include "compressor.h"

#include <math.h>

#include "access/toast_compression.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "pglz_decode.h"

static void
check_length(int n, const char *what)
{
	if (n > QDB_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("vector cannot have more than %d dimensions", QDB_MAX_DIM),
				 errdetail("The %s has %d elements.", what, n)));
}

void
QdbCheckFinite(const float *x, int n, const char *what)
{
	for (int i = 0; i < n; i++)
	{
		if (!isfinite(x[i]))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("vector must not contain NaN or infinity"),
					 errdetail("Element %d of the %s is %s.", i + 1, what,
							   isnan(x[i]) ? "NaN" :
							   x[i] > 0 ? "Infinity" : "-Infinity")));
	}
}

/*
 * The data of a one-dimensional real[] without nulls are the floats
 * themselves, so the returned pointer points into the array.
 */
float *
QdbArrayGetFloats(ArrayType *a, int *dim, const char *what)
{
	float	   *x = QdbArrayFloatsUnchecked(a, dim, what);

	QdbCheckFinite(x, *dim, what);
	return x;
}

/* As QdbArrayGetFloats, but the elements may be NaN or infinite. */
float *
QdbArrayFloatsUnchecked(ArrayType *a, int *dim, const char *what)
{
	int			n;
	float	   *x;

	/* the SQL signatures take real[]; anything else is our bug */
	if (ARR_ELEMTYPE(a) != FLOAT4OID)
		elog(ERROR, "%s must be an array of real, not of type %u",
			 what, ARR_ELEMTYPE(a));

	if (ARR_NDIM(a) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least one element"),
				 errdetail("The %s is an empty array.", what)));
	if (ARR_NDIM(a) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must be a one-dimensional array"),
				 errdetail("The %s has %d dimensions.", what, ARR_NDIM(a))));

	n = ARR_DIMS(a)[0];
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least one element"),
				 errdetail("The %s is an empty array.", what)));
	check_length(n, what);

	if (ARR_HASNULL(a))
	{
		bits8	   *bitmap = ARR_NULLBITMAP(a);

		for (int i = 0; i < n; i++)
		{
			if (!(bitmap[i / 8] & (1 << (i % 8))))
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("vector must not contain nulls"),
						 errdetail("Element %d of the %s is null.", i + 1, what)));
		}
	}

	/* with no null present, the data area is n packed floats */
	x = (float *) ARR_DATA_PTR(a);
	*dim = n;
	return x;
}

/*
 * Datum d detoasted (PG_DETOAST_DATUM's result): a value pglz compressed in
 * its row by QdbPglzDecode, which is faster than the server's decoder (the
 * exact distances of a compressed column spend most of their time
 * decompressing: pglz_decode.c); anything else by the server.  d's own
 * pointer when it needs nothing, else a palloc'd copy.
 */
struct varlena *
QdbDetoastDatum(Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	int32		rawsize;
	struct varlena *out;

	if (!VARATT_IS_COMPRESSED(v) ||
		VARDATA_COMPRESSED_GET_COMPRESS_METHOD(v) != TOAST_PGLZ_COMPRESSION_ID)
		return PG_DETOAST_DATUM(d);
	rawsize = VARDATA_COMPRESSED_GET_EXTSIZE(v);
	out = (struct varlena *) palloc(VARHDRSZ + rawsize + QDB_PGLZ_SLACK);
	if (!QdbPglzDecode((const uint8 *) v + VARHDRSZ_COMPRESSED,
					   (const uint8 *) v + VARSIZE(v), (uint8 *) VARDATA(out), rawsize))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_internal("compressed pglz data is corrupt")));
	SET_VARSIZE(out, VARHDRSZ + rawsize);
	return out;
}

/*
 * The floats of a value of vector type t, checked as QdbArrayGetFloats
 * checks a real[]; may point into the (detoasted) value.
 */
float *
QdbDatumGetFloats(Datum d, QdbVecType t, int *dim, const char *what)
{
	float	   *x;
	int			n;

	if (t == QDB_VEC_REAL_ARRAY)
		return QdbArrayGetFloats((ArrayType *) QdbDetoastDatum(d), dim, what);
	if (t != QDB_VEC_VECTOR && t != QDB_VEC_HALFVEC)
		elog(ERROR, "unknown vector type %d", (int) t);
	x = QdbPgvectorGetFloats(QdbDetoastDatum(d), t, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least one element"),
				 errdetail("The %s has no dimensions.", what)));
	check_length(n, what);
	QdbCheckFinite(x, n, what);
	*dim = n;
	return x;
}

/*
 * Whether value d of vector type t holds dim finite floats and no null,
 * told without an ERROR: what QdbDatumGetFloats takes at dim dimensions
 * (pgvector's types hold finite values only).  An exact distance refuses
 * the others too.
 */
bool
QdbDatumHoldsFloats(Datum d, QdbVecType t, int dim)
{
	struct varlena *v = QdbDetoastDatum(d);
	ArrayType  *a = (ArrayType *) v;
	const float *x;

	if (t != QDB_VEC_REAL_ARRAY)
		return QdbPgvectorDims(v) == dim;
	if (ARR_ELEMTYPE(a) != FLOAT4OID || ARR_NDIM(a) != 1 || ARR_DIMS(a)[0] != dim ||
		ARR_HASNULL(a))
		return false;
	x = (const float *) ARR_DATA_PTR(a);
	for (int i = 0; i < dim; i++)
		if (!isfinite(x[i]))
			return false;
	return true;
}

/*
 * The dimensions of a value of vector type t from its header alone, its
 * elements unchecked (NaN, nulls): -1 for an array of other than one
 * dimension.  For a value the index may never have checked (a row outside
 * a partial index's predicate).
 */
int
QdbDatumDims(Datum d, QdbVecType t)
{
	struct varlena *v = QdbDetoastDatum(d);

	if (t == QDB_VEC_REAL_ARRAY)
		return ARR_NDIM((ArrayType *) v) == 1 ? ARR_DIMS((ArrayType *) v)[0] : -1;
	return QdbPgvectorDims(v);
}

/*
 * The floats of argument argno of a function declared for real[] and, in
 * quantumdb_pgvector, for vector and halfvec too.  *type caches the
 * argument's vector type across calls (QDB_VEC_NONE: not known yet).
 */
float *
QdbArgGetFloats(FunctionCallInfo fcinfo, int argno, QdbVecType *type, int *dim,
				const char *what)
{
	if (*type == QDB_VEC_NONE)
	{
		Oid			oid = get_fn_expr_argtype(fcinfo->flinfo, argno);

		/* a call without its expression (DirectFunctionCall) cannot tell */
		if (!OidIsValid(oid))
			elog(ERROR, "could not determine the type of argument %d", argno + 1);
		*type = QdbVecTypeOf(oid);
		if (*type == QDB_VEC_NONE)
			elog(ERROR, "argument %d has type %s, not a vector type",
				 argno + 1, format_type_be(oid));
	}
	return QdbDatumGetFloats(PG_GETARG_DATUM(argno), *type, dim, what);
}

void
QdbCheckSameDims(int a, int b)
{
	if (a != b)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different vector dimensions %d and %d", a, b)));
}

/* True if every element is zero (checked on the elements, not a float sum). */
bool
QdbVectorIsZero(const float *x, int dim)
{
	for (int i = 0; i < dim; i++)
	{
		if (x[i] != 0)
			return false;
	}
	return true;
}

/* Cosine divides by the norm. */
void
QdbCheckNonZero(const float *x, int dim, const char *what)
{
	if (!QdbVectorIsZero(x, dim))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("cosine distance is undefined for a zero vector"),
			 errdetail("Every element of the %s is zero.", what)));
}

/*
 * ERROR unless x's squared length is at most QDB_MAX_SQUARED_LENGTH: l2
 * and ip distances, and the tables ADC sums, are single precision, and
 * the squared distance of two such vectors stays finite.  Larger ones
 * (elements of about 1e19 and up) trained models whose every distance was
 * infinite, and indexes that returned other rows than the exact scan.
 * Cosine normalises its vectors and takes any finite length.
 */
void
QdbCheckLength(const float *x, int dim, const char *what)
{
	double		ss = 0;

	for (int i = 0; i < dim; i++)
		ss += (double) x[i] * x[i];
	if (ss <= QDB_MAX_SQUARED_LENGTH)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("vector is too long for l2 and ip distances"),
			 errdetail("The squared length of the %s is %g, above %g: its distances would overflow single precision.",
					   what, ss, QDB_MAX_SQUARED_LENGTH),
			 errhint("Scale the vectors down, or use metric cosine, which normalises them.")));
}

/* The check of x that metric needs beyond finite values (QdbCheckFinite). */
void
QdbCheckForMetric(const float *x, int dim, QdbMetric metric, const char *what)
{
	if (metric == QDB_METRIC_COSINE)
		QdbCheckNonZero(x, dim, what);
	else
		QdbCheckLength(x, dim, what);
}

/* A one-dimensional real[] with lower bound 1 holding a copy of x. */
ArrayType *
QdbFloatsToArray(const float *x, int dim)
{
	ArrayType  *r;
	Size		nbytes;

	if (dim <= 0)
		return construct_empty_array(FLOAT4OID);

	nbytes = ARR_OVERHEAD_NONULLS(1) + sizeof(float) * (Size) dim;
	r = (ArrayType *) palloc0(nbytes);
	SET_VARSIZE(r, nbytes);
	r->ndim = 1;
	r->dataoffset = 0;			/* no null bitmap */
	r->elemtype = FLOAT4OID;
	ARR_DIMS(r)[0] = dim;
	ARR_LBOUND(r)[0] = 1;
	memcpy(ARR_DATA_PTR(r), x, sizeof(float) * (Size) dim);
	return r;
}
