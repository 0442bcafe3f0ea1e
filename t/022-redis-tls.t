use strict;
use warnings;

use lib 't/lib';
use LLMCacheTest;     # the fake provider (and a clear-text Redis)
use LLMCacheOwnNginx;
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);

# TLS to Redis (rediss://, llm_cache_redis_ssl_*), against Debian's
# redis-server with --tls-port and certificates made here.  Plain
# Test::More: it starts its own Redis servers (TLS only, one wanting client
# certificates) and its own nginx, so it runs the same under either
# runner; with TEST_NGINX_USE_VALGRIND=1 nginx runs under valgrind and the
# last test is valgrind's verdict.  A relay in front of some of the TLS
# ports records the first byte of every connection: 0x16 is a TLS
# handshake, anything else would be clear text.

my $tmp = tempdir(CLEANUP => 1);
chmod 0755, $tmp;
my $c = LLMCacheOwnNginx::certs($tmp);
my @kill;

END {
    LLMCacheTest::_kill_child($_) for @kill;
}

my %redis;
for my $r (['ok', 'server', 0], ['mtls', 'server', 1], ['wrong', 'wrong', 0],
           ['other', 'other', 0])
{
    my ($name, $leaf, $auth) = @$r;
    my ($port, $pid, $log) = LLMCacheOwnNginx::tls_redis(dir => $tmp,
        name => $name, certs => $c, ca => $c->{'ca.crt'},
        cert => $c->{"$leaf.crt"}, key => $c->{"$leaf.key"},
        auth_clients => $auth, insecure => $leaf eq 'other');
    push @kill, $pid;
    $redis{$name} = $port;
}

my %sniff;
for my $name (qw(ok wrong other)) {
    my ($port, $pid, $file) = LLMCacheOwnNginx::sniffer($redis{$name}, $tmp);
    push @kill, $pid;
    $sniff{$name} = { port => $port, file => $file };
}

my $chat = LLMCacheTest::request_body('openai/chat-request.json');
my $ca = $c->{'ca.crt'};
my $timeout = $ENV{TEST_NGINX_USE_VALGRIND} ? '10s' : '3s';

my $nginx = LLMCacheOwnNginx::Nginx->new;

sub loc {
    my ($name, $redis, @extra) = @_;
    my $more = join '', map { "            $_;\n" } @extra;
    return <<"EOF";
        location /$name/ {
            llm_cache_pass /_llm;
            llm_cache_redis $redis connect_timeout=$timeout;
            llm_cache_redis_timeout $timeout;
$more        }
EOF
}

$nginx->write_conf("    llm_cache_redis_ssl_trusted_certificate $ca;\n",
    loc('ok', "rediss://127.0.0.1:$sniff{ok}{port}")
    . loc('byname', "rediss://localhost:$redis{ok}")
    . loc('wrongca', "rediss://127.0.0.1:$sniff{other}{port}")
    . loc('wrongname', "rediss://127.0.0.1:$sniff{wrong}{port}")
    . loc('sslname', "rediss://127.0.0.1:$redis{ok} db=1",
          'llm_cache_redis_ssl_name other.example')
    . loc('samespec', "rediss://127.0.0.1:$redis{ok} db=1")
    . loc('noverify', "rediss://127.0.0.1:$redis{other}",
          'llm_cache_redis_ssl_verify off')
    . loc('mtlsnone', "rediss://127.0.0.1:$redis{mtls}")
    . loc('mtls', "rediss://127.0.0.1:$redis{mtls} db=2",
          "llm_cache_redis_ssl_certificate $c->{'client.crt'}",
          "llm_cache_redis_ssl_certificate_key $c->{'client.key'}"));

LLMCacheTest::provider_request('POST', '/__reset');

ok($nginx->start, 'nginx starts with TLS Redis servers');

sub clients {
    my ($port) = @_;
    my $list = LLMCacheOwnNginx::tls_cli($c, $port, 'CLIENT', 'LIST');
    my @n = $list =~ /name=llm_cache /g;
    return scalar @n;
}

sub wait_until {
    my ($cond, $secs) = @_;
    my $deadline = time + $secs * ($ENV{TEST_NGINX_USE_VALGRIND} ? 5 : 1);
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.1;
    }
    return 0;
}

sub first_bytes {
    my ($name) = @_;
    my $data = LLMCacheTest::_slurp($sniff{$name}{file});
    return [split /\n/, $data];
}

