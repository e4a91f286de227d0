/*
 * test_autotune_work.c
 *	  Unit tests of the auto-tuner's work estimate (src/autotune_work.c):
 *	  a later stage's trial against a finished one, by k-means iterations,
 *	  epochs or OPQ alternations, and for kind opq by the alternations its
 *	  trials ran when every one of them stalled.  TAP output.
 */
#include "postgres.h"

#include <math.h>

#include "autotune_work.h"
#include "../../trainer/tests/tap.h"

/* the auto-tuner's stages */
#define s1 QdbTuneStages[0]
#define s2 QdbTuneStages[1]
#define s3 QdbTuneStages[2]

static bool
near(double a, double b)
{
	return fabs(a - b) < 1e-9;
}

int
main(void)
{
	QdbTuneRan	unknown = {-1, false};
	QdbTuneRan	all_ran = {10, false};
	QdbTuneRan	stalled = {15.5, true};
	QdbTuneRan	some_stalled = {20, false};
	QdbTuneRan	stalled_late = {40, true};

	tap_ok(near(QdbTuneWorkRatio(QDB_KIND_PQ, &s3, &s2, &stalled), 25.0 / 15),
		   "pq: k-means iterations, whatever the alternations");
	tap_ok(near(QdbTuneWorkRatio(QDB_KIND_RQ, &s2, &s1, NULL), 1.5),
		   "rq: k-means iterations");
	tap_ok(near(QdbTuneWorkRatio(QDB_KIND_NEURAL, &s3, &s2, &stalled), 2.5),
		   "neural: epochs (10 / 4) above alternations (50 / 25)");
	tap_ok(near(QdbTuneWorkRatio(QDB_KIND_OPQ, &s3, &s2, NULL), 2.0),
		   "opq, nothing known: the stages' alternations");
	tap_ok(near(QdbTuneWorkRatio(QDB_KIND_OPQ, &s3, &s2, &unknown), 2.0),
		   "opq, alternations not known: the stages'");
	tap_ok(near(QdbTuneWorkRatio(QDB_KIND_OPQ, &s2, &s1, &all_ran), 2.5),
		   "opq, all 10 run: 25 / 10");
	tap_ok(near(QdbTuneWorkRatio(QDB_KIND_OPQ, &s3, &s2, &all_ran), 2.0),
		   "opq, none stalled: the stages' alternations");
	tap_ok(near(QdbTuneWorkRatio(QDB_KIND_OPQ, &s3, &s2, &stalled), 1.0),
		   "opq, every trial stalled after 15.5: as many at 50 (it was 2)");
	tap_ok(near(QdbTuneWorkRatio(QDB_KIND_OPQ, &s3, &s2, &some_stalled), 2.0),
		   "opq, not every trial stalled: the stages' alternations (not 50 / 20)");
	tap_ok(near(QdbTuneWorkRatio(QDB_KIND_OPQ, &s2, &s2, &stalled), 1.0),
		   "opq, the same stage: 1");
	tap_ok(near(QdbTuneWorkRatio(QDB_KIND_OPQ, &s2, &s3, &stalled_late), 25.0 / 40),
		   "opq, at most the later stage's alternations");
	tap_ok(near(QdbTuneWorkRatio(QDB_KIND_OPQ, &s2, &s2, &some_stalled), 1.0),
		   "opq, the same stage, not every trial stalled: 1");
	tap_ok(s1.opq_iters == 10 && s2.opq_iters == 25 && s3.opq_iters == 50,
		   "the stages' alternations: 10, 25, 50");
	tap_ok(QdbTuneStalled(&s2, 15) && QdbTuneStalled(&s2, 20) && !QdbTuneStalled(&s2, 21) &&
		   !QdbTuneStalled(&s2, 25) && !QdbTuneStalled(&s2, -1) && !QdbTuneStalled(&s2, 0),
		   "stalled: stopped at or before 20 of stage 2's 25");
	tap_ok(QdbTuneStalled(&s3, 40) && !QdbTuneStalled(&s3, 41),
		   "stalled: stopped at or before 40 of stage 3's 50");
	return tap_done();
}
