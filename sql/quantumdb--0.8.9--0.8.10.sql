-- quantumdb 0.8.9 -> 0.8.10: ALTER EXTENSION quantumdb UPDATE.
\echo Use "ALTER EXTENSION quantumdb UPDATE TO '0.8.10'" to load this file. \quit

-- New in 0.8.10, estimate_recall only: when no query was measured (a
-- query table empty, or whose column is NULL in every row; the index's
-- table without such a row; every query failed), a NOTICE says why recall
-- is NULL; nothing did.
CREATE OR REPLACE FUNCTION quantumdb.estimate_recall(
	index regclass,
	queries integer DEFAULT 100,
	k integer DEFAULT 10,
	seed integer DEFAULT 0,
	query_table regclass DEFAULT NULL,
	query_column name DEFAULT NULL,
	OUT measured_queries integer,
	OUT skipped_queries integer,
	OUT recall double precision,
	OUT recall_low double precision,
	OUT recall_high double precision,
	OUT index_ms_per_query double precision,
	OUT exact_ms_per_query double precision,
	OUT ef_search integer,
	OUT rerank integer)
RETURNS record
LANGUAGE plpgsql
-- the caller's search_path must not choose its operators (a `/` of float8
-- by int4 in a schema on the path would run as the caller)
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	tbl regclass;
	col text;
	qtbl regclass;
	qcol text;
	qtype text;
	qbase oid;
	optype oid;
	qcast text := '';
	qnext oid;
	op text;
	am name;
	kind "char";
	attnum int2;
	partial boolean;
	ntuples real;
	pct double precision;
	qs tid[];
	q tid;
	sql text;
	plan jsonb;
	idx_tids tid[];
	idx_d double precision[];
	ex_tids tid[];
	ex_d double precision[];
	ex_max double precision;
	hits integer;
	failed integer := 0;
	r double precision;
	recalls double precision[] := '{}';
	t0 timestamptz;
	idx_s double precision;
	ex_s double precision;
	idx_total double precision := 0;
	ex_total double precision := 0;
	-- the planner settings each run sets, all of them (a caller's
	-- enable_seqscan = off alone would let the index answer the exact run)
	knobs text[] := ARRAY['enable_seqscan', 'enable_indexscan', 'enable_indexonlyscan',
						  'enable_bitmapscan', 'enable_sort'];
	saved text[];
	index_run text[] := ARRAY['off', 'on', 'off', 'off', 'on'];
	exact_run text[] := ARRAY['on', 'off', 'off', 'off', 'on'];
	i integer := 0;
