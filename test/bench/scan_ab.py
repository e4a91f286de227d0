#!/usr/bin/python3
"""A/B of index scan settings in one run: the same prepared top-k query over
the same index from two connections, each with its own SET commands, run in
alternating blocks so that load on the machine falls on both sides alike.

Reports per side: 10-recall@10 against the set's exact ground truth, QPS
(after one warm-up pass each), the backend's CPU time and minor page
faults per query (from /proc when the server runs on this machine: less
sensitive than QPS to other work on the machine; a walk whose memory is
mapped afresh by every scan shows in the faults) and shared buffers per query (EXPLAIN
(ANALYZE, BUFFERS) on 20 queries), and the QPS ratio B / A.  The table and
its index must exist (e.g. left by test/bench/index.sh --keep, or made by
hand); connection from the usual PG* environment variables.

  test/bench/scan_ab.py --set glove-100-angular --table items --column emb \\
      --op '<=>' --a 'quantumdb.code_cache_size=0' --b '' \\
      --common 'quantumdb.ef_search=100 quantumdb.rerank=200'

With --filter F both sides add WHERE id % F = 0 (a scan then walks again
for its rows), and recall is against the exact answers among the rows the
filter keeps (a numpy brute force over base.fvecs under --metric).

With --a-table T1 --b-table T2 the two sides query two tables (the same
rows stored two ways, say, each with its own index) with the same settings.

With --a-so OLD.so --b-so NEW.so the two sides run two builds of the
extension instead (the same settings): each side's file is put in place of the
installed quantumdb.so (by rename, so that a backend that has the other loaded
keeps its copy) and loaded by its connection, and the installed file is put
back at the end (also when the script is killed by SIGTERM, SIGHUP or SIGINT;
after SIGKILL, the saved copy .quantumdb-ab-saved.so in that directory stops
the next run until it is put back by hand).  The server must run on this
machine, without quantumdb in shared_preload_libraries (checked in each
backend's /proc/PID/maps), the connection as a superuser (LOAD), and the
script as root or the owner of pg_config --pkglibdir.  Only the two
backends' own work is compared: a parallel worker would load whichever file
is installed when it starts.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scan_order import filtered_truth  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../shared/data')


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].view(dtype)


def backend_stat(pid):
    """User + system CPU seconds and minor page faults of a local backend so
    far ((None, None) when not local)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK'), int(fields[7])
    except (OSError, IndexError, ValueError):
        return None, None


def put_library(src, libdir):
    """Renames a copy of src onto libdir/quantumdb.so: a new file, so a backend
    that has the old one mapped keeps it.  Returns the new file's inode."""
    fd, tmp = tempfile.mkstemp(prefix='.quantumdb-ab-', suffix='.so', dir=libdir)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o755)
        os.rename(tmp, os.path.join(libdir, 'quantumdb.so'))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return os.stat(os.path.join(libdir, 'quantumdb.so')).st_ino


def maps_inode(pid, inode):
    """Whether backend pid has a file of this inode mapped (None: cannot tell)."""
    try:
        with open('/proc/%d/maps' % pid) as f:
            return any(len(ln.split()) >= 6 and ln.split()[4] == str(inode) for ln in f)
    except OSError:
        return None


def on_signal(signum, frame):
    raise SystemExit('scan_ab.py: signal %d' % signum)


