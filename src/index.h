/*
 * index.h
 *	  The quantumdb index access method: an HNSW graph over compressed codes,
 *	  kept in Postgres pages.  Limits, page layout, and the prototypes of the
 *	  index_*.c and graph_*.c files, grouped by file.  src/README describes
 *	  the design.
 */
#ifndef QDB_INDEX_H
#define QDB_INDEX_H

#include "postgres.h"

#include "access/amapi.h"
#include "access/generic_xlog.h"
#include "access/itup.h"
#include "common/pg_prng.h"
#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"
#include "storage/bufmgr.h"
#include "storage/lock.h"
#include "utils/relcache.h"

#include "compressor.h"
#include "graph.h"

/* Identification, for pg_filedump and for the format check at open */
#define QDB_INDEX_MAGIC			0x51444249	/* "QDBI" */
#define QDB_INDEX_VERSION		1
#define QDB_PAGE_ID				0xFF91

#define QDB_META_BLKNO			0
#define QDB_FIRST_COMPRESSOR_BLKNO 1

/*
 * Heavyweight lock on this "page" number: inserts hold it in share mode for
 * their whole run; vacuum takes it in exclusive mode for an instant, as a
 * barrier that waits out inserts that may still link to dead nodes.
 */
#define QDB_UPDATE_LOCK			0

/* Support procedures and strategies */
#define QDB_DISTANCE_PROC		1	/* (t, t) -> float8, the exact distance, t a vector type */
#define QDB_METRIC_PROC			2	/* (internal) -> internal, the QdbMetric as a Datum */
#define QDB_NPROC				2
#define QDB_NSTRATEGIES			1	/* the ordering operator */

/* Options */
#define QDB_DEFAULT_M			16
#define QDB_MIN_M				2
#define QDB_DEFAULT_EF_CONSTRUCTION 200
#define QDB_MIN_EF_CONSTRUCTION 4
#define QDB_MAX_EF_CONSTRUCTION 1000
#define QDB_MAX_LEVEL			15
#define QDB_BUILD_SUBQUANTIZERS	16	/* code bytes of a compressor trained by the build */
#define QDB_BUILD_SAMPLE		50000

/* Build phases in pg_stat_progress_create_index */
#define QDB_PHASE_TRAIN			2
#define QDB_PHASE_LOAD			3
#define QDB_PHASE_WRITE			4
#define QDB_PHASE_CALIBRATE		5

/*
 * A node reference packs a block number (24 bits) and a line pointer (8
 * bits) into 4 bytes, which keeps neighbour lists small.  Node tuples are at
 * least 32 bytes, so a page never holds more than 255 of them.
 */
typedef uint32 QdbNodeRef;

#define QDB_NO_NODE				((QdbNodeRef) 0xFFFFFFFF)
#define QDB_MAX_BLOCKS			((BlockNumber) 0xFFFFFF)
#define QDB_MAX_NODES_PER_PAGE	255
#define QdbMakeRef(blk, off)	((QdbNodeRef) (((uint32) (blk) << 8) | (uint32) (off)))
#define QdbRefBlock(r)			((BlockNumber) ((r) >> 8))
#define QdbRefOffset(r)			((OffsetNumber) ((r) & 0xFF))

/* Page opaque: a page type and the 2-byte page id at the very end */
typedef struct QdbPageOpaqueData
{
	uint16		flags;
	uint16		page_id;
} QdbPageOpaqueData;

typedef QdbPageOpaqueData *QdbPageOpaque;

#define QDB_PAGE_META			(1 << 0)
#define QDB_PAGE_COMPRESSOR		(1 << 1)
#define QDB_PAGE_NODES			(1 << 2)

#define QdbPageGetOpaque(page)	((QdbPageOpaque) PageGetSpecialPointer(page))
/* bytes between a page's header and its special space */
#define QDB_PAGE_CAPACITY \
	(BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(QdbPageOpaqueData)))