sub dbsize {
    my ($port, $db) = @_;
    return LLMCacheOwnNginx::tls_cli($c, $port, '-n', $db // 0, 'DBSIZE');
}

# -- a verified TLS connection: MISS, then HIT

ok(wait_until(sub { clients($redis{ok}) >= 2 }, 10),
   'the pool is set up over TLS');

my $calls = $nginx->calls;
my ($st, $cache, $body1) = $nginx->post($chat, '/ok/v1/chat/completions');
is("$st $cache", '200 MISS', 'TLS: first request is a MISS');
ok(wait_until(sub { dbsize($redis{ok}) eq '1' }, 5),
   'the entry is in Redis (redis-cli --tls)');
my $keys = LLMCacheOwnNginx::tls_cli($c, $redis{ok}, '--scan',
                                     '--pattern', 'llm:*');
like($keys, qr/^llm:\S+$/, "its key: $keys");
my $ttl = LLMCacheOwnNginx::tls_cli($c, $redis{ok}, 'TTL', $keys);
ok($ttl > 0 && $ttl <= 3600, "with a TTL ($ttl)");
my ($st2, $cache2, $body2) = $nginx->post($chat, '/ok/v1/chat/completions');
is("$st2 $cache2", '200 HIT', 'TLS: second request is a HIT');
is($body2, $body1, 'the HIT answers the stored bytes');
is($nginx->calls - $calls, 1, 'the provider was called once');

my $first = first_bytes('ok');
ok(@$first >= 1, scalar(@$first) . ' connections through the relay');
is_deeply([grep { $_ ne '16' } @$first], [],
          'each opened with a TLS handshake (0x16)');

# -- a host name: SNI and the name checked against the certificate

($st, $cache) = $nginx->post($chat, '/byname/v1/chat/completions');
is("$st $cache", '200 MISS', 'rediss://localhost:port: verified by name');
($st, $cache) = $nginx->post($chat, '/byname/v1/chat/completions');
is("$st $cache", '200 HIT', '... and a HIT');

# -- verification failures: fail open, a clear line, nothing stored, no
#    clear text

sub fails_open {
    my ($name, $what) = @_;
    my $before = $nginx->calls;
    for my $i (1 .. 2) {
        my ($s, $h) = $nginx->post($chat, "/$name/v1/chat/completions");
        is("$s $h", '200 ERROR', "$what: request $i answered by the provider");
    }
    is($nginx->calls - $before, 2, "$what: the provider answered both");
}

LLMCacheOwnNginx::tls_cli($c, $redis{other}, 'FLUSHALL');
fails_open('wrongca', 'a CA not trusted');
my $log = $nginx->error_log;
like($log, qr/\[error\] .*llm_cache: redis "rediss:\/\/127\.0\.0\.1:$sniff{other}{port}" connect failed: SSL certificate verify error: \(\d+:[^)]+\) for "127\.0\.0\.1"/,
     'the verify error is logged, with OpenSSL\'s reason and the host');
is(dbsize($redis{other}), '0', 'nothing stored on the untrusted server');
ok(wait_until(sub {
       $nginx->error_log =~ /redis "rediss:\/\/127\.0\.0\.1:$sniff{other}{port}" failed \d+ times in a row/
   }, 10), 'verification failures count for the circuit breaker');
$first = first_bytes('other');
ok(@$first >= 1, 'the untrusted server was contacted');
is_deeply([grep { $_ ne '16' } @$first], [], 'only ever with TLS');

fails_open('wrongname', 'a certificate for another name');
like($nginx->error_log,
     qr/\[error\] .*llm_cache: redis "rediss:\/\/127\.0\.0\.1:$sniff{wrong}{port}" connect failed: SSL certificate does not match "127\.0\.0\.1"/,
     'the name mismatch is logged');
is(dbsize($redis{wrong}), '0', 'nothing stored');
$first = first_bytes('wrong');
is_deeply([grep { $_ ne '16' } @$first], [], 'only ever with TLS');

fails_open('sslname', 'llm_cache_redis_ssl_name of another name');
like($nginx->error_log,
     qr/connect failed: SSL certificate does not match "other\.example"/,
     'checked against llm_cache_redis_ssl_name');
is(dbsize($redis{ok}, 1), '0', 'nothing stored');
($st, $cache) = $nginx->post($chat, '/samespec/v1/chat/completions');
is("$st $cache", '200 MISS',
   'the same llm_cache_redis without it: its own pool, verified');
