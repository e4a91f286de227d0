/*
 * safetensors_read.c
 *	  qdb_model_parse: reads a model back from a safetensors blob in the
 *	  layout that safetensors_format.h describes.
 *
 * The parser treats every byte as hostile: all lengths and offsets are
 * checked before use, nothing is allocated until the layout has been proven
 * to fit inside the blob, and on failure everything is freed and err says
 * what is wrong.  Strictness: unknown or duplicate keys, other dtypes, shapes
 * that differ from the metadata, gaps or overlaps, trailing bytes and
 * non-finite floats are all rejected.
 */
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "json.h"
#include "qdb_internal.h"
#include "rq.h"
#include "safetensors_format.h"

#define ST_MAX_HEADER	(1024 * 1024)	/* bytes of JSON we accept */
#define ST_MAX_NODES	256		/* JSON values; ours has about 70 */
#define ST_MAX_DEPTH	3		/* root, tensor, shape */
#define ST_VALUE_MAX	64		/* a metadata value's bytes, with its NUL */

/* Raw bytes of a node for an error message: printable ASCII only. */
static const char *
show(const QdbJsonDoc *doc, int i, char *out, size_t outsize)
{
	const QdbJsonNode *n = &doc->nodes[i];
	size_t		w = 0;

	for (size_t k = 0; k < n->len && w + 4 < outsize; k++)
	{
		unsigned char c = (unsigned char) doc->text[n->start + k];

		out[w++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char) c : '?';
	}
	if (w + 4 >= outsize && n->len > w)
	{
		memcpy(out + w, "...", 3);
		w += 3;
	}
	out[w] = '\0';
	return out;
}

static int
lookup(const QdbJsonDoc *doc, int key, const char *const *names, int count)
{
	for (int k = 0; k < count; k++)
		if (qdb_json_string_equals(doc, key, names[k]))
			return k;
	return -1;
}

static int
checked_mul(uint64_t a, uint64_t b, uint64_t *out)
{
	if (a != 0 && b > UINT64_MAX / a)
		return -1;
	*out = a * b;
	return 0;
}

static uint32_t
get_le32(const uint8_t *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
		(uint32_t) p[3] << 24;
}

typedef struct StParse
{
	const uint8_t *buf;
	size_t		len;
	uint64_t	hlen;			/* N */
	const uint8_t *data;
	uint64_t	data_len;
	QdbJsonDoc	doc;
	char		vals[MK_COUNT][ST_VALUE_MAX];	/* metadata values, decoded */
	size_t		crc_at;			/* checksum digits, offset in the header */
	uint32_t	crc_stored;
	int			version;		/* format_version: 1, or 2 (kind rq) */
	int			kind;
	int			metric;
	int			dim;
	int			dim_pq;
	int			M;
	int			hidden;			/* kind neural, else 0 */
	int			err_byte;		/* opq.error_byte: 1, else 0 */
	QdbTrainConfig config;
	TensorInfo	t[T_COUNT];
	char	   *err;
	size_t		errlen;
} StParse;

/* Reads metadata value k as an integer in [lo, hi]. */
static int
meta_int(StParse *sp, MetaKey k, uint64_t lo, uint64_t hi, uint64_t *out)
{
	const char *v = sp->vals[k];

	if (qdb_parse_uint64(v, strlen(v), out) < 0 || *out < lo || *out > hi)
	{
		st_error(sp->err, sp->errlen,
				 "metadata %s \"%s\" is not an integer in [%" PRIu64 ", %" PRIu64 "]",
				 meta_keys[k], v, lo, hi);
		return -1;
	}
	return 0;
}

/* "format" and "format_version" first, so a newer file gets QDB_ERR_VERSION. */
static int
check_version(StParse *sp, int meta)
{
	const QdbJsonDoc *doc = &sp->doc;
	int			f = qdb_json_object_get(doc, meta, meta_keys[MK_FORMAT]);
	int			v = qdb_json_object_get(doc, meta, meta_keys[MK_FORMAT_VERSION]);
	char		shown[48];

	if (f < 0 || !qdb_json_string_equals(doc, f, ST_FORMAT))
	{
		st_error(sp->err, sp->errlen, "metadata format is missing or not \"%s\"", ST_FORMAT);
		return QDB_ERR_FORMAT;
	}
	if (v < 0 || doc->nodes[v].type != QDB_JSON_STRING)
	{
		st_error(sp->err, sp->errlen, "metadata format_version is missing or not a string");
		return QDB_ERR_FORMAT;
	}
	sp->version = qdb_json_string_equals(doc, v, "1") ? 1 :
		qdb_json_string_equals(doc, v, "2") ? 2 : 0;
	if (sp->version == 0)
	{
		st_error(sp->err, sp->errlen, "format version \"%s\" is not supported (this build reads %d)",
				 show(doc, v, shown, sizeof(shown)), QDB_FORMAT_VERSION);
		return QDB_ERR_VERSION;
	}
	return QDB_OK;
}