/* Meta page contents (block 0) */
typedef struct QdbMetaPageData
{
	uint32		magic;
	uint32		version;
	int32		dim;
	int32		metric;			/* QdbMetric */
	int32		code_size;		/* bytes per code (the compressor's M) */
	int32		m;				/* neighbours per node above level 0 (2m at 0) */
	int32		ef_construction;
	QdbNodeRef	entry;			/* entry point, or QDB_NO_NODE */
	int32		entry_level;
	BlockNumber insert_page;	/* last node page: where inserts try first */
	BlockNumber first_node_page;
	uint32		compressor_pages;
	uint32		compressor_len; /* bytes of the serialized model */
	uint32		compressor_crc; /* CRC-32C of those bytes */
	uint32		compressor_format;	/* QDB_FORMAT_VERSION it was written with */
	uint32		build_flags;
	uint32		inline_codes;	/* node lists carry the neighbours' codes */
	char		compressor_name[NAMEDATALEN];	/* "" when trained by the build */

	/*
	 * Changed by every VACUUM that frees nodes, before their slots may be
	 * reused: a backend's code cache (index_code_cache.c) forgets its codes
	 * when a walk finds another value than the one it last saw.  In what
	 * was the struct's tail padding, so that the calibration after it does
	 * not move; an index from before holds whatever those bytes held.
	 */
	uint32		free_generation;
} QdbMetaPageData;

/* Whether a meta page's compressor_format is one this library reads. */
static inline bool
QdbCompressorFormatRead(uint32 format)
{
	return format >= 1 && format <= QDB_FORMAT_VERSION;
}

typedef QdbMetaPageData *QdbMetaPage;

#define QDB_BUILT_FROM_VECTORS	(1 << 0)	/* graph built with exact distances */
#define QDB_BUILT_FROM_CODES	(1 << 1)	/* part of it from code distances */
#define QDB_BUILT_ON_DISK		(1 << 2)	/* part of it inserted page by page */
#define QDB_BUILT_TRAINED		(1 << 3)	/* the build trained its compressor */
#define QDB_BUILT_PROJECTED		(1 << 4)	/* vectors were the model's projections */
/*
 * No compressor yet: the build had too few rows to train one and was not
 * given one.  Such an index has its meta page only (code_size and the
 * compressor fields 0; dim 0 until the build or the first insert sees a
 * row, see QdbSetUntrainedDim); it stores nothing per row, and its scans read the
 * heap and return every row in exact order (index_scan.c).  REINDEX trains
 * its compressor once the table has rows enough.
 */
#define QDB_BUILT_UNTRAINED		(1 << 5)

#define QdbMetaUntrained(meta)	(((meta)->build_flags & QDB_BUILT_UNTRAINED) != 0)
/*
 * The build trained its compressor on fewer rows than the index's
 * train_after_rows: a VACUUM that finds that many rows has a background
 * worker train it again, as for an index without one (an index made on
 * 256 rows kept the 256 rows' compressor at 20,000: 10-recall@10 0.748
 * against 0.946 after a REINDEX, session 63's hunt s63a F1).
 */
#define QDB_BUILT_SMALL_SAMPLE	(1 << 6)
/*
 * A calibration after the build found the compressor the build trained
 * fitting the rows much worse than at the build (QdbFitStale: the rows
 * moved away from those it was trained on); the next VACUUM has a
 * background worker train it again, as for QDB_BUILT_SMALL_SAMPLE.
 */
#define QDB_BUILT_FIT_STALE		(1 << 7)
#define QDB_BUILT_RETRAIN		(QDB_BUILT_SMALL_SAMPLE | QDB_BUILT_FIT_STALE)
#define QdbMetaWantsTraining(meta) \
	(((meta)->build_flags & (QDB_BUILT_UNTRAINED | QDB_BUILT_RETRAIN)) != 0)

#define QdbPageGetMeta(page)	((QdbMetaPage) PageGetContents(page))

/*
 * A node tuple: flags, level, heap TID, the code, then the neighbour lists:
 * 2m slots for level 0, then m for each level 1..level.  Empty slots hold
 * QDB_NO_NODE.  Lists change in place; the tuple never changes size.
 */
typedef struct QdbNodeData
{
	uint8		flags;
	uint8		level;
	ItemPointerData heaptid;
	uint8		code[FLEXIBLE_ARRAY_MEMBER];
} QdbNodeData;

typedef QdbNodeData *QdbNode;

