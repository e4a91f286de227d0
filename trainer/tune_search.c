/*
 * tune_search.c
 *	  The auto-tuner's search: which settings to try next, and whether a
 *	  running trial should stop early.
 *
 * Proposals are random until n_startup trials have finished; then a
 * tree-structured Parzen estimator (Bergstra et al., "Algorithms for
 * Hyper-Parameter Optimization", 2011; the independent sampler of Optuna's
 * TPESampler) proposes each parameter on its own:
 *	- the finished trials are split by score: the best gamma share (at least
 *	  one, at most 25) are "good", the rest "bad";
 *	- a numeric parameter, mapped to [0, 1] (log scale for QDB_TUNE_LOG, the
 *	  integers as equal cells), gets two densities: l(x), a mixture of
 *	  Gaussians truncated to [0, 1] around the good trials' values plus a
 *	  wide prior around 0.5, and g(x) the same over the bad trials; each
 *	  component's width is the larger gap to its sorted neighbours (the
 *	  bounds included), at least 1 / min(100, points + 1), as in Hyperopt's
 *	  adaptive Parzen estimator;
 *	- a choice gets l and g from its counts among good and bad trials, plus
 *	  one for every choice (the prior);
 *	- n_candidates values are drawn from l, and the one with the largest
 *	  l(x) / g(x) is proposed.
 * Median pruning: a trial whose intermediate score is below the median of
 * what the finished trials had at the same step stops.
 *
 * Everything is deterministic for a seed.  Higher scores are better.
 * Choices are proposed independently of the other parameters: TPE tends
 * to stay with the choice that led early (a known trait of independent
 * TPE); the SQL driver's random first stage is what explores them.
 */
#include <math.h>
#include <stdlib.h>

#include "tune_search.h"

#define TPE_MAX_GOOD		25
#define TUNE_MIN(a, b)		((a) < (b) ? (a) : (b))
#define TUNE_MAX(a, b)		((a) > (b) ? (a) : (b))
#define TPE_PRIOR_WIDTH		1.0

QdbStatus
qdb_tune_init(QdbTuneSearch *s, const QdbTuneParam *space, int nparams, uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	if (space == NULL || nparams <= 0)
		return QDB_ERR_ARG;
	for (int p = 0; p < nparams; p++)
	{
		const QdbTuneParam *q = &space[p];

		if (q->kind == QDB_TUNE_CHOICE ? q->nchoices < 1 :
			!isfinite(q->lo) || !isfinite(q->hi) || !(q->lo <= q->hi) ||
			(q->kind == QDB_TUNE_LOG && !(q->lo > 0)) ||
			(q->kind == QDB_TUNE_INT && (q->lo != floor(q->lo) || q->hi != floor(q->hi))))
			return QDB_ERR_ARG;
	}
	s->space = space;
	s->nparams = nparams;
	s->n_startup = 10;
	s->n_candidates = 24;
	s->gamma = 0.25;
	qdb_rng_seed(&s->rng, seed);
	return QDB_OK;
}

void
qdb_tune_free(QdbTuneSearch *s)
{
	free(s->values);
	free(s->scores);
	s->values = s->scores = NULL;
	s->ntrials = s->cap = 0;
}

/* A value of parameter q at x in [0, 1], and back */
static double
from_unit(const QdbTuneParam *q, double x)
{
	double		v;

	x = fmin(fmax(x, 0.0), 1.0);
	switch (q->kind)
	{
		case QDB_TUNE_LOG:
			v = exp(log(q->lo) + x * (log(q->hi) - log(q->lo)));
			return fmin(fmax(v, q->lo), q->hi);
		case QDB_TUNE_INT:
			v = floor(q->lo + x * (q->hi - q->lo + 1));
			return fmin(v, q->hi);
		case QDB_TUNE_CHOICE:
			v = floor(x * q->nchoices);
			return fmin(v, q->nchoices - 1);
		default:
			return q->lo + x * (q->hi - q->lo);
	}
}

static double
to_unit(const QdbTuneParam *q, double v)
{
	if (q->hi == q->lo && q->kind != QDB_TUNE_INT)
		return 0.5;
	switch (q->kind)
	{
		case QDB_TUNE_LOG:
			return (log(v) - log(q->lo)) / (log(q->hi) - log(q->lo));
		case QDB_TUNE_INT:
			return (v - q->lo + 0.5) / (q->hi - q->lo + 1);
		default:
			return (v - q->lo) / (q->hi - q->lo);
	}
}

