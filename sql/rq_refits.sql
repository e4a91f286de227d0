-- Kind rq's refits (trainer/rq.c): a refit after which the sample's error
-- rises is undone and ends them.  On 800 glove rows (768 codewords at 4
-- sub-quantizers) the least squares overfit: before this, one refit took
-- validation 10-recall@10 from 0.459 to 0.414 and 16 to 0.297, and train
-- stored that model.
SET client_min_messages = warning;
CREATE TABLE rqr (id int, emb real[]);
\copy rqr FROM 'glove_base.copy'
CREATE TEMP TABLE rqr_recall AS
SELECT r AS refits, (SELECT validation_recall FROM quantumdb.train('rqr_' || r, 'rqr', 'emb', kind => 'rq',
       metric => 'l2', subvectors => 4, refits => r, validation => 100, sample => 800, seed => 1)) AS recall
FROM unnest(ARRAY[0, 1, 16]) r;
-- no count of refits does worse than none
SELECT refits, recall >= (SELECT recall FROM rqr_recall WHERE refits = 0) AS no_worse
FROM rqr_recall ORDER BY refits;
SELECT count(*) FROM (SELECT quantumdb.drop_compressor(name) FROM quantumdb.compressors WHERE name ~ '^rqr_') d;
DROP TABLE rqr;