#define QDB_NODE_DELETED		(1 << 0)	/* heap row gone; kept for navigation */
#define QDB_NODE_FREE			(1 << 1)	/* deleted and unlinked: its slot may be reused */

#define QdbNodeListsOffset(code_size) \
	TYPEALIGN(sizeof(uint32), offsetof(QdbNodeData, code) + (code_size))
#define QdbNodeLists(node, code_size) \
	((QdbNodeRef *) ((char *) (node) + QdbNodeListsOffset(code_size)))
/* with inline codes, the neighbours' codes follow the lists, slot by slot */
#define QdbNodeSize(code_size, m, level, inline_codes) \
	(QdbNodeListsOffset(code_size) + \
	 (sizeof(QdbNodeRef) + ((inline_codes) ? (code_size) : 0)) * QdbNodeSlots(m, level))
#define QdbNodeSlotCodes(node, code_size, m, level) \
	((uint8 *) (QdbNodeLists(node, code_size) + QdbNodeSlots(m, level)))

/*
 * What reading a node tuple safely needs: the geometry the meta page gives.
 * QdbPageGetNode checks a node's line pointer, size and level against it.
 */
typedef struct QdbNodeShape
{
	int			code_size;
	int			m;
	bool		inline_codes;
	int			max_level;		/* highest level whose node fits on a page */
	BlockNumber first_node_page;	/* no node lies before it */
} QdbNodeShape;

/* Reloptions */
typedef struct QdbOptions
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int			m;
	int			ef_construction;
	int			compressor_offset;	/* string option, 0 when not set */
	bool		inline_codes;
	int			calibration_queries;
	bool		calibrate_after_vacuum;
	int			train_after_rows;	/* 0: no worker trains it (train_worker.c) */
} QdbOptions;

/* train_after_rows when not set */
#define QDB_DEFAULT_TRAIN_AFTER_ROWS 10000

/* GUCs */
extern int	qdb_ef_search;
extern int	qdb_rerank;
extern bool qdb_rerank_memo;
extern int	qdb_max_scan_tuples;

/* quantumdb.iterative_scan: what a scan does when the executor wants more rows */
typedef enum QdbIterativeScan
{
	QDB_ITERATIVE_OFF,			/* one walk: at most its candidates */
	QDB_ITERATIVE_STRICT,		/* walk again; rows in non-decreasing distance */
	QDB_ITERATIVE_RELAXED		/* walk again; exact order within each walk's rerank */
} QdbIterativeScan;

extern int	qdb_iterative_scan;
extern int	qdb_code_cache_kb;
extern int	qdb_index_cache_kb;
extern bool qdb_approximate_under_rls;

/*
 * What an open index needs: its settings and its own compressor, read from
 * its pages once and kept per backend (index_cache.c); a caller pins it for
 * the life of its memory context.
 */
typedef struct QdbIndexCache
{
	int			dim;
	QdbMetric	metric;
	QdbVecType	vectype;		/* the indexed column's type (opcintype) */
	bool		untrained;		/* QDB_BUILT_UNTRAINED: only metric and vectype */
	QdbNodeShape shape;			/* code_size, m, inline_codes, max_level */
	int			ef_construction;
	double		level_mult;		/* 1 / ln(m) */
	uint32		compressor_crc;
	QdbModel	model;			/* arrays inside this chunk */
	float	   *pair;			/* code-to-code table, or NULL */
	struct QdbCodeCache *codes; /* nodes' codes read so far, or NULL */
	uint32		free_generation;	/* the meta page's, as a walk last saw it */
	Buffer	   *recent;			/* per block, the buffer it was last found in */
	uint32		nrecent;		/* blocks recent covers */
	uint32		recent_reads;	/* QdbReadIndexPage's calls, for RECENT_EVERY */
} QdbIndexCache;

/* index_scan.c, index_scan_heap.c: a row a scan returns */
typedef struct QdbScanRow
{
	ItemPointerData tid;
	double		dist;
} QdbScanRow;

extern int	QdbScanRowCmp(const void *a, const void *b);
extern int	QdbExactHeapScan(IndexScanDesc scan, QdbIndexCache *c, FmgrInfo *distproc,
							 Oid collation, struct varlena *query, QdbScanRow **rows);

