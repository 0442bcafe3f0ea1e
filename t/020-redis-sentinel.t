use strict;
use warnings;

use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider
use LLMCacheSentinel;
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes qw(sleep time);

# Sentinel failover with real processes (plain Test::More, as t/009: it
# drives its own nginx, master and two workers, so it runs the same under
# either runner).  A master, a replica and three sentinels (quorum 2,
# down-after-milliseconds 1000), passwords on Redis and on the sentinels;
# nginx names the master through the sentinels, the first of them down.
#
#   * MISS then HIT through the master the sentinels name, the dead
#     sentinel skipped;
#   * SENTINEL FAILOVER (the old master lives on, demoted): +switch-master
#     moves both workers' pools to the new master before any request;
#   * three times: the master is SIGKILLed while a client sends a request
#     every 20 ms: no request fails (Redis down is ERROR, answered by the
#     provider), caching resumes on the new master without a reload, and
#     the time caching was off is reported.

plan skip_all => 'not under valgrind (it drives its own nginx)'
    if $ENV{TEST_NGINX_USE_VALGRIND};

my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES};
my $dir = tempdir(CLEANUP => 1);
my $port = LLMCacheTest::_free_port();
my $closed = LLMCacheTest::closed_port();
my $chat = LLMCacheTest::request_body('openai/chat-request.json');

my $s = LLMCacheSentinel->start(name => 'mymaster',
                                password => 'master-Pa55',
                                sentinel_password => 'sentinel-Pa55');
ok($s->wait_ready(60), 'master, replica and three sentinels are ready')
    or die "no Sentinel set-up\n";

my $sentinels = join ' ', "127.0.0.1:$closed",
                          map { "127.0.0.1:$_" } @{$s->{sentinel_ports}};

