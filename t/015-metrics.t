use strict;
use warnings;

use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use Time::HiRes qw(sleep time);

# llm_cache_metrics: a scripted run against a real nginx (two workers, so
# the counters are the workers' shared ones), then scrapes whose counters
# add up exactly to the requests sent; the counters survive a reload.
# Plain Test::More (it reloads its own nginx), so it runs the same under
# either runner.

plan skip_all => 'not under valgrind (it drives its own nginx)'
    if $ENV{TEST_NGINX_USE_VALGRIND};

my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES};
my $dir = tempdir(CLEANUP => 1);
my $port = LLMCacheTest::_free_port();
my $chat = LLMCacheTest::request_body('openai/chat-request.json');
my $closed = LLMCacheTest::closed_port();
my $started;

sub write_conf {
    my ($extra) = @_;
    $extra //= 'llm_cache_metrics_models 2;';
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
    llm_cache_redis 127.0.0.1:$LLMCacheTest::RedisPort;
    llm_cache_redis_timeout 1s;
    $extra
    server {
        listen 127.0.0.1:$port;
        location /v1/ {
            llm_cache_pass /_llm;
            llm_cache_bypass \$http_x_bypass;
            llm_cache_max_size 64k;
        }
        location /lock/ {
            llm_cache_pass /_llm;
            llm_cache_lock on;
            llm_cache_lock_timeout 30s;
        }
        location /down/ {
            llm_cache_pass /_llm;
            llm_cache_redis 127.0.0.1:$closed;
        }
        location /_llm/ {
            internal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_pass http://llm_provider/;
        }
        location = /metrics {
            llm_cache_metrics;
            allow 127.0.0.1;
            deny all;
        }
        location = /metrics-denied {
            llm_cache_metrics;
            deny all;
        }
    }
}
EOF
    close $conf;
}

# an HTTP/1.0 exchange, read to the end (the request is counted when
# nginx frees it, before it closes the connection)
sub exchange {
    my ($req) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 10)
        or return (0, '', '', '');
    print $s $req;
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($cache) = $resp =~ m{^X-LLM-Cache: (\S+)\r$}mi;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    return ($status // 0, $cache // '', $body // '', $head // '');
}

sub post {
    my (%h) = @_;
    my $path = delete $h{-path} // '/v1/chat/completions';
    my $body = delete $h{-body} // $chat;
    # a credential: requests without one are not cached
    $h{Authorization} //= 'Bearer sk-test';
    my $extra = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
    return exchange("POST $path HTTP/1.0\r\nHost: t\r\n"
                    . "Content-Type: application/json\r\n$extra"
                    . 'Content-Length: ' . length($body) . "\r\n\r\n$body");
}

sub model_body {
    my $m = shift;
    return $chat =~ s/"model":"[^"]*"/"model":"$m"/r;
}

sub scrape {
    my ($path, %h) = @_;
    my $extra = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
    my ($st, undef, $body, $head) =
        exchange("GET $path HTTP/1.0\r\nHost: t\r\n$extra\r\n");
    return ($st, $body, $head);
}

# the llm_cache_requests_total samples: "STATUS model" => count
sub requests {
    my $text = shift;
    my %n;
    while ($text =~ /^llm_cache_requests_total\{status="(\w+)",
                     model="([^"]*)"\}\ (\d+)$/mgx)
    {
        $n{"$1 $2"} = $3;
    }
    return \%n;
}

# the store follows the answer: wait for it before the request for a HIT
sub stored {
    my $n = shift;
    wait_until(sub { LLMCacheTest::redis_command('DBSIZE') eq ":$n" }, 10)
        or diag("Redis does not hold $n entries");
}

# a request is counted when nginx frees it, which may be after the client
# saw its answer end (lingering close): wait until all are counted
sub scrape_all {
    my ($total, @args) = @_;
    my @r;
    wait_until(sub {
        @r = scrape(@args);
        my $sum = 0;
        $sum += $_ for values %{ requests($r[1]) };
        $sum == $total;
    }, 10);
    return @r;
}

sub fmt {
    my $n = shift;
    return join ', ', map { "$_=$n->{$_}" } sort keys %$n;
}