/* index_scan_sweep.c */
extern int	QdbSweepNodes(Relation index, QdbIndexCache *c, const float *table, float bias,
						  HTAB *returned, QdbNodeRef skip, int lead, int64 budget,
						  QdbScanRow **rows, int64 *read);
extern bool QdbScanExactForUser(Oid heapoid);
extern bool QdbHeapHasDim(Relation heap, Relation index, QdbIndexCache *c, int dim);
extern bool QdbHeapCoversRows(Relation heap, Relation index, double n);

/* index_handler.c */
extern void QdbIndexInit(void);
extern bytea *qdboptions(Datum reloptions, bool validate);
extern char *qdbbuildphasename(int64 phasenum);
extern int	QdbGetM(Relation index);
extern int	QdbGetEfConstruction(Relation index);
extern void QdbCheckEfConstruction(int m, int ef_construction);
extern char *QdbGetCompressorName(Relation index);
extern bool QdbGetInlineCodes(Relation index);
extern int	QdbGetCalibrationQueries(Relation index);
extern bool QdbGetCalibrateAfterVacuum(Relation index);
extern int	QdbGetTrainAfterRows(Relation index);

/* index_worker.c: the workers a VACUUM starts for one index */
typedef struct QdbIndexWorkerContext
{
	Oid			indexoid;
	char	   *name;			/* NULL until read (in TopMemoryContext) */
	const char *doing;			/* "calibrating": before the index's name */
	const char *why;			/* after it */
	const char *retry;			/* after that, under an ERROR */
} QdbIndexWorkerContext;
extern bool QdbLaunchIndexWorker(Oid indexoid, const char *function, const char *type);
extern bool QdbLaunchIndexWorkerIn(Oid db, Oid indexoid, const char *function, const char *type);
extern void QdbIndexWorkerStart(QdbIndexWorkerContext *wc, ErrorContextCallback *errcb,
								Oid indexoid, const char *activity);
extern void QdbIndexWorkerErrorContext(void *arg);

/* build_model.c */
extern void QdbBuildCheckNodeFits(Relation index, int code_size, int m, bool inline_codes);
extern bool QdbBuildObtainModel(Relation heap, Relation index, IndexInfo *indexInfo,
								QdbMetric metric, QdbModel *model, char *name_out,
								uint32 *flags, double *heap_tuples, int *dim,
								double *trained_rows);

/* train_worker.c */
extern double QdbTrainAfterRows(Relation index);
extern bool QdbLaunchTrainWorker(Relation index);

/* train_leftover.c */
extern List *QdbIndexCopiesOf(Relation heap, const char *name, Oid like, List *skip,
							  bool any_state);
extern Oid	QdbTrainLeftover(Relation heap, Relation index);
extern const char *QdbLeftoverCost(Oid leftover);
extern bool QdbOldIndexName(const char *name);

/* train_yield.c */
extern void QdbTrainWorkerReindexing(Oid heapoid, Oid indexoid);
extern bool QdbTrainWorkerShouldYield(Relation heap);
extern bool QdbTrainWorkerShouldYieldQuietly(Relation heap);
extern void QdbTrainWorkerYield(Relation heap, bool in_training);
extern bool QdbTrainWorkerGaveWay(int sqlerrcode, Oid heapoid, Oid indexoid);

/* train_object_locks.c */
extern bool QdbLockIndexObjects(Relation index);
extern void QdbUnlockIndexObjects(void);
extern bool QdbIndexObjectLockHasWaiters(void);
extern bool QdbLockedIndexObjectTag(const LOCKTAG *tag);

/* train_retry.c */
extern void QdbTrainRetryInit(void);
extern bool QdbTrainRetryNow(Relation index, TimestampTz *until, int *failures);
extern int	QdbTrainRetryNote(Oid indexoid, Oid filenode, bool failed, TimestampTz *next);

/* index_cost.c */
extern void qdbcostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
							Cost *indexStartupCost, Cost *indexTotalCost,
							Selectivity *indexSelectivity, double *indexCorrelation,
							double *indexPages);

