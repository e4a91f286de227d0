/*
 * pgvector_types.c
 *	  pgvector's vector and halfvec, read from their on-disk layout without
 *	  linking to pgvector: a 4-byte varlena header, int16 dim, int16
 *	  unused, then dim float4 (vector) or IEEE binary16 (halfvec) values.
 *
 * A type is recognised by its input function's name (vector_in,
 * halfvec_in) and its shape (a variable-length base type), so the checks
 * hold whichever schema pgvector was created in and whatever OIDs its
 * types got.  quantumdb never requires pgvector: these readers run only
 * for values of those types, which exist only where pgvector is installed
 * (and the extension quantumdb_pgvector declares the operator classes and
 * function overloads that take them).
 */
#include "compressor.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

/* the header before the values: int16 dim, int16 unused */
#define PGV_HEADER		(2 * sizeof(int16))

QdbVecType
QdbVecTypeOf(Oid typid)
{
	HeapTuple	tup;
	Form_pg_type t;
	QdbVecType	result = QDB_VEC_NONE;

	if (typid == FLOAT4ARRAYOID)
		return QDB_VEC_REAL_ARRAY;
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tup))
		return QDB_VEC_NONE;
	t = (Form_pg_type) GETSTRUCT(tup);
	if (t->typtype == TYPTYPE_BASE && t->typlen == -1 && OidIsValid(t->typinput))
	{
		char	   *input = get_func_name(t->typinput);

		if (input && strcmp(input, "vector_in") == 0)
			result = QDB_VEC_VECTOR;
		else if (input && strcmp(input, "halfvec_in") == 0)
			result = QDB_VEC_HALFVEC;
		if (input)
			pfree(input);
	}
	ReleaseSysCache(tup);
	return result;
}

const char *
QdbVecTypeName(QdbVecType t)
{
	switch (t)
	{
		case QDB_VEC_REAL_ARRAY:
			return "real[]";
		case QDB_VEC_VECTOR:
			return "vector";
		case QDB_VEC_HALFVEC:
			return "halfvec";
		default:
			return "?";
	}
}

/* IEEE binary16 to float, exactly (every half is a float). */
static inline float
half_to_float(uint16 h)
{
	uint32		sign = (uint32) (h & 0x8000) << 16;
	uint32		exponent = (h >> 10) & 0x1f;
	uint32		mantissa = h & 0x3ff;
	uint32		bits;
	float		f;

	if (exponent == 0)
	{
		/* zero or subnormal: mantissa * 2^-24 */
		f = ldexpf((float) mantissa, -24);
		return sign ? -f : f;
	}
	if (exponent == 31)
		bits = sign | 0x7f800000 | (mantissa << 13);	/* infinity or NaN */
	else
		bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
	memcpy(&f, &bits, sizeof(f));
	return f;
}

/* The dimensions in a detoasted vector or halfvec value's header, or -1. */
int
QdbPgvectorDims(struct varlena *v)
{
	int16		n;

	if (VARSIZE(v) - VARHDRSZ < PGV_HEADER)
		return -1;
	memcpy(&n, VARDATA(v), sizeof(int16));
	return n;
}

/*
 * The floats of a detoasted vector or halfvec value; its size must match
 * its dim (anything else is a damaged value, not user input).  A vector's
 * floats are returned in place, a halfvec's converted into palloc'd memory.
 */
float *
QdbPgvectorGetFloats(struct varlena *v, QdbVecType t, int *dim)
{
	Size		len = VARSIZE(v) - VARHDRSZ;
	Size		elem = t == QDB_VEC_HALFVEC ? sizeof(uint16) : sizeof(float);
	int16		n;
	const char *data;
	float	   *x;

	Assert(t == QDB_VEC_VECTOR || t == QDB_VEC_HALFVEC);
	if (len < PGV_HEADER)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("%s value has %zu bytes, too few for its header",
						QdbVecTypeName(t), len)));
	memcpy(&n, VARDATA(v), sizeof(int16));
	data = VARDATA(v) + PGV_HEADER;
	if (n < 0 || len != PGV_HEADER + elem * (Size) n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("%s value has %zu bytes, not the size of %d dimensions",
						QdbVecTypeName(t), len, (int) n)));
	*dim = n;
	if (t == QDB_VEC_VECTOR)
		return (float *) data;
	x = palloc(sizeof(float) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		uint16		h;

		memcpy(&h, data + i * sizeof(uint16), sizeof(uint16));
		x[i] = half_to_float(h);
	}
	return x;
}
