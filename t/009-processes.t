use strict;
use warnings;

use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use Time::HiRes qw(sleep time);

# Reload, graceful shutdown and two gateways on one Redis, with real
# processes (not a data-driven suite: it drives its own nginx, master and
# two workers, so it runs the same under either runner).  After each `nginx -s reload` the old workers exit
# at once, the new ones hold the same number of fds and Redis sees exactly
# pool x workers connections; `nginx -s quit` lets a request in flight
# finish, and nothing is left open (nginx logs "open socket ... left" as an
# alert if a connection leaks).

plan skip_all => 'not under valgrind (it drives its own nginx)'
    if $ENV{TEST_NGINX_USE_VALGRIND};

my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES};
my $dir = tempdir(CLEANUP => 1);
my $port = LLMCacheTest::_free_port();
my $chat = LLMCacheTest::request_body('openai/chat-request.json');

sub write_conf {
    my ($d, $p) = @_;
    mkdir "$d/logs";
    open my $conf, '>', "$d/nginx.conf" or die $!;
    print $conf <<"EOF";
load_module $module;
worker_processes 2;
pid $d/logs/nginx.pid;
error_log $d/logs/error.log info;
events { worker_connections 256; }
http {
    access_log off;
    upstream llm_provider { server 127.0.0.1:$LLMCacheTest::ProviderPort; }
    llm_cache_redis 127.0.0.1:$LLMCacheTest::RedisPort pool=2;
    llm_cache_redis_timeout 1s;
    server {
        listen 127.0.0.1:$p;
        location /v1/ {
            llm_cache_pass /_llm;
            llm_cache_lock on;
            llm_cache_lock_timeout 30s;
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
}

write_conf($dir, $port);

sub post {
    # a credential: requests without one are not cached
    return post_to($port, Authorization => 'Bearer sk-test', @_);
}

sub post_to {
    my ($p, %h) = @_;
    my $body = delete $h{-body} // $chat;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p,
                                  Proto => 'tcp', Timeout => 10)
        or return (0, '', '');
    my $extra = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
    print $s "POST /v1/chat/completions HTTP/1.0\r\nHost: t\r\n"
             . "Content-Type: application/json\r\n$extra"
             . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($cache) = $resp =~ m{^X-LLM-Cache: (\S+)\r$}mi;
    return ($status // 0, $cache // '', $resp);
}

# the module's Redis connections (they name themselves llm_cache)
sub clients {
    my ($status, $body) = LLMCacheTest::provider_request('GET',
                                                         '/__redis/clients');
    $body =~ /^llm_cache clients=(\d+)$/m
        or die "bad /__redis/clients answer: $status $body";
    return $1;
}

sub workers {
    my $master = master();
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $f, '<', $stat or next;
        my $line = <$f> // '';
        close $f;
        my ($pid, $ppid) = $line =~ /^(\d+) \(.*?\) \S+ (\d+)/ or next;
        push @w, $pid if $ppid == $master;
    }
    return sort { $a <=> $b } @w;
}

sub nworkers {
    my @w = workers();
    return scalar @w;
}

sub master {
    open my $f, '<', "$dir/logs/nginx.pid" or return 0;
    my $pid = <$f>;
    close $f;
    chomp $pid;
    return $pid;
}

sub fds {
    my $pid = shift;
    my @fd = glob "/proc/$pid/fd/*";
    return scalar @fd;
}

# exited (a zombie whose parent is this test counts as exited)
sub gone {
    my $pid = shift;
    1 while waitpid(-1, 1) > 0;    # WNOHANG
    open my $f, '<', "/proc/$pid/stat" or return 1;
    my $line = <$f> // '';
    close $f;
    return $line =~ /^\d+ \(.*?\) Z/ ? 1 : 0;
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

# a lock in Redis: a leader's request is in nginx and past its look-up
sub locked {
    return LLMCacheTest::redis_command('KEYS', '*:lock') eq '*1';
}

sub error_log {
    open my $f, '<', "$dir/logs/error.log" or return '';
    local $/;
    my $log = <$f> // '';
    close $f;
    return $log;
}

is(system($nginx, '-p', $dir, '-c', "$dir/nginx.conf"), 0, 'nginx starts');
ok(wait_until(sub { nworkers() == 2 && clients() == 4 }, 10),
   'two workers, each with a pool of two Redis connections');

# fds of fresh workers, before they serve anything
my @fds0 = sort { $a <=> $b } map { fds($_) } workers();


my ($st1, $c1, $r1) = post();
my ($st2, $c2, $r2) = post();
is("$st1 $c1", '200 MISS', 'first request: MISS');
is("$st2 $c2", '200 HIT', 'second request: HIT');


for my $round (1 .. 3) {
    my @old = workers();
    is(system($nginx, '-p', $dir, '-c', "$dir/nginx.conf", '-s', 'reload'),
       0, "reload $round");
    ok(wait_until(sub {
        my %now = map { $_ => 1 } workers();
        !grep { $now{$_} || -e "/proc/$_" } @old;
    }, 10), "reload $round: the old workers exit at once");
    ok(wait_until(sub { nworkers() == 2 && clients() == 4 }, 10),
       "reload $round: Redis sees 2 x 2 connections, none left over");
    # a moment to settle: under load a worker may be between two sockets
    my @fds;
    wait_until(sub {
        @fds = sort { $a <=> $b } map { fds($_) } workers();
        "@fds" eq "@fds0";
    }, 5);
    is("@fds", "@fds0", "reload $round: the new workers hold as many fds");
    my ($st, $c) = post();
    is("$st $c", '200 HIT', "reload $round: still a HIT");
}

# Two gateways on one Redis: a miss on gateway A holds the lock; the same
# request on gateway B, a separate nginx, waits for A's answer.
{
    my $dir_b = tempdir(CLEANUP => 1);
    my $port_b = LLMCacheTest::_free_port();
    write_conf($dir_b, $port_b);
    is(system($nginx, '-p', $dir_b, '-c', "$dir_b/nginx.conf"), 0,
       'gateway B starts');
    ok(wait_until(sub { clients() == 8 }, 10), 'gateway B is connected');

    my $leader = fork();
    die "fork: $!" if !defined $leader;
    if ($leader == 0) {
        my ($st, $c) = post_to($port, 'X-Fake-Delay' => 800,
                               'Authorization' => 'Bearer sk-two-gateways');
        exit($st == 200 && $c eq 'MISS' ? 0 : 1);
    }
    ok(wait_until(\&locked, 10), 'gateway A takes the lock');
    my ($st_b, $c_b, $r_b) = post_to($port_b,
                                     'Authorization' => 'Bearer sk-two-gateways');
    waitpid($leader, 0);
    is($? >> 8, 0, 'gateway A: MISS, the provider answers');
    is("$st_b $c_b", '200 HIT_WAITED', "gateway B: waited for A's answer");
    my ($st_a2, $c_a2, $r_a2) = post_to($port,
                                        'Authorization' => 'Bearer sk-two-gateways');
    is("$st_a2 $c_a2", '200 HIT', 'gateway A: then a HIT');
    my ($body_b) = $r_b =~ /\r\n\r\n(.*)\z/s;
    my ($body_a2) = $r_a2 =~ /\r\n\r\n(.*)\z/s;
    is($body_b, $body_a2, "B's answer is A's, byte for byte");

    open my $f, '<', "$dir_b/logs/nginx.pid" or die $!;
    my $master_b = <$f>;
    close $f;
    chomp $master_b;
    system($nginx, '-p', $dir_b, '-c', "$dir_b/nginx.conf", '-s', 'quit');
    ok(wait_until(sub { gone($master_b) }, 10), 'gateway B exits');
    ok(wait_until(sub { clients() == 4 }, 5), "gateway B's connections close");
}

# A leader whose client leaves mid-stream frees the lock at once: the
# waiter takes over (MISS_WAITED) instead of waiting out the lock timeout
# (30 s; the bound on the wait leaves room for a loaded machine).
{
    my $stream = LLMCacheTest::request_body('openai/chat-request-stream.json');
    my %auth = ('Authorization' => 'Bearer sk-leader-leaves', -body => $stream);
    my $leader = fork();
    die "fork: $!" if !defined $leader;
    if ($leader == 0) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp',
                                      Timeout => 10) or exit 1;
        print $s "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
                 . "Content-Type: application/json\r\n"
                 . "Authorization: Bearer sk-leader-leaves\r\n"
                 . "X-Fake-Event-Delay: 300\r\n"
                 . 'Content-Length: ' . length($stream) . "\r\n\r\n$stream";
        my $got = '';
        while ($got !~ /data:/) {
            my $n = sysread($s, $got, 4096, length $got);
            exit 1 if !$n;
        }
        sleep 0.6;
        close $s;    # gone mid-stream
        exit($got =~ /X-LLM-Cache: MISS\r\n/ ? 0 : 1);
    }
    ok(wait_until(\&locked, 10), 'the leader takes the lock');
    my $t0 = time;
    my ($st, $c, $r) = post(%auth);
    my $waited = time - $t0;
    waitpid($leader, 0);
    is($? >> 8, 0, 'the leader streams, then its client leaves');
    is("$st $c", '200 MISS_WAITED',
       'the waiter takes over as soon as the leader is gone');
    ok($waited < 15, "not after llm_cache_lock_timeout (30s) but when the "
       . "leader left (waited ${\ sprintf '%.1f', $waited} s)");
    like($r, qr/data: \[DONE\]/, "the waiter's stream is whole");
    my ($st2, $c2, $r2) = post(%auth);
    is("$st2 $c2", '200 HIT', "the waiter's answer was stored");
}

# a miss in flight (another credential, so another key; the provider takes
# 1.5 s) when nginx is told to quit
my ($entries) = LLMCacheTest::redis_command('DBSIZE') =~ /(\d+)/;
my $pid = fork();
die "fork: $!" if !defined $pid;
if ($pid == 0) {
    my ($st, $c, $r) = post('X-Fake-Delay' => 1500,
                            'Authorization' => 'Bearer sk-in-flight');
    exit($st == 200 && $c eq 'MISS' ? 0 : 1);
}
ok(wait_until(\&locked, 10), 'the miss is in nginx');
my $master = master();
is(system($nginx, '-p', $dir, '-c', "$dir/nginx.conf", '-s', 'quit'), 0,
   'quit');
waitpid($pid, 0);
is($? >> 8, 0, 'the request in flight still got its whole answer');
ok(wait_until(sub { gone($master) }, 10),
   'the master exits: no timer or connection holds a worker');
ok(wait_until(sub {
       LLMCacheTest::redis_command('DBSIZE') eq ':' . ($entries + 1);
   }, 5), 'the answer in flight was stored before the worker exited');
ok(wait_until(sub { clients() == 0 }, 5), 'Redis sees no connection left');

my $log = error_log();
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit or emerg');
unlike($log, qr/open socket #\d+ left/, 'no connection left open');
unlike($log, qr/exited on signal/, 'no worker crashed');

done_testing();