def connect(sets):
    conn = psycopg2.connect('')
    conn.autocommit = True
    cur = conn.cursor()
    for s in sets.split():
        name, value = s.split('=', 1)
        cur.execute('SELECT set_config(%s, %s, false)', (name, value))
    cur.execute('SET enable_seqscan = off')
    return conn, cur


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--set', required=True)
    ap.add_argument('--table', default='items')
    ap.add_argument('--a-table', default=None, help='side A queries this table (default --table)')
    ap.add_argument('--b-table', default=None, help='side B queries this table (default --table)')
    ap.add_argument('--column', default='emb')
    ap.add_argument('--op', default='<=>')
    ap.add_argument('--id', default='id', help='column holding the row number of base.fvecs')
    ap.add_argument('--truth', default=None, help='ground truth file in the set (default gt.ivecs, gt_ip.ivecs under <=>)')
    ap.add_argument('--queries', type=int, default=1000)
    ap.add_argument('--block', type=int, default=100)
    ap.add_argument('--common', default='', help='SET name=value ... for both sides')
    ap.add_argument('--a', default='', help='SET name=value ... for side A')
    ap.add_argument('--b', default='', help='SET name=value ... for side B')
    ap.add_argument('--a-so', default=None, help='side A runs this build of quantumdb.so')
    ap.add_argument('--b-so', default=None, help='side B runs this build of quantumdb.so')
    ap.add_argument('--filter', type=int, default=0,
                    help='keep rows with id %% F = 0 (recall against the filtered exact answers)')
    ap.add_argument('--metric', choices=('l2', 'cosine', 'ip'), default=None,
                    help='for --filter\'s exact answers (default: cosine under <=>, ip under '
                         '<#>, else l2)')
    ap.add_argument('--prepared', action='store_true',
                    help='run a prepared statement given the query as a text literal, as '
                         'index.py does (default: the query inline as ARRAY[...])')
    args = ap.parse_args()

    d = os.path.join(DATA, args.set)
    q = read_vecs(os.path.join(d, 'query.fvecs'), np.float32)[:args.queries]
    truth = args.truth or ('gt_ip.ivecs' if args.op == '<=>' and
                           os.path.exists(os.path.join(d, 'gt_ip.ivecs')) else 'gt.ivecs')
    if args.filter > 0:
        metric = args.metric or {'<=>': 'cosine', '<#>': 'ip'}.get(args.op, 'l2')
        base = read_vecs(os.path.join(d, 'base.fvecs'), np.float32)
        gt = filtered_truth(base, q, metric, args.filter)
        where = ' WHERE {id} %% {f} = 0'.format(id=args.id, f=args.filter)
    else:
        gt = read_vecs(os.path.join(d, truth), np.int32)[:args.queries, :10]
        where = ''
    # each side's query: the same but for the table (--a-table, --b-table)
    sql = {side: 'SELECT {id} FROM {t}{w} ORDER BY {c} {op} %s::real[] LIMIT 10'
           .format(id=args.id, t=getattr(args, side + '_table') or args.table, w=where,
                   c=args.column, op=args.op) for side in ('a', 'b')}
    sides = {}
    libdir = saved = None
    if args.a_so or args.b_so:
        if not (args.a_so and args.b_so):
            ap.error('--a-so and --b-so go together')
        libdir = subprocess.check_output(['pg_config', '--pkglibdir'], text=True).strip()
        saved = os.path.join(libdir, '.quantumdb-ab-saved.so')
        # a whole copy first, then its name: link() fails when the name
        # exists, so two runs cannot both save (the second stops here)
        fd, tmp = tempfile.mkstemp(prefix='.quantumdb-ab-', suffix='.so', dir=libdir)
        os.close(fd)
        try:
            shutil.copyfile(os.path.join(libdir, 'quantumdb.so'), tmp)
            os.link(tmp, saved)
        except FileExistsError:
            sys.exit('%s exists: another run is going on, or one was killed before it '
                     'put the installed quantumdb.so back (which may then be a test '
                     'build): with no run going on, mv it to %s/quantumdb.so'
                     % (saved, libdir))
        finally:
            os.unlink(tmp)
        # a kill restores the installed file too (the finally below)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, on_signal)
    try:
        run_sides(args, sides, q, gt, sql, libdir)
    finally:
        if saved:
            # a second signal must not stop the restore half way
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
            put_library(saved, libdir)
            os.unlink(saved)