static int
parse_checksum(StParse *sp, int node)
{
	const QdbJsonNode *n = &sp->doc.nodes[node];
	const char *v = sp->vals[MK_CHECKSUM];
	uint32_t	crc = 0;

	/* Raw length 15 means no escapes, so the raw digits are the value's. */
	if (n->len != ST_CRC_PREFIX_LEN + ST_CRC_DIGITS ||
		strlen(v) != ST_CRC_PREFIX_LEN + ST_CRC_DIGITS ||
		memcmp(v, ST_CRC_PREFIX, ST_CRC_PREFIX_LEN) != 0)
		goto bad;
	for (int k = ST_CRC_PREFIX_LEN; k < ST_CRC_PREFIX_LEN + ST_CRC_DIGITS; k++)
	{
		char		c = v[k];

		crc <<= 4;
		if (c >= '0' && c <= '9')
			crc |= (uint32_t) (c - '0');
		else if (c >= 'a' && c <= 'f')
			crc |= (uint32_t) (c - 'a' + 10);
		else
			goto bad;
	}
	sp->crc_stored = crc;
	sp->crc_at = n->start + ST_CRC_PREFIX_LEN;
	return 0;

bad:
	st_error(sp->err, sp->errlen, "metadata checksum is not \"crc32c:\" and 8 lower-case hex digits");
	return -1;
}

/* The int training settings, in the order they are read. */
static const struct
{
	MetaKey		key;
	size_t		offset;
}			int_settings[] =
{
	{MK_KMEANS_ITERS, offsetof(QdbTrainConfig, kmeans_iters)},
	{MK_OPQ_ITERS, offsetof(QdbTrainConfig, opq_iters)},
	{MK_OPQ_PQ_ITERS, offsetof(QdbTrainConfig, opq_pq_iters)},
	{MK_MAX_PPC, offsetof(QdbTrainConfig, max_points_per_centroid)},
	{MK_TARGET_DIM, offsetof(QdbTrainConfig, dim_pq)},
};

/*
 * An optional int key: *out is set when present, in [lo, hi] and not dflt
 * (a default is written by leaving the key out).
 */
static int
optional_int(StParse *sp, const int *node, MetaKey k, int lo, int hi, int dflt, int *out)
{
	uint64_t	v;

	if (node[k] < 0)
		return 0;
	if (meta_int(sp, k, lo, hi, &v) < 0)
		return -1;
	if (v == (uint64_t) dflt)
	{
		st_error(sp->err, sp->errlen, "metadata %s is the default %d, which is written by leaving it out",
				 meta_keys[k], dflt);
		return -1;
	}
	*out = (int) v;
	return 0;
}

/*
 * rq.beam, rq.eta and rq.refits: kind rq only, each absent when it is what
 * 0.6.0 trained with (8, 1, 4), which is what a model of before the
 * settings reads as (the default refits are 16 since 0.8.0 and written).
 */
