/*
 * safetensors_format.h
 *	  What the model writer (safetensors_write.c) and the parser
 *	  (safetensors_read.c) must agree on: metadata keys, tensor and enum
 *	  names, the dimension rules, the expected shapes and where the checksum
 *	  sits.  Internal to those two files.
 *
 * Layout (readable by the Python safetensors library and PyTorch):
 *
 *	u64 N (little-endian) | N bytes of JSON, padded with spaces to a multiple
 *	of 8 | tensor data: little-endian F32, row-major, in header order,
 *	contiguous, covering the rest of the blob exactly
 *
 * The header is {"__metadata__": {...}, "codebooks": {...}} plus "mean" and
 * "linear" when the model has them; kind neural has "mean", the encoder's
 * and decoder's six tensors and the metadata key neural.hidden instead.  Metadata values are all strings, as
 * safetensors requires: format, format_version, kind, metric, dim, dim_pq,
 * subvectors, ksub, nbits, checksum and the training settings (train.*).
 * The training settings kind, metric, dim and subvectors are not stored:
 * they equal the model's own and are restored from those.
 *
 * The stored names are the format's and never change with the C names
 * (MetaKey's MK_ names follow the stored ones).  What each fills:
 *
 *	kind, metric, dim, dim_pq	QdbModel's field of that name
 *	subvectors					QdbModel.M (and config.M): sub-quantizers
 *	ksub, nbits					none: must be QDB_KSUB, QDB_NBITS
 *	format, format_version		none: ST_FORMAT, QDB_FORMAT_VERSION
 *	checksum					none: see below
 *	train.kmeans_iters, train.opq_iters, train.opq_pq_iters,
 *	train.max_points_per_centroid, train.seed
 *								QdbTrainConfig's field of that name
 *	train.target_dim			QdbTrainConfig.dim_pq (0: the default)
 *	neural.hidden				QdbModel.hidden
 *	opq.error_byte				QdbModel.err_byte (and config.opq_error):
 *								"1", or absent for 0 (opq_error.c)
 *	codebooks, mean, linear		QdbModel's array of that name
 *	encoder.0.weight, encoder.0.bias, encoder.2.weight, encoder.2.bias,
 *	decoder.weight, decoder.bias
 *								QdbModel.enc_w1, enc_b1, enc_w2, enc_b2,
 *								dec_w, dec_b
 *
 * Checksum: "crc32c:%08x" (lower-case hex) of the data section followed by
 * all N header bytes (padding included) in which the checksum's 8 hex digits
 * are replaced by eight '0' characters.  So every byte after the length
 * prefix is covered, and a change to the prefix moves the header boundary,
 * which the JSON checks catch.
 */
#ifndef QDB_SAFETENSORS_FORMAT_H
#define QDB_SAFETENSORS_FORMAT_H

#include <stdarg.h>
#include <stdio.h>

#include "crc32c.h"
#include "qdb_internal.h"

#define ST_MAX_RANK		3
#define ST_FORMAT		"quantumdb-compressor"
#define ST_CRC_PREFIX	"crc32c:"
#define ST_CRC_PREFIX_LEN 7
#define ST_CRC_DIGITS	8
#define ST_CRC_PLACEHOLDER "00000000"	/* the digits while the CRC is computed */

typedef enum MetaKey
{
	MK_FORMAT,
	MK_FORMAT_VERSION,
	MK_KIND,
	MK_METRIC,
	MK_DIM,
	MK_DIM_PQ,
	MK_SUBVECTORS,
	MK_KSUB,
	MK_NBITS,
	MK_CHECKSUM,
	MK_KMEANS_ITERS,
	MK_OPQ_ITERS,
	MK_OPQ_PQ_ITERS,
	MK_MAX_PPC,
	MK_SEED,
	MK_TARGET_DIM,
	MK_HIDDEN,					/* kind neural only */
	MK_RQ_BEAM,					/* kind rq, only when not the default 8 */
	MK_RQ_ETA,					/* kind rq, only when not the default 1 */
	MK_RQ_REFITS,				/* kind rq, only when not the default 4 */
	MK_OPQ_ERROR,				/* kind opq under l2 with an error byte: "1" */
	MK_COUNT
} MetaKey;

/* In the order the serializer writes them. */
static const char *const meta_keys[MK_COUNT] = {
	"format", "format_version", "kind", "metric", "dim", "dim_pq",
	"subvectors", "ksub", "nbits", "checksum",
	"train.kmeans_iters", "train.opq_iters", "train.opq_pq_iters",
	"train.max_points_per_centroid", "train.seed", "train.target_dim",
	"neural.hidden", "rq.beam", "rq.eta", "rq.refits", "opq.error_byte"
};

typedef enum TensorId
{
	T_CODEBOOKS,
	T_MEAN,
	T_LINEAR,
	T_ENC_W1,					/* the six of kind neural (neural.h) */
	T_ENC_B1,
	T_ENC_W2,
	T_ENC_B2,
	T_DEC_W,
	T_DEC_B,
	T_COUNT
} TensorId;

/* PyTorch's names for an nn.Sequential(Linear, ReLU, Linear) and a Linear */
static const char *const tensor_names[T_COUNT] = {"codebooks", "mean", "linear",
	"encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias",
"decoder.weight", "decoder.bias"};

/* The format's own spelling, fixed even if display names change. */
static const char *const kind_names[] = {NULL, "pq", "opq", "neural", "rq"};
static const char *const metric_names[] = {NULL, "l2", "ip", "cosine"};

typedef struct TensorInfo
{
	int			present;
	int			rank;
	uint64_t	shape[ST_MAX_RANK];
	uint64_t	begin;			/* data_offsets, relative to the data section */
	uint64_t	end;
	uint64_t	nfloats;		/* what the metadata says it must hold */
} TensorInfo;