mkdir "$dir/logs";
open my $conf, '>', "$dir/nginx.conf" or die $!;
print $conf <<"EOF";
load_module $module;
worker_processes 2;
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log info;
events { worker_connections 256; }
http {
    access_log off;
    upstream llm_provider { server 127.0.0.1:$LLMCacheTest::ProviderPort; }
    llm_cache_redis sentinel=mymaster $sentinels
                    password=master-Pa55 sentinel_password=sentinel-Pa55
                    pool=2;
    llm_cache_redis_timeout 1s;
    server {
        listen 127.0.0.1:$port;
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

# a request of its own (a new cache key) for each tag
sub body {
    my $tag = shift;
    return $chat =~ s/per month\?/per month? ($tag)/r;
}

sub post {
    my $body = shift;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp',
                                     Timeout => 10)
        or return (0, '');
    print $sock "POST /v1/chat/completions HTTP/1.0\r\nHost: t\r\n"
                . "Content-Type: application/json\r\n"
                . "Authorization: Bearer sk-sentinel\r\n"
                . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    local $/;
    my $resp = <$sock> // '';
    close $sock;
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($cache) = $resp =~ m{^X-LLM-Cache: (\S+)\r$}mi;
    return ($status // 0, $cache // '');
}

# the module's connections to the Redis on $p (they name themselves)
sub clients {
    my $p = shift;
    my $list = eval { $s->redis($p, 'CLIENT', 'LIST') } // '';
    return scalar(() = $list =~ /\bname=llm_cache\b/g);
}

sub calls {
    my (undef, $body) = LLMCacheTest::provider_request('GET', '/__stats');
    return $body =~ /calls=(\d+)/ ? $1 : -1;
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

# exited (a zombie whose parent is this test counts as exited)
sub gone {
    my $pid = shift;
    1 while waitpid(-1, 1) > 0;    # WNOHANG
    open my $f, '<', "/proc/$pid/stat" or return 1;
    my $line = <$f> // '';
    close $f;
    return $line =~ /^\d+ \(.*?\) Z/ ? 1 : 0;
}

sub error_log {
    open my $f, '<', "$dir/logs/error.log" or return '';
    local $/;
    my $log = <$f> // '';
    close $f;
    return $log;
}

is(system($nginx, '-p', $dir, '-c', "$dir/nginx.conf"), 0, 'nginx starts');

ok(wait_until(sub { clients($s->{master_port}) == 4 }, 20),
   'both workers asked the sentinels: 2 x 2 connections to the master');
like(error_log(), qr/sentinel 127\.0\.0\.1:$closed for master "mymaster" connect failed: .*skipped/,
     'the sentinel that is down is skipped (and logged)');

LLMCacheTest::provider_request('POST', '/__reset');
my @r1 = post(body('first'));
my @r2 = post(body('first'));
is("@r1", '200 MISS', 'first request: MISS');
is("@r2", '200 HIT', 'second request: HIT');
is(calls(), 1, 'the provider was called once');


# SENTINEL FAILOVER: the old master is demoted, not dead; nothing fails,
# only +switch-master tells the workers
{
    my ($old, $new) = @$s{qw(master_port replica_port)};
    is($s->sentinel(1, 'SENTINEL', 'FAILOVER', 'mymaster'), 'OK',
       'SENTINEL FAILOVER');
    ok($s->wait_switch(60), 'the sentinels name the replica');
    my $t0 = time;
    ok(wait_until(sub { clients($new) == 4 && clients($old) == 0 }, 20),
       'the pools move to the new master with no request sent');
    note(sprintf 'pools moved %.2f s after the sentinels agreed', time - $t0);
    like(error_log(),
         qr/redis master "mymaster" moved to 127\.0\.0\.1:$new \(\+switch-master/,
         'logged: moved by +switch-master');
    my @m = post(body('after manual failover'));
    my @h = post(body('after manual failover'));
    is("@m @h", '200 MISS 200 HIT', 'stored on the new master: MISS, HIT');
    ok($s->redis($new, 'DBSIZE') >= 2, 'the new master holds the entries');
}

# a client sending a request every 20 ms (a new key each: MISS while
# caching works, ERROR while it does not) until $stop exists
sub traffic {
    my ($out, $stop, $round) = @_;
    my $pid = fork();
    die "fork: $!" if !defined $pid;
    return $pid if $pid;
    open my $f, '>', $out or POSIX::_exit(1);
    $f->autoflush(1);
    my $i = 0;
    my $deadline = time + 120;
    while (!-e $stop && time < $deadline) {
        my $t = time;
        my ($st, $cache) = post(body("round $round request " . $i++));
        printf $f "%.3f %s %s\n", $t, $st, $cache || '-';
        my $rest = 0.02 - (time - $t);
        sleep $rest if $rest > 0;
    }
    close $f;
    POSIX::_exit(0);
}

sub results {
    my $out = shift;
    open my $f, '<', $out or return ();
    my @r = map { [split] } <$f>;
    close $f;
    return @r;
}

my @off;

for my $round (1 .. 3) {
    ok($s->wait_ready(60), "round $round: the replica is in sync, the "
                           . 'sentinels agree')
        or last;
    my ($old, $new) = @$s{qw(master_port replica_port)};
    ok(wait_until(sub { clients($old) == 4 }, 20),
       "round $round: the pools are on the master");

    my $out = "$dir/traffic-$round";
    my $stop = "$dir/stop-$round";
    my $pid = traffic($out, $stop, $round);
    ok(wait_until(sub { grep { $_->[2] eq 'MISS' } results($out) }, 10),
       "round $round: traffic is cached");

    my $killed = time;
    $s->kill_master;
    ok($s->wait_switch(60), "round $round: the sentinels promote the replica");
    my $agreed = time;

    # caching back: a MISS (stored) after an ERROR after the kill
    my $back = wait_until(sub {
        my $err;
        for my $r (results($out)) {
            next if $r->[0] < $killed;
            $err //= $r if $r->[2] eq 'ERROR';
            return 1 if $err && $r->[2] ne 'ERROR';
        }
        return 0;
    }, 30);
    sleep 0.3;
    open my $f, '>', $stop or die $!;
    close $f;
    waitpid($pid, 0);

    my @r = results($out);
    my @bad = grep { $_->[1] != 200 } @r;
    is(scalar @bad, 0, "round $round: no client request failed ("
                       . scalar(@r) . ' sent)')
        or diag(explain \@bad);
    ok($back, "round $round: caching resumed without a reload");

    my ($first_err, $first_ok);
    for my $r (@r) {
        next if $r->[0] < $killed;
        $first_err //= $r->[0] if $r->[2] eq 'ERROR';
        if (defined $first_err && $r->[2] ne 'ERROR') {
            $first_ok = $r;
            last;
        }
    }
    if (defined $first_err && $first_ok) {
        my $ms = int(($first_ok->[0] - $first_err) * 1000);
        push @off, $ms;
        diag("round $round: caching was off for $ms ms (first ERROR "
             . sprintf('%.2f', $first_err - $killed) . ' s after SIGKILL, '
             . "then $first_ok->[2]); the three sentinels named the new "
             . sprintf('master %.2f s after SIGKILL', $agreed - $killed));
    }

    # the last stored answer is read back: a HIT from the new master
    my ($last) = grep { $_->[2] eq 'MISS' } reverse @r;
    my ($n) = $last ? (grep { $r[$_] == $last } 0 .. $#r) : ();
    my @h = defined $n ? post(body("round $round request $n")) : ();
    is("@h", '200 HIT', "round $round: a new entry was stored, then a HIT");
    is(clients($new), 4, "round $round: the pools are on the new master");

    $s->restart_replica;
}

is(scalar @off, 3, 'three failovers measured');
diag('caching off per failover (ms): ' . join(', ', @off)) if @off;

# a reload: the new workers ask the sentinels afresh, the old ones leave
# nothing behind
is(system($nginx, '-p', $dir, '-c', "$dir/nginx.conf", '-s', 'reload'), 0,
   'reload');
ok(wait_until(sub { clients($s->{master_port}) == 4 }, 20),
   'after the reload: 2 x 2 connections to the master, none left over');
my @after = post(body('after reload'));
is("@after", '200 MISS', 'after the reload: cached (MISS, stored)');

my $master = do {
    open my $f, '<', "$dir/logs/nginx.pid" or die $!;
    my $p = <$f>;
    chomp $p;
    $p;
};
is(system($nginx, '-p', $dir, '-c', "$dir/nginx.conf", '-s', 'quit'), 0,
   'quit');
ok(wait_until(sub { gone($master) }, 10), 'nginx exits');

my $log = error_log();
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit or emerg');
unlike($log, qr/open socket #\d+ left/, 'no connection left open');
unlike($log, qr/exited on signal/, 'no worker crashed');

done_testing();