/* index_validate.c */
extern bool qdbvalidate(Oid opclassoid);

/*
 * index_pages.c: every change of an index page goes through QdbXLog, the
 * GenericXLog calls under other names: one WAL record per change, except
 * while this backend builds the index, when pages change in place and the
 * build logs them all at its end (log_newpage_range), so that no record
 * ever describes a page the WAL has not seen yet.
 */
typedef struct QdbXLog QdbXLog;
extern QdbXLog *QdbXLogStart(Relation index);
extern Page QdbXLogRegister(QdbXLog *x, Buffer buf, int flags);
extern void QdbXLogFinish(QdbXLog *x);
extern void QdbXLogAbort(QdbXLog *x);
extern void QdbXLogBuilding(Oid indexoid);	/* InvalidOid: build over */

extern void QdbInitPage(Page page, uint16 flags);
extern void QdbCheckPage(Relation index, Page page, BlockNumber blkno, uint16 flags);
extern void QdbNoteInsertPage(Relation index, BlockNumber blkno);
extern void QdbCheckMetaPage(Relation index, Page page);
extern Buffer QdbMetaBuffer(Relation index);
extern void QdbPadInitFork(Relation index, BlockNumber from, bool one);
extern void QdbInitForkCheck(Relation index);
extern void QdbReadMeta(Relation index, QdbMetaPageData *meta);
extern int	QdbBuiltMQuiet(Relation index);
extern bytea *QdbReadCompressor(Relation index, const QdbMetaPageData *meta);
extern BlockNumber QdbWriteCompressorPages(Relation index, ForkNumber fork,
										   const uint8 *blob, Size len);
extern void QdbWriteMetaPage(Relation index, ForkNumber fork,
							 const QdbMetaPageData *meta);
extern void QdbNodeShapeFromMeta(const QdbMetaPageData *meta, QdbNodeShape *shape);
extern QdbNode QdbPageGetNode(Relation index, const QdbNodeShape *shape, Page page,
							  BlockNumber blkno, OffsetNumber off);
extern Size QdbNodeSizeOf(const QdbIndexCache *c, int level);
extern uint8 *QdbSlotCode(const QdbIndexCache *c, QdbNode node, int level, int slot);
#define QDB_ENTRY_IF_EMPTY		0
#define QDB_ENTRY_IF_HIGHER		1
#define QDB_ENTRY_IF_EXPECTED	2
extern const char *QdbUntrainedMetaProblem(const QdbMetaPageData *meta);
extern int	QdbSetUntrainedDim(Relation index, int from, int dim);
extern void QdbSetBuildFlag(Relation index, uint32 flag);
extern void QdbNextFreeGeneration(Relation index);
extern bool QdbSetEntry(Relation index, QdbNodeRef ref, int level, int mode,
						QdbNodeRef expected);

/* index_nodes.c: the walk over node pages, one checked node at a time */
typedef enum QdbNodeScanPace
{
	QDB_PACE_NONE,				/* nothing between pages */
	QDB_PACE_INTERRUPTS,		/* CHECK_FOR_INTERRUPTS */
	QDB_PACE_VACUUM				/* vacuum_delay_point */
} QdbNodeScanPace;

/* verify's report of a page (off invalid) or node the walk then skips */
typedef void (*QdbNodeScanReport) (void *arg, BlockNumber blkno, OffsetNumber off,
								   const char *what);

typedef struct QdbNodeScan
{
	Relation	index;
	const QdbNodeShape *shape;
	BlockNumber first;
	BlockNumber end;			/* first block past the walk */
	BufferAccessStrategy strategy;
	int			lockmode;		/* BUFFER_LOCK_SHARE or BUFFER_LOCK_EXCLUSIVE */
	QdbNodeScanPace pace;
	const uint8 *maxoff;		/* optional: nodes to walk per page, from first */
	QdbNodeScanReport report;	/* optional: report problems, no ERROR */
	void	   *report_arg;
	BlockNumber blkno;			/* the current page */
	Buffer		buf;			/* locked; InvalidBuffer between pages */
	Page		page;			/* a writer may put its QdbXLog copy here */
	OffsetNumber off;			/* the last node handed out */
	bool		page_ok;
} QdbNodeScan;

