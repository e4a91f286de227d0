/*
 * safetensors_write.c
 *	  qdb_model_serialize: a model as a safetensors blob, in the layout that
 *	  safetensors_format.h describes.  The output is deterministic: the same
 *	  model always gives the same bytes.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "crc32c.h"
#include "qdb_internal.h"
#include "rq.h"
#include "safetensors_format.h"

static void
put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) v;
	p[1] = (uint8_t) (v >> 8);
	p[2] = (uint8_t) (v >> 16);
	p[3] = (uint8_t) (v >> 24);
}

/* Appends formatted text; with buf == NULL it only measures. */
typedef struct StrBuf
{
	char	   *buf;
	size_t		cap;
	size_t		len;
} StrBuf;

static void sb_printf(StrBuf *sb, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
sb_printf(StrBuf *sb, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	if (sb->buf)
		n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
	else
		n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		sb->len += (size_t) n;
}

/* Writes the header JSON; *crc_at gets the offset of the checksum digits. */
static void
write_header(StrBuf *sb, const QdbModel *m, const TensorInfo *t, size_t *crc_at)
{
	const QdbTrainConfig *c = &m->config;

	sb_printf(sb, "{\"__metadata__\":{");
	sb_printf(sb, "\"%s\":\"%s\",", meta_keys[MK_FORMAT], ST_FORMAT);
	sb_printf(sb, "\"%s\":\"%d\",", meta_keys[MK_FORMAT_VERSION], qdb_format_version(m->kind));
	sb_printf(sb, "\"%s\":\"%s\",", meta_keys[MK_KIND], kind_names[m->kind]);
	sb_printf(sb, "\"%s\":\"%s\",", meta_keys[MK_METRIC], metric_names[m->metric]);
	sb_printf(sb, "\"%s\":\"%d\",", meta_keys[MK_DIM], m->dim);
	sb_printf(sb, "\"%s\":\"%d\",", meta_keys[MK_DIM_PQ], m->dim_pq);
	sb_printf(sb, "\"%s\":\"%d\",", meta_keys[MK_SUBVECTORS], m->M);
	sb_printf(sb, "\"%s\":\"%d\",", meta_keys[MK_KSUB], m->ksub);
	sb_printf(sb, "\"%s\":\"%d\",", meta_keys[MK_NBITS], QDB_NBITS);
	sb_printf(sb, "\"%s\":\"%s", meta_keys[MK_CHECKSUM], ST_CRC_PREFIX);
	*crc_at = sb->len;
	sb_printf(sb, "%s\",", ST_CRC_PLACEHOLDER);
	sb_printf(sb, "\"%s\":\"%d\",", meta_keys[MK_KMEANS_ITERS], c->kmeans_iters);
	sb_printf(sb, "\"%s\":\"%d\",", meta_keys[MK_OPQ_ITERS], c->opq_iters);
	sb_printf(sb, "\"%s\":\"%d\",", meta_keys[MK_OPQ_PQ_ITERS], c->opq_pq_iters);
	sb_printf(sb, "\"%s\":\"%d\",", meta_keys[MK_MAX_PPC], c->max_points_per_centroid);
	sb_printf(sb, "\"%s\":\"%" PRIu64 "\",", meta_keys[MK_SEED], c->seed);
	sb_printf(sb, "\"%s\":\"%d\"", meta_keys[MK_TARGET_DIM], c->dim_pq);
	if (m->kind == QDB_KIND_NEURAL)
		sb_printf(sb, ",\"%s\":\"%d\"", meta_keys[MK_HIDDEN], m->hidden);
	/*
	 * rq's beam settings only when not what 0.6.0 trained with (beam 8,
	 * eta 1, 4 refits): a model with those is what 0.6.0 wrote; a reader
	 * of before 0.7.0 refuses one with the keys (unknown key) rather than
	 * encode it differently.  The refits change no encoding, but the
	 * default of 0.8.0 (16) is written, so that an absent key keeps
	 * meaning 4.
	 */
	if (m->kind == QDB_KIND_RQ && qdb_rq_beam(c) != QDB_RQ_BEAM)
		sb_printf(sb, ",\"%s\":\"%d\"", meta_keys[MK_RQ_BEAM], qdb_rq_beam(c));
	if (m->kind == QDB_KIND_RQ && qdb_rq_refits(c) != QDB_RQ_REFITS_UNSTATED)
		sb_printf(sb, ",\"%s\":\"%d\"", meta_keys[MK_RQ_REFITS], qdb_rq_refits(c));
	if (m->kind == QDB_KIND_RQ && c->rq_eta > 1.0f)
		sb_printf(sb, ",\"%s\":\"%.9g\"", meta_keys[MK_RQ_ETA], (double) c->rq_eta);
	/* a reader of before the key refuses it (unknown key): it would misread the codes */
	if (m->err_byte)
		sb_printf(sb, ",\"%s\":\"1\"", meta_keys[MK_OPQ_ERROR]);
	sb_printf(sb, "}");
	for (int k = 0; k < T_COUNT; k++)
	{
		if (!t[k].present)
			continue;
		sb_printf(sb, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", tensor_names[k]);
		for (int r = 0; r < t[k].rank; r++)
			sb_printf(sb, "%s%" PRIu64, r ? "," : "", t[k].shape[r]);
		sb_printf(sb, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", t[k].begin, t[k].end);
	}
	sb_printf(sb, "}");
}

static int
all_finite(const float *x, uint64_t n)
{
	for (uint64_t k = 0; k < n; k++)
		if (!isfinite(x[k]))
			return 0;
	return 1;
}

int
qdb_model_serialize(const QdbModel *m, const QdbAlloc *a, uint8_t **out, size_t *outlen)
{
	const float *src[T_COUNT];
	TensorInfo	t[T_COUNT];
	StrBuf		sb = {NULL, 0, 0};
	const QdbTrainConfig *c;
	size_t		crc_at,
				hlen,
				padded,
				total;
	uint64_t	data_len = 0;
	uint8_t    *blob,
			   *p;
	uint32_t	crc;
	char		hex[9];

	if (out == NULL || outlen == NULL)
		return QDB_ERR_ARG;
	*out = NULL;
	*outlen = 0;
	if (m == NULL || m->codebooks == NULL || m->ksub != QDB_KSUB)
		return QDB_ERR_ARG;
	if (m->err_byte < 0 || m->err_byte > 1 ||
		check_dims(m->kind, m->metric, m->dim, m->dim_pq, m->M, m->err_byte,
				   m->linear != NULL, NULL, 0) < 0)
		return QDB_ERR_ARG;
	if (m->dsub != (m->kind == QDB_KIND_RQ ? m->dim_pq : m->dim_pq / qdb_model_books(m)))
		return QDB_ERR_ARG;
	/* The parser rejects negative settings, so refuse to write them. */
	c = &m->config;
	if (c->kmeans_iters < 0 || c->opq_iters < 0 || c->opq_pq_iters < 0 ||
		c->max_points_per_centroid < 0 || c->dim_pq < 0)
		return QDB_ERR_ARG;

	memset(t, 0, sizeof(t));
	if (m->kind == QDB_KIND_NEURAL &&
		(m->hidden < 1 || m->hidden > QDB_MAX_HIDDEN || !m->enc_w1 || !m->enc_b1 ||
		 !m->enc_w2 || !m->enc_b2 || !m->dec_w || !m->dec_b || m->linear))
		return QDB_ERR_ARG;
	expected_shapes(t, m->kind, m->dim, m->dim_pq, m->M, m->err_byte, m->hidden);
	src[T_CODEBOOKS] = m->codebooks;
	src[T_MEAN] = m->mean;
	src[T_LINEAR] = m->linear;
	src[T_ENC_W1] = m->kind == QDB_KIND_NEURAL ? m->enc_w1 : NULL;
	src[T_ENC_B1] = m->kind == QDB_KIND_NEURAL ? m->enc_b1 : NULL;
	src[T_ENC_W2] = m->kind == QDB_KIND_NEURAL ? m->enc_w2 : NULL;
	src[T_ENC_B2] = m->kind == QDB_KIND_NEURAL ? m->enc_b2 : NULL;
	src[T_DEC_W] = m->kind == QDB_KIND_NEURAL ? m->dec_w : NULL;
	src[T_DEC_B] = m->kind == QDB_KIND_NEURAL ? m->dec_b : NULL;
	for (int k = 0; k < T_COUNT; k++)
	{
		if (src[k] == NULL)
			continue;
		if (!all_finite(src[k], t[k].nfloats))
			return QDB_ERR_DATA;
		t[k].present = 1;
		t[k].begin = data_len;
		data_len += t[k].nfloats * sizeof(float);
		t[k].end = data_len;
	}

	write_header(&sb, m, t, &crc_at);
	hlen = sb.len;
	padded = (hlen + 7) & ~(size_t) 7;
	if (data_len > SIZE_MAX - 8 - padded)
		return QDB_ERR_NOMEM;
	total = 8 + padded + (size_t) data_len;
	blob = qdb_malloc(a, total, 1);
	if (blob == NULL)
		return QDB_ERR_NOMEM;

	/*
	 * vsnprintf puts a NUL after the header: in the padding, or on the first
	 * data byte (codebooks are never empty); both are overwritten below.
	 */
	sb.buf = (char *) blob + 8;
	sb.cap = padded + 1;
	sb.len = 0;
	write_header(&sb, m, t, &crc_at);
	memset(blob + 8 + hlen, ' ', padded - hlen);
	for (int k = 0; k < 8; k++)
		blob[k] = (uint8_t) ((uint64_t) padded >> (8 * k));

	p = blob + 8 + padded;
	for (int k = 0; k < T_COUNT; k++)
	{
		if (!t[k].present)
			continue;
		for (uint64_t i = 0; i < t[k].nfloats; i++, p += 4)
		{
			uint32_t	bits;

			memcpy(&bits, &src[k][i], 4);
			put_le32(p, bits);
		}
	}

	crc = st_checksum(blob + 8 + padded, (size_t) data_len, blob + 8, padded, crc_at);
	snprintf(hex, sizeof(hex), "%08" PRIx32, crc);
	memcpy(blob + 8 + crc_at, hex, ST_CRC_DIGITS);

	*out = blob;
	*outlen = total;
	return QDB_OK;
}
