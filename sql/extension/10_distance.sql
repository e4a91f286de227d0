-- quantumdb install script, part 10: exact distances between real[] vectors.
-- Functions in schema quantumdb; operators in the extension's schema, each
-- its own commutator.  Vectors must be one-dimensional, non-empty, without
-- nulls, NaN or infinity, of equal length and at most 16000 elements.

CREATE FUNCTION quantumdb.l2_distance(real[], real[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'quantumdb_l2_distance'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION quantumdb.cosine_distance(real[], real[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'quantumdb_cosine_distance'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION quantumdb.negative_inner_product(real[], real[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'quantumdb_negative_inner_product'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION quantumdb.inner_product(real[], real[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'quantumdb_inner_product'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION quantumdb.l2_distance(real[], real[]) IS
	'Euclidean distance';
COMMENT ON FUNCTION quantumdb.cosine_distance(real[], real[]) IS
	'1 - cosine similarity, in [0, 2]; a zero vector is an error';
COMMENT ON FUNCTION quantumdb.negative_inner_product(real[], real[]) IS
	'minus the inner product, so that smaller means closer';
COMMENT ON FUNCTION quantumdb.inner_product(real[], real[]) IS
	'inner (dot) product';

CREATE OPERATOR <~> (
	LEFTARG = real[], RIGHTARG = real[],
	FUNCTION = quantumdb.l2_distance,
	COMMUTATOR = <~>
);

CREATE OPERATOR <=> (
	LEFTARG = real[], RIGHTARG = real[],
	FUNCTION = quantumdb.cosine_distance,
	COMMUTATOR = <=>
);

CREATE OPERATOR <#> (
	LEFTARG = real[], RIGHTARG = real[],
	FUNCTION = quantumdb.negative_inner_product,
	COMMUTATOR = <#>
);

COMMENT ON OPERATOR <~> (real[], real[]) IS 'Euclidean distance';
COMMENT ON OPERATOR <=> (real[], real[]) IS 'cosine distance';
COMMENT ON OPERATOR <#> (real[], real[]) IS 'negative inner product';
