-- quantumdb install script, part 30: the index access method.
-- CREATE INDEX ... USING quantumdb (embedding real_cosine_ops) WITH (compressor = 'c');
-- answers ORDER BY embedding <=> $1 LIMIT k.  The operator classes go into
-- the extension's schema beside the operators they use.

CREATE FUNCTION quantumdb.index_handler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME', 'quantumdb_index_handler' LANGUAGE C;

CREATE ACCESS METHOD quantumdb TYPE INDEX HANDLER quantumdb.index_handler;
COMMENT ON ACCESS METHOD quantumdb IS
	'HNSW graph over compressed codes, with exact rerank from the heap (real[] columns; vector and halfvec with quantumdb_pgvector)';

-- Support function 2: which metric the operator class means.
CREATE FUNCTION quantumdb.metric_l2(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'quantumdb_metric_l2' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION quantumdb.metric_ip(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'quantumdb_metric_ip' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION quantumdb.metric_cosine(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'quantumdb_metric_cosine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR CLASS real_l2_ops
	DEFAULT FOR TYPE real[] USING quantumdb AS
	OPERATOR 1 <~> (real[], real[]) FOR ORDER BY float_ops,
	FUNCTION 1 quantumdb.l2_distance(real[], real[]),
	FUNCTION 2 quantumdb.metric_l2(internal);

CREATE OPERATOR CLASS real_cosine_ops
	FOR TYPE real[] USING quantumdb AS
	OPERATOR 1 <=> (real[], real[]) FOR ORDER BY float_ops,
	FUNCTION 1 quantumdb.cosine_distance(real[], real[]),
	FUNCTION 2 quantumdb.metric_cosine(internal);

CREATE OPERATOR CLASS real_ip_ops
	FOR TYPE real[] USING quantumdb AS
	OPERATOR 1 <#> (real[], real[]) FOR ORDER BY float_ops,
	FUNCTION 1 quantumdb.negative_inner_product(real[], real[]),
	FUNCTION 2 quantumdb.metric_ip(internal);

CREATE FUNCTION quantumdb.index_info(
	index regclass,
	OUT dimensions integer,
	OUT metric text,
	OUT code_bytes integer,
	OUT m integer,
	OUT ef_construction integer,
	OUT nodes bigint,
	OUT deleted_nodes bigint,
	OUT max_level integer,
	OUT unreachable_nodes bigint,
	OUT pages bigint,
	OUT compressor_pages integer,
	OUT bytes_per_vector double precision,
	OUT compressor text,
	OUT compressor_kind text,
	OUT compressor_checksum text,
	OUT built_from text,
	OUT reusable_nodes bigint,
	OUT inline_codes boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'quantumdb_index_info' LANGUAGE C STRICT;
COMMENT ON FUNCTION quantumdb.index_info(regclass) IS
	'Settings, node and page counts and the embedded compressor of a quantumdb index';

CREATE FUNCTION quantumdb.verify(index regclass) RETURNS SETOF text
AS 'MODULE_PATHNAME', 'quantumdb_verify' LANGUAGE C STRICT;
COMMENT ON FUNCTION quantumdb.verify(regclass) IS
	'Checks every page and graph invariant of a quantumdb index; returns the problems found (none when healthy)';