extern void QdbNodeScanBegin(QdbNodeScan *scan, Relation index, const QdbNodeShape *shape,
							 BlockNumber first, BlockNumber end,
							 BufferAccessStrategy strategy, int lockmode,
							 QdbNodeScanPace pace);
extern bool QdbNodeScanNextPage(QdbNodeScan *scan);
extern QdbNode QdbNodeScanNext(QdbNodeScan *scan, QdbNodeRef *ref);
extern void QdbNodeScanReleasePage(QdbNodeScan *scan);
extern void QdbNodeScanEnd(QdbNodeScan *scan);

/*
 * node_check.c: the checks of pages and node tuples, pure functions (no
 * ereport, no backend call) that return NULL or what is wrong
 */
extern const char QdbNodeMissing[];
extern Size QdbMaxNodeSize(void);
extern bool QdbNodeFits(int code_size, int m, int level, bool inline_codes);
extern int	QdbHighestLevel(int code_size, int m, bool inline_codes);
extern const char *QdbPageProblem(Page page);
extern const char *QdbNodePageProblem(Page page);
extern const char *QdbNodeItemProblem(const QdbNodeShape *shape, Page page,
									  OffsetNumber off);

/* index_code_cache.c: a backend's codes of nodes, by reference, across scans */
typedef struct QdbCodeCache QdbCodeCache;
extern const uint8 *QdbCodeCacheGet(QdbIndexCache *c, QdbNodeRef ref);
extern void QdbCodeCachePut(QdbIndexCache *c, QdbNodeRef ref, const uint8 *code);
extern void QdbCodeCachePrefetch(QdbIndexCache *c, const QdbNodeRef *refs, int n);
extern void QdbCodeCacheSync(QdbIndexCache *c, uint32 free_generation);

/* index_recent_buffer.c */
extern Buffer QdbReadIndexPage(Relation index, QdbIndexCache *c, BlockNumber blkno);

/* index_cache.c */
extern QdbIndexCache *QdbPinIndexCache(Relation index, bool want_pair);
extern void QdbForgetIndexCache(Relation index);
extern QdbMetric QdbIndexMetric(Relation index);
extern int	QdbDrawLevel(const QdbIndexCache *c, pg_prng_state *rng);
extern float QdbPairDistance(const QdbIndexCache *c, const uint8 *a, const uint8 *b);

/*
 * index_graph.c: the graph read from pages, one node at a time, as graph.h's
 * algorithm sees it (qdb_disk_graph_ops); it writes nothing.  Its calling
 * rules (what SetQuery and SetQueryCode make a distance mean, codes known
 * before a list with inline codes is written, the per-backend arena) head
 * the file.
 */
typedef struct QdbDiskGraph QdbDiskGraph;

extern QdbDiskGraph *QdbDiskGraphCreate(Relation index, QdbIndexCache *c);
extern QdbDiskGraph *QdbDiskGraphCreateOwn(Relation index, QdbIndexCache *c);
extern void QdbDiskGraphIdle(QdbDiskGraph *g);
extern bool QdbDiskGraphResume(QdbDiskGraph *g);
extern void QdbDiskGraphSetQuery(QdbDiskGraph *g, const float *table, float bias);
extern void QdbDiskGraphNewLayer(QdbDiskGraph *g, int level);
extern void QdbDiskGraphHide(QdbDiskGraph *g, QdbNodeRef ref);
extern const uint8 *QdbDiskGraphCode(QdbDiskGraph *g, QdbNodeRef ref, bool *deleted,
									 ItemPointer heaptid);
extern int64 QdbDiskGraphVisited(QdbDiskGraph *g);
extern bool QdbDiskGraphMetUnlinked(QdbDiskGraph *g);
extern int	QdbDiskGraphMeasured(QdbDiskGraph *g, QdbCandidate **out);
extern void QdbDiskGraphPrefetchNodes(QdbDiskGraph *g, const QdbCandidate *cand, int n);
extern const QdbGraphOps qdb_disk_graph_ops;
extern void QdbDiskGraphSetQueryCode(QdbDiskGraph *g, const uint8 *code);
extern void QdbDiskGraphNoteCode(QdbDiskGraph *g, QdbNodeRef ref, const uint8 *code);
extern void QdbDiskGraphNoteList(QdbDiskGraph *g, QdbNode node, int level);
extern void QdbDiskGraphLoadCodes(QdbDiskGraph *g, const QdbNodeRef *refs, int n);
extern const uint8 *QdbDiskGraphKnownCode(QdbDiskGraph *g, QdbNodeRef ref);
extern int	QdbDiskSearch(QdbDiskGraph *g, const QdbCandidate *entry, int nentry, int ef,
						  int level, QdbCandidate *out, bool keep);
