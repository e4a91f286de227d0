# OpenBLAS gives each of its calls a work buffer of 128 MB of address space
# and, when it cannot allocate one, tries again forever inside the call: a
# training under an address-space limit (ulimit -v) then ignored cancel and
# terminate, and only kill -9 ended it, restarting the server (session 61's
# memory hunt, /work/runs/hunt-s61c.md F2).  src/blas_buffers.c makes room
# for a buffer before OpenBLAS asks: a call that finds no room waits for
# another thread's buffer, or fails with 53200 when there is none.
#
# A training is run without a limit, its backend's peak address space
# read, and the server restarted with its limit half a buffer below that
# peak: the training's pool then cannot have the buffer its second thread
# took.  It must finish (trained, or 53200), within the time a livelock
# would not.  A limit below what OpenBLAS takes as it loads gives 53200 with
# its detail, and the session goes on.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use QdbIndexCheck;

# two trainer threads and OpenBLAS's pool of two, whatever the machine
$ENV{QDB_NUM_THREADS} = '2';
$ENV{OPENBLAS_NUM_THREADS} = '2';

my $node = start_quiet_node('main');
$node->safe_psql('postgres', q{
	CREATE EXTENSION quantumdb;
	CREATE TABLE t (id int, emb real[]);
	INSERT INTO t
	SELECT i, (SELECT array_agg(cos(i * 0.211 + j * 0.73 + (i % 17) * j)::real)
	           FROM generate_series(1, 256) j)
	FROM generate_series(1, 6000) i;
});

my $train = q{SELECT compressor FROM quantumdb.train('%s', 't', 'emb', kind => 'opq',
	validation => 0, opq_iters => 4)};

sub vm_kb
{
	my ($pid, $what) = @_;
	my $status = slurp_file("/proc/$pid/status");
	$status =~ /^$what:\s+(\d+) kB/m or die "no $what for $pid";
	return $1;
}

my $s = $node->background_psql('postgres', on_error_stop => 1);
my $pid = $s->query_safe('SELECT pg_backend_pid()');
$s->query_safe('SET client_min_messages = warning');
my $idle = vm_kb($pid, 'VmSize');
$s->query_safe(sprintf($train, 'free'));
my $peak = vm_kb($pid, 'VmPeak');
$s->quit;
diag "a training's backend: $idle kB of address space idle, $peak kB at its peak";
cmp_ok($peak - $idle, '>', 2 * 131072,
	'without a limit the training took more than two OpenBLAS buffers of address space');

sub start_limited
{
	my ($kb) = @_;
	$node->stop;
	system_or_bail('sh', '-c',
		sprintf(q{ulimit -v %d && exec pg_ctl -w -D '%s' -l '%s' -o '--cluster-name=main' start},
			$kb, $node->data_dir, $node->logfile));
	$node->_update_pid(1);
}

# half a buffer below the peak: room for all but the last buffer
start_limited($peak - 65536);
my ($ret, $out, $err);
my $timed_out = 0;
my $t0 = time;
$ret = $node->psql('postgres', "\\set VERBOSITY verbose\n" . sprintf($train, 'tight'),
	stdout => \$out, stderr => \$err, timeout => 180, timed_out => \$timed_out);
my $took = time - $t0;
ok(!$timed_out, "the training under a limit ends (in $took s)");
ok($ret == 0 || $err =~ /ERROR:  53200/, 'trained, or 53200')
  or diag("ret $ret: $err");
diag "under the limit: " . ($ret == 0 ? 'trained' : 'out of memory');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server still answers');

# below what OpenBLAS takes as it loads (two buffers): 53200, and the
# session can go on
start_limited($idle + 131072);
($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n"
	. sprintf($train, 'low') . ";\nSELECT 'after';", on_error_stop => 0);
like($err, qr/ERROR:  53200: out of memory\nDETAIL:  OpenBLAS, which quantumdb's training and encoding use, needs 2 work buffers/,
	'no room for OpenBLAS as it loads: 53200 with the number of buffers');
like($err, qr/HINT:  The server's address-space limit/, 'and a hint');
like($out, qr/after/, 'the session goes on');

$node->stop;
done_testing();
