// A pgvector application, unchanged: node-postgres (npm pg) and npm
// pgvector used as pgvector's README shows them (registerTypes, toSql,
// ORDER BY embedding <=> $1 LIMIT 5), against a table whose only vector
// index is a quantumdb one.  Then the same functions with parameters in
// the binary format.  Connects through the PG* environment and prints one
// JSON object of what it saw; test/t/014_node_client.pl runs it and
// asserts on it.
import pg from 'pg';
import pgvector from 'pgvector/pg';

const client = new pg.Client();
await client.connect();
await pgvector.registerTypes(client);
const out = {};

// the application's writes and reads
const queries = (await client.query('SELECT id, q FROM queries ORDER BY id')).rows;
for (const { id, q } of queries.slice(0, 5)) {
  await client.query('INSERT INTO items (id, embedding) VALUES ($1, $2)',
    [100000 + id, pgvector.toSql(q.map((x) => x * 0.5))]);
}
const knn = 'SELECT id FROM items ORDER BY embedding <=> $1 LIMIT 5';
// the checker's exact order: OFFSET 0 keeps the planner off the index
const exact = 'SELECT id FROM (SELECT id, embedding FROM items OFFSET 0) s ORDER BY embedding <=> $1 LIMIT 5';
let same = 0;
const found = [];
for (const { q } of queries) {
  const a = (await client.query(knn, [pgvector.toSql(q)])).rows.map((r) => Number(r.id));
  const b = (await client.query(exact, [pgvector.toSql(q)])).rows.map((r) => Number(r.id));
  if (JSON.stringify(a) === JSON.stringify(b)) same++;
  found.push(a[0]);
}
out.queries = queries.length;
out.same_as_exact = same;
out.inserted_found = found.slice(0, 5).every((id) => id >= 100000);
const plan = (await client.query('EXPLAIN ' + knn, [pgvector.toSql(queries[0].q)])).rows
  .map((r) => r['QUERY PLAN']).join('\n');
out.plan = plan;
const row = (await client.query('SELECT embedding FROM items WHERE id = $1', [100000 + queries[0].id])).rows[0];
out.read_back = Array.isArray(row.embedding) && row.embedding.length === queries[0].q.length;

// parameters in the binary format: node-postgres sends a Buffer as a
// binary parameter (its binary results are not usable: it decodes every
// field as text, so results stay in text)
const q = queries[1].q;
function float4Array(xs) {
  // array_recv's format: ndim, has-null flag, element type, then per
  // dimension its length and lower bound, then each element's length and bytes
  const b = Buffer.alloc(20 + xs.length * 8);
  b.writeInt32BE(1, 0); b.writeInt32BE(0, 4); b.writeInt32BE(700, 8);
  b.writeInt32BE(xs.length, 12); b.writeInt32BE(1, 16);
  xs.forEach((x, i) => { b.writeInt32BE(4, 20 + i * 8); b.writeFloatBE(x, 24 + i * 8); });
  return b;
}
function vectorBinary(xs) {
  // pgvector's vector_recv: int16 dim, int16 unused, then float4s
  const b = Buffer.alloc(4 + xs.length * 4);
  b.writeInt16BE(xs.length, 0); b.writeInt16BE(0, 2);
  xs.forEach((x, i) => b.writeFloatBE(x, 4 + i * 4));
  return b;
}
const one = async (sql, values) => (await client.query(sql, values)).rows[0].r;
const textCode = await one("SELECT quantumdb.encode('gv', $1::real[]) AS r", ['{' + q.join(',') + '}']);
const binArray = await one("SELECT quantumdb.encode('gv', $1::real[]) AS r", [float4Array(q)]);
const binVector = await one("SELECT quantumdb.encode('gv', $1::vector) AS r", [vectorBinary(q)]);
out.binary_encode_real = Buffer.compare(textCode, binArray) === 0;
out.binary_encode_vector = Buffer.compare(textCode, binVector) === 0;
const textDist = await one("SELECT quantumdb.adc_distance('gv', $1::vector, $2::bytea) AS r",
  [pgvector.toSql(q), '\\x' + textCode.toString('hex')]);
const binDist = await one("SELECT quantumdb.adc_distance('gv', $1::vector, $2::bytea) AS r",
  [vectorBinary(q), binVector]);
out.binary_adc = textDist === binDist;
const textIds = (await client.query(knn, [pgvector.toSql(q)])).rows.map((r) => Number(r.id));
const binIds = (await client.query('SELECT id FROM items ORDER BY embedding <=> $1::vector LIMIT 5',
  [vectorBinary(q)])).rows.map((r) => Number(r.id));
out.binary_scan = JSON.stringify(textIds) === JSON.stringify(binIds);

console.log(JSON.stringify(out));
await client.end();