ok(wait_until(sub { dbsize($redis{ok}, 1) eq '1' }, 5), 'and stored');

# -- verification off: the untrusted server is used

($st, $cache) = $nginx->post($chat, '/noverify/v1/chat/completions');
ok(wait_until(sub { dbsize($redis{other}) eq '1' }, 5),
   'llm_cache_redis_ssl_verify off: stored on the untrusted server');
($st, $cache) = $nginx->post($chat, '/noverify/v1/chat/completions');
is("$st $cache", '200 HIT', 'and read back');

# -- mutual TLS

fails_open('mtlsnone', 'Redis wants a client certificate, none given');
like($nginx->error_log,
     qr/\[error\] .*llm_cache: redis "rediss:\/\/127\.0\.0\.1:$redis{mtls}" (connect failed|connection lost): .*\(Redis asked for a client certificate and llm_cache_redis_ssl_certificate gives none\)/,
     'the refused handshake is logged');
is(dbsize($redis{mtls}), '0', 'nothing stored');

$calls = $nginx->calls;
ok(wait_until(sub {
       my ($s, $h) = $nginx->post($chat, '/mtls/v1/chat/completions');
       return $h eq 'MISS';
   }, 10), 'with llm_cache_redis_ssl_certificate: a MISS');
ok(wait_until(sub { dbsize($redis{mtls}, 2) eq '1' }, 5), 'stored');
($st, $cache) = $nginx->post($chat, '/mtls/v1/chat/completions');
is("$st $cache", '200 HIT', 'and a HIT');

$log = $nginx->error_log;
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit or emerg');
diag(join '', grep { /llm_cache/ } split /^/, $log)
    if $ENV{LLM_CACHE_TEST_VERBOSE};

my ($vg_ok, $vg) = $nginx->stop;
ok($vg_ok, 'nginx stops' . ($ENV{TEST_NGINX_USE_VALGRIND}
                            ? ', valgrind found no errors' : ''))
    or diag($vg);
unlike($nginx->error_log, qr/\[(alert|crit|emerg)\]/,
       'nothing left open at exit');

# -- nginx -t refuses what cannot work

my %bad = (
    'a certificate without its key' => [
        "llm_cache_redis rediss://127.0.0.1:$redis{ok};\n"
        . "llm_cache_redis_ssl_certificate $c->{'client.crt'};",
        qr/no "llm_cache_redis_ssl_certificate_key" for "llm_cache_redis_ssl_certificate"/],
    'a key without a certificate' => [
        "llm_cache_redis rediss://127.0.0.1:$redis{ok};\n"
        . "llm_cache_redis_ssl_certificate_key $c->{'client.key'};",
        qr/no "llm_cache_redis_ssl_certificate" for "llm_cache_redis_ssl_certificate_key"/],
    'TLS settings next to a clear-text address' => [
        "llm_cache_redis 127.0.0.1:$redis{ok};\n"
        . "llm_cache_redis_ssl_trusted_certificate $ca;",
        qr/"llm_cache_redis_ssl_\*" directives need a "rediss:\/\/" address in "llm_cache_redis", not "127\.0\.0\.1:\d+"/],
    'rediss:// on a unix socket' => [
        "llm_cache_redis rediss://unix:/tmp/redis.sock;",
        qr/"llm_cache_redis" "rediss:\/\/unix:\/tmp\/redis\.sock": Redis has no TLS on a unix socket/],
    'a CA file that is not there' => [
        "llm_cache_redis rediss://127.0.0.1:$redis{ok};\n"
        . "llm_cache_redis_ssl_trusted_certificate $tmp/nope.crt;",
        qr/SSL_CTX_load_verify_locations\("[^"]*nope\.crt"\) failed/],
    'an unknown protocol' => [
        "llm_cache_redis rediss://127.0.0.1:$redis{ok};\n"
        . "llm_cache_redis_ssl_protocols TLSv9;",
        qr/invalid value "TLSv9"/],
);

for my $what (sort keys %bad) {
    my ($http, $re) = @{ $bad{$what} };
    my $file = $nginx->write_conf("    $http\n",
        "        location /v1/ { llm_cache_pass /_llm; }\n",
        "$tmp/bad.conf");
    my ($rc, $out) = $nginx->test_conf($file);
    isnt($rc, 0, "nginx -t fails: $what");
    like($out, $re, "... saying why") or diag($out);
}

done_testing();