static int
read_rq_settings(StParse *sp, const int *node)
{
	sp->config.rq_beam = QDB_RQ_BEAM;
	sp->config.rq_refits = QDB_RQ_REFITS_UNSTATED;
	sp->config.rq_eta = 1.0f;
	for (int k = MK_RQ_BEAM; k <= MK_RQ_REFITS; k++)
	{
		if (sp->kind != QDB_KIND_RQ && node[k] >= 0)
		{
			st_error(sp->err, sp->errlen, "metadata %s belongs to kind rq only", meta_keys[k]);
			return -1;
		}
	}
	if (optional_int(sp, node, MK_RQ_REFITS, 0, QDB_RQ_REFITS_MAX, QDB_RQ_REFITS_UNSTATED,
					 &sp->config.rq_refits) < 0 ||
		optional_int(sp, node, MK_RQ_BEAM, 1, QDB_RQ_BEAM_MAX, QDB_RQ_BEAM,
					 &sp->config.rq_beam) < 0)
		return -1;
	if (node[MK_RQ_ETA] >= 0)
	{
		const char *txt = sp->vals[MK_RQ_ETA];
		char	   *end;
		double		eta = strtod(txt, &end);

		/* plain decimals only: no sign, space, hex or exponent */
		if (strspn(txt, "0123456789.") != strlen(txt) ||
			end == txt || *end != '\0' || !(eta > 1.0 && eta <= QDB_RQ_ETA_MAX) ||
			sp->metric == QDB_METRIC_L2)
		{
			st_error(sp->err, sp->errlen, "metadata %s is not a number above 1 and at most %g%s",
					 meta_keys[MK_RQ_ETA], (double) QDB_RQ_ETA_MAX,
					 sp->metric == QDB_METRIC_L2 ? " under cosine or ip" : "");
			return -1;
		}
		sp->config.rq_eta = (float) eta;
	}
	return 0;
}

/* Every metadata key exactly once, every value a short string. */
static int
read_metadata(StParse *sp, int meta)
{
	const QdbJsonDoc *doc = &sp->doc;
	int			node[MK_COUNT];
	char		shown[48];
	uint64_t	v;

	for (int k = 0; k < MK_COUNT; k++)
		node[k] = -1;
	for (int key = doc->nodes[meta].child; key >= 0; key = doc->nodes[doc->nodes[key].next].next)
	{
		int			val = doc->nodes[key].next;
		int			k = lookup(doc, key, meta_keys, MK_COUNT);
		size_t		n;

		if (k < 0)
		{
			st_error(sp->err, sp->errlen, "unknown metadata key \"%s\"",
					 show(doc, key, shown, sizeof(shown)));
			return -1;
		}
		if (node[k] >= 0)
		{
			st_error(sp->err, sp->errlen, "duplicate metadata key \"%s\"", meta_keys[k]);
			return -1;
		}
		node[k] = val;
		if (doc->nodes[val].type != QDB_JSON_STRING)
		{
			st_error(sp->err, sp->errlen, "metadata %s is not a string", meta_keys[k]);
			return -1;
		}
		if (qdb_json_string(doc, val, sp->vals[k], ST_VALUE_MAX, &n) < 0 ||
			n != strlen(sp->vals[k]))
		{
			st_error(sp->err, sp->errlen, "metadata %s is longer than %d bytes or holds a NUL",
					 meta_keys[k], ST_VALUE_MAX - 1);
			return -1;
		}
	}
	for (int k = 0; k < MK_COUNT; k++)
	{
		if (node[k] < 0 && k != MK_HIDDEN && k != MK_RQ_BEAM && k != MK_RQ_ETA &&
			k != MK_RQ_REFITS && k != MK_OPQ_ERROR)
		{
			st_error(sp->err, sp->errlen, "metadata %s is missing", meta_keys[k]);
			return -1;
		}
	}

	sp->kind = sp->metric = 0;
	for (int k = 1; k <= QDB_KIND_LAST; k++)
		if (strcmp(sp->vals[MK_KIND], kind_names[k]) == 0)
			sp->kind = k;
	for (int k = 1; k <= QDB_METRIC_COSINE; k++)
		if (strcmp(sp->vals[MK_METRIC], metric_names[k]) == 0)
			sp->metric = k;
	if (sp->kind == 0)
	{
		st_error(sp->err, sp->errlen, "unknown kind \"%s\"", show(doc, node[MK_KIND], shown, sizeof(shown)));
		return -1;
	}
	if (sp->metric == 0)
	{
		st_error(sp->err, sp->errlen, "unknown metric \"%s\"", show(doc, node[MK_METRIC], shown, sizeof(shown)));
		return -1;
	}
	sp->err_byte = 0;
	if (node[MK_OPQ_ERROR] >= 0)
	{
		if (strcmp(sp->vals[MK_OPQ_ERROR], "1") != 0 || sp->kind != QDB_KIND_OPQ ||
			sp->metric != QDB_METRIC_L2)
		{
			st_error(sp->err, sp->errlen, "metadata %s must be \"1\", under kind opq and metric l2",
					 meta_keys[MK_OPQ_ERROR]);
			return -1;
		}
		sp->err_byte = 1;
	}
	if (sp->version < qdb_format_version(sp->kind))
	{
		st_error(sp->err, sp->errlen, "kind %s needs format version %d, not %d",
				 kind_names[sp->kind], qdb_format_version(sp->kind), sp->version);
		return -1;
	}
	sp->hidden = 0;
	if ((sp->kind == QDB_KIND_NEURAL) != (node[MK_HIDDEN] >= 0))
	{
		st_error(sp->err, sp->errlen, sp->kind == QDB_KIND_NEURAL ?
				 "metadata %s is missing" : "metadata %s belongs to kind neural only",
				 meta_keys[MK_HIDDEN]);
		return -1;
	}
	if (sp->kind == QDB_KIND_NEURAL)
	{
		if (meta_int(sp, MK_HIDDEN, 1, QDB_MAX_HIDDEN, &v) < 0)
			return -1;
		sp->hidden = (int) v;
	}
	/* Loose bounds here; check_dims applies the real rules. */
	if (meta_int(sp, MK_DIM, 1, INT_MAX, &v) < 0)
		return -1;
	sp->dim = (int) v;
	if (meta_int(sp, MK_DIM_PQ, 1, INT_MAX, &v) < 0)
		return -1;
	sp->dim_pq = (int) v;
	if (meta_int(sp, MK_SUBVECTORS, 1, INT_MAX, &v) < 0)
		return -1;
	sp->M = (int) v;
	if (meta_int(sp, MK_KSUB, QDB_KSUB, QDB_KSUB, &v) < 0 ||
		meta_int(sp, MK_NBITS, QDB_NBITS, QDB_NBITS, &v) < 0)
		return -1;
	if (parse_checksum(sp, node[MK_CHECKSUM]) < 0)
		return -1;

	memset(&sp->config, 0, sizeof(sp->config));
	for (size_t i = 0; i < sizeof(int_settings) / sizeof(int_settings[0]); i++)
	{
		if (meta_int(sp, int_settings[i].key, 0, INT_MAX, &v) < 0)
			return -1;
		*(int *) ((char *) &sp->config + int_settings[i].offset) = (int) v;
	}
	if (meta_int(sp, MK_SEED, 0, UINT64_MAX, &v) < 0)
		return -1;
	sp->config.seed = v;
	return read_rq_settings(sp, node);
}

