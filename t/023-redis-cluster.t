use strict;
use warnings;

use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

# Redis Cluster (llm_cache_redis cluster=...) against a real cluster of 3
# masters and 3 replicas that the harness starts: entries spread over the
# masters, each on the node owning its slot; the lock key in its entry's
# slot; ASK and MOVED followed (a slot migrated by hand, then a
# `redis-cli --cluster reshard` under traffic); a namespace purge on every
# master; a master killed (SIGKILL) under traffic three times: no failed
# client request, caching back on the promoted replica without a reload,
# and how long caching was off.  Not data-driven: it drives its own nginx
# and the cluster, so it runs the same under either runner.

plan skip_all => 'not under valgrind (it drives its own nginx)'
    if $ENV{TEST_NGINX_USE_VALGRIND};
plan skip_all => 'redis-cli not found'
    if !LLMCacheTest::_find_in_path('redis-cli');

my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES};
my $dir = tempdir(CLEANUP => 1);
my $port = LLMCacheTest::_free_port();
my $sem_port = LLMCacheTest::_free_port();
my $chat = LLMCacheTest::request_body('openai/chat-request.json');

my @nodes = LLMCacheTest::start_redis_cluster();
pass('a cluster of 3 masters and 3 replicas is up');

sub cli { LLMCacheTest::cluster_cli(@_) }

