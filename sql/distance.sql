-- Exact distances between real[] vectors: known values, operators against
-- functions, symmetry, float overflow and underflow, and every bad input
-- with its SQLSTATE.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- known values
SELECT '{0,0}'::real[] <~> '{3,4}' AS l2,
	quantumdb.l2_distance('{0,0}', '{3,4}') AS l2_fn,
	'{1,2,3}'::real[] <~> '{1,2,3}' AS l2_same,
	'{-1}'::real[] <~> '{2}' AS l2_one_dim;
SELECT round(('{1,0}'::real[] <=> '{0,1}')::numeric, 6) AS orthogonal,
	round(('{1,2}'::real[] <=> '{2,4}')::numeric, 6) AS parallel,
	round(('{1,1}'::real[] <=> '{-1,-1}')::numeric, 6) AS opposite,
	round(('{1,0}'::real[] <=> '{1,1}')::numeric, 6) AS diagonal,
	round(quantumdb.cosine_distance('{1,0}', '{1,1}')::numeric, 6) AS diagonal_fn;
SELECT '{1,2,3}'::real[] <#> '{4,5,6}' AS neg_ip,
	quantumdb.negative_inner_product('{1,2,3}', '{4,5,6}') AS neg_ip_fn,
	quantumdb.inner_product('{1,2,3}', '{4,5,6}') AS ip,
	'{1,-1}'::real[] <#> '{1,1}' AS neg_ip_zero;
-- a zero vector is fine for L2 and inner product
SELECT '{0,0}'::real[] <~> '{0,0}' AS l2_zero, '{0,0}'::real[] <#> '{1,2}' AS ip_zero;
-- only the elements count, not the lower bound
SELECT '[0:1]={3,4}'::real[] <~> '{0,0}' AS l2_lower_bound;
-- integer arrays are cast implicitly
SELECT ARRAY[0,0] <~> ARRAY[3,4] AS l2_int;
-- the largest vectors accepted: 16000 elements
SELECT round((array_fill(1::real, ARRAY[16000]) <~> array_fill(0::real, ARRAY[16000]))::numeric, 6) AS l2_16000,
	array_fill(2::real, ARRAY[16000]) <#> array_fill(0.5::real, ARRAY[16000]) AS neg_ip_16000;

-- every operator against its function, symmetry, and a double reference,
-- on all pairs of some 37-element vectors (not a multiple of any SIMD width)
CREATE TEMP TABLE vecs AS
	SELECT i, array_agg(sin(i * j + j)::real ORDER BY j) AS x
	FROM generate_series(1, 6) i, generate_series(1, 37) j
	GROUP BY i;
CREATE TEMP TABLE ref AS
	SELECT a.i AS ai, b.i AS bi, a.x AS ax, b.x AS bx,
		sqrt(sum((p.u::float8 - p.v::float8) ^ 2)) AS l2,
		sum(p.u::float8 * p.v::float8) AS ip,
		sum(p.u::float8 * p.v::float8) /
			sqrt(sum(p.u::float8 ^ 2) * sum(p.v::float8 ^ 2)) AS cos
	FROM vecs a, vecs b, unnest(a.x, b.x) AS p(u, v)
	GROUP BY a.i, b.i, a.x, b.x;