/* Reads an array of up to max non-negative integers. */
static int
read_uint_array(const QdbJsonDoc *doc, int arr, uint64_t *out, int max, int *count)
{
	int			n = 0;

	if (doc->nodes[arr].type != QDB_JSON_ARRAY || doc->nodes[arr].count > max)
		return -1;
	for (int e = doc->nodes[arr].child; e >= 0; e = doc->nodes[e].next)
		if (qdb_json_uint64(doc, e, &out[n++]) < 0)
			return -1;
	*count = n;
	return 0;
}

/* One tensor entry: exactly dtype "F32", shape and data_offsets. */
static int
read_tensor(StParse *sp, TensorId id, int obj)
{
	static const char *const fields[] = {"dtype", "shape", "data_offsets"};
	const QdbJsonDoc *doc = &sp->doc;
	const char *name = tensor_names[id];
	TensorInfo *t = &sp->t[id];
	int			node[3] = {-1, -1, -1};
	uint64_t	off[2];
	int			n;
	char		shown[48];

	if (doc->nodes[obj].type != QDB_JSON_OBJECT)
	{
		st_error(sp->err, sp->errlen, "tensor \"%s\" is not an object", name);
		return -1;
	}
	for (int key = doc->nodes[obj].child; key >= 0; key = doc->nodes[doc->nodes[key].next].next)
	{
		int			k = lookup(doc, key, fields, 3);

		if (k < 0)
		{
			st_error(sp->err, sp->errlen, "tensor \"%s\" has unknown field \"%s\"", name,
					 show(doc, key, shown, sizeof(shown)));
			return -1;
		}
		if (node[k] >= 0)
		{
			st_error(sp->err, sp->errlen, "tensor \"%s\" has %s twice", name, fields[k]);
			return -1;
		}
		node[k] = doc->nodes[key].next;
	}
	for (int k = 0; k < 3; k++)
	{
		if (node[k] < 0)
		{
			st_error(sp->err, sp->errlen, "tensor \"%s\" has no %s", name, fields[k]);
			return -1;
		}
	}
	if (!qdb_json_string_equals(doc, node[0], "F32"))
	{
		st_error(sp->err, sp->errlen, "tensor \"%s\" has dtype \"%s\", expected \"F32\"", name,
				 show(doc, node[0], shown, sizeof(shown)));
		return -1;
	}
	if (read_uint_array(doc, node[1], t->shape, ST_MAX_RANK, &t->rank) < 0)
	{
		st_error(sp->err, sp->errlen,
				 "tensor \"%s\" shape is not a list of at most %d non-negative integers",
				 name, ST_MAX_RANK);
		return -1;
	}
	if (read_uint_array(doc, node[2], off, 2, &n) < 0 || n != 2 || off[0] > off[1])
	{
		st_error(sp->err, sp->errlen, "tensor \"%s\" data_offsets is not [begin, end] with begin <= end",
				 name);
		return -1;
	}
	t->begin = off[0];
	t->end = off[1];
	t->present = 1;
	return 0;
}

