/*
 * scan_settings.c
 *	  The ef_search and rerank a scan uses, and quantumdb.scan_settings(index)
 *	  that tells a user which and why.
 *
 * Without quantumdb.target_recall (0, the default) a scan uses the session's
 * quantumdb.ef_search and quantumdb.rerank.  With it, the index's
 * calibration (calibration.h) gives the pair of least measured time among
 * those that reached the target, or, when none did, the pair of highest
 * recall.  quantumdb.max_latency (ms) bounds the calibrated scan time: of
 * the pairs within it, the target's choice, or the highest recall (the
 * fastest pair when none is within it).  ef_search and rerank still win
 * when either was set at the same level as target_recall (or max_latency,
 * the more specific of the two) or a more specific one (GucSource order: the
 * configuration file, ALTER DATABASE, ALTER ROLE, the client, SET), so a
 * SET quantumdb.rerank in a session overrides a target set in
 * postgresql.conf, and a target SET in the session overrides an ef_search
 * from postgresql.conf.  An index without a calibration uses the session's
 * pair, with a WARNING once per backend and index.
 */
#include "postgres.h"

#include <math.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "calibration.h"
#include "index.h"

PG_FUNCTION_INFO_V1(quantumdb_scan_settings);

double		qdb_target_recall = 0;
double		qdb_max_latency = 0;

static struct config_generic *ef_search_guc;
static struct config_generic *rerank_guc;
static struct config_generic *target_guc;
static struct config_generic *latency_guc;

/* the calibration's own measurement: these settings, in strict order, whatever the session's */
static int	override_ef_search;
static int	override_rerank;
/* and a node of one index that its walks go around (the query row) */
static Oid	override_hidden_index = InvalidOid;
static QdbNodeRef override_hidden = QDB_NO_NODE;

/* indexes warned about having no calibration (the latest few) */
#define WARNED_MAX 16
static Oid	warned[WARNED_MAX];
static int	nwarned;

/* true the first time index is asked about (of the latest WARNED_MAX) */
static bool
first_warning(Oid index)
{
	for (int i = 0; i < Min(nwarned, WARNED_MAX); i++)
		if (warned[i] == index)
			return false;
	warned[nwarned++ % WARNED_MAX] = index;
	return true;
}

static struct config_generic *
find_guc(const char *name)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	for (int i = 0; i < n; i++)
		if (strcmp(vars[i]->name, name) == 0)
			return vars[i];
	elog(ERROR, "setting \"%s\" is not defined", name);
	return NULL;
}