extern int	QdbDiskSearchFromMeasured(QdbDiskGraph *g, QdbNodeRef entry, int ef,
									  QdbCandidate *out, int nout, bool keep);
extern bool QdbDiskCanWiden(QdbDiskGraph *g);
extern int	QdbDiskWiden(QdbDiskGraph *g, int ef, QdbCandidate *out);
extern bool QdbDiskDescend(QdbDiskGraph *g, const QdbMetaPageData *meta, int to_level,
						   QdbCandidate *cur);

/* index_reach.c: reachability from the entry point, and its repair */
typedef struct QdbNodeMap
{
	BlockNumber first;			/* first node page */
	BlockNumber nblocks;
	uint8	   *maxoff;			/* nodes per page */
	uint8	   *level;			/* per (page, offset) slot */
	uint8	   *flags;
	bool	   *reached;
	uint16	   *depth;			/* reached: its parent's label + 1 in the walk; */
	uint16	   *safe_in;		/* and links from live nodes labelled lower: NULL */
								/* but in the repair (index_reach.c) */
	bool		list_dropped;	/* the last list change let a deleted member go */
	uint8	   *codes;			/* per slot, code_size bytes; NULL without inline codes */
	int			code_size;
} QdbNodeMap;

/* a map keeps 256 slots per page: offsets 1..255 (QDB_MAX_NODES_PER_PAGE) */
#define QDB_MAP_SLOTS_PER_PAGE	256
#define QdbNodeMapSlotAt(map, blkno, off) \
	((Size) ((blkno) - (map)->first) * QDB_MAP_SLOTS_PER_PAGE + (off))
#define QdbNodeSlot(map, ref) \
	QdbNodeMapSlotAt(map, QdbRefBlock(ref), QdbRefOffset(ref))
#define QdbNodeMapSlotPage(slot)	((slot) / QDB_MAP_SLOTS_PER_PAGE)	/* from first */
#define QdbNodeMapSlotOffset(slot)	((OffsetNumber) ((slot) % QDB_MAP_SLOTS_PER_PAGE))
/* whether a map's slot is one of a node on its page (offsets 1..maxoff) */
#define QdbNodeMapSlotHolds(map, slot) \
	(QdbNodeMapSlotOffset(slot) >= FirstOffsetNumber && \
	 QdbNodeMapSlotOffset(slot) <= (map)->maxoff[QdbNodeMapSlotPage(slot)])
/* slots for pages [first, nblocks), at least one page's worth */
#define QdbNodeMapSlots(first, nblocks) \
	((Size) Max((nblocks) - (first), 1) * QDB_MAP_SLOTS_PER_PAGE)

extern void QdbNodeMapRead(Relation index, const QdbMetaPageData *meta, QdbNodeMap *map);
extern bool QdbNodeMapHas(const QdbNodeMap *map, QdbNodeRef ref);
extern bool QdbNodeMapMayDrop(const QdbNodeMap *map, QdbNodeRef from, QdbNodeRef member);
extern void QdbNodeMapNoteListChange(QdbNodeMap *map, QdbNodeRef from, const QdbNodeRef *before,
									 const QdbNodeRef *after, int n);
extern int64 QdbNodeMapCountUnreached(Relation index, QdbIndexCache *c,
									  const QdbMetaPageData *meta, QdbNodeMap *map);
extern int64 QdbRepairReachability(Relation index, int64 *rewalks);

/* index_build.c */
extern IndexBuildResult *qdbbuild(Relation heap, Relation index, IndexInfo *indexInfo);
extern void qdbbuildempty(Relation index);