/* The root: __metadata__ and known tensors, each once. */
static int
read_tensors(StParse *sp)
{
	const QdbJsonDoc *doc = &sp->doc;
	int			seen_meta = 0;
	char		shown[48];

	for (int key = doc->nodes[0].child; key >= 0; key = doc->nodes[doc->nodes[key].next].next)
	{
		int			k;

		if (qdb_json_string_equals(doc, key, "__metadata__"))
		{
			if (seen_meta++)
			{
				st_error(sp->err, sp->errlen, "duplicate key \"__metadata__\"");
				return -1;
			}
			continue;
		}
		k = lookup(doc, key, tensor_names, T_COUNT);
		if (k < 0)
		{
			st_error(sp->err, sp->errlen, "unknown tensor \"%s\"", show(doc, key, shown, sizeof(shown)));
			return -1;
		}
		if (sp->t[k].present)
		{
			st_error(sp->err, sp->errlen, "duplicate tensor \"%s\"", tensor_names[k]);
			return -1;
		}
		if (read_tensor(sp, (TensorId) k, doc->nodes[key].next) < 0)
			return -1;
	}
	if (!sp->t[T_CODEBOOKS].present)
	{
		st_error(sp->err, sp->errlen, "header has no \"codebooks\" tensor");
		return -1;
	}
	return 0;
}

static void
format_shape(const uint64_t *shape, int rank, char *out, size_t outsize)
{
	size_t		w = 0;

	out[0] = '\0';
	w += snprintf(out, outsize, "[");
	for (int r = 0; r < rank && w < outsize; r++)
		w += snprintf(out + w, outsize - w, "%s%" PRIu64, r ? ", " : "", shape[r]);
	if (w < outsize)
		snprintf(out + w, outsize - w, "]");
}