/* Called from QdbIndexInit once ef_search and rerank are defined. */
void
QdbScanSettingsInit(void)
{
	DefineCustomRealVariable("quantumdb.target_recall",
							 "10-recall@10 (k-recall@k of the calibration) scans choose ef_search and rerank for; 0: off.",
							 "Uses the index's calibration (quantumdb.calibrate); ef_search and rerank set at the same level or a more specific one win.",
							 &qdb_target_recall, 0, 0, 1,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("quantumdb.max_latency",
							 "Scan time per query, in the index's calibration, scans choose ef_search and rerank within; 0: off.",
							 "The highest calibrated recall within it (with quantumdb.target_recall: the target's pair if within it); ef_search and rerank set at the same level or a more specific one win.",
							 &qdb_max_latency, 0, 0, 1000000,
							 PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	/* these structs live as long as the backend; their source changes */
	ef_search_guc = find_guc("quantumdb.ef_search");
	rerank_guc = find_guc("quantumdb.rerank");
	target_guc = find_guc("quantumdb.target_recall");
	latency_guc = find_guc("quantumdb.max_latency");
}

void
QdbOverrideScanSettings(int ef_search, int rerank)
{
	override_ef_search = ef_search;
	override_rerank = rerank;
}

/*
 * The calibration's query row: node ref of index (InvalidOid, QDB_NO_NODE:
 * none), which scans of that index walk around (QdbDiskGraphHide).
 */
void
QdbOverrideHiddenNode(Oid index, uint32 ref)
{
	override_hidden_index = index;
	override_hidden = ref;
}

/* The node a scan of index walks around: QDB_NO_NODE but in a calibration. */
uint32
QdbScanHiddenNode(Relation index)
{
	return RelationGetRelid(index) == override_hidden_index ? override_hidden : QDB_NO_NODE;
}

/*
 * A calibrated recall r less one standard error: the lower end of Wilson's
 * interval at z = 1 over n = k x queries places, as if each place of each
 * query were a trial of its own,
 *
 *	 (r + 1/2n - sqrt(r (1 - r) / n + 1/4n^2)) / (1 + 1/n),
 *
 * about r - sqrt(r (1 - r) / n) (0.004 at 0.98 over 100 queries of 10),
 * but short of 1 when r is 1 (n / (n + 1): 3 queries that found every row
 * are no evidence of 0.995).  A target counts as reached by a point when
 * this is at least the target: a pair chosen because its estimate just
 * reached the target is, more often than not, one whose estimate came out
 * high.  The places of one query are not independent, so the true error
 * is larger; this much kept every target of 0.80 to 0.99 on
 * glove-100-angular, fashion-mnist-784 and sift-photos-128 from falling
 * short on their held-out queries (test/bench/RESULTS.md).
 */
double
QdbRecallLowerBound(double r, int k, int queries)
{
	double		n = (double) Max(k, 1) * Max(queries, 1);

	r = Min(Max(r, 0), 1);
	return (r + 1 / (2 * n) - sqrt(r * (1 - r) / n + 1 / (4 * n * n))) / (1 + 1 / n);
}

static bool
reached(const QdbCalibration *cal, const QdbCalibrationPoint *p, double target)
{
	return QdbRecallLowerBound(p->recall, cal->k, cal->queries) >= target;
}

/*
 * The calibrated point for target (0: none) within max_ms (0: no bound).
 * Of the points within the bound: the least time among those that reached
 * the target (reached(), above; equal times: the smaller ef_search + rerank; *choice
 * QDB_SETTINGS_TARGET), else the highest recall (equal recalls: the least
 * time; QDB_SETTINGS_SHORT with a target, QDB_SETTINGS_LATENCY without).
 * No point within the bound: the fastest (QDB_SETTINGS_FASTEST).  Points of
 * rerank 0 (measured, as the compressed order's recall) are never chosen:
 * their scans return rows in compressed order, and a user who asked for a
 * recall or a latency still asked for ORDER BY's order.  NULL for a
 * calibration without any other point.
 */
const QdbCalibrationPoint *
QdbChoosePoint(const QdbCalibration *cal, double target, double max_ms,
			   QdbSettingsSource *choice)
{
	const QdbCalibrationPoint *best = NULL;
	const QdbCalibrationPoint *fastest = NULL;
	bool		best_ok = false;

	for (int i = 0; i < cal->npoints; i++)
	{
		const QdbCalibrationPoint *p = &cal->points[i];
		bool		ok = target > 0 && reached(cal, p, target);

		if (!QdbPointChoosable(p))
			continue;
		if (fastest == NULL || p->ms < fastest->ms)
			fastest = p;
		if (max_ms > 0 && p->ms > max_ms)
			continue;
		if (best == NULL)
			;
		else if (ok != best_ok)
		{
			if (!ok)
				continue;
		}
		else if (ok)
		{
			if (p->ms > best->ms ||
				(p->ms == best->ms && p->ef_search + p->rerank >= best->ef_search + best->rerank))
				continue;
		}
		else if (p->recall < best->recall ||
				 (p->recall == best->recall && p->ms >= best->ms))
			continue;
		best = p;
		best_ok = ok;
	}
	if (best == NULL)
	{
		*choice = QDB_SETTINGS_FASTEST;
		return fastest;			/* NULL without a point of rerank > 0 */
	}
	*choice = best_ok ? QDB_SETTINGS_TARGET :
		target > 0 ? QDB_SETTINGS_SHORT : QDB_SETTINGS_LATENCY;
	return best;
}

/*
 * The settings a scan of index uses now; *cal receives the calibration read
 * (its npoints 0 when none was read).
 */
void
QdbResolveScanSettings(Relation index, QdbCalibration *cal, QdbScanSettings *s)
{
	GucSource	level;

	cal->npoints = 0;
	s->ef_search = qdb_ef_search;
	s->rerank = qdb_rerank;
	s->iterative = qdb_iterative_scan;
	s->point = NULL;
	if (override_ef_search > 0)
	{
		s->ef_search = override_ef_search;
		s->rerank = override_rerank;
		s->iterative = QDB_ITERATIVE_STRICT;
		s->source = QDB_SETTINGS_OVERRIDE;
		return;
	}
	s->source = QDB_SETTINGS_SESSION;
	if (qdb_target_recall <= 0 && qdb_max_latency <= 0)
		return;
	/* the most specific level at which the calibration was asked for */
	level = Max(qdb_target_recall > 0 ? target_guc->source : PGC_S_DEFAULT,
				qdb_max_latency > 0 ? latency_guc->source : PGC_S_DEFAULT);
	if (ef_search_guc->source >= level || rerank_guc->source >= level)
	{
		s->source = QDB_SETTINGS_EXPLICIT;
		return;
	}
	if (!QdbReadCalibration(index, cal))
	{
		cal->npoints = 0;
		s->source = QDB_SETTINGS_UNCALIBRATED;
		if (first_warning(RelationGetRelid(index)))
		{
			ereport(WARNING,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("index \"%s\" has no calibration: quantumdb.target_recall and quantumdb.max_latency are ignored",
							RelationGetRelationName(index)),
					 errdetail("Its scans use quantumdb.ef_search %d and quantumdb.rerank %d.",
							   qdb_ef_search, qdb_rerank),
					 errhint("SELECT quantumdb.calibrate(%s);", QdbQuotedRelation(index))));
		}
		return;
	}
	s->point = QdbChoosePoint(cal, qdb_target_recall, qdb_max_latency, &s->source);
	if (s->point == NULL)
	{
		/* no pair that reranks: the session's settings */
		s->source = QDB_SETTINGS_NO_RERANK;
		return;
	}
	s->ef_search = s->point->ef_search;
	s->rerank = s->point->rerank;
}

static const char *
source_name(QdbSettingsSource source)
{
	switch (source)
	{
		case QDB_SETTINGS_SESSION:
			return "session";
		case QDB_SETTINGS_EXPLICIT:
			return "session (ef_search or rerank set over target_recall or max_latency)";
		case QDB_SETTINGS_UNCALIBRATED:
			return "session (no calibration)";
		case QDB_SETTINGS_TARGET:
			return "calibration";
		case QDB_SETTINGS_SHORT:
			return qdb_max_latency > 0 ? "calibration (target not reached within max_latency)" :
				"calibration (target not reached)";
		case QDB_SETTINGS_LATENCY:
			return "calibration (highest recall within max_latency)";
		case QDB_SETTINGS_FASTEST:
			return "calibration (none within max_latency: the fastest)";
		case QDB_SETTINGS_NO_RERANK:
			return "session (the calibration has no pair that reranks)";
		case QDB_SETTINGS_OVERRIDE:
			break;
	}
	return "calibration run";
}

/* schema.name of rel, for hints: a REINDEX INDEX or CREATE INDEX ... ON it */
const char *
QdbRelationSqlName(Relation rel)
{
	return quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									  RelationGetRelationName(rel));
}

