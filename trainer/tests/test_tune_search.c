/*
 * test_tune_search.c
 *	  The auto-tuner's search: proposals inside the space and the same for a
 *	  seed; TPE finds the optimum of a known function faster than random
 *	  search, averaged over seeds; median pruning; bad arguments.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "tune_search.h"

#define SEEDS		100
#define BUDGET		40			/* trials for the best-of comparison */
#define LONG_BUDGET	120			/* most trials to reach TARGET */
#define TARGET		(-1.0)		/* a score within reach of both in LONG_BUDGET */

/* a learning rate, a width, a dropout-like share and one of four kinds */
static const QdbTuneParam space[] = {
	{"lr", QDB_TUNE_LOG, 1e-5, 1e-1, 0},
	{"hidden", QDB_TUNE_INT, 16, 512, 0},
	{"share", QDB_TUNE_FLOAT, 0.0, 1.0, 0},
	{"kind", QDB_TUNE_CHOICE, 0, 0, 4},
};
#define NPARAMS ((int) (sizeof(space) / sizeof(space[0])))

/* best 0 at lr 10^-2.5, hidden 128, share 0.3, kind 2 */
static double
objective(const double *v)
{
	double		a = log10(v[0]) + 2.5,
				b = (v[1] - 128) / 64.0,
				c = (v[2] - 0.3) / 0.2;

	return -(a * a + b * b + c * c) - (v[3] == 2 ? 0.0 : 1.0);
}

/*
 * One run of LONG_BUDGET trials by TPE or by random search alone: the best
 * score of the first BUDGET, how many of those proposed the best choice,
 * and the trial that first reached TARGET (LONG_BUDGET + 1 if none did).
 */
static void
run(uint64_t seed, bool tpe, double *best, int *best_choice, int *reached)
{
	QdbTuneSearch s;
	double		v[NPARAMS];

	*best = -INFINITY;
	*best_choice = 0;
	*reached = LONG_BUDGET + 1;
	qdb_tune_init(&s, space, NPARAMS, seed);
	for (int t = 1; t <= LONG_BUDGET; t++)
	{
		double		score;

		if (tpe)
			qdb_tune_propose(&s, v);
		else
			qdb_tune_random(&s, v);
		score = objective(v);
		qdb_tune_tell(&s, v, score);
		if (t <= BUDGET)
		{
			*best = fmax(*best, score);
			*best_choice += v[3] == 2;
		}
		if (score >= TARGET && *reached > LONG_BUDGET)
			*reached = t;
	}
	qdb_tune_free(&s);
}

static void
test_space(void)
{
	QdbTuneSearch s,
				s2;
	double		v[NPARAMS],
				w[NPARAMS];
	bool		inside = true,
				same = true;

	qdb_tune_init(&s, space, NPARAMS, 7);
	qdb_tune_init(&s2, space, NPARAMS, 7);
	for (int t = 0; t < 60; t++)
	{
		qdb_tune_propose(&s, v);
		qdb_tune_propose(&s2, w);
		same &= memcmp(v, w, sizeof(v)) == 0;
		inside &= v[0] >= 1e-5 && v[0] <= 1e-1 && v[1] >= 16 && v[1] <= 512 &&
			v[1] == floor(v[1]) && v[2] >= 0 && v[2] <= 1 &&
			v[3] >= 0 && v[3] <= 3 && v[3] == floor(v[3]);
		qdb_tune_tell(&s, v, objective(v));
		qdb_tune_tell(&s2, w, objective(w));
	}
	tap_ok(inside, "60 proposals (10 random, 50 TPE) lie in the space, integers integral");
	tap_ok(same, "the same seed gives the same proposals");
	qdb_tune_free(&s);
	qdb_tune_free(&s2);
}

