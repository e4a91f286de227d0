-- quantumdb install script, part 0: guard and schema.
-- The install script is these parts concatenated (see Makefile).

\echo Use "CREATE EXTENSION quantumdb" to load this file. \quit

-- Functions, catalogs and settings live in schema quantumdb; the distance
-- operators go into the schema CREATE EXTENSION installs into, so that
-- "ORDER BY embedding <~> $1" works without qualification.
CREATE SCHEMA quantumdb;
GRANT USAGE ON SCHEMA quantumdb TO PUBLIC;