sub write_conf {
    my ($file, $redis) = @_;
    open my $conf, '>', $file or die $!;
    print $conf <<"EOF";
load_module $module;
worker_processes 2;
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log info;
events { worker_connections 256; }
http {
    access_log off;
    upstream llm_provider { server 127.0.0.1:$LLMCacheTest::ProviderPort; }
    llm_cache_redis $redis;
    llm_cache_redis_timeout 1s;
    map \$request_method \$purge { PURGE 1; default 0; }
    server {
        listen 127.0.0.1:$port;
        location /v1/ {
            llm_cache_pass /_llm;
            llm_cache_lock on;
            llm_cache_purge \$purge;
        }
        location = /metrics {
            llm_cache_metrics;
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
        listen 127.0.0.1:$sem_port;
        location /v1/ {
            llm_cache_pass /_llm;
            llm_cache_semantic on;
            llm_cache_semantic_embed /_embed;
            llm_cache_semantic_model fake-embed;
            add_header X-Sem "\$llm_cache_semantic_status" always;
        }
        location = /_embed {
            internal;
            proxy_pass http://llm_provider/v1/embeddings;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /_llm/ {
            internal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://llm_provider/;
        }
    }
}
EOF
    close $conf;
}

mkdir "$dir/logs";

# bad cluster= parameters are refused at nginx -t
for my $bad (["cluster=127.0.0.1:$nodes[0] db=1", qr/db= cannot be used/],
             ["cluster=127.0.0.1:$nodes[0],,127.0.0.1:$nodes[1]",
              qr/cluster= wants host:port seeds/],
             ['cluster=unix:/tmp/x.sock', qr/cluster= wants host:port/],
             ['cluster=127.0.0.1:99999', qr/invalid port|cluster seed/])
{
    write_conf("$dir/bad.conf", $bad->[0]);
    my $out = `$nginx -t -p $dir -c $dir/bad.conf 2>&1`;
    isnt($?, 0, "nginx -t refuses llm_cache_redis $bad->[0]");
    like($out, $bad->[1], '... with a clear message');
}

write_conf("$dir/nginx.conf",
           "cluster=127.0.0.1:$nodes[0],127.0.0.1:$nodes[1] pool=2");

# prompts, each its own key; one credential: one namespace
my $N = 30;
my @prompt = map {
    my $i = $_;
    $chat =~ s/What are the subscription tiers/Question $i: what are the tiers/r
} 0 .. $N - 1;

sub post {
    my ($i, %h) = @_;
    my $body = delete $h{-body} // (defined $i ? $prompt[$i] : '');
    my $method = delete $h{-method} // 'POST';
    my $to = delete $h{-port} // $port;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $to,
                                  Proto => 'tcp', Timeout => 10)
        or return (0, '', '');
    $h{Authorization} //= 'Bearer sk-cluster';
    my $extra = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
    print $s "$method /v1/chat/completions HTTP/1.0\r\nHost: t\r\n"
             . "Content-Type: application/json\r\n$extra"
             . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($cache) = $resp =~ m{^X-LLM-Cache: (\S+)\r$}mi;
    return ($status // 0, $cache // '', $resp);
}

sub calls {
    my (undef, $body) = LLMCacheTest::provider_request('GET', '/__stats');
    return $body =~ /^calls=(\d+)/m ? $1 : -1;
}

sub alive {
    my $p = shift;
    return (eval { LLMCacheTest::redis_commands_at($p, ['PING']) } // '')
           eq '+PONG';
}

sub masters {
    return grep { alive($_) && cli($_, 'role') =~ /\Amaster\n/ } @nodes;
}

# the entries on each master: key => port
sub entries {
    my %at;
    for my $p (masters()) {
        for my $k (split /\n/, cli($p, '--scan', '--pattern', 'llm:v2:*')) {
            $at{$k} = $p if $k !~ /:lock\z/;
        }
    }
    return %at;
}

sub node_id {
    my $p = shift;
    return cli($p, 'cluster', 'myid') =~ /([0-9a-f]{40})/ ? $1 : die;
}

sub keyslot {
    my $k = shift;
    return cli($nodes[0], 'cluster', 'keyslot', $k) =~ /(\d+)/ ? $1 : die;
}

# [from, to] slot ranges of each master, from CLUSTER NODES
sub ranges {
    my ($p0) = masters();
    my %r;
    for my $line (split /\n/, cli($p0, 'cluster', 'nodes')) {
        my @f = split ' ', $line;
        next if $f[2] !~ /master/ || $f[2] =~ /fail/;
        my ($port) = $f[1] =~ /:(\d+)@/;
        for my $range (@f[8 .. $#f]) {
            my ($from, $to) = $range =~ /^(\d+)(?:-(\d+))?$/ or next;
            push @{ $r{$port} }, [$from, $to // $from];
        }
    }
    return %r;
}

sub slot_owner {
    my $slot = shift;
    my %r = ranges();
    for my $port (keys %r) {
        return $port if grep { $slot >= $_->[0] && $slot <= $_->[1] }
                        @{ $r{$port} };
    }
    return 0;
}

# llm_cache_redis_<name>{server="cluster=..."}
sub cluster_metric {
    my $name = shift;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 10) or return -1;
    print $s "GET /metrics HTTP/1.0\r\nHost: t\r\n\r\n";
    local $/;
    my $m = <$s> // '';
    close $s;
    my $label = "cluster=127.0.0.1:$nodes[0],127.0.0.1:$nodes[1]";
    return $m =~ /^llm_cache_redis_$name\{server="\Q$label\E"\} (\d+)$/m
           ? $1 : -1;
}

sub error_log {
    open my $f, '<', "$dir/logs/error.log" or return '';
    local $/;
    my $log = <$f> // '';
    close $f;
    return $log;
}

is(system($nginx, '-p', $dir, '-c', "$dir/nginx.conf"), 0, 'nginx starts');

# MISS then HIT for each prompt, the provider once each; the key each MISS
# stored, and where
my $calls0 = calls();
my (%key_of, %port_of, @miss);
my %before = entries();
for my $i (0 .. $N - 1) {
    my ($st, $c) = post($i);
    push @miss, "$st $c";
    my %now = entries();
    my @new = grep { !exists $before{$_} } keys %now;
    if (@new == 1) {
        $key_of{$i} = $new[0];
        $port_of{$i} = $now{$new[0]};
    }
    %before = %now;
}
is_deeply(\@miss, [('200 MISS') x $N], "$N prompts: MISS each");
is(scalar(keys %key_of), $N, 'each MISS stored one entry');
cli($_, 'config', 'resetstat') for masters();
my @hit = map { my ($st, $c) = post($_); "$st $c" } 0 .. $N - 1;
is_deeply(\@hit, [('200 HIT') x $N], 'then HIT each');
my @moved = grep { cli($_, 'info', 'errorstats') =~ /errorstat_MOVED/ }
            masters();
is("@moved", '', 'each GET went to its slot\'s master: no MOVED (the '
   . 'CRC16 slots and the map agree with Redis)');
is(calls() - $calls0, $N, 'the provider was called once per prompt');
# 2 workers x (3 masters + the seeds not a master) x pool=2, at least
ok(cluster_metric('connects_total') >= 12,
   'the nodes\' connections count under the cluster= server: '
   . cluster_metric('connects_total'));
is(cluster_metric('up'), 1, 'the cluster is up');

my %spread = map { $_ => 1 } values %port_of;
is(scalar(keys %spread), 3, 'the entries are on all 3 masters');
my @misplaced = grep { slot_owner(keyslot($key_of{$_})) != $port_of{$_} }
                keys %key_of;
is("@misplaced", '', "each entry is on the master owning its key's slot");

# the lock of a miss in flight: "{<key>}:lock", in its entry's slot
{
    my $i = $N;
    push @prompt, $chat =~ s/subscription tiers/tiers (lock)/r;
    my $pid = fork();
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        my ($st, $c) = post($i, 'X-Fake-Delay' => 800);
        exit($st == 200 && $c eq 'MISS' ? 0 : 1);
    }
    my ($lock, $lock_port);
    my $deadline = time + 10;
    while (!$lock && time < $deadline) {
        for my $p (masters()) {
            my ($k) = grep { /:lock\z/ }
                      split /\n/, cli($p, '--scan', '--pattern', '*:lock');
            ($lock, $lock_port) = ($k, $p) if $k;
        }
        sleep 0.02;
    }
    waitpid($pid, 0);
    is($? >> 8, 0, 'a slow MISS with llm_cache_lock on');
    my %now = entries();
    my ($entry) = grep { !exists $before{$_} } keys %now;
    ok($lock && $entry && $lock eq "{$entry}:lock",
       'its lock key was "{<key>}:lock"')
        or diag("lock " . ($lock // 'none') . ", entry " . ($entry // ''));
    ok($entry && $lock_port && $now{$entry} == $lock_port
       && keyslot($lock) == keyslot($entry),
       'the lock was in its entry\'s slot, on the same master');
    %before = %now;
}

# ASK: the slot of an entry migrating from A to B, its key already moved;
# then MOVED once the slot is B's
{
    my $i = 0;
    my $k = $key_of{$i};
    my $pa = $port_of{$i};
    my ($pb) = grep { $_ != $pa } sort { $a <=> $b } masters();
    my $slot = keyslot($k);
    my ($ida, $idb) = (node_id($pa), node_id($pb));
    my $calls = calls();
    cli($pb, 'cluster', 'setslot', $slot, 'importing', $ida);
    cli($pa, 'cluster', 'setslot', $slot, 'migrating', $idb);
    like(cli($pa, 'migrate', '127.0.0.1', $pb, '', 0, 5000, 'keys', $k),
         qr/OK/, "the entry's key migrates from $pa to $pb");
    like(cli($pa, 'exists', $k), qr/\AASK $slot 127\.0\.0\.1:$pb\b/,
         'A answers ASK for it');
    my ($st, $c) = post($i);
    is("$st $c", '200 HIT', 'a request for it: HIT (ASK followed)');
    cli($_, 'cluster', 'setslot', $slot, 'node', $idb) for masters();
    ($st, $c) = post($i);
    is("$st $c", '200 HIT', 'the slot is B\'s: HIT (MOVED followed)');
    ($st, $c) = post($i);
    is("$st $c", '200 HIT', 'and again, from the refreshed map');
    is(calls(), $calls, 'the provider was not called');
    $port_of{$i} = $pb;
}

# a reshard under traffic: the slots up to one entry's, from its master to
# another, while requests for every prompt go on
{
    # the entry with the fewest of its master's slots before it: reshard
    # takes a source's slots from its lowest
    my %r = ranges();
    my ($best, $n);
    for my $i (1 .. $N - 1) {
        my $slot = keyslot($key_of{$i});
        my $below = 0;
        for my $range (@{ $r{$port_of{$i}} }) {
            next if $range->[0] > $slot;
            $below += ($range->[1] < $slot ? $range->[1] : $slot)
                      - $range->[0] + 1;
        }
        ($best, $n) = ($i, $below) if !defined $n || $below < $n;
    }
    my $pa = $port_of{$best};
    my ($pb) = grep { $_ != $pa } sort { $a <=> $b } masters();
    my ($ida, $idb) = (node_id($pa), node_id($pb));
    my $calls = calls();
    my $cli = LLMCacheTest::_find_in_path('redis-cli');
    my $pid = fork();
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        open STDOUT, '>', "$dir/reshard.log";
        open STDERR, '>&', \*STDOUT;
        exec $cli, '--cluster', 'reshard', "127.0.0.1:$pa",
             '--cluster-from', $ida, '--cluster-to', $idb,
             '--cluster-slots', $n < 1000 ? 1000 : $n, '--cluster-yes';
        exit 127;
    }
    my (%seen, $requests);
    my $j = 0;
    my $t0 = time;
    while (waitpid($pid, WNOHANG) == 0 && time - $t0 < 120) {
        my ($st, $c) = post($j++ % $N);
        $seen{"$st $c"}++;
        $requests++;
        sleep 0.02;
    }
    is($?, 0, "redis-cli --cluster reshard moved "
              . ($n < 1000 ? 1000 : $n) . " slots from $pa to $pb")
        or diag(`cat $dir/reshard.log`);
    my $failed = grep { !/^200 / } keys %seen;
    is($failed, 0, "no failed request among $requests during the reshard");
    ok(!$seen{'200 MISS'}, 'no MISS: each request found its entry')
        or diag(explain \%seen);
    diag('during the reshard: '
         . join(', ', map { "$_ x $seen{$_}" } sort keys %seen));
    ok(LLMCacheTest::wait_cluster_ok(masters()), 'the cluster is ok');
    my %now = entries();
    is($now{$key_of{$best}}, $pb, "the resharded entry is on $pb now");
    my @hit = map { my ($st, $c) = post($_); "$st $c" } 0 .. $N - 1;
    is_deeply(\@hit, [('200 HIT') x $N], 'after the reshard: HIT each');
    is(calls(), $calls, 'the provider was not called');
}

unlike(error_log(), qr/bad redirection|redirections, given up|error reply "(MOVED|ASK)/,
       'no redirection failed or was logged as a refusal');

# a namespace purge removes the entries on every master
{
    my %now = entries();
    my $n = keys %now;
    my ($st, $c, $r) = post(0, -method => 'PURGE',
                            'LLM-Cache-Purge' => 'namespace');
    is($st, 200, 'a namespace purge')
        or diag(join "\n", grep { /purge|redis/ } split /\n/, error_log());
    like($r, qr/\{"purged": $n, "scope": "namespace"\}/,
         "it says $n entries went");
    my %left = entries();
    is(scalar(keys %left), 0, 'no entry is left on any master');
    my $calls = calls();
    my @miss = map { my ($st, $c) = post($_); "$st $c" } 0 .. $N - 1;
    is_deeply(\@miss, [('200 MISS') x $N], 'each prompt: MISS again');
    is(calls() - $calls, $N, 'the provider answers each once');
    %port_of = ();
    %now = entries();
    my %prompt_of = reverse %key_of;
    $port_of{$prompt_of{$_}} = $now{$_} for keys %now;
}

# A master killed under traffic, three times; the killed node comes back
# (as a replica) between rounds
my @off;
for my $round (1 .. 3) {
    my %at = entries();
    my %n;
    $n{$at{$_}}++ for keys %at;
    my ($victim) = sort { $n{$b} <=> $n{$a} } keys %n;
    my %victim = map { $_ => 1 } grep { $at{$key_of{$_}} == $victim }
                 keys %key_of;

    # its replica, to tell Redis's own failover time from the module's
    my $vid = node_id($victim);
    my ($replica) = map { /:(\d+)@/ ? $1 : () }
                    grep { /\bslave\b.*\b$vid\b/ }
                    split /\n/, cli($victim, 'cluster', 'nodes');
    my (%seen, $killed, $first_error, $back, $requests, $promoted);
    my $j = 0;
    my $t0 = time;
    while (time - $t0 < 60) {
        my $i = $j++ % $N;
        my ($st, $c) = post($i);
        my $t = time;
        $requests++;
        $seen{"$st $c"}++;
        if (!$killed && $t - $t0 > 0.5) {
            LLMCacheTest::kill_cluster_node($victim);
            $killed = time;
        }
        if ($killed && !$promoted && $replica
            && cli($replica, 'role') =~ /\Amaster\n/)
        {
            $promoted = time;
        }
        if ($killed) {
            $first_error //= $t if $c eq 'ERROR';
            if ($first_error && !$back && $victim{$i}
                && ($c eq 'HIT' || $c eq 'MISS'))
            {
                $back = $t;
            }
        }
        last if $back && $t - $back > 1;
        sleep 0.02;
    }

    my $failed = grep { !/^200 / } keys %seen;
    is($failed, 0, "round $round: master $victim killed, no failed request "
                   . "among $requests");
    ok($back, "round $round: caching resumed on the new master");
    my $cut = $first_error && $back ? $back - $first_error : -1;
    push @off, sprintf('%.2f', $cut);
    diag(sprintf "round %d: caching off for %.2f s (first ERROR %.2f s "
                 . "after the kill; replica %s master %.2f s after the "
                 . "kill, caching back %.2f s after that); %s", $round, $cut,
                 ($first_error // $killed) - $killed, $replica // '?',
                 ($promoted // 0) - $killed,
                 ($back // 0) - ($promoted // 0),
                 join(', ', map { "$_ x $seen{$_}" } sort keys %seen));
    my @hit = map { my ($st, $c) = post($_); "$st $c" } sort keys %victim;
    is_deeply(\@hit, [('200 HIT') x keys %victim],
              "round $round: the dead master's entries HIT on its replica");

    ok(LLMCacheTest::restart_cluster_node($victim),
       "round $round: the killed node restarts");
    ok(LLMCacheTest::wait_cluster_ok(@nodes), "round $round: cluster ok");
    my $deadline = time + 30;
    sleep 0.1 while time < $deadline
                    && cli($victim, 'info', 'replication')
                       !~ /master_link_status:up/;
    like(cli($victim, 'info', 'replication'), qr/master_link_status:up/,
         "round $round: it is a replica in sync");
}
diag("caching was off for @off s in the three failovers");
ok(cluster_metric('failures_total') > 0,
   'the failures count under the cluster= server: '
   . cluster_metric('failures_total'));
is(cluster_metric('breakers_open'), 0, 'no breaker open: the dead masters '
   . 'are replicas again');

# the semantic layer's commands (an index EVAL of 2 keys, MGET) keep to
# one slot: a paraphrase is a HIT_SEMANTIC on the cluster
{
    my ($x, $y) = ('What is your refund policy?', 'How do refunds work?');
    my $pair = qq({"a":"$x","b":"$y","cos":0.99});
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $LLMCacheTest::ProviderPort,
                                  Proto => 'tcp', Timeout => 10) or die;
    print $s "POST /__embed/pair HTTP/1.0\r\nHost: t\r\n"
             . 'Content-Length: ' . length($pair) . "\r\n\r\n$pair";
    local $/;
    like(<$s> // '', qr/pair cos=0\.99/, 'the fake embedder places a pair');
    close $s;
    my $sys = 'You are a helpful support agent.';
    my $chat_of = sub {
        qq({"model":"gpt-4o-mini","messages":[{"role":"system",)
        . qq("content":"$sys"},{"role":"user","content":"$_[0]"}]})
    };
    my $calls = calls();
    my ($st, $c, $r) = post(undef, -port => $sem_port,
                            -body => $chat_of->($x));
    is("$st $c", '200 MISS', 'semantic: the first question, MISS');
    sleep 0.3;
    ($st, $c, $r) = post(undef, -port => $sem_port, -body => $chat_of->($y));
    is("$st $c", '200 HIT_SEMANTIC', 'its paraphrase: HIT_SEMANTIC');
    is(calls() - $calls, 1, 'the provider was called once');
}

# a reload: the new workers find the map again
{
    my $master = do { local @ARGV = "$dir/logs/nginx.pid"; <> };
    is(system($nginx, '-p', $dir, '-c', "$dir/nginx.conf", '-s', 'reload'),
       0, 'reload');
    my $deadline = time + 15;
    my ($st, $c);
    sleep 0.5;
    while (time < $deadline) {
        ($st, $c) = post(1);
        last if "$st $c" eq '200 HIT';
        sleep 0.1;
    }
    is("$st $c", '200 HIT', 'after a reload: HIT');
}

my $log = error_log();
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit or emerg');
unlike($log, qr/exited on signal/, 'no worker crashed');

system($nginx, '-p', $dir, '-c', "$dir/nginx.conf", '-s', 'quit');

done_testing();