/* Shapes as the metadata demands; data contiguous and covering the section. */
static int
check_layout(StParse *sp)
{
	TensorInfo	want[T_COUNT];
	int			order[T_COUNT];
	int			n = 0;
	uint64_t	at = 0;

	if (check_dims(sp->kind, sp->metric, sp->dim, sp->dim_pq, sp->M, sp->err_byte,
				   sp->t[T_LINEAR].present, sp->err, sp->errlen) < 0)
		return -1;
	memset(want, 0, sizeof(want));
	expected_shapes(want, sp->kind, sp->dim, sp->dim_pq, sp->M, sp->err_byte, sp->hidden);
	for (int k = T_MEAN; k < T_COUNT; k++)
	{
		/* neural: mean and its six, no linear; the others: none of the six */
		int			need = (sp->kind == QDB_KIND_NEURAL && k != T_LINEAR) ||
			(sp->kind == QDB_KIND_RQ && k == T_MEAN) ||
			(sp->err_byte && (k == T_MEAN || k == T_LINEAR));
		int			allowed = need ||
			((k == T_LINEAR || k == T_MEAN) && sp->kind != QDB_KIND_NEURAL);

		if (need && !sp->t[k].present)
		{
			st_error(sp->err, sp->errlen, "kind %s%s needs tensor \"%s\"", kind_names[sp->kind],
					 sp->err_byte ? " with an error byte" : "", tensor_names[k]);
			return -1;
		}
		if (!allowed && sp->t[k].present)
		{
			st_error(sp->err, sp->errlen, "kind %s has no tensor \"%s\"",
					 kind_names[sp->kind], tensor_names[k]);
			return -1;
		}
	}
	for (int k = 0; k < T_COUNT; k++)
	{
		TensorInfo *t = &sp->t[k];
		uint64_t	nbytes = 0;
		int			same;

		if (!t->present)
			continue;
		same = t->rank == want[k].rank;
		for (int r = 0; same && r < t->rank; r++)
			same = t->shape[r] == want[k].shape[r];
		if (!same)
		{
			char		got[96],
						exp[96];

			format_shape(t->shape, t->rank, got, sizeof(got));
			format_shape(want[k].shape, want[k].rank, exp, sizeof(exp));
			st_error(sp->err, sp->errlen, "tensor \"%s\" has shape %s, the metadata needs %s",
					 tensor_names[k], got, exp);
			return -1;
		}
		t->nfloats = want[k].nfloats;
		if (checked_mul(t->nfloats, sizeof(float), &nbytes) < 0 || t->end - t->begin != nbytes)
		{
			st_error(sp->err, sp->errlen,
					 "tensor \"%s\" data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64
					 " bytes, its shape needs %" PRIu64,
					 tensor_names[k], t->begin, t->end, t->end - t->begin, nbytes);
			return -1;
		}
		/* Insertion sort by begin: at most T_COUNT entries. */
		order[n] = k;
		for (int i = n; i > 0 && sp->t[order[i - 1]].begin > t->begin; i--)
		{
			int			tmp = order[i];

			order[i] = order[i - 1];
			order[i - 1] = tmp;
		}
		n++;
	}
	for (int i = 0; i < n; i++)
	{
		const TensorInfo *t = &sp->t[order[i]];

		if (t->begin < at)
		{
			st_error(sp->err, sp->errlen, "tensor \"%s\" overlaps the tensor before it",
					 tensor_names[order[i]]);
			return -1;
		}
		if (t->begin > at)
		{
			st_error(sp->err, sp->errlen, "gap of %" PRIu64 " bytes before tensor \"%s\"",
					 t->begin - at, tensor_names[order[i]]);
			return -1;
		}
		at = t->end;
	}
	if (at > sp->data_len)
	{
		st_error(sp->err, sp->errlen, "tensors need %" PRIu64 " data bytes, the blob has %" PRIu64,
				 at, sp->data_len);
		return -1;
	}
	if (at < sp->data_len)
	{
		st_error(sp->err, sp->errlen, "blob has %" PRIu64 " bytes after the last tensor",
				 sp->data_len - at);
		return -1;
	}
	return 0;
}

static int
verify_checksum(StParse *sp)
{
	uint32_t	crc = st_checksum(sp->data, (size_t) sp->data_len, sp->buf + 8,
								  (size_t) sp->hlen, sp->crc_at);

	if (crc != sp->crc_stored)
	{
		st_error(sp->err, sp->errlen, "checksum mismatch: header says %08" PRIx32
				 ", content gives %08" PRIx32, sp->crc_stored, crc);
		return -1;
	}
	return 0;
}

/*
 * A value beyond this is refused: a row's squared length may reach
 * FLT_MAX / 4 (the distance functions' bound), so no trained model holds a
 * coordinate, a norm level or a squared error above it, while values near
 * FLT_MAX overflowed at once (session 64's hunt, /work/runs/hunt-s64a.md
 * F2: codebooks of -3.4e38 decoded to -Infinity, a neural bias of 3.4e38
 * gave NaN distances, and such models imported).  A bound on the squares'
 * sum (a first version) refused models trained on rows of large scale:
 * rq's norm levels are squared lengths (session 64's second review,
 * /work/runs/review-s64b.md G1).  Values between 1e19 and FLT_MAX / 4 in a
 * coordinate tensor can still overflow a distance; they are not refused.
 */
#define ST_MAX_VALUE	(FLT_MAX / 4)