BEGIN
	skipped_queries := 0;
	IF queries < 1 OR queries > 100000 THEN
		RAISE EXCEPTION 'queries must be between 1 and 100000, not %', queries
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF k < 1 OR k > 10000 THEN
		RAISE EXCEPTION 'k must be between 1 and 10000, not %', k
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	SELECT x.indrelid::regclass, x.indkey[0], x.indpred IS NOT NULL, a.amname, ci.relkind, c.reltuples
		INTO tbl, attnum, partial, am, kind, ntuples
		FROM pg_index x JOIN pg_class ci ON ci.oid = x.indexrelid
		JOIN pg_am a ON a.oid = ci.relam JOIN pg_class c ON c.oid = x.indrelid
		WHERE x.indexrelid = index;
	IF NOT FOUND THEN
		RAISE EXCEPTION '"%" is not an index', index USING ERRCODE = 'wrong_object_type';
	END IF;
	-- before the plan's check, which would blame another index
	IF NOT (SELECT x.indisvalid AND x.indisready FROM pg_index x WHERE x.indexrelid = index) THEN
		RAISE EXCEPTION 'index "%" is not valid', index
			USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Wait for its build to finish, or REINDEX it.';
	END IF;
	IF am <> 'quantumdb' THEN
		RAISE EXCEPTION 'index "%" is not a quantumdb index', index
			USING ERRCODE = 'wrong_object_type',
			DETAIL = format('Its access method is %s.', am);
	END IF;
	IF kind <> 'i' THEN
		RAISE EXCEPTION 'index "%" is a partitioned index', index
			USING ERRCODE = 'feature_not_supported',
			HINT = 'Measure the index of each partition.';
	END IF;
	IF attnum = 0 THEN
		RAISE EXCEPTION 'index "%" is on an expression', index
			USING ERRCODE = 'feature_not_supported',
			HINT = 'estimate_recall takes indexes on a plain column.';
	END IF;
	IF partial THEN
		RAISE EXCEPTION 'index "%" is a partial index', index
			USING ERRCODE = 'feature_not_supported',
			HINT = 'estimate_recall runs its queries without the WHERE clause the planner needs to use a partial index.';
	END IF;

	-- the column and the ordering operator of the index's operator class
	-- (its input type: the column's may be a domain over it)
	SELECT quote_ident(at.attname), format('OPERATOR(%I.%s)', n.nspname, o.oprname), o.oprright
		INTO col, op, optype
		FROM pg_index x
		JOIN pg_attribute at ON at.attrelid = x.indrelid AND at.attnum = x.indkey[0]
		JOIN pg_opclass oc ON oc.oid = x.indclass[0]
		JOIN pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amoppurpose = 'o'
			AND ao.amoplefttype = oc.opcintype
		JOIN pg_operator o ON o.oid = ao.amopopr
		JOIN pg_namespace n ON n.oid = o.oprnamespace
		WHERE x.indexrelid = index
		ORDER BY (ao.amoprighttype = oc.opcintype) DESC, ao.amopstrategy
		LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'the operator class of index "%" has no ordering operator', index
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;

	-- the query vectors: the table's own rows, or another table's column
	IF (query_table IS NULL) <> (query_column IS NULL) THEN
		RAISE EXCEPTION 'query_table and query_column go together'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF query_table IS NULL THEN
		qtbl := tbl;
		qcol := col;
	ELSE
		qtbl := query_table;
		qcol := quote_ident(query_column);
		-- its rows are sampled and read back by ctid: a table's or a
		-- materialized view's own rows (a partitioned table's are its
		-- partitions', which FROM ONLY does not read)
		SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = query_table;
		IF kind NOT IN ('r', 'm') THEN
			RAISE EXCEPTION 'query_table % is a %', query_table,
				CASE kind WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
						  WHEN 'f' THEN 'foreign table' ELSE 'relation of another kind' END
				USING ERRCODE = 'wrong_object_type',
					  HINT = CASE WHEN kind = 'p' THEN 'Name one of its partitions, or copy' ELSE 'Copy' END
						  || format(' the queries into a table first: CREATE TEMP TABLE q AS SELECT %s FROM %s;',
									qcol, query_table);
		END IF;
		SELECT format_type(a.atttypid, a.atttypmod), a.atttypid INTO qtype, qbase FROM pg_attribute a
			WHERE a.attrelid = query_table AND a.attname = query_column AND a.attnum > 0
				AND NOT a.attisdropped;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'column "%" of relation % does not exist', query_column, query_table
				USING ERRCODE = 'undefined_column';
		END IF;
		-- a domain's base type (domains over domains too)
		LOOP
			SELECT t.typbasetype INTO STRICT qnext FROM pg_type t WHERE t.oid = qbase;
			EXIT WHEN qnext = 0;
			qbase := qnext;
		END LOOP;
		-- another type is cast to the one the index's operator takes when
		-- the catalog has an implicit or assignment cast for it (with
		-- pgvector, halfvec or real[] queries for a vector index: left to
		-- the parser, its implicit casts would pick another operator, on the
		-- column cast, which no index answers); an array type is cast to
		-- another when its elements' type (a domain's base type) has such a
		-- cast (float8[] for real[], since 0.8.5: no pg_cast row names array
		-- types); any other
		-- type is left to the parser, as before 0.8.4
		IF qbase <> optype AND (EXISTS (SELECT FROM pg_cast c WHERE c.castsource = qbase
										AND c.casttarget = optype AND c.castcontext IN ('i', 'a'))
			OR EXISTS (SELECT FROM pg_type qt JOIN pg_type ot ON ot.oid = optype
					   JOIN pg_type et ON et.oid = qt.typelem
					   JOIN pg_cast c ON c.castsource = CASE WHEN et.typbasetype <> 0
															 THEN et.typbasetype ELSE et.oid END
						 AND c.casttarget = ot.typelem
					   WHERE qt.oid = qbase AND qt.typcategory = 'A' AND ot.typcategory = 'A'
						 AND c.castcontext IN ('i', 'a'))) THEN
			qcast := '::' || optype::regtype::text;
		END IF;
		-- a column the ordering operator cannot take (planned, never run)
		BEGIN
			EXECUTE format('SELECT %1$s %2$s (SELECT %3$s FROM ONLY %4$s LIMIT 0) FROM ONLY %5$s LIMIT 0',
						   col, op, qcol || qcast, qtbl, tbl);
		EXCEPTION WHEN undefined_function OR ambiguous_function THEN
			RAISE EXCEPTION 'column "%" of relation % has type %, which index "%" cannot take as a query',
				query_column, query_table, qtype, index
				USING ERRCODE = 'datatype_mismatch',
					  HINT = format('Name a column of type %s.',
									optype::regtype);
		END;
		SELECT CASE WHEN c.reltuples < 0 THEN -1 ELSE c.reltuples END INTO ntuples
			FROM pg_class c WHERE c.oid = query_table;
	END IF;

	-- the query rows: a seeded sample, about twice what is needed, of which
	-- a seeded hash picks the first ones (not those early in the table);
	-- when reltuples misled (stale, or NULL rows), the whole table
	pct := CASE WHEN ntuples <= 0 THEN 100
				ELSE least(100, 100.0 * 2 * queries / ntuples + 0.001) END;
	LOOP
		EXECUTE format('SELECT array_agg(ctid) FROM (SELECT ctid FROM ONLY %s TABLESAMPLE BERNOULLI (%s) '
					   'REPEATABLE (%s) WHERE %s IS NOT NULL ORDER BY md5(ctid::text || %L) LIMIT %s) s',
					   qtbl, pct, seed, qcol, seed, queries)
			INTO qs;
		EXIT WHEN pct >= 100 OR coalesce(array_length(qs, 1), 0) >= queries;
		pct := 100;
	END LOOP;

	-- the query vector is the query row's, read by a sub-select (a
	-- parameter to the planner, so the index can order by it) whatever the
	-- column's type
	sql := format('SELECT array_agg(ctid) FILTER (WHERE d IS NOT NULL), '
				  'array_agg(d) FILTER (WHERE d IS NOT NULL), max(d) FROM (SELECT ctid, '
				  '%1$s %2$s (SELECT %5$s FROM ONLY %6$s WHERE ctid = $1) AS d '
				  'FROM ONLY %3$s ORDER BY 2 LIMIT %4$s) s',
				  col, op, tbl, k, qcol || qcast, qtbl);
	SELECT array_agg(current_setting(g)) INTO saved FROM unnest(knobs) g;

	FOREACH q IN ARRAY coalesce(qs, '{}')
	LOOP
		i := i + 1;
		BEGIN
			-- the index alone: the planner must pick it, not another index
			PERFORM set_config(g, v, true) FROM unnest(knobs, index_run) u(g, v);
			IF i = 1 THEN
				EXECUTE 'EXPLAIN (FORMAT JSON) ' || sql INTO plan USING q;
				IF NOT jsonb_path_exists(plan, '$.** ? (@."Index Name" == $n)',
										 jsonb_build_object('n', (SELECT relname FROM pg_class WHERE oid = index))) THEN
					RAISE EXCEPTION 'the planner does not scan index "%" for %', index, tbl
						USING ERRCODE = 'object_not_in_prerequisite_state',
						DETAIL = 'Another index on the same column may be preferred.',
						HINT = 'Mark the other index invalid for the test, or drop it.';
				END IF;
			END IF;
			t0 := clock_timestamp();
			EXECUTE sql INTO idx_tids, idx_d USING q;
			idx_s := extract(epoch FROM clock_timestamp() - t0);

			-- the exact answer: a sequential scan, never an index
			PERFORM set_config(g, v, true) FROM unnest(knobs, exact_run) u(g, v);
			IF i = 1 THEN
				EXECUTE 'EXPLAIN (FORMAT JSON) ' || sql INTO plan USING q;
				IF jsonb_path_exists(plan, '$.** ? (exists (@."Index Name"))') THEN
					RAISE EXCEPTION 'the planner scans an index for the exact answer on %', tbl
						USING ERRCODE = 'object_not_in_prerequisite_state';
				END IF;
			END IF;
			t0 := clock_timestamp();
			EXECUTE sql INTO ex_tids, ex_d, ex_max USING q;
			ex_s := extract(epoch FROM clock_timestamp() - t0);
			PERFORM set_config(g, v, true) FROM unnest(knobs, saved) u(g, v);
		EXCEPTION
			-- a query of another dimension, an empty one, or under cosine a
			-- zero vector in the query or the table
			WHEN data_exception THEN
				IF skipped_queries = 0 THEN
					RAISE WARNING 'estimate_recall "%": a query failed and is skipped, as are any others that fail: %',
						index, SQLERRM
						USING HINT = 'A query that is not a vector of the column''s dimensions fails (another length, an empty or a multidimensional array), and under cosine so does every exact scan when the table holds a zero vector.';
				END IF;
				skipped_queries := skipped_queries + 1;
				failed := failed + 1;
				CONTINUE;
		END;
		-- a row gone since the sample: a NULL query
		IF ex_max IS NULL THEN
			skipped_queries := skipped_queries + 1;
			CONTINUE;
		END IF;
		SELECT count(*) INTO hits
			FROM unnest(coalesce(idx_tids, '{}'), coalesce(idx_d, '{}')) u(t, d)
			WHERE u.t = ANY (ex_tids) OR u.d <= ex_max;
		r := hits::double precision / array_length(ex_tids, 1);
		recalls := recalls || r;
		idx_total := idx_total + idx_s;
		ex_total := ex_total + ex_s;
		IF queries >= 20 AND i % (queries / 10) = 0 THEN
			RAISE NOTICE 'estimate_recall "%": % of % queries, recall so far %',
				index, i, array_length(qs, 1),
				round((SELECT avg(x) FROM unnest(recalls) x)::numeric, 4);
		END IF;
	END LOOP;

	measured_queries := coalesce(array_length(recalls, 1), 0);
	-- the settings the scans used: the session's, or target_recall's choice
	SELECT s.ef_search, s.rerank INTO ef_search, rerank FROM quantumdb.scan_settings(index) s;
	IF measured_queries = 0 THEN
		-- why recall is NULL (session 66's hunt, /work/runs/hunt-s66c.md F9:
		-- an empty query table answered silently)
		RAISE NOTICE 'estimate_recall "%": no query was measured, so recall is NULL', index
			USING DETAIL = CASE WHEN coalesce(array_length(qs, 1), 0) = 0
								THEN format('%s has no row whose %s is not NULL.', qtbl, qcol)
								WHEN failed > 0
								THEN format('%s of %s queries failed (see the WARNING above); the others'' rows were deleted meanwhile.',
											failed, array_length(qs, 1))
								ELSE format('Table %s has no row whose %s is not NULL for a query to find, or every query''s row was deleted meanwhile.',
											tbl, col) END;
		RETURN;
	END IF;
	SELECT avg(x), stddev_samp(x) INTO recall, r FROM unnest(recalls) x;
	-- a normal 95% interval on the mean of the per-query recalls
	IF measured_queries > 1 THEN
		recall_low := greatest(0, recall - 1.96 * r / sqrt(measured_queries));
		recall_high := least(1, recall + 1.96 * r / sqrt(measured_queries));
	END IF;
	index_ms_per_query := 1000 * idx_total / measured_queries;
	exact_ms_per_query := 1000 * ex_total / measured_queries;
END
$fn$;
COMMENT ON FUNCTION quantumdb.estimate_recall(regclass, integer, integer, integer, regclass, name) IS
	'Measures the 10-recall@10 (k-recall@k) a quantumdb index gives at the session''s settings: rows of its table (or of query_table) as queries, the index against an exact scan, with a 95% interval and the time per query of each';
