-- quantumdb 0.1.0 -> 0.2.0: ALTER EXTENSION quantumdb UPDATE.
\echo Use "ALTER EXTENSION quantumdb UPDATE TO '0.2.0'" to load this file. \quit

-- 0.2.0 keeps every object of 0.1.0, and the index format: indexes and
-- compressors made under 0.1.0 work unchanged after the update (and,
-- since the shared library serves both, before it too).  New in 0.2.0 and
-- in the shared library only: pgvector's vector and halfvec through the
-- extension quantumdb_pgvector, and an index on a table too small to train
-- a compressor starting without one.  The SQL objects differ by this
-- description only.
COMMENT ON ACCESS METHOD quantumdb IS
	'HNSW graph over compressed codes, with exact rerank from the heap (real[] columns; vector and halfvec with quantumdb_pgvector)';