def run_sides(args, sides, q, gt, sql, libdir):
    for side in ('a', 'b'):
        so = getattr(args, side + '_so')
        inode = put_library(so, libdir) if so else None
        conn, cur = connect(args.common + ' ' + getattr(args, side))
        if so:
            # the path the extension's functions name, not dynamic_library_path's
            cur.execute("LOAD '$libdir/quantumdb'")
        sides[side] = {'conn': conn, 'cur': cur, 'sets': getattr(args, side), 'secs': 0.0,
                       'hits': 0, 'buffers': [], 'cpu': 0.0, 'faults': 0, 'sql': sql[side],
                       'table': (getattr(args, side + '_table') or args.table)
                       if args.a_table or args.b_table else None}
        cur.execute('SELECT pg_backend_pid()')
        sides[side]['pid'] = cur.fetchone()[0]
        mapped = maps_inode(sides[side]['pid'], inode) if so else True
        if mapped is False:
            sys.exit('side %s: its backend did not map %s (quantumdb in '
                     'shared_preload_libraries?)' % (side.upper(), so))
        if mapped is None:
            print('warning: cannot read /proc/%d/maps (server not local, or another '
                  'user\'s): side %s\'s build is not checked' % (sides[side]['pid'],
                                                                 side.upper()),
                  file=sys.stderr)
    qs = [list(map(float, v)) for v in q]
    if args.prepared:
        for s in sides.values():
            s['cur'].execute('PREPARE ab(real[]) AS ' +
                             s['sql'].replace('%s::real[]', '$1').replace('%%', '%'))
            s['sql'] = 'EXECUTE ab(%s)'
        qs = ['{' + ','.join(repr(x) for x in v) + '}' for v in qs]

    for s in sides.values():				# warm-up pass, untimed
        for v in qs:
            s['cur'].execute(s['sql'], (v,))
            s['cur'].fetchall()
    for start in range(0, len(qs), args.block):
        for s in sides.values():
            c0, f0 = backend_stat(s['pid'])
            t0 = time.perf_counter()
            for i in range(start, min(start + args.block, len(qs))):
                s['cur'].execute(s['sql'], (qs[i],))
                got = [r[0] for r in s['cur'].fetchall()]
                s['hits'] += len(set(got) & set(gt[i].tolist()))
            s['secs'] += time.perf_counter() - t0
            c1, f1 = backend_stat(s['pid'])
            s['cpu'] = None if c0 is None or c1 is None or s['cpu'] is None else s['cpu'] + c1 - c0
            s['faults'] = None if f0 is None or f1 is None or s['faults'] is None \
                else s['faults'] + f1 - f0
    for s in sides.values():
        for v in qs[:20]:
            s['cur'].execute('EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) ' + s['sql'], (v,))
            for (line,) in s['cur'].fetchall():
                if 'Buffers: shared' in line:
                    s['buffers'].append(sum(int(x.split('=')[1]) for x in line.split()
                                            if x.startswith(('hit=', 'read='))))
                    break

    print('| side | settings | 10-recall@10 | QPS | backend CPU ms/query | minor faults/query | buffers/query |')
    print('|---|---|---:|---:|---:|---:|---:|')
    for name, s in sides.items():
        s['qps'] = len(qs) / s['secs']
        print('| %s | %s %s | %.4f | %.1f | %s | %s | %.1f |' % (
            name.upper(), args.common, (s['sets'] or
            (os.path.basename(getattr(args, name + '_so')) if args.a_so else '(none)')) +
            (' (table %s)' % s['table'] if s['table'] else ''), s['hits'] / (10.0 * len(qs)),
            s['qps'], 'n/a' if s['cpu'] is None else '%.3f' % (1000 * s['cpu'] / len(qs)),
            'n/a' if s['faults'] is None else '%.1f' % (s['faults'] / len(qs)),
            float(np.mean(s['buffers'])) if s['buffers'] else float('nan')))
    print('\nQPS B / A: %.2f' % (sides['b']['qps'] / sides['a']['qps']))
    if sides['a']['cpu'] and sides['b']['cpu']:
        print('backend CPU per query B / A: %.2f' % (sides['b']['cpu'] / sides['a']['cpu']))


if __name__ == '__main__':
    main()
