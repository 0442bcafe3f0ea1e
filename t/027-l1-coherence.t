use strict;
use warnings;

use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use Time::HiRes qw(sleep time);

# L1 coherence across gateways: two nginx (two workers each) on one Redis,
# each with an L1 zone kept by Redis's invalidations (CLIENT TRACKING
# BCAST, one subscriber per nginx).  A refresh and a purge on gateway A
# reach gateway B's L1 at once (B answers the new state right after, not
# after the zone's ttl of an hour); a reload of B hands the channel to a
# new worker.  Plain Test::More like t/009-processes.t: it starts its own
# nginx.

plan skip_all => 'not under valgrind (it drives its own nginx)'
    if $ENV{TEST_NGINX_USE_VALGRIND};

my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES};
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
    llm_cache_redis 127.0.0.1:$LLMCacheTest::RedisPort;
    llm_cache_redis_timeout 1s;
    llm_cache_l1_zone hot:1m ttl=1h;
    server {
        listen 127.0.0.1:$p;
        location /v1/ {
            llm_cache_pass /_llm;
            llm_cache_l1 hot;
            llm_cache_purge \$http_x_purge;
            llm_cache_bypass \$http_x_refresh;
            add_header X-Tier \$llm_cache_tier;
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

sub post_to {
    my ($p, %h) = @_;
    my $body = delete $h{-body} // $chat;
    $h{Authorization} //= 'Bearer sk-test';
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p,
                                  Proto => 'tcp', Timeout => 10)
        or return (0, '', '', '');
    my $extra = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
    print $s "POST /v1/chat/completions HTTP/1.0\r\nHost: t\r\n"
             . "Content-Type: application/json\r\n$extra"
             . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($cache) = $resp =~ m{^X-LLM-Cache: (\S+)\r$}mi;
    my ($tier) = $resp =~ m{^X-Tier: (\S+)\r$}mi;
    my ($b) = $resp =~ /\r\n\r\n(.*)\z/s;
    return ($status // 0, $cache // '', $tier // '', $b // '');
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

sub slurp {
    open my $f, '<', shift or return '';
    local $/;
    my $s = <$f> // '';
    close $f;
    return $s;
}

sub subscribed {
    my ($d, $n) = @_;
    my @n = slurp("$d/logs/error.log") =~ /L1 zone "hot" follows Redis/g;
    return @n >= $n;
}

sub master_of {
    my $pid = slurp("$_[0]/logs/nginx.pid");
    chomp $pid;
    return $pid;
}

sub gone {
    my $pid = shift;
    1 while waitpid(-1, 1) > 0;
    open my $f, '<', "/proc/$pid/stat" or return 1;
    my $line = <$f> // '';
    close $f;
    return $line =~ /^\d+ \(.*?\) Z/ ? 1 : 0;
}

my (%dir, %port);
for my $g ('A', 'B') {
    $dir{$g} = tempdir(CLEANUP => 1);
    $port{$g} = LLMCacheTest::_free_port();
    write_conf($dir{$g}, $port{$g});
    is(system($nginx, '-p', $dir{$g}, '-c', "$dir{$g}/nginx.conf"), 0,
       "gateway $g starts");
    ok(wait_until(sub { subscribed($dir{$g}, 1) }, 10),
       "gateway $g: its L1 channel is subscribed");
}

# the answer into Redis, then into both L1s (our own SET's invalidation
# comes back first: the first Redis hit after it fills L1)
my ($st, $c, $t, $body1) = post_to($port{A});
is("$st $c", '200 MISS', 'A: MISS, stored');
sleep 0.2;

for my $g ('A', 'B') {
    my $l1 = wait_until(sub {
        my ($s, $c, $t, $b) = post_to($port{$g});
        return $s == 200 && $c eq 'HIT' && $t eq 'l1' && $b eq $body1;
    }, 5);
    ok($l1, "$g: the entry comes from L1 after a Redis hit");
}

# a refresh on A: B's next answer is the new one, not its L1 copy
($st, $c, $t, my $body2) = post_to($port{A}, 'X-Refresh' => 1);
is("$st $c", '200 BYPASS', 'A: refresh, a new answer stored');
isnt($body2, $body1, 'the refreshed answer differs');

sleep 0.05;
($st, $c, $t, my $b) = post_to($port{B});
is("$st $c", '200 HIT', 'B: a HIT right after the refresh on A');
isnt($t, 'l1', 'B: not from its L1 copy');
is($b, $body2, "B answers A's refreshed entry at once, not after the ttl");

# back into B's L1, then a purge on A
ok(wait_until(sub {
       my ($s, $c, $t, $b) = post_to($port{B});
       return $t eq 'l1' && $b eq $body2;
   }, 5), 'B: the refreshed entry in L1');

($st) = post_to($port{A}, 'X-Purge' => 1);
is($st, 200, 'A: purge');
sleep 0.05;
($st, $c, $t) = post_to($port{B});
is("$st $c $t", '200 MISS ', 'B: a MISS right after the purge on A');

# a reload of B: the old channel worker exits, a new one subscribes
is(system($nginx, '-p', $dir{B}, '-c', "$dir{B}/nginx.conf", '-s', 'reload'),
   0, 'B reloads');
ok(wait_until(sub { subscribed($dir{B}, 2) }, 10),
   'B: a new worker holds the channel after the reload');
ok(wait_until(sub { (post_to($port{B}))[2] eq 'l1' }, 5),
   'B: L1 hits again after the reload');

# the channel killed in Redis: no L1 hit until it is back
LLMCacheTest::redis_command('CLIENT', 'KILL', 'TYPE', 'pubsub');
sleep 0.02;
($st, $c, $t) = post_to($port{B});
is("$st $c", '200 HIT', 'B: still a HIT with the channel killed');
isnt($t, 'l1', 'B: not from L1 right after the channel was killed');
ok(wait_until(sub { subscribed($dir{B}, 3) }, 10), 'B: the channel is back');
like(slurp("$dir{B}/logs/error.log"),
     qr/\[warn\] .*L1 zone "hot" has no invalidation channel/,
     'B: the loss is logged');
ok(wait_until(sub { (post_to($port{B}))[2] eq 'l1' }, 5),
   'B: L1 hits again');

for my $g ('A', 'B') {
    my $m = master_of($dir{$g});
    system($nginx, '-p', $dir{$g}, '-c', "$dir{$g}/nginx.conf", '-s', 'quit');
    ok(wait_until(sub { gone($m) }, 10), "gateway $g exits");
    my $log = slurp("$dir{$g}/logs/error.log");
    unlike($log, qr/\[(alert|crit|emerg)\]/, "$g: no alert, crit or emerg");
    unlike($log, qr/open socket #\d+ left/, "$g: no connection left open");
}

done_testing();