SELECT count(*) AS pairs,
	bool_and((ax <~> bx) = quantumdb.l2_distance(ax, bx)) AS l2_op_fn,
	bool_and((ax <=> bx) = quantumdb.cosine_distance(ax, bx)) AS cos_op_fn,
	bool_and((ax <#> bx) = quantumdb.negative_inner_product(ax, bx)) AS ip_op_fn,
	bool_and((ax <#> bx) = -quantumdb.inner_product(ax, bx)) AS ip_neg,
	bool_and((ax <~> bx) = (bx <~> ax)) AS l2_sym,
	bool_and((ax <=> bx) = (bx <=> ax)) AS cos_sym,
	bool_and((ax <#> bx) = (bx <#> ax)) AS ip_sym,
	bool_and(abs((ax <~> bx) - l2) < 1e-5) AS l2_ref,
	bool_and(abs((ax <=> bx) - (1 - cos)) < 1e-5) AS cos_ref,
	bool_and(abs((ax <#> bx) + ip) < 1e-5) AS ip_ref,
	bool_and((ax <=> bx) BETWEEN 0 AND 2) AS cos_range,
	bool_and((ai = bi) = ((ax <~> bx) = 0)) AS l2_zero_iff_same
FROM ref;
-- the commutators are the operators themselves
SELECT oprname, oprcom::regoperator FROM pg_operator
WHERE oprname IN ('<~>', '<=>', '<#>') AND oprleft = 'real[]'::regtype
ORDER BY oprname;

-- sums that overflow or underflow in float are redone in double
SELECT round((('{3e38}'::real[] <~> '{-3e38}') / 1e38)::numeric, 6) AS l2_huge,
	round((quantumdb.inner_product('{1e30,1e30}', '{1e30,1e30}') / 1e60)::numeric, 6) AS ip_huge,
	round(('{1e30,0}'::real[] <=> '{1e30,1e30}')::numeric, 6) AS cos_huge,
	round(('{1e-30,1e-30}'::real[] <=> '{1e-30,0}')::numeric, 6) AS cos_tiny,
	round(('{1e-40,1e-40}'::real[] <=> '{1e-40,0}')::numeric, 6) AS cos_subnormal;

-- strict: a NULL argument gives NULL
SELECT quantumdb.l2_distance(NULL, '{1}') IS NULL AS l2_null,
	('{1}'::real[] <=> NULL) IS NULL AS cos_null,
	(NULL::real[] <#> '{1}') IS NULL AS ip_null,
	quantumdb.inner_product('{1}', NULL) IS NULL AS ip_fn_null;

-- bad input
SELECT '{1,2}'::real[] <~> '{1,2,3}';
\echo :LAST_ERROR_SQLSTATE
SELECT quantumdb.inner_product('{1,2,3}', '{1}');
\echo :LAST_ERROR_SQLSTATE
SELECT '{{1,2},{3,4}}'::real[] <~> '{1,2}';
\echo :LAST_ERROR_SQLSTATE
SELECT '{1,2}'::real[] <#> '{{{1}}}';
\echo :LAST_ERROR_SQLSTATE
SELECT '{1,NULL}'::real[] <=> '{1,2}';
\echo :LAST_ERROR_SQLSTATE
SELECT '{1,2,3}'::real[] <~> '{1,2,NULL}';
\echo :LAST_ERROR_SQLSTATE
SELECT '{1,NaN}'::real[] <~> '{1,2}';
\echo :LAST_ERROR_SQLSTATE
SELECT '{1,2}'::real[] <#> '{-Infinity,2}';
\echo :LAST_ERROR_SQLSTATE
SELECT quantumdb.cosine_distance('{1,2,Infinity}', '{1,2,3}');
\echo :LAST_ERROR_SQLSTATE
-- elements are checked only when a sum is not finite: every NaN or infinity
-- makes it so (past the SIMD width, infinity - infinity, infinity * 0)
SELECT array_fill(1::real, ARRAY[36]) || '{NaN,1,1}'::real[] <~> array_fill(1::real, ARRAY[39]);
\echo :LAST_ERROR_SQLSTATE
SELECT '{Infinity}'::real[] <~> '{Infinity}';
\echo :LAST_ERROR_SQLSTATE
SELECT '{Infinity,1}'::real[] <#> '{0,1}';
\echo :LAST_ERROR_SQLSTATE
SELECT quantumdb.inner_product('{1,Infinity}', '{1,-0}');
\echo :LAST_ERROR_SQLSTATE
SELECT '{0,0}'::real[] <=> '{NaN,1}';
\echo :LAST_ERROR_SQLSTATE
SELECT '{1,1}'::real[] <=> '{Infinity,-Infinity}';
\echo :LAST_ERROR_SQLSTATE
-- finite elements whose float sums overflow: redone in double, no ERROR
SELECT '{1e30,1}'::real[] <~> '{-1e30,1}' AS l2_big, '{3e38,3e38}'::real[] <#> '{3e38,3e38}' AS nip_big,
	'{3e38,3e38}'::real[] <=> '{3e38,3e38}' AS cos_big;
SELECT '{}'::real[] <~> '{}';
\echo :LAST_ERROR_SQLSTATE
SELECT quantumdb.inner_product('{1}', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT '{0,0}'::real[] <=> '{1,2}';
\echo :LAST_ERROR_SQLSTATE
SELECT quantumdb.cosine_distance('{1,2}', '{0,-0}');
\echo :LAST_ERROR_SQLSTATE
SELECT array_fill(1::real, ARRAY[16001]) <~> array_fill(1::real, ARRAY[16001]);
\echo :LAST_ERROR_SQLSTATE
SELECT '{1}'::real[] <#> array_fill(1::real, ARRAY[16001]);
\echo :LAST_ERROR_SQLSTATE

DROP TABLE ref, vecs;

-- Rows stored compressed in the table (pglz, the default for a value over
-- about 2 kB that compresses) give the distances of the same values stored
-- plainly; the distance functions decompress pglz with their own decoder
-- (src/pglz_decode.c, compared with the server's in test/unit/test_pglz.c).
CREATE TABLE packed (id int, emb real[]);
CREATE TABLE unpacked (id int, emb real[]);
-- pglz whatever default_toast_compression says
ALTER TABLE packed ALTER COLUMN emb SET COMPRESSION pglz;
ALTER TABLE unpacked ALTER COLUMN emb SET STORAGE PLAIN;
INSERT INTO packed
SELECT i, ARRAY(SELECT CASE WHEN (j * 7 + i) % 5 < 2 THEN 0
			ELSE ((j * 13 + i * 7) % 256 + j % 3 * 0.25)::real END
		FROM generate_series(1, 784) j)
FROM generate_series(1, 30) i;
INSERT INTO unpacked SELECT id, emb[:] FROM packed;
SELECT count(*) FILTER (WHERE pg_column_compression(p.emb) = 'pglz') AS pglz,
	count(*) FILTER (WHERE pg_column_compression(u.emb) IS NULL) AS plain,
	count(*) FILTER (WHERE p.emb <~> u.emb = 0) AS same_values
FROM packed p JOIN unpacked u USING (id);
SELECT count(*) AS pairs,
	count(*) FILTER (WHERE p.emb <~> q.emb IS DISTINCT FROM u.emb <~> q2.emb
		OR p.emb <=> q.emb IS DISTINCT FROM u.emb <=> q2.emb
		OR p.emb <#> q.emb IS DISTINCT FROM u.emb <#> q2.emb
		OR quantumdb.inner_product(q.emb, p.emb)
			IS DISTINCT FROM quantumdb.inner_product(q2.emb, u.emb)) AS differ
FROM packed p JOIN unpacked u USING (id), packed q JOIN unpacked q2 USING (id);
DROP TABLE packed, unpacked;