void
qdb_tune_random(QdbTuneSearch *s, double *values)
{
	for (int p = 0; p < s->nparams; p++)
		values[p] = from_unit(&s->space[p], qdb_rng_uniform(&s->rng));
}

/* One Parzen mixture on [0, 1]: means, widths, and the prior as the last */
typedef struct Parzen
{
	int			n;				/* components, the prior included */
	double	   *mu;
	double	   *sigma;
} Parzen;

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* pts: m unit values (sorted here); the mixture uses buf (2 (m + 1) doubles) */
static Parzen
parzen_build(double *pts, int m, double *buf)
{
	Parzen		pz;

	/* Hyperopt's and Optuna's floor: no collapse onto a few close points */
	double		min_width = 1.0 / (m + 1 < 100 ? m + 1 : 100);

	qsort(pts, m, sizeof(double), cmp_double);
	pz.n = m + 1;
	pz.mu = buf;
	pz.sigma = buf + m + 1;
	for (int i = 0; i < m; i++)
	{
		double		left = pts[i] - (i > 0 ? pts[i - 1] : 0.0);
		double		right = (i + 1 < m ? pts[i + 1] : 1.0) - pts[i];

		pz.mu[i] = pts[i];
		pz.sigma[i] = fmin(fmax(fmax(left, right), min_width), 1.0);
	}
	pz.mu[m] = 0.5;
	pz.sigma[m] = TPE_PRIOR_WIDTH;
	return pz;
}

static double
normal_cdf(double z)
{
	return 0.5 * (1.0 + erf(z / sqrt(2.0)));
}

/* The mixture's density at x, each component truncated to [0, 1] */
static double
parzen_density(const Parzen *pz, double x)
{
	double		d = 0;

	for (int i = 0; i < pz->n; i++)
	{
		double		z = (x - pz->mu[i]) / pz->sigma[i];
		double		mass = normal_cdf((1.0 - pz->mu[i]) / pz->sigma[i]) -
			normal_cdf(-pz->mu[i] / pz->sigma[i]);

		d += exp(-0.5 * z * z) / (pz->sigma[i] * sqrt(2 * M_PI) * fmax(mass, 1e-12));
	}
	return d / pz->n;
}

static double
parzen_draw(const Parzen *pz, QdbRng *rng)
{
	int			i = (int) qdb_rng_below(rng, (uint64_t) pz->n);

	for (int tries = 0; tries < 64; tries++)
	{
		double		x = pz->mu[i] + pz->sigma[i] * qdb_rng_gaussian(rng);

		if (x >= 0.0 && x <= 1.0)
			return x;
	}
	return fmin(fmax(pz->mu[i], 0.0), 1.0);
}

/* Trial indices sorted best first (earlier first among equal scores) */
static void
sort_trials(const double *scores, int *order, int n)
{
	for (int t = 0; t < n; t++)
	{
		int			i = t;

		while (i > 0 && scores[order[i - 1]] < scores[t])
		{
			order[i] = order[i - 1];
			i--;
		}
		order[i] = t;
	}
}

static double
propose_choice(QdbTuneSearch *s, int p, const int *order, int ngood)
{
	const QdbTuneParam *q = &s->space[p];
	int			k = q->nchoices;
	double	   *lw = calloc(2 * (size_t) k, sizeof(double));
	double	   *gw;
	double		best = 0,
				best_ratio = -1,
				lsum = 0,
				gsum = 0;

	if (lw == NULL)
		return from_unit(q, qdb_rng_uniform(&s->rng));
	gw = lw + k;
	for (int c = 0; c < k; c++)
		lw[c] = gw[c] = 1.0;
	for (int t = 0; t < s->ntrials; t++)
	{
		int			c = (int) s->values[(size_t) order[t] * s->nparams + p];

		if (c >= 0 && c < k)
			(t < ngood ? lw : gw)[c] += 1.0;
	}
	for (int c = 0; c < k; c++)
	{
		lsum += lw[c];
		gsum += gw[c];
	}
	for (int j = 0; j < s->n_candidates; j++)
	{
		/* draw from l: the choice whose cumulative weight passes u */
		double		u = qdb_rng_uniform(&s->rng) * lsum,
					ratio;
		int			c = 0;

		while (c < k - 1 && u >= lw[c])
			u -= lw[c++];
		ratio = (lw[c] / lsum) / (gw[c] / gsum);
		if (ratio > best_ratio)
		{
			best_ratio = ratio;
			best = c;
		}
	}
	free(lw);
	return best;
}

