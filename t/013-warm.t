use strict;
use warnings;

use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);

# scripts/warm, the cache warmer, against a real nginx with the module (not
# a data-driven suite: it runs a command, so it runs the same under either
# runner).  Its summary is checked number by number against what the fake
# provider was asked (/__stats) and what Redis holds (/__redis/keys).

plan skip_all => 'not under valgrind (it drives its own nginx)'
    if $ENV{TEST_NGINX_USE_VALGRIND};

my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES};
my $warm = "$LLMCacheTest::RepoRoot/scripts/warm";
my $dir = tempdir(CLEANUP => 1);
my $port = LLMCacheTest::_free_port();
my $url = "http://127.0.0.1:$port";
my $port_idle = LLMCacheTest::_free_port();    # keepalive_timeout 1s

mkdir "$dir/logs";
open my $conf, '>', "$dir/nginx.conf" or die $!;
print $conf <<"EOF";
load_module $module;
worker_processes 1;
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log info;
events { worker_connections 256; }
http {
    log_format conn '\$connection \$status \$upstream_http_x_llm_cache';
    access_log $dir/logs/access.log conn;
    upstream llm_provider { server 127.0.0.1:$LLMCacheTest::ProviderPort; }
    llm_cache_redis 127.0.0.1:$LLMCacheTest::RedisPort;
    llm_cache_redis_timeout 1s;
    server {
        listen 127.0.0.1:$port;
        keepalive_requests 1000;
        location /v1/ {
            llm_cache_pass /_llm;
        }
        location /_llm/ {
            internal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_pass http://llm_provider/;
        }
    }
    server {
        listen 127.0.0.1:$port_idle;
        keepalive_timeout 1s;
        location /v1/ {
            llm_cache_pass /_llm;
        }
        location /_llm/ {
            internal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_pass http://llm_provider/;
        }
    }
}
EOF
close $conf;

my $chat = LLMCacheTest::request_body('openai/chat-request.json');
my $stream = LLMCacheTest::request_body('openai/chat-request-stream.json');
my $embed = LLMCacheTest::request_body('openai/embeddings-request.json');
my $messages = LLMCacheTest::request_body('anthropic/messages-request.json');

sub write_file {
    my ($name, @lines) = @_;
    open my $f, '>', "$dir/$name" or die $!;
    print $f map { "$_\n" } @lines;
    close $f;
    return "$dir/$name";
}

sub slurp {
    open my $f, '<', shift or return '';
    local $/;
    my $data = <$f> // '';
    close $f;
    return $data;
}

# runs scripts/warm; (exit status, stdout, stderr, summary counts)
sub warm {
    my ($stdin, @args) = @_;
    my $pid = fork();
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        open STDIN, '<', $stdin // '/dev/null' or die $!;
        open STDOUT, '>', "$dir/out" or die $!;
        open STDERR, '>', "$dir/err" or die $!;
        exec $warm, @args or exit 127;
    }
    waitpid($pid, 0);
    my $rc = $? >> 8;
    my $out = slurp("$dir/out");
    my %n = $out =~ /^([a-z ]+):\s+(\d+)$/mg;
    return ($rc, $out, slurp("$dir/err"), \%n);
}

sub calls {
    my ($st, $body) = LLMCacheTest::provider_request('GET', '/__stats');
    $body =~ /^calls=(\d+)$/m or die "bad /__stats answer: $st $body";
    return $1;
}

sub keys_in_redis {
    my ($st, $body) = LLMCacheTest::provider_request('GET', '/__redis/keys');
    $body =~ /^keys=(\d+)$/m or die "bad /__redis/keys answer: $st $body";
    return ($1, $body);
}

sub reset_all {
    LLMCacheTest::provider_request('POST', '/__reset');
    LLMCacheTest::redis_command('FLUSHALL');
}

sub wait_until {
    my ($what, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        return 1 if $what->();
        sleep 0.05;
    }
    return 0;
}

my @all = qw(lines sent stored cached bypass error nostatus failed);