static inline void st_error(char *err, size_t errlen, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

static inline void
st_error(char *err, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * The dimension rules shared by writer and reader, as qdb_model_alloc has
 * them: dim_pq is a multiple of M no larger than dim rounded up to one
 * (so at most QDB_MAX_DIM rounded up); without a linear map the input is
 * only padded, so dim_pq is at least dim.
 */
static inline int
check_dims(int kind, int metric, long dim, long dim_pq, long M, int err_byte,
		   int has_linear, char *err, size_t errlen)
{
	long		max_pq;
	long		books = M - err_byte;

	if (kind == QDB_KIND_NEURAL)
		has_linear = 1;			/* the encoder maps dim to dim_pq */

	if (kind < QDB_KIND_PQ || kind > QDB_KIND_LAST)
	{
		st_error(err, errlen, "unknown kind %d", kind);
		return -1;
	}
	if (metric < QDB_METRIC_L2 || metric > QDB_METRIC_COSINE)
	{
		st_error(err, errlen, "unknown metric %d", metric);
		return -1;
	}
	if (kind == QDB_KIND_RQ && metric != QDB_METRIC_IP && M < 2)
	{
		st_error(err, errlen, "kind rq under l2 and cosine needs at least 2 subvectors");
		return -1;
	}
	if (kind == QDB_KIND_NEURAL && metric == QDB_METRIC_IP)
	{
		st_error(err, errlen, "kind neural does not support metric ip");
		return -1;
	}
	if (dim < 1 || dim > QDB_MAX_DIM)
	{
		st_error(err, errlen, "dim %ld is outside [1, %d]", dim, QDB_MAX_DIM);
		return -1;
	}
	if (M < 1 || M > QDB_MAX_SUBQUANTIZERS)
	{
		st_error(err, errlen, "subvectors %ld is outside [1, %d]", M, QDB_MAX_SUBQUANTIZERS);
		return -1;
	}
	if (err_byte &&
		(kind != QDB_KIND_OPQ || metric != QDB_METRIC_L2 || M < 2 || !has_linear))
	{
		st_error(err, errlen, "an error byte belongs to kind opq under l2, with 2 or more subvectors and a linear map");
		return -1;
	}
	max_pq = qdb_padded_dim((int) dim, (int) books);
	if (dim_pq < 1 || dim_pq > max_pq)
	{
		st_error(err, errlen, "dim_pq %ld is outside [1, %ld]", dim_pq, max_pq);
		return -1;
	}
	if (dim_pq % books != 0)
	{
		st_error(err, errlen, "%s %ld does not divide dim_pq %ld",
				 err_byte ? "subvectors less the error byte" : "subvectors", books, dim_pq);
		return -1;
	}
	if (!has_linear && dim_pq < dim)
	{
		st_error(err, errlen, "dim_pq %ld is less than dim %ld and there is no linear map",
				 dim_pq, dim);
		return -1;
	}
	return 0;
}

/*
 * The format_version a model of this kind is written with: 2 for kind rq
 * (its codebooks are [M, 256, dim_pq], which a version-1 reader would
 * reject as a bad shape), 1 for the rest, so their files stay as before.
 * An opq model with an error byte stays at 1: a reader of before the key
 * refuses it as an unknown key (and its codebooks' shape).
 */
static inline int
qdb_format_version(int kind)
{
	return kind == QDB_KIND_RQ ? 2 : 1;
}

/* Element counts of each tensor for these dimensions (no overflow: dims are checked). */
static inline void
expected_shapes(TensorInfo *t, int kind, long dim, long dim_pq, long M, int err_byte,
				long hidden)
{
	static const int rank[] = {0, 0, 0, 2, 1, 2, 1, 2, 1};
	long		dims[][2] = {{0}, {0}, {0}, {hidden, dim}, {hidden}, {dim_pq, hidden},
	{dim_pq}, {dim, dim_pq}, {dim}};

	for (int k = T_ENC_W1; k < T_COUNT; k++)
	{
		t[k].rank = rank[k];
		for (int r = 0; r < rank[k]; r++)
			t[k].shape[r] = (uint64_t) dims[k][r];
	}
	t[T_CODEBOOKS].rank = 3;
	t[T_CODEBOOKS].shape[0] = M;
	t[T_CODEBOOKS].shape[1] = QDB_KSUB;
	t[T_CODEBOOKS].shape[2] = kind == QDB_KIND_RQ ? dim_pq : dim_pq / (M - err_byte);	/* rq.h */
	t[T_MEAN].rank = 1;
	t[T_MEAN].shape[0] = dim;
	t[T_LINEAR].rank = 2;
	t[T_LINEAR].shape[0] = dim_pq;
	t[T_LINEAR].shape[1] = dim;
	for (int k = 0; k < T_COUNT; k++)
	{
		t[k].nfloats = 1;
		for (int r = 0; r < t[k].rank; r++)
			t[k].nfloats *= t[k].shape[r];
	}
}

/*
 * The checksum as the layout defines it: the data section, then the header
 * (hlen bytes) with its ST_CRC_DIGITS digits at crc_at read as '0's.
 */
static inline uint32_t
st_checksum(const uint8_t *data, size_t data_len, const uint8_t *header, size_t hlen,
			size_t crc_at)
{
	size_t		after = crc_at + ST_CRC_DIGITS;
	uint32_t	crc;

	crc = qdb_crc32c_update(0, data, data_len);
	crc = qdb_crc32c_update(crc, header, crc_at);
	crc = qdb_crc32c_update(crc, ST_CRC_PLACEHOLDER, ST_CRC_DIGITS);
	return qdb_crc32c_update(crc, header + after, hlen - after);
}

#endif							/* QDB_SAFETENSORS_FORMAT_H */