static double
propose_numeric(QdbTuneSearch *s, int p, const int *order, int ngood)
{
	const QdbTuneParam *q = &s->space[p];
	int			n = s->ntrials,
				nbad = n - ngood;
	double	   *buf = malloc(sizeof(double) * (3 * (size_t) n + 4));
	Parzen		l,
				g;
	double		best = 0.5,
				best_score = -INFINITY;

	if (buf == NULL)
		return from_unit(q, qdb_rng_uniform(&s->rng));
	/* buf: the n unit values (good first), then the two mixtures */
	for (int t = 0; t < n; t++)
		buf[t] = to_unit(q, s->values[(size_t) order[t] * s->nparams + p]);
	l = parzen_build(buf, ngood, buf + n);
	g = parzen_build(buf + ngood, nbad, buf + n + 2 * (ngood + 1));
	for (int j = 0; j < s->n_candidates; j++)
	{
		double		x = parzen_draw(&l, &s->rng);
		double		score = log(parzen_density(&l, x)) - log(parzen_density(&g, x));

		if (score > best_score)
		{
			best_score = score;
			best = x;
		}
	}
	free(buf);
	return from_unit(q, best);
}

/*
 * The next settings to try: random until n_startup trials have finished,
 * then TPE.
 */
void
qdb_tune_propose(QdbTuneSearch *s, double *values)
{
	int		   *order;
	int			ngood;

	if (s->ntrials < TUNE_MAX(s->n_startup, 2) ||
		(order = malloc(sizeof(int) * (size_t) s->ntrials)) == NULL)
	{
		qdb_tune_random(s, values);
		return;
	}
	sort_trials(s->scores, order, s->ntrials);
	ngood = isfinite(s->gamma) && s->gamma > 0 && s->gamma < 1 ?
		(int) ceil(s->gamma * s->ntrials) : 1;
	ngood = TUNE_MIN(TUNE_MAX(ngood, 1), TUNE_MIN(TPE_MAX_GOOD, s->ntrials - 1));
	for (int p = 0; p < s->nparams; p++)
		values[p] = s->space[p].kind == QDB_TUNE_CHOICE ?
			propose_choice(s, p, order, ngood) :
			propose_numeric(s, p, order, ngood);
	free(order);
}

/* A value the space can hold for parameter q */
static bool
in_space(const QdbTuneParam *q, double v)
{
	if (!isfinite(v))
		return false;
	if (q->kind == QDB_TUNE_CHOICE)
		return v >= 0 && v < q->nchoices && v == floor(v);
	return v >= q->lo && v <= q->hi && (q->kind != QDB_TUNE_INT || v == floor(v));
}

/*
 * Records a finished trial (a pruned one with its last score, if at all);
 * QDB_ERR_ARG for a NaN score or a value outside the space.
 */
QdbStatus
qdb_tune_tell(QdbTuneSearch *s, const double *values, double score)
{
	if (values == NULL || isnan(score) || s->space == NULL)
		return QDB_ERR_ARG;
	for (int p = 0; p < s->nparams; p++)
		if (!in_space(&s->space[p], values[p]))
			return QDB_ERR_ARG;
	if (s->ntrials == s->cap)
	{
		int			cap = s->cap ? 2 * s->cap : 32;
		double	   *v = realloc(s->values, sizeof(double) * (size_t) cap * s->nparams);
		double	   *sc;

		if (v == NULL)
			return QDB_ERR_NOMEM;
		s->values = v;
		sc = realloc(s->scores, sizeof(double) * (size_t) cap);
		if (sc == NULL)
			return QDB_ERR_NOMEM;
		s->scores = sc;
		s->cap = cap;
	}
	memcpy(s->values + (size_t) s->ntrials * s->nparams, values,
		   sizeof(double) * s->nparams);
	s->scores[s->ntrials++] = score;
	return QDB_OK;
}

/*
 * Median pruning: true when value, a running trial's score at some step,
 * is below the median of others (the finished trials' scores at the same
 * step) and at least min_others of them exist.
 */
bool
qdb_tune_prune(const double *others, int nothers, double value, int min_others)
{
	double	   *sorted;
	double		median;

	if (nothers < TUNE_MAX(min_others, 1) || others == NULL)
		return false;
	sorted = malloc(sizeof(double) * (size_t) nothers);
	if (sorted == NULL)
		return false;
	memcpy(sorted, others, sizeof(double) * (size_t) nothers);
	qsort(sorted, nothers, sizeof(double), cmp_double);
	median = nothers % 2 ? sorted[nothers / 2] :
		0.5 * (sorted[nothers / 2 - 1] + sorted[nothers / 2]);
	free(sorted);
	return value < median;
}