sub summary {
    my $n = shift;
    return join ' ', map { "$_=" . ($n->{$_} // '-') } @_;
}

# the summary's labels, as short names
sub short {
    my $n = shift;
    my %map = ('already cached' => 'cached', 'not cacheable' => 'bypass',
               'cache error' => 'error', 'no status' => 'nostatus',
               'not stored' => 'notstored');
    return { map { ($map{$_} // $_) => $n->{$_} } keys %$n };
}

is(system($nginx, '-p', $dir, '-c', "$dir/nginx.conf"), 0, 'nginx starts');
ok(wait_until(sub {
       my ($rc) = warm(undef, '--url', $url, '--timeout', '5',
                       '-H', 'Authorization: Bearer ping',
                       write_file('ping.jsonl', $chat));
       $rc == 0;
   }, 10), 'the gateway answers');
reset_all();

# a file with a comment, a blank line, chat JSON, a stream, an envelope
# for embeddings, a duplicate of the first request, a malformed line (line
# 8), an envelope for /v1/messages with its own header
my $file = write_file('warm.jsonl',
    '# requests to warm',
    $chat,
    '',
    $stream,
    qq({"path": "/v1/embeddings", "body": $embed}),
    $chat,
    '   ',
    '{"model": "gpt-4.1-mini", "messages": [',
    qq({"path": "/v1/messages", "body": $messages, )
    . qq("headers": {"anthropic-version": "2023-06-01"}}));

# X-Fake-Delay: the provider takes 300 ms, so the duplicate is in the queue
# while the first is in flight; it must wait for the first's answer.
my @auth = ('-H', 'Authorization: Bearer sk-warm', '-H', 'X-Fake-Delay: 300');
my ($rc, $out, $err, $n) = warm(undef, '--url', $url, '-c', '4', @auth,
                                $file);
$n = short($n);
is(summary($n, @all),
   'lines=6 sent=5 stored=4 cached=1 bypass=0 error=0 nostatus=0 failed=1',
   'first run: 4 stored, the duplicate already cached, the bad line failed')
    or diag("stdout:\n$out\nstderr:\n$err");
is($rc, 1, 'first run: exit status 1 (a line failed)');
like($err, qr/^warm: line 8: not JSON: /m,
     'the malformed line is named by its number');
unlike($err, qr/\r/, 'no progress bar when stderr is not a terminal');
is(calls(), 4, 'the provider was called once per distinct request');
my ($keys, $listing) = keys_in_redis();
is($keys, 4, 'Redis holds four entries') or diag($listing);
like($listing, qr/^llm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=\d+ bytes=\d+$/m,
     'entries with a TTL');

# again: everything is already cached, and costs no provider call
($rc, $out, $err, $n) = warm(undef, '--url', $url, @auth, $file);
$n = short($n);
is(summary($n, @all),
   'lines=6 sent=5 stored=0 cached=5 bypass=0 error=0 nostatus=0 failed=1',
   'second run: all already cached') or diag("stdout:\n$out\nstderr:\n$err");
is($rc, 1, 'second run: exit status 1 (the bad line)');
is(calls(), 4, 'second run: no provider call');

# the same from standard input without the bad line, two at a time:
# exit status 0, and two keep-alive connections carry the five requests
my @good = grep { !/\[$/ } split /\n/, slurp($file);
my $good = write_file('good.jsonl', @good);
my $logged = () = slurp("$dir/logs/access.log") =~ /\n/g;
($rc, $out, $err, $n) = warm($good, '--url', $url, @auth, '-c', '2', '-');
$n = short($n);
is(summary($n, qw(lines sent stored cached failed)),
   'lines=5 sent=5 stored=0 cached=5 failed=0', 'stdin: all already cached')
    or diag("stdout:\n$out\nstderr:\n$err");
is($rc, 0, 'stdin: exit status 0');
is(calls(), 4, 'stdin: no provider call');
my @lines = split /\n/, slurp("$dir/logs/access.log");
my %conns = map { ((split / /)[0] => 1) } @lines[$logged .. $#lines];
is(@lines - $logged, 5, 'stdin: five requests logged');
ok(keys(%conns) <= 2, 'stdin: on at most two connections (' . keys(%conns)
   . ')');

# a keep-alive connection that the gateway closed while it was idle
# (keepalive_timeout 1s): the request goes again on a new connection
reset_all();
{
    my $pid = open(my $to, '|-');
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        open STDOUT, '>', "$dir/out" or die $!;
        open STDERR, '>', "$dir/err" or die $!;
        exec $warm, '--url', "http://127.0.0.1:$port_idle", '-c', '1',
             '-H', 'Authorization: Bearer sk-idle', '-'
            or exit 127;
    }
    $to->autoflush(1);
    print $to "$chat\n";
    ok(wait_until(sub { calls() == 1 }, 10), 'idle: the first request sent');
    sleep 2;
    print $to qq({"path": "/v1/embeddings", "body": $embed}\n);
    close $to;
    my $rc = $?;
    my ($out, $err) = (slurp("$dir/out"), slurp("$dir/err"));
    my $n = short({ $out =~ /^([a-z ]+):\s+(\d+)$/mg });
    is(summary($n, qw(sent stored failed)), 'sent=2 stored=2 failed=0',
       'idle: both stored') or diag("stdout:\n$out\nstderr:\n$err");
    is($rc, 0, 'idle: exit status 0 (no signal)');
    is(calls(), 2, 'idle: two provider calls');
}

# a usage error: exit status 2
($rc, $out, $err) = warm(undef, '--url', $url);
is($rc, 2, 'no FILE: exit status 2');
like($err, qr/usage: warm /, 'no FILE: usage');

# a failing provider: failed counts, exit status 1, nothing stored
reset_all();
my $two = write_file('two.jsonl', $chat, qq({"path": "/v1/embeddings", "body": $embed}));
# (one at a time, slowly, with a progress line every 0.2 s)
($rc, $out, $err, $n) = warm(undef, '--url', $url, '-c', '1',
                             '--progress', '0.2',
                             '-H', 'Authorization: Bearer sk-fail',
                             '-H', 'X-Fake-Delay: 400',
                             '-H', 'X-Fake-Status: 500', $two);
$n = short($n);
is(summary($n, @all),
   'lines=2 sent=2 stored=0 cached=0 bypass=0 error=0 nostatus=0 failed=2',
   'provider 500: both failed') or diag("stdout:\n$out\nstderr:\n$err");
is($rc, 1, 'provider 500: exit status 1');
like($err, qr{^warm: line 2: /v1/embeddings: HTTP 500 \(MISS\)}m,
     'provider 500: the line, path and status are named');
is((keys_in_redis())[0], 0, 'provider 500: nothing stored');
like($err, qr{^warm: [01]/2 stored 0, cached 0, failed [01]  [\d.]+/s$}m,
     'not a terminal: plain progress lines');
unlike($err, qr/\r/, 'not a terminal: no carriage return');

# a stream cut short is read to its end, and fails
reset_all();
($rc, $out, $err, $n) = warm(write_file('cut.jsonl', $stream), '--url', $url,
                             '-H', 'Authorization: Bearer sk-cut',
                             '-H', 'X-Fake-Cut: 2', "$dir/cut.jsonl");
$n = short($n);
is(summary($n, qw(sent stored failed)), 'sent=1 stored=0 failed=1',
   'a cut stream: failed') or diag("stdout:\n$out\nstderr:\n$err");
like($err, qr/^warm: line 1: .*cut short/m, 'a cut stream: said so');
is($rc, 1, 'a cut stream: exit status 1');
is((keys_in_redis())[0], 0, 'a cut stream: nothing stored');

# no credential: not cacheable, a hint, exit status 3
reset_all();
($rc, $out, $err, $n) = warm(undef, '--url', $url, $two);
$n = short($n);
is(summary($n, @all),
   'lines=2 sent=2 stored=0 cached=0 bypass=2 error=0 nostatus=0 failed=0',
   'no credential: not cacheable') or diag("stdout:\n$out\nstderr:\n$err");
is($rc, 3, 'no credential: exit status 3');
like($err, qr/hint: not cacheable: .*--header 'Authorization: Bearer/s,
     'no credential: the hint names --header Authorization');

# another status header name: no status
($rc, $out, $err, $n) = warm(undef, '--url', $url, '-H',
                             'Authorization: Bearer sk-other-header',
                             '--status-header', 'X-Other', $two);
$n = short($n);
is(summary($n, qw(sent stored nostatus failed)),
   'sent=2 stored=0 nostatus=2 failed=0', '--status-header X-Other: no status')
    or diag("stdout:\n$out\nstderr:\n$err");
is($rc, 3, 'no status: exit status 3');

# --verify: an answer with Cache-Control: no-store is a MISS but is not
# stored; the second pass tells it from one that was
reset_all();
my $verify = write_file('verify.jsonl', $chat,
    qq({"path": "/v1/embeddings", "body": $embed, )
    . qq("headers": {"X-Fake-Cache-Control": "no-store"}}));
($rc, $out, $err, $n) = warm(undef, '--url', $url, '--verify',
                             '-H', 'Authorization: Bearer sk-verify', $verify);
$n = short($n);
is(summary($n, qw(sent stored cached failed verified notstored)),
   'sent=2 stored=2 cached=0 failed=0 verified=1 notstored=1',
   '--verify: one verified, one not stored')
    or diag("stdout:\n$out\nstderr:\n$err");
is($rc, 3, '--verify: exit status 3');
like($err, qr{^warm: verify: line 2: /v1/embeddings: not stored}m,
     '--verify: the line not stored is named');
is(calls(), 3, '--verify: the one not stored was fetched again');

# the gateway down: failed, exit status 1
($rc, $out, $err, $n) = warm(undef, '--url',
                             "http://127.0.0.1:$LLMCacheTest::ClosedPort",
                             '-H', 'Authorization: Bearer sk-down', $two);
$n = short($n);
is(summary($n, qw(sent failed)), 'sent=2 failed=2', 'gateway down: failed')
    or diag("stdout:\n$out\nstderr:\n$err");
like($err, qr/Connection refused/, 'gateway down: said so');
is($rc, 1, 'gateway down: exit status 1');

# --dry-run sends nothing
reset_all();
($rc, $out, $err, $n) = warm(undef, '--dry-run', '--url', $url, $file);
is($out =~ tr/\n//, 5, '--dry-run: one line per path and the counts')
    or diag($out);
like($out, qr{^would send 3 to /v1/chat/completions$}m,
     '--dry-run: three to chat');
is($rc, 1, '--dry-run: exit status 1 (the bad line)');
is(calls(), 0, '--dry-run: no provider call');

# on a terminal: a progress bar, redrawn in place
SKIP: {
    my $script = -x '/usr/bin/script' ? '/usr/bin/script' : undef;
    skip 'no script(1) to give a terminal', 2 if !$script;
    reset_all();
    my $cmd = join ' ', map { "'$_'" } $warm, '--url', $url,
                  '-H', 'Authorization: Bearer sk-tty',
                  '-H', 'X-Fake-Delay: 300', '-c', '1', $good;
    my $pid = fork();
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null' or die $!;
        open STDOUT, '>', "$dir/tty" or die $!;
        open STDERR, '>&', \*STDOUT or die $!;
        exec $script, '-qec', "$cmd >/dev/null", '/dev/null'
            or exit 127;
    }
    waitpid($pid, 0);
    my $tty = slurp("$dir/tty");
    like($tty, qr/\r\[#+\.*\] \d\/5 /, 'a terminal: a progress bar')
        or diag($tty);
    like($tty, qr/\[#{10,}\] 5\/5 stored 4, cached 1, failed 0/,
         'a terminal: the bar full at the end') or diag($tty);
}

my $master = slurp("$dir/logs/nginx.pid");
chomp $master;
system($nginx, '-p', $dir, '-c', "$dir/nginx.conf", '-s', 'quit');
ok(wait_until(sub {
       1 while waitpid(-1, 1) > 0;    # WNOHANG: we may be its subreaper
       !kill 0, $master;
   }, 10), 'nginx exits');

my $log = slurp("$dir/logs/error.log");
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit or emerg');
unlike($log, qr/exited on signal/, 'no worker crashed');

done_testing();