/* 'schema.name' of rel, a literal for a regclass argument, for hints */
const char *
QdbQuotedRelation(Relation rel)
{
	return quote_literal_cstr(QdbRelationSqlName(rel));
}

/*
 * quantumdb.scan_settings(index regclass): the ef_search and rerank a scan
 * of index would use now, where they come from, and the calibrated recall
 * and time of that pair (NULL when the calibration did not choose it).
 */
Datum
quantumdb_scan_settings(PG_FUNCTION_ARGS)
{
	Relation	index = QdbOpenCalibratedIndex(PG_GETARG_OID(0), false, NULL);
	QdbCalibration cal;
	QdbMetaPageData meta;
	QdbScanSettings s;
	TupleDesc	tupdesc;
	Datum		values[5] = {0};
	bool		nulls[5] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	QdbReadMeta(index, &meta);
	if (QdbMetaUntrained(&meta) || QdbScanExactForUser(index->rd_index->indrelid))
	{
		/* no compressor, or row-level security: the heap in exact order */
		nulls[0] = nulls[1] = nulls[3] = nulls[4] = true;
		values[2] = CStringGetTextDatum(QdbMetaUntrained(&meta) ?
										"exact scan (no compressor)" :
										"exact scan (row-level security applies to you)");
		index_close(index, AccessShareLock);
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}
	QdbResolveScanSettings(index, &cal, &s);
	values[0] = Int32GetDatum(s.ef_search);
	values[1] = Int32GetDatum(s.rerank);
	values[2] = CStringGetTextDatum(source_name(s.source));
	if (s.point)
	{
		values[3] = Float8GetDatum(s.point->recall);
		values[4] = Float8GetDatum(s.point->ms);
	}
	else
		nulls[3] = nulls[4] = true;
	index_close(index, AccessShareLock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