sub nginx_cmd {
    return system($nginx, '-p', $dir, '-c', "$dir/nginx.conf", @_);
}

sub master {
    open my $f, '<', "$dir/logs/nginx.pid" or return 0;
    my $pid = <$f> // '';
    close $f;
    chomp $pid;
    return $pid;
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

my $test_pid = $$;

END {
    # not from a forked client
    nginx_cmd('-s', 'quit') if $$ == $test_pid && $started && master();
}

# nginx -t refuses a bad directive, with a clear message
sub conf_error {
    my ($http, $location) = @_;
    $location //= '';
    my $d = tempdir(CLEANUP => 1);
    mkdir "$d/logs";
    open my $conf, '>', "$d/nginx.conf" or die $!;
    print $conf "load_module $module;\npid $d/logs/nginx.pid;\n"
        . "error_log $d/logs/error.log;\nevents {}\nhttp {\n$http\n"
        . "server { listen 127.0.0.1:$port; location / { $location } }\n}\n";
    close $conf;
    my $out = `$nginx -t -p $d -c $d/nginx.conf 2>&1`;
    return $? == 0 ? '' : $out;
}

like(conf_error('llm_cache_price gpt-4o 2.5 ten;'),
     qr/invalid price "ten" in "llm_cache_price"/, 'a price that is no number');
like(conf_error('llm_cache_price gpt-4o 2.1234567 10;'),
     qr/invalid price "2\.1234567"/, 'a price with 7 decimals');
like(conf_error('llm_cache_price "~gpt-(4o" 2.5 10;'),
     qr/pcre2?_compile\(\) failed|missing \)|missing closing/,
     'a price regex that does not compile');
like(conf_error('llm_cache_price gpt-4o 2.5;'),
     qr/invalid number of arguments in "llm_cache_price"/,
     'a price without the output price');
like(conf_error('llm_cache_metrics_models 257;'),
     qr/"llm_cache_metrics_models" directive must be from 0 to 256/,
     'more than 256 models');
like(conf_error('llm_cache_metrics_zone 16k;'),
     qr/"llm_cache_metrics_zone" of 16384 bytes is too small, it needs at /,
     'a zone too small');
like(conf_error('', 'llm_cache_metrics; llm_cache_metrics;'),
     qr/"llm_cache_metrics" directive is duplicate/, 'a duplicate');
like(conf_error('', 'llm_cache_metrics x;'),
     qr/invalid number of arguments in "llm_cache_metrics"/,
     'llm_cache_metrics takes no argument');

write_conf();

is(nginx_cmd('-t', '-q'), 0, 'nginx -t accepts the metrics directives');
is(nginx_cmd(), 0, 'nginx starts');
$started = 1;
ok(wait_until(sub { (scrape('/metrics'))[0] == 200 }, 10), 'nginx answers');

{
    my ($st, $body, $head) = scrape('/metrics');
    like($head, qr{^Content-Type: text/plain; version=0\.0\.4}mi,
         'Prometheus text format by default');
    like($body, qr/^\#\ HELP\ llm_cache_requests_total\ .+\n
                  \#\ TYPE\ llm_cache_requests_total\ counter$/mx,
         'HELP and TYPE lines');
    is(fmt(requests($body)), '', 'nothing counted yet');
    is((scrape('/metrics-denied'))[0], 403,
       'deny all in the metrics location: 403');
}

# the run: 1 MISS + 3 HIT (gpt-4.1-mini), 1 MISS + 1 HIT (gpt-4o),
# 2 BYPASS, 1 ERROR (Redis down), then two more models: "other"
my @sent;
push @sent, [post()];
stored(1);
push @sent, [post()] for 1 .. 3;
push @sent, [post(-body => model_body('gpt-4o'))];
stored(2);
push @sent, [post(-body => model_body('gpt-4o'))];
push @sent, [post('X-Bypass' => 1)] for 1 .. 2;
push @sent, [post(-path => '/down/v1/chat/completions')];
push @sent, [post(-body => model_body('claude-x'))];
push @sent, [post(-body => model_body('llama-y'))];
stored(4);
push @sent, [post(-body => model_body('llama-y'))];

