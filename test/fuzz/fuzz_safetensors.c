/*
 * fuzz_safetensors.c
 *	  libFuzzer target for qdb_model_parse: any input must be rejected or
 *	  accepted without a crash, an out-of-bounds read, a leak or undefined
 *	  behaviour.
 *
 * Random bytes almost never carry a valid CRC-32C, which would hide
 * everything after the checksum test from the fuzzer.  So each input is
 * parsed twice: as it is, and (when its header has a checksum field) with
 * the checksum recomputed, as the format defines it, so that mutations of
 * the header and data reach the shape, layout and float checks too.
 *
 * Invariants checked (abort on violation, which libFuzzer reports):
 * a failure leaves the model zeroed and says why in err; a success
 * serializes again and parses back to the same model.
 */
#define _GNU_SOURCE				/* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "qdb_trainer.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_same(const QdbModel *a, const QdbModel *b)
{
	size_t		ncb = (size_t) a->M * a->ksub * a->dsub;

	if (a->kind != b->kind || a->metric != b->metric || a->dim != b->dim ||
		a->dim_pq != b->dim_pq || a->M != b->M || a->ksub != b->ksub || a->dsub != b->dsub ||
		memcmp(a->codebooks, b->codebooks, ncb * sizeof(float)) != 0 ||
		(a->mean == NULL) != (b->mean == NULL) || (a->linear == NULL) != (b->linear == NULL) ||
		(a->mean && memcmp(a->mean, b->mean, (size_t) a->dim * sizeof(float)) != 0) ||
		(a->linear && memcmp(a->linear, b->linear, (size_t) a->dim * a->dim_pq * sizeof(float)) != 0))
		abort();
	if (a->config.kind != b->config.kind || a->config.metric != b->config.metric ||
		a->config.dim != b->config.dim || a->config.M != b->config.M ||
		a->config.dim_pq != b->config.dim_pq ||
		a->config.kmeans_iters != b->config.kmeans_iters ||
		a->config.opq_iters != b->config.opq_iters ||
		a->config.opq_pq_iters != b->config.opq_pq_iters ||
		a->config.max_points_per_centroid != b->config.max_points_per_centroid ||
		a->config.seed != b->config.seed)
		abort();
}

static void
parse_one(const uint8_t *data, size_t size)
{
	QdbModel	m,
				back;
	char		err[256];
	uint8_t    *blob = NULL;
	size_t		len = 0;
	int			rc;

	memset(err, 'x', sizeof(err));
	rc = qdb_model_parse(data, size, NULL, &m, err, sizeof(err));
	if (memchr(err, '\0', sizeof(err)) == NULL)
		abort();				/* err must always be terminated */
	if (rc != QDB_OK)
	{
		if (err[0] == '\0' || m.codebooks || m.mean || m.linear)
			abort();
		return;
	}
	/* Accepted: it must survive a round trip unchanged. */
	if (qdb_model_serialize(&m, NULL, &blob, &len) != QDB_OK)
		abort();
	if (qdb_model_parse(blob, len, NULL, &back, err, sizeof(err)) != QDB_OK)
		abort();
	check_same(&m, &back);
	qdb_model_free(&back);
	qdb_model_free(&m);
	qdb_default_alloc.free(blob, qdb_default_alloc.st);
}

/* Recomputes the checksum of a copy; returns NULL when there is none to fix. */
static uint8_t *
fix_checksum(const uint8_t *data, size_t size)
{
	static const char field[] = "\"checksum\":\"crc32c:";
	size_t		flen = sizeof(field) - 1;
	uint64_t	hlen = 0;
	uint8_t    *copy;
	uint8_t    *h;
	size_t		at;
	uint32_t	crc;

	if (size < 8)
		return NULL;
	for (int k = 7; k >= 0; k--)
		hlen = hlen << 8 | data[k];
	if (hlen > size - 8 || hlen < flen + 8)
		return NULL;
	h = (uint8_t *) memmem(data + 8, hlen, field, flen);
	if (h == NULL)
		return NULL;
	at = (size_t) (h - (data + 8)) + flen;
	if (at + 8 > hlen)
		return NULL;
	copy = malloc(size);
	memcpy(copy, data, size);
	h = copy + 8;
	memset(h + at, '0', 8);
	crc = qdb_crc32c_update(0, h + hlen, size - 8 - hlen);
	crc = qdb_crc32c_update(crc, h, hlen);
	for (int k = 7; k >= 0; k--, crc >>= 4)
		h[at + k] = "0123456789abcdef"[crc & 15];
	return copy;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t    *fixed;

	parse_one(data, size);
	fixed = fix_checksum(data, size);
	if (fixed)
	{
		parse_one(fixed, size);
		free(fixed);
	}
	return 0;
}
