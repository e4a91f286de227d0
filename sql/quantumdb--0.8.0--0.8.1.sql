-- quantumdb 0.8.0 -> 0.8.1: ALTER EXTENSION quantumdb UPDATE.
\echo Use "ALTER EXTENSION quantumdb UPDATE TO '0.8.1'" to load this file. \quit

-- New in 0.8.1: estimate_recall, the one function in plpgsql, runs with
-- search_path set to pg_catalog, pg_temp, as every query of the C
-- functions does: before, an operator in a schema on the caller's path
-- (a `/` of float8 by int4, which pg_catalog has only by coercion) ran
-- inside it with the caller's rights.  ALTER FUNCTION keeps its grants.
ALTER FUNCTION quantumdb.estimate_recall(regclass, integer, integer, integer, regclass, name)
	SET search_path = pg_catalog, pg_temp;