is(join(' ', map { "$_->[0]/$_->[1]" } @sent),
   '200/MISS 200/HIT 200/HIT 200/HIT 200/MISS 200/HIT 200/BYPASS '
   . '200/BYPASS 200/ERROR 200/MISS 200/MISS 200/HIT',
   'the run answers as expected');

my %expect = (
    'MISS gpt-4.1-mini'   => 1,
    'HIT gpt-4.1-mini'    => 3,
    'MISS gpt-4o'         => 1,
    'HIT gpt-4o'          => 1,
    'BYPASS gpt-4.1-mini' => 2,     # a refresh: evaluated after the body
    'ERROR gpt-4.1-mini'  => 1,
    'MISS other'          => 2,
    'HIT other'           => 1,
);

{
    my ($st, $body) = scrape_all(12, '/metrics');
    is($st, 200, 'scrape: 200');
    is(fmt(requests($body)), fmt(\%expect),
       'requests by status and model add up to the requests sent');
}

{
    my ($st, $body, $head) = scrape('/metrics?format=json');
    like($head, qr{^Content-Type: application/json\r?$}mi,
         '?format=json: application/json');
    is(substr($body, 0, index($body, ',"tokens_saved"')),
       '{"requests":{"MISS":{"gpt-4.1-mini":1,"gpt-4o":1,"other":2},'
       . '"HIT":{"gpt-4.1-mini":3,"gpt-4o":1,"other":1},'
       . '"BYPASS":{"gpt-4.1-mini":2},"ERROR":{"gpt-4.1-mini":1},'
       . '"HIT_WAITED":{},"MISS_WAITED":{},"STALE":{},"PURGE":{},'
       . '"HIT_SEMANTIC":{}}',
       'JSON: the same counts');
    # the same counts (a store's late Redis reply may move the rest)
    my ($st2, $body2) = scrape('/metrics', Accept => 'application/json');
    is(substr($body2, 0, index($body2, ',"tokens_saved"')),
       substr($body, 0, index($body, ',"tokens_saved"')),
       'Accept: application/json gives the JSON too');
}

# the counters are in shared memory: a reload keeps them
{
    is(nginx_cmd('-s', 'reload'), 0, 'reload');
    ok(wait_until(sub { error_log() =~ /gracefully shutting down/ }, 10),
       'the old workers are told to go');
    my ($st, $c) = post();
    is("$st $c", '200 HIT', 'after the reload: a HIT');
    $expect{'HIT gpt-4.1-mini'}++;
    my (undef, $body) = scrape_all(13, '/metrics');
    is(fmt(requests($body)), fmt(\%expect),
       'after the reload: the counts go on from where they were');
}

my $old_master = master();
is(nginx_cmd('-s', 'quit'), 0, 'quit');
ok(wait_until(sub { gone($old_master) }, 10), 'nginx exits');
$started = 0;

# Tokens, money and provider time saved, from the stored answers' usage
# (the fixtures': OpenAI 38 + 92, its stream 38 + 27, Anthropic 31 + 29,
# in its stream from message_start and message_delta), at these prices.
LLMCacheTest::redis_command('FLUSHALL');
LLMCacheTest::provider_request('POST', '/__reset');
write_conf(<<'CONF');
llm_cache_price gpt-4.1-mini 0.40 1.60;
    llm_cache_price gpt-4o* 2.50 10;
    llm_cache_price ~^claude-(sonnet|opus) 3 15;
CONF
is(nginx_cmd(), 0, 'nginx starts again (a new shared zone: counters at 0)');
$started = 1;
ok(wait_until(sub { (scrape('/metrics'))[0] == 200 }, 10), 'nginx answers');
is(fmt(requests((scrape('/metrics'))[1])), '', 'a restart zeroes them');

my $anthropic = LLMCacheTest::request_body('anthropic/messages-request.json');
my $anthropic_stream =
    LLMCacheTest::request_body('anthropic/messages-request-stream.json');
my $chat_stream = LLMCacheTest::request_body('openai/chat-request-stream.json');
my @api = (-path => '/v1/messages');