/* sample.c: the build's sample, read by its own heap scan */
extern double QdbSampleIndexBuild(Relation heap, Relation index, IndexInfo *indexInfo,
								  int want, uint64 seed, bool cosine,
								  const QdbTrainConfig *fit, QdbSample *out);

/*
 * index_write.c: every write of a node, whole or its lists and flags (the
 * file's head says which function locks and logs what).
 */
typedef struct QdbMemGraph QdbMemGraph;

extern void QdbFormNode(const QdbIndexCache *c, QdbNode node, int level,
						ItemPointer heaptid, const uint8 *code);
extern QdbNodeRef QdbAddNode(Relation index, const QdbIndexCache *c, QdbNode node,
							 Size size);
extern void QdbWriteBuildGraph(Relation index, const QdbIndexCache *c, const QdbMemGraph *g,
							   QdbNodeRef *refs);
extern void QdbWriteOwnLists(Relation index, const QdbIndexCache *c, QdbDiskGraph *g,
							 QdbNodeRef ref, int level, const QdbNodeRef *lists,
							 const int *nlist);

/*
 * A list's new contents (want) from its copy (cur, nslots), planned with no
 * lock held; false leaves the list as it is.
 */
typedef bool (*QdbListPlanner) (void *arg, QdbDiskGraph *g, QdbNodeRef ref, int level,
								const QdbNodeRef *cur, int nslots, QdbNodeRef *want);
typedef enum QdbListChange
{
	QDB_LIST_WRITTEN,
	QDB_LIST_LEFT,				/* the planner left it, or the node is deleted */
	QDB_LIST_RACED				/* it changed under every try */
} QdbListChange;

extern QdbListChange QdbChangeList(Relation index, const QdbIndexCache *c, QdbDiskGraph *g,
								   QdbNodeRef ref, int level, BufferAccessStrategy strategy,
								   QdbListPlanner plan, void *arg, QdbNodeRef *cur,
								   QdbNodeRef *want);
extern bool QdbLinkOnDisk(Relation index, const QdbIndexCache *c, QdbDiskGraph *g,
						  QdbNodeRef n, int level, QdbNodeRef add, bool force,
						  QdbNodeMap *map, QdbMayDrop may_drop, void *drop_arg,
						  QdbNodeRef *tied);
extern void QdbMarkNodeDeleted(QdbNode node);
extern bool QdbDropLinksToFree(const QdbNodeMap *map, const QdbMetaPageData *meta,
							   QdbNode node);
extern void QdbFreeNode(const QdbMetaPageData *meta, QdbNode node);

/* index_insert.c */
extern bool qdbinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
					  Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
					  IndexInfo *indexInfo);
extern void QdbInsertVector(Relation index, QdbIndexCache *c, const float *x,
							const uint8 *code, ItemPointer heaptid);
extern float *QdbIndexVector(Relation index, Relation heap, QdbIndexCache *c, Datum value,
							 bool *skip);

/* index_scan.c */
extern IndexScanDesc qdbbeginscan(Relation index, int nkeys, int norderbys);
extern void QdbScanNotCounted(IndexScanDesc scan);
extern void qdbrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
					  int norderbys);
extern bool qdbgettuple(IndexScanDesc scan, ScanDirection dir);
extern void qdbendscan(IndexScanDesc scan);

/* index_vacuum.c */
extern IndexBulkDeleteResult *qdbbulkdelete(IndexVacuumInfo *info,
											IndexBulkDeleteResult *stats,
											IndexBulkDeleteCallback callback,
											void *callback_state);
extern IndexBulkDeleteResult *qdbvacuumcleanup(IndexVacuumInfo *info,
											   IndexBulkDeleteResult *stats);
extern double QdbCountLiveNodes(Relation index);
extern int64 QdbFreeUnlinkedNodes(Relation index, BufferAccessStrategy strategy);

/* index_info.c: quantumdb.index_info() and quantumdb.verify() */
extern Relation QdbOpenIndexByOid(Oid relid);
/* schema.name of rel, each part quoted as an identifier (scan_settings.c) */
extern const char *QdbRelationSqlName(Relation rel);

#endif							/* QDB_INDEX_H */