/* Copies one tensor out of the blob, refusing NaN, infinity and values near FLT_MAX. */
static int
load_floats(StParse *sp, TensorId id, float *dst)
{
	const uint8_t *p = sp->data + sp->t[id].begin;

	for (uint64_t i = 0; i < sp->t[id].nfloats; i++, p += 4)
	{
		uint32_t	bits = get_le32(p);

		memcpy(&dst[i], &bits, 4);
		if (!isfinite(dst[i]))
		{
			st_error(sp->err, sp->errlen, "tensor \"%s\" holds a non-finite value at element %" PRIu64,
					 tensor_names[id], i);
			return -1;
		}
		if (fabsf(dst[i]) > ST_MAX_VALUE)
		{
			st_error(sp->err, sp->errlen, "tensor \"%s\" holds a value too large at element %" PRIu64 ": %g, above %g",
					 tensor_names[id], i, (double) dst[i], (double) ST_MAX_VALUE);
			return -1;
		}
	}
	return 0;
}

/*
 * The 256 levels a row's last code byte picks from, in the first float of
 * each codeword of the last book: kind rq's norm levels under l2 and
 * cosine (rq.h), kind opq's squared errors with an error byte
 * (opq_error.c).  Both must be at least 0 and never falling, as the
 * encoder's search for a row's level assumes (qdb_nearest_level): levels
 * in another order imported and made an index's distances wrong without a
 * word (session 64's hunt, /work/runs/hunt-s64a.md F1: estimate_recall
 * 0.129 for rq; its review's G3 for opq).
 */
static int
check_levels(StParse *sp, const QdbModel *m)
{
	const float *last;
	size_t		stride;
	const char *what;

	if (sp->kind == QDB_KIND_RQ && sp->metric != QDB_METRIC_IP)
	{
		stride = m->dim_pq;
		what = "kind rq: norm level";
	}
	else if (sp->kind == QDB_KIND_OPQ && m->err_byte)
	{
		stride = m->dsub;
		what = "kind opq: error level";
	}
	else
		return 0;
	last = m->codebooks + (size_t) (m->M - 1) * QDB_KSUB * stride;
	for (int k = 0; k < QDB_KSUB; k++)
	{
		float		v = last[(size_t) k * stride];

		if (v < 0 || (k > 0 && v < last[(size_t) (k - 1) * stride]))
		{
			st_error(sp->err, sp->errlen, "%s %d (%g) is %s", what, k, v,
					 v < 0 ? "negative" : "below the level before it");
			return -1;
		}
	}
	return 0;
}