@sent = ();
push @sent, [post('X-Fake-Delay' => 300)];
stored(1);
push @sent, [post()] for 1 .. 2;
push @sent, [post(-body => $chat_stream)];
stored(2);
push @sent, [post(-body => $chat_stream)];
push @sent, [post(@api, -body => $anthropic)];
stored(3);
push @sent, [post(@api, -body => $anthropic)] for 1 .. 3;
push @sent, [post(@api, -body => $anthropic_stream)];
stored(4);
push @sent, [post(@api, -body => $anthropic_stream)];
push @sent, [post(-body => model_body('gpt-4o-2024-08-06'))];
stored(5);
push @sent, [post(-body => model_body('gpt-4o-2024-08-06'))];
is(join(' ', map { "$_->[0]/$_->[1]" } @sent),
   '200/MISS 200/HIT 200/HIT 200/MISS 200/HIT 200/MISS 200/HIT 200/HIT '
   . '200/HIT 200/MISS 200/HIT 200/MISS 200/HIT',
   'the second run answers as expected');

{
    my $entry = LLMCacheTest::redis_command('EVAL',
        "for _, k in ipairs(redis.call('KEYS', '*')) do "
        . "local v = redis.call('GET', k) "
        . "if string.find(v, 'fake%-1\"') then "
        . "return {ok = string.match(v, '^[^\\n]*')} end end", 0);
    like($entry, qr/^\+LLMC3 200 \d+ 16 38 92 (\d+) \d+$/,
         'the entry keeps the usage and the provider time');
    my ($ms) = $entry =~ / (\d+) \d+$/;
    ok(defined $ms && $ms >= 300 && $ms < 10000,
       'the provider time (' . ($ms // '?') . ' ms) is the '
       . "subrequest's (X-Fake-Delay: 300)");

    my (undef, $body) = scrape_all(13, '/metrics');
    my %tok;
    while ($body =~ /^llm_cache_tokens_saved_total\{kind="(\w+)",
                     model="([^"]*)"\}\ (\d+)$/mgx)
    {
        $tok{"$2 $1"} = $3;
    }
    is(fmt(\%tok),
       fmt({ 'gpt-4.1-mini prompt' => 2 * 38 + 38,
             'gpt-4.1-mini completion' => 2 * 92 + 27,
             'claude-sonnet-4-5 prompt' => 4 * 31,
             'claude-sonnet-4-5 completion' => 4 * 29,
             'gpt-4o-2024-08-06 prompt' => 38,
             'gpt-4o-2024-08-06 completion' => 92 }),
       "tokens saved: the hits' usage, prompt and completion apart");

    my %cost;
    while ($body =~ /^llm_cache_cost_saved_dollars_total\{
                     model="([^"]*)"\}\ ([\d.]+)$/mgx)
    {
        $cost{$1} = $2;
    }
    # 114 x 0.40 + 211 x 1.60; 124 x 3 + 116 x 15; 38 x 2.5 + 92 x 10
    is(fmt(\%cost),
       fmt({ 'gpt-4.1-mini' => '0.000383200000',
             'claude-sonnet-4-5' => '0.002112000000',
             'gpt-4o-2024-08-06' => '0.001015000000' }),
       'money saved per model, at llm_cache_price (exact, prefix, regex)');

    my ($t) = $body =~ /^llm_cache_provider_time_saved_seconds_total
                        \{model="gpt-4\.1-mini"\}\ ([\d.]+)$/mx;
    ok(defined $t && $t >= 0.6 && $t < 20,
       'provider time saved: two hits of a 300 ms answer, and one more');
    like($body, qr/^\#\ TYPE\ llm_cache_cost_saved_dollars_total\ counter$/mx,
         'TYPE line for the money');

    my (undef, $json) = scrape('/metrics?format=json');
    like($json, qr/"tokens_saved":\{"gpt-4\.1-mini":\{"prompt":114,
                   "completion":211\},"claude-sonnet-4-5":\{"prompt":124,
                   "completion":116\},"gpt-4o-2024-08-06":\{"prompt":38,
                   "completion":92\}\},"cost_saved_dollars":\{
                   "gpt-4\.1-mini":0\.000383200000,
                   "claude-sonnet-4-5":0\.002112000000,
                   "gpt-4o-2024-08-06":0\.001015000000\},
                   "provider_time_saved_seconds":\{"gpt-4\.1-mini":
                   [\d.]+,/x, 'JSON: the same');
}

# an entry of the first format, written before this version: still a HIT,
# with no usage
{
    my $ct = 'application/json';
    my $v1 = 'LLMC1 200 ' . int(time) . ' ' . length($ct) . "\n$ct"
             . '{"id":"old","choices":[]}';
    my ($st, $b) = LLMCacheTest::provider_request('GET',
        '/__redis/overwrite?hex=' . unpack('H*', $v1));
    like($b, qr/^overwritten=5$/m, 'every entry is now an LLMC1 one');
    my ($st2, $c2, $body2) = post();
    is("$st2 $c2 $body2", '200 HIT {"id":"old","choices":[]}',
       'an LLMC1 entry is served');
    my (undef, $body) = scrape_all(14, '/metrics');
    like($body, qr/^llm_cache_tokens_saved_total\{kind="prompt",
                   model="gpt-4\.1-mini"\}\ 114$/mx,
         'and saves no tokens it cannot know');
}

# answers not stored, one for each reason (a new model: none is stored)
{
    my $ns = model_body('not-stored');
    my $ns_anthropic = $anthropic =~ s/"model":"[^"]*"/"model":"not-stored"/r;
    @sent = ();
    push @sent, [post(-body => $ns, 'X-Fake-Status' => 500)];
    push @sent, [post(-body => $ns, 'X-Fake-Content-Type' => 'text/html')];
    push @sent, [post(-body => $ns, 'X-Fake-Size' => 100000)];
    push @sent, [post(-body => $ns, 'X-Fake-Cut' => 1)];
    push @sent, [post(-body => $ns, 'X-Fake-Cache-Control' => 'no-store')];
    push @sent, [post(@api, -body => $ns_anthropic, 'X-Fake-Fixture' =>
                      'anthropic/messages-response-stream-error.sse')];
    is(join(' ', map { "$_->[0]/$_->[1]" } @sent),
       '500/MISS 200/MISS 200/MISS 200/MISS 200/MISS 200/MISS',
       'six misses');
    my (undef, $body) = scrape_all(20, '/metrics');
    is(requests($body)->{'MISS not-stored'} // 0, 6,
       'counted as MISS of their model');
    my %ns = $body =~ /^llm_cache_not_stored_total
                       \{reason="(\w+)"\}\ (\d+)$/mgx;
    is(fmt(\%ns), fmt({ status => 1, type => 1, too_big => 1, cut => 1,
                       no_store => 1, invalid => 1, redis => 0 }),
       'not stored: one for each reason');
    like($body, qr/^llm_cache_stores_total 5$/m, 'stores: the five entries');
    is(LLMCacheTest::redis_command('DBSIZE'), ':5', 'Redis holds five');
    my (undef, $json) = scrape('/metrics?format=json');
    like($json, qr/,"stores":5,"not_stored":\{"status":1,"type":1,
                   "too_big":1,"cut":1,"no_store":1,"invalid":1,
                   "redis":0\}/x, 'JSON: stores and not stored');
}

# lock waits: a second request waits on the first's miss
{
    my $body = model_body('lock-test');
    my $pid = fork();
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        my ($st, $c) = post(-path => '/lock/v1/chat/completions',
                            -body => $body, 'X-Fake-Delay' => 1000);
        exit($st == 200 && $c eq 'MISS' ? 0 : 1);
    }
    ok(wait_until(sub {
           LLMCacheTest::redis_command('EVAL',
               "return #redis.call('KEYS', '*:lock')", 0) eq ':1';
       }, 10), 'the leader holds the lock');
    my ($st, $c) = post(-path => '/lock/v1/chat/completions', -body => $body);
    waitpid($pid, 0);
    is($? >> 8, 0, 'the leader: MISS');
    is("$st $c", '200 HIT_WAITED', 'the second: HIT_WAITED');
    my (undef, $m) = scrape_all(22, '/metrics');
    like($m, qr/^llm_cache_requests_total\{status="HIT_WAITED",
                model="lock-test"\}\ 1$/mx, 'counted as HIT_WAITED');
    like($m, qr/^llm_cache_lock_waits_total 1$/m, 'one lock wait');
    my ($w) = $m =~ /^llm_cache_lock_wait_seconds_total ([\d.]+)$/m;
    ok(defined $w && $w > 0.1 && $w < 10,
       'its time: most of the leader\'s second (' . ($w // '?') . ')');
}

# Redis, by server: the test Redis answers, the closed port does not (its
# breaker opens in both workers); replies in the histogram
my $up = "127.0.0.1:$LLMCacheTest::RedisPort";
my $down = "127.0.0.1:$closed";
sub redis_metrics {
    my $m = shift;
    my %r;
    while ($m =~ /^llm_cache_redis_(\w+)\{server="([^"]+)"\}\ (\d+)$/mgx) {
        $r{"$1 $2"} = $3;
    }
    return \%r;
}
{
    my ($m, $r);
    ok(wait_until(sub {
           (undef, $m) = scrape('/metrics');
           $r = redis_metrics($m);
           ($r->{"breakers_open $down"} // 0) == 2;
       }, 20), 'the closed port: its breaker open in both workers');
    is($r->{"up $up"}, 1, 'the test Redis is up');
    is($r->{"up $down"}, 0, 'the closed port is down');
    is($r->{"breakers_open $up"}, 0, 'no breaker open for the test Redis');
    ok($r->{"connects_total $up"} >= 2, 'connections to the test Redis: '
       . $r->{"connects_total $up"});
    is($r->{"connects_total $down"}, 0, 'none to the closed port');
    ok($r->{"failures_total $down"} >= 10,
       'failures of the closed port (max_fails=5, two workers): '
       . $r->{"failures_total $down"});
    my @b = $m =~ /^llm_cache_redis_command_duration_seconds_bucket
                   \{le="[^"]+"\}\ (\d+)$/mgx;
    my ($count) = $m =~ /^llm_cache_redis_command_duration_seconds_count
                         \ (\d+)$/mx;
    is(scalar @b, 7, 'seven buckets');
    ok($count > 0 && $b[-1] == $count
       && !grep({ $b[$_] < $b[$_ - 1] } 1 .. $#b),
       "the histogram is cumulative, +Inf is its count ($count)");
    like($m, qr/^\#\ TYPE\ llm_cache_redis_command_duration_seconds\ 
                histogram$/mx, 'TYPE histogram');

    # a reload: the old workers' breakers leave the gauge with them
    is(nginx_cmd('-s', 'reload'), 0, 'reload');
    ok(wait_until(sub {
           (undef, $m) = scrape('/metrics');
           $r = redis_metrics($m);
           ($r->{"connects_total $up"} // 0) >= 4
           && ($r->{"breakers_open $down"} // 0) == 2;
       }, 20), 'after the reload: the new workers connect again');
    sleep 0.5;
    (undef, $m) = scrape('/metrics');
    is(redis_metrics($m)->{"breakers_open $down"}, 2,
       'and the gauge says two open breakers, not four');
    my (undef, $json) = scrape('/metrics?format=json');
    like($json, qr/"redis":\{"servers":\{"\Q$up\E":\{"up":1,
                   "breakers_open":0,"connects":\d+,"failures":\d+\},
                   "\Q$down\E":\{"up":0,"breakers_open":2,"connects":0,
                   "failures":\d+\}\},"command_duration_seconds":
                   \{"buckets":\{"0\.001":\d+,/x,
         'JSON: the servers and the histogram');
    like($json, qr/"lock":\{"waits":1,"wait_seconds":[\d.]+\}/,
         'JSON: lock waits');
}

my $log = error_log();
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit or emerg');
unlike($log, qr/exited on signal/, 'no worker crashed');

is(nginx_cmd('-s', 'quit'), 0, 'quit');
$started = 0;

done_testing();
