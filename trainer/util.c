/*
 * util.c
 *	  Small shared pieces of the trainer core: status and enum names, the
 *	  default allocator, the random number generator, the clock and the
 *	  normalisation of a row for cosine.
 */
#include <math.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "qdb_internal.h"

const char *
qdb_status_string(int status)
{
	switch (status)
	{
		case QDB_OK:
			return "success";
		case QDB_ERR_ARG:
			return "invalid argument";
		case QDB_ERR_NOMEM:
			return "out of memory";
		case QDB_ERR_DATA:
			return "unusable training data";
		case QDB_ERR_FORMAT:
			return "malformed model";
		case QDB_ERR_CHECKSUM:
			return "model checksum mismatch";
		case QDB_ERR_VERSION:
			return "unknown model version";
		case QDB_ERR_LAPACK:
			return "LAPACK routine failed";
		case QDB_ERR_CANCELLED:
			return "cancelled";
		case QDB_ERR_NO_DEVICE:
			return "device not present";
		case QDB_ERR_DEVICE:
			return "device failure";
		case QDB_ERR_UNSUPPORTED:
			return "not supported by this build";
	}
	return "unknown status";
}

static const char *const kind_names[] = {NULL, "pq", "opq", "neural", "rq"};
static const char *const metric_names[] = {NULL, "l2", "ip", "cosine"};

const char *
qdb_kind_name(int kind)
{
	if (kind < QDB_KIND_PQ || kind > QDB_KIND_LAST)
		return "unknown";
	return kind_names[kind];
}

int
qdb_kind_parse(const char *s, QdbKind *out)
{
	int			i;

	if (s == NULL || out == NULL)
		return QDB_ERR_ARG;
	for (i = QDB_KIND_PQ; i <= QDB_KIND_LAST; i++)
	{
		if (strcasecmp(s, kind_names[i]) == 0)
		{
			*out = (QdbKind) i;
			return QDB_OK;
		}
	}
	return QDB_ERR_ARG;
}

const char *
qdb_metric_name(int metric)
{
	if (metric < QDB_METRIC_L2 || metric > QDB_METRIC_COSINE)
		return "unknown";
	return metric_names[metric];
}

int
qdb_metric_parse(const char *s, QdbMetric *out)
{
	int			i;

	if (s == NULL || out == NULL)
		return QDB_ERR_ARG;
	for (i = QDB_METRIC_L2; i <= QDB_METRIC_COSINE; i++)
	{
		if (strcasecmp(s, metric_names[i]) == 0)
		{
			*out = (QdbMetric) i;
			return QDB_OK;
		}
	}
	return QDB_ERR_ARG;
}

static void *
default_alloc(size_t size, void *st)
{
	return malloc(size);
}

static void
default_free(void *p, void *st)
{
	free(p);
}

const QdbAlloc qdb_default_alloc = {default_alloc, default_free, NULL};

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

void
qdb_rng_seed(QdbRng *r, uint64_t seed)
{
	uint64_t	x = seed;
	int			i;

	for (i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
qdb_rng_next(QdbRng *r)
{
	uint64_t   *s = r->s;
	uint64_t	result = rotl(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double
qdb_rng_uniform(QdbRng *r)
{
	/* top 53 bits: every double in [0, 1) on the 2^-53 grid */
	return (double) (qdb_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double
qdb_rng_gaussian(QdbRng *r)
{
	/* Box-Muller; 1 - u keeps the logarithm's argument in (0, 1] */
	double		u = 1.0 - qdb_rng_uniform(r);
	double		v = qdb_rng_uniform(r);

	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

uint64_t
qdb_rng_below(QdbRng *r, uint64_t n)
{
	uint64_t	threshold;
	uint64_t	x;

	if (n == 0)
		return 0;
	/* reject the low values that would make x % n favour small results */
	threshold = (0 - n) % n;
	do
		x = qdb_rng_next(r);
	while (x < threshold);
	return x % n;
}

double
qdb_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/*
 * x (d floats) scaled to unit length into out (which may be x): the
 * squared norm summed in double, so that a finite row of any float
 * magnitude gives its direction (elements of 1e19 square past a float's
 * range, of 1e-30 below it; in double the square of any float lies between
 * 1e-90 and 1.2e77).  The row is multiplied by the reciprocal norm as a
 * float, as training and encoding always did (the same rows give the same
 * model as before), unless that reciprocal is past a float's range (a
 * norm under 3e-39: denormal elements), when each element is divided in
 * double.  QDB_ERR_DATA for a zero or non-finite row.
 */
int
qdb_normalize(const float *x, int d, float *out)
{
	double		ss = 0;
	float		inv;

	for (int j = 0; j < d; j++)
		ss += (double) x[j] * x[j];
	if (!(ss > 0) || !isfinite(ss))
		return QDB_ERR_DATA;
	inv = (float) (1.0 / sqrt(ss));
	if (isfinite(inv))
		for (int j = 0; j < d; j++)
			out[j] = x[j] * inv;
	else
	{
		double		nrm = sqrt(ss);

		for (int j = 0; j < d; j++)
			out[j] = (float) ((double) x[j] / nrm);
	}
	return QDB_OK;
}

/*
 * The level nearest to v among 256 ascending ones (kind rq's norm byte,
 * kind opq's error byte); on an exact tie the upper.
 */
uint8_t
qdb_nearest_level(const float *levels, float v)
{
	int			lo = 0,
				hi = QDB_KSUB - 1;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (levels[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0 && v - levels[lo - 1] < levels[lo] - v)
		lo--;
	return (uint8_t) lo;
}

/* qsort's comparison of two floats, ascending */
int
qdb_float_cmp(const void *a, const void *b)
{
	float		x = *(const float *) a,
				y = *(const float *) b;

	return x < y ? -1 : x > y;
}