static int
parse_blob(StParse *sp, const QdbAlloc *a, QdbModel *out)
{
	const QdbJsonDoc *doc = &sp->doc;
	char		msg[160];
	int			meta;
	int			rc;

	if (sp->len < 8)
	{
		st_error(sp->err, sp->errlen, "blob of %zu bytes is shorter than the 8-byte header length",
				 sp->len);
		return QDB_ERR_FORMAT;
	}
	sp->hlen = 0;
	for (int k = 7; k >= 0; k--)
		sp->hlen = sp->hlen << 8 | sp->buf[k];
	if (sp->hlen > sp->len - 8)
	{
		st_error(sp->err, sp->errlen, "header length %" PRIu64 " exceeds blob size %zu",
				 sp->hlen, sp->len);
		return QDB_ERR_FORMAT;
	}
	if (sp->hlen > ST_MAX_HEADER)
	{
		st_error(sp->err, sp->errlen, "header length %" PRIu64 " exceeds the limit of %d bytes",
				 sp->hlen, ST_MAX_HEADER);
		return QDB_ERR_FORMAT;
	}
	if (sp->hlen == 0 || sp->hlen % 8 != 0)
	{
		st_error(sp->err, sp->errlen, "header length %" PRIu64 " is not a positive multiple of 8",
				 sp->hlen);
		return QDB_ERR_FORMAT;
	}
	sp->data = sp->buf + 8 + sp->hlen;
	sp->data_len = sp->len - 8 - sp->hlen;

	rc = qdb_json_parse((const char *) sp->buf + 8, (size_t) sp->hlen, ST_MAX_NODES, ST_MAX_DEPTH,
						a, &sp->doc, msg, sizeof(msg));
	if (rc == QDB_ERR_NOMEM)
		return rc;
	if (rc != QDB_OK)
	{
		st_error(sp->err, sp->errlen, "header is not valid JSON: %s", msg);
		return QDB_ERR_FORMAT;
	}
	for (size_t k = doc->end; k < doc->len; k++)
	{
		if (doc->text[k] != ' ')
		{
			st_error(sp->err, sp->errlen, "header padding holds a byte other than a space at offset %zu", k);
			return QDB_ERR_FORMAT;
		}
	}
	if (doc->nodes[0].type != QDB_JSON_OBJECT)
	{
		st_error(sp->err, sp->errlen, "header is not a JSON object");
		return QDB_ERR_FORMAT;
	}
	meta = qdb_json_object_get(doc, 0, "__metadata__");
	if (meta < 0 || doc->nodes[meta].type != QDB_JSON_OBJECT)
	{
		st_error(sp->err, sp->errlen, "header has no __metadata__ object");
		return QDB_ERR_FORMAT;
	}
	rc = check_version(sp, meta);
	if (rc != QDB_OK)
		return rc;
	if (read_metadata(sp, meta) < 0 || read_tensors(sp) < 0 || check_layout(sp) < 0)
		return QDB_ERR_FORMAT;
	if (verify_checksum(sp) < 0)
		return QDB_ERR_CHECKSUM;

	if (sp->kind == QDB_KIND_NEURAL)
		rc = qdb_model_alloc_neural(out, a, (QdbMetric) sp->metric, sp->dim, sp->dim_pq,
									sp->M, sp->hidden);
	else
		rc = qdb_model_alloc_coded(out, a, (QdbKind) sp->kind, (QdbMetric) sp->metric,
								   sp->dim, sp->dim_pq, sp->M, sp->err_byte,
								   sp->t[T_MEAN].present, sp->t[T_LINEAR].present);
	if (rc == QDB_ERR_NOMEM)
	{
		st_error(sp->err, sp->errlen, "out of memory for the model");
		return rc;
	}
	if (rc != QDB_OK)
	{
		/* check_dims should have caught it; the blob is still at fault. */
		st_error(sp->err, sp->errlen, "qdb_model_alloc rejects this shape");
		return QDB_ERR_FORMAT;
	}
	if (load_floats(sp, T_CODEBOOKS, out->codebooks) < 0 ||
		(out->mean && load_floats(sp, T_MEAN, out->mean) < 0) ||
		(out->linear && load_floats(sp, T_LINEAR, out->linear) < 0) ||
		check_levels(sp, out) < 0)
		return QDB_ERR_FORMAT;
	if (sp->kind == QDB_KIND_NEURAL &&
		(load_floats(sp, T_ENC_W1, out->enc_w1) < 0 ||
		 load_floats(sp, T_ENC_B1, out->enc_b1) < 0 ||
		 load_floats(sp, T_ENC_W2, out->enc_w2) < 0 ||
		 load_floats(sp, T_ENC_B2, out->enc_b2) < 0 ||
		 load_floats(sp, T_DEC_W, out->dec_w) < 0 ||
		 load_floats(sp, T_DEC_B, out->dec_b) < 0))
		return QDB_ERR_FORMAT;
	out->config = sp->config;
	out->config.kind = (QdbKind) sp->kind;
	out->config.metric = (QdbMetric) sp->metric;
	out->config.dim = sp->dim;
	out->config.M = sp->M;
	out->config.hidden = sp->hidden;
	out->config.opq_error = sp->err_byte;
	return QDB_OK;
}

int
qdb_model_parse(const uint8_t *buf, size_t len, const QdbAlloc *a,
				QdbModel *out, char *err, size_t errlen)
{
	StParse    *sp;
	int			rc;

	if (err && errlen > 0)
		err[0] = '\0';
	if (out == NULL || (buf == NULL && len > 0))
	{
		st_error(err, errlen, "invalid argument");
		return QDB_ERR_ARG;
	}
	memset(out, 0, sizeof(*out));
	/* About 1 kB of decoded values: off the stack. */
	sp = qdb_calloc(a, 1, sizeof(StParse));
	if (sp == NULL)
	{
		st_error(err, errlen, "out of memory");
		return QDB_ERR_NOMEM;
	}
	sp->buf = buf;
	sp->len = len;
	sp->err = err;
	sp->errlen = errlen;
	rc = parse_blob(sp, a, out);
	if (rc != QDB_OK)
		qdb_model_free(out);
	qdb_json_free(&sp->doc);
	qdb_free(a, sp);
	return rc;
}