static void
test_tpe_beats_random(void)
{
	double		tpe = 0,
				rnd = 0,
				tpe_t = 0,
				rnd_t = 0;
	int			tpe_wins = 0,
				tpe_choice = 0,
				rnd_choice = 0;

	for (int seed = 1; seed <= SEEDS; seed++)
	{
		double		a,
					b;
		int			ca,
					cb,
					ta,
					tb;

		run(seed, true, &a, &ca, &ta);
		run(seed + 1000, false, &b, &cb, &tb);
		tpe += a / SEEDS;
		rnd += b / SEEDS;
		tpe_t += (double) ta / SEEDS;
		rnd_t += (double) tb / SEEDS;
		tpe_wins += a > b;
		tpe_choice += ca;
		rnd_choice += cb;
	}
	tap_diag("over %d seeds: trials to reach %.1f: TPE %.1f, random %.1f; best of %d: "
			 "TPE %.3f, random %.3f, TPE better in %d; best choice proposed %d / %d times",
			 SEEDS, TARGET, tpe_t, rnd_t, BUDGET, tpe, rnd, tpe_wins, tpe_choice, rnd_choice);
	tap_ok(tpe_t < rnd_t, "TPE reaches %.1f in %.1f trials on average, random search in %.1f",
		   TARGET, tpe_t, rnd_t);
	tap_ok(-tpe < 0.75 * -rnd, "after %d trials TPE's mean regret %.3f is under 3/4 of random search's %.3f",
		   BUDGET, -tpe, -rnd);
	tap_ok(tpe_wins > SEEDS / 2, "TPE finds the better best in %d of %d seeds",
		   tpe_wins, SEEDS);
	tap_ok(tpe_choice > rnd_choice, "TPE proposes the best choice more often than random search (%d, %d)",
		   tpe_choice, rnd_choice);
}

static void
test_prune(void)
{
	double		others[] = {0.5, 0.9, 0.7, 0.6, 0.8};

	tap_ok(qdb_tune_prune(others, 5, 0.65, 5), "below the median of 5: pruned");
	tap_ok(!qdb_tune_prune(others, 5, 0.75, 5), "above the median: kept");
	tap_ok(!qdb_tune_prune(others, 5, 0.7, 5), "at the median: kept");
	tap_ok(!qdb_tune_prune(others, 4, 0.1, 5), "fewer finished trials than asked: kept");
	tap_ok(qdb_tune_prune(others, 4, 0.64, 4), "median of an even count (0.65)");
}

static void
test_arguments(void)
{
	QdbTuneSearch s;
	QdbTuneParam bad_log = {"x", QDB_TUNE_LOG, 0.0, 1.0, 0};
	QdbTuneParam bad_range = {"x", QDB_TUNE_FLOAT, 2.0, 1.0, 0};
	QdbTuneParam bad_choice = {"x", QDB_TUNE_CHOICE, 0, 0, 0};
	double		v[NPARAMS] = {1e-3, 64, 0.5, 1};

	tap_ok(qdb_tune_init(&s, &bad_log, 1, 1) == QDB_ERR_ARG, "log scale from 0: QDB_ERR_ARG");
	tap_ok(qdb_tune_init(&s, &bad_range, 1, 1) == QDB_ERR_ARG, "lo above hi: QDB_ERR_ARG");
	tap_ok(qdb_tune_init(&s, &bad_choice, 1, 1) == QDB_ERR_ARG, "no choices: QDB_ERR_ARG");
	tap_ok(qdb_tune_init(&s, space, 0, 1) == QDB_ERR_ARG, "no parameters: QDB_ERR_ARG");
	qdb_tune_init(&s, space, NPARAMS, 1);
	tap_ok(qdb_tune_tell(&s, v, NAN) == QDB_ERR_ARG && s.ntrials == 0,
		   "a NaN score: QDB_ERR_ARG, nothing recorded");
	{
		double		outside[][NPARAMS] = {
			{0.0, 64, 0.5, 1},	/* log scale at 0 */
			{1e-3, 64.5, 0.5, 1},	/* an integer's fraction */
			{1e-3, 600, 0.5, 1},	/* above hi */
			{1e-3, 64, NAN, 1},	/* NaN */
			{1e-3, 64, 0.5, 4},	/* no such choice */
			{1e-3, 64, 0.5, 1e300},
		};
		bool		refused = true;

		for (int i = 0; i < (int) (sizeof(outside) / sizeof(outside[0])); i++)
			refused &= qdb_tune_tell(&s, outside[i], 0.0) == QDB_ERR_ARG;
		tap_ok(refused && s.ntrials == 0, "values outside the space: QDB_ERR_ARG, nothing recorded");
	}
	{
		QdbTuneSearch s3;
		QdbTuneParam frac_int = {"x", QDB_TUNE_INT, 0.5, 2.5, 0};
		QdbTuneParam inf_float = {"x", QDB_TUNE_FLOAT, -INFINITY, 1.0, 0};

		tap_ok(qdb_tune_init(&s3, &frac_int, 1, 1) == QDB_ERR_ARG &&
			   qdb_tune_init(&s3, &inf_float, 1, 1) == QDB_ERR_ARG,
			   "integer bounds with a fraction, infinite bounds: QDB_ERR_ARG");
	}
	qdb_tune_free(&s);
}

int
main(void)
{
	test_space();
	test_tpe_beats_random();
	test_prune();
	test_arguments();
	return tap_done();
}
