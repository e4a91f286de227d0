/*
 * tune_search.h
 *	  The auto-tuner's search over settings (tune_search.c): random
 *	  proposals, a tree-structured Parzen estimator (TPE) once enough trials
 *	  have finished, and median pruning.  Plain C, no Postgres; the SQL side
 *	  (not built yet) runs the trials and reports their scores.
 */
#ifndef QDB_TUNE_SEARCH_H
#define QDB_TUNE_SEARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "qdb_internal.h"

typedef enum QdbTuneKind
{
	QDB_TUNE_FLOAT,				/* uniform in [lo, hi] */
	QDB_TUNE_LOG,				/* log-uniform in [lo, hi], 0 < lo */
	QDB_TUNE_INT,				/* an integer in [lo, hi] */
	QDB_TUNE_CHOICE				/* one of 0 .. nchoices - 1, unordered */
} QdbTuneKind;

typedef struct QdbTuneParam
{
	const char *name;
	QdbTuneKind kind;
	double		lo,
				hi;
	int			nchoices;
} QdbTuneParam;

typedef struct QdbTuneSearch
{
	const QdbTuneParam *space;
	int			nparams;
	QdbRng		rng;
	int			n_startup;		/* finished trials before TPE proposes (10) */
	int			n_candidates;	/* TPE: draws from l(x) per parameter (24) */
	double		gamma;			/* TPE: share of trials called good (0.25) */
	int			ntrials;		/* finished (told) trials */
	int			cap;
	double	   *values;			/* ntrials x nparams, as proposed */
	double	   *scores;			/* higher is better */
} QdbTuneSearch;

extern QdbStatus qdb_tune_init(QdbTuneSearch *s, const QdbTuneParam *space,
							   int nparams, uint64_t seed);
extern void qdb_tune_free(QdbTuneSearch *s);
extern void qdb_tune_random(QdbTuneSearch *s, double *values);
extern void qdb_tune_propose(QdbTuneSearch *s, double *values);
extern QdbStatus qdb_tune_tell(QdbTuneSearch *s, const double *values, double score);
extern bool qdb_tune_prune(const double *others, int nothers, double value,
						   int min_others);

#endif							/* QDB_TUNE_SEARCH_H */
