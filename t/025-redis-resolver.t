use strict;
use warnings;

use lib 't/lib';
use LLMCacheTest;     # the fake provider
use LLMCacheOwnNginx;
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use Time::HiRes qw(sleep time);

# Names that move: with a "resolver", an llm_cache_redis host name is
# resolved again at each (re)connect, so when the name is re-pointed to
# another Redis (and the first one stops) caching resumes there without a
# reload.  The name server is t/lib/fake_dns.py; the two Redis servers
# listen on the same port on 127.0.0.2 and 127.0.0.3.  Without a resolver
# the name is resolved once, at start (nginx -t fails if it cannot be).
# Plain Test::More (its own nginx and servers): either runner.

my $tmp = tempdir(CLEANUP => 1);
chmod 0755, $tmp;

# a port free on both addresses
my $port;
for (1 .. 50) {
    my $p = LLMCacheTest::_free_port();
    my @s = map {
        IO::Socket::INET->new(LocalAddr => $_, LocalPort => $p,
                              Proto => 'tcp', Listen => 1, ReuseAddr => 1)
    } '127.0.0.2', '127.0.0.3';
    if (@s == 2 && $s[0] && $s[1]) {
        $port = $p;
        close $_ for @s;
        last;
    }
}
plan skip_all => 'no port free on 127.0.0.2 and 127.0.0.3' if !$port;

my ($pa, $pid_a) = LLMCacheOwnNginx::redis_server(dir => $tmp,
    bind => '127.0.0.2', port => $port);
my ($pb, $pid_b) = LLMCacheOwnNginx::redis_server(dir => $tmp,
    bind => '127.0.0.3', port => $port);

my $records = "$tmp/records";
sub point {
    my ($ip) = @_;
    open my $f, '>', "$records.tmp" or die $!;
    print $f "redis.test $ip\n";
    close $f;
    rename "$records.tmp", $records or die $!;
}
point('127.0.0.2');

my $dns_out = "$tmp/dns.out";
my $dns_pid = LLMCacheTest::_spawn('fake_dns', $dns_out, "$tmp/dns.err",
    LLMCacheTest::_find_in_path('python3'), "$LLMCacheTest::LibDir/fake_dns.py",
    '--records', $records);
my $dns_port;
for (1 .. 100) {
    ($dns_port) = LLMCacheTest::_slurp($dns_out) =~ /^READY (\d+)$/m;
    last if $dns_port;
    sleep 0.05;
}
ok($dns_port, 'the fake name server listens') or BAIL_OUT('no fake_dns');

my $chat = LLMCacheTest::request_body('openai/chat-request.json');
my $slow = $ENV{TEST_NGINX_USE_VALGRIND} ? 5 : 1;
my $nginx = LLMCacheOwnNginx::Nginx->new;

$nginx->write_conf(<<"EOF", "        location /v1/ { llm_cache_pass /_llm; }\n");
    resolver 127.0.0.1:$dns_port valid=1s ipv6=off;
    resolver_timeout 2s;
    llm_cache_redis redis.test:$port connect_timeout=1s;
    llm_cache_redis_timeout ${slow}s;
EOF

my ($rc, $out) = $nginx->test_conf("$nginx->{dir}/nginx.conf");
is($rc, 0, 'nginx -t: a name the system cannot resolve, with a resolver')
    or diag($out);

LLMCacheTest::provider_request('POST', '/__reset');
ok($nginx->start, 'nginx starts');

sub wait_until {
    my ($cond, $secs) = @_;
    my $deadline = time + $secs * $slow;
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.1;
    }
    return 0;
}

sub dbsize { LLMCacheOwnNginx::cli($_[0], $port, 'DBSIZE') }

ok(wait_until(sub { ($nginx->post($chat))[1] eq 'MISS' }, 10),
   'a MISS through the name');
ok(wait_until(sub { dbsize('127.0.0.2') eq '1' }, 5),
   'stored on the first Redis');
is(($nginx->post($chat))[1], 'HIT', 'a HIT');
is(dbsize('127.0.0.3'), '0', 'the second Redis has nothing');
like(LLMCacheTest::_slurp("$records.log"), qr/^redis\.test 1$/m,
     'nginx asked the name server');

# the endpoint moves: the name is re-pointed, the first Redis stops

my $calls = $nginx->calls;
point('127.0.0.3');
LLMCacheTest::_kill_child($pid_a);

my $t0 = time;
my @seen;
ok(wait_until(sub {
       my $h = ($nginx->post($chat))[1];
       push @seen, $h;
       return $h eq 'MISS';
   }, 15), 'caching resumes on the second Redis, without a reload');
my $took = time - $t0;
ok(wait_until(sub { dbsize('127.0.0.3') eq '1' }, 5),
   'the entry is stored on the second Redis');
is(($nginx->post($chat))[1], 'HIT', 'and read back from it');
ok(!grep({ $_ ne 'ERROR' && $_ ne 'MISS' } @seen),
   'meanwhile requests were answered (ERROR: by the provider)');
diag(sprintf 'caching resumed after %.1f s (%d requests)', $took,
     scalar @seen);

my $log = $nginx->error_log;
like($log, qr/llm_cache: redis "redis\.test:$port" (connection lost|connect failed)/,
     'the loss of the first Redis is logged');
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit or emerg');

my ($vg_ok, $vg) = $nginx->stop;
ok($vg_ok, 'nginx stops' . ($ENV{TEST_NGINX_USE_VALGRIND}
                            ? ', valgrind found no errors' : ''))
    or diag($vg);

# without a resolver: resolved once, at start

my $file = $nginx->write_conf(
    "    llm_cache_redis redis.test:$port;\n",
    "        location /v1/ { llm_cache_pass /_llm; }\n", "$tmp/noresolver.conf");
($rc, $out) = $nginx->test_conf($file);
isnt($rc, 0, 'nginx -t: without a resolver the name must resolve at start');
like($out, qr/host not found in "llm_cache_redis" address "redis\.test:$port"/,
     '... saying so') or diag($out);

$file = $nginx->write_conf(
    "    llm_cache_redis localhost:$port;\n",
    "        location /v1/ { llm_cache_pass /_llm; }\n", "$tmp/localhost.conf");
($rc, $out) = $nginx->test_conf($file);
is($rc, 0, 'a name the system resolves needs no resolver') or diag($out);

done_testing();
