use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use LLMCacheSentinel;
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# llm_cache_redis sentinel=name: the directive's checks, and what a worker
# does with what the sentinels say (no failover here: t/020 has those).
# A master, a replica and three sentinels (a password on the sentinels),
# which also monitor the replica as a master named "notmaster"; and a fake
# sentinel that names the test Redis first, then the real master, and
# another that always names the test Redis and announces +switch-master
# when told to.

our $s = LLMCacheSentinel->start(name => 'mymaster',
                                 sentinel_password => 'sentinel-Pa55',
                                 monitor_replica => 'notmaster');
our $fake = LLMCacheSentinel::fake($LLMCacheTest::RedisPort,
                                   $s->{master_port});
our $fake2 = LLMCacheSentinel::fake($LLMCacheTest::RedisPort);

$ENV{TEST_NGINX_SENTINELS} = join ' ',
                             map { "127.0.0.1:$_" } @{$s->{sentinel_ports}};
$ENV{TEST_NGINX_FAKE_SENTINEL} = $fake;
$ENV{TEST_NGINX_FAKE_SENTINEL2} = $fake2;
$ENV{TEST_NGINX_SENTINEL_MASTER_PORT} = $s->{master_port};

our $chat = LLMCacheTest::request_body('openai/chat-request.json');
our @q = map { $chat =~ s/per month\?/per month? ($_)/r } 1 .. 6;
our $wait = $ENV{TEST_NGINX_USE_VALGRIND} ? 3000 : 500;

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: sentinel= without a name
--- http_config
    llm_cache_redis sentinel= 127.0.0.1:26379;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
"llm_cache_redis" sentinel= needs the name of a master



=== TEST 2: sentinel= without a sentinel address
--- http_config
    llm_cache_redis sentinel=mymaster password=secret;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
"llm_cache_redis" sentinel=mymaster needs the address of at least one sentinel



=== TEST 3: a bad sentinel address
--- http_config
    llm_cache_redis sentinel=mymaster 127.0.0.1:26379 127.0.0.1:99999;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
invalid port in "llm_cache_redis" sentinel "127.0.0.1:99999"



=== TEST 4: sentinel_password= without sentinel=
--- http_config
    llm_cache_redis 127.0.0.1:6379 sentinel_password=secret;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
"llm_cache_redis" sentinel_* parameters need sentinel=
--- no_error_log
secret



=== TEST 5: an unknown sentinel_ parameter, its value not logged
--- http_config
    llm_cache_redis sentinel=mymaster 127.0.0.1:26379 sentinel_pass=Secret-9f3e;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
"llm_cache_redis" sentinel=mymaster: unknown or misplaced parameter "sentinel_pass"
--- no_error_log
Secret-9f3e



=== TEST 6: sentinel_user= without sentinel_password=
--- http_config
    llm_cache_redis sentinel=mymaster 127.0.0.1:26379 sentinel_user=app;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
"llm_cache_redis" sentinel_user= needs sentinel_password=



=== TEST 7: a sentinel address after a parameter
--- http_config
    llm_cache_redis sentinel=mymaster 127.0.0.1:26379 pool=2 127.0.0.1:26380;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
invalid parameter "127.0.0.1:26380" in "llm_cache_redis"



=== TEST 8: MISS then HIT on the master the sentinels name, a dead sentinel skipped
--- http_config
    llm_cache_redis sentinel=mymaster 127.0.0.1:$TEST_NGINX_CLOSED_PORT $TEST_NGINX_SENTINELS sentinel_password=sentinel-Pa55 db=1;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- timeout: 15
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=$::wait",
 "POST /v1/chat/completions\n$::q[0]",
 "POST /v1/chat/completions\n$::q[0]",
 "GET /__stats"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
["ok", "fake-1", "fake-1", "calls=1"]
--- error_log eval
[qr/\[warn\] .*llm_cache: sentinel 127\.0\.0\.1:\d+ for master "mymaster" connect failed: Connection refused, skipped/,
 qr/\[notice\] .*llm_cache: redis master "mymaster" is 127\.0\.0\.1:$ENV{TEST_NGINX_SENTINEL_MASTER_PORT} \(sentinel /]
--- no_error_log
sentinel-Pa55



=== TEST 9: a wrong sentinel password: fail open, logged, never the password
--- http_config
    llm_cache_redis sentinel=mymaster $TEST_NGINX_SENTINELS sentinel_password=Wrong-Pa55-9f3e;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- timeout: 15
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=$::wait",
 "POST /v1/chat/completions\n$::q[1]",
 "GET /__stats"]
--- response_headers_like eval
["", "X-LLM-Cache: ERROR", ""]
--- response_body_like eval
["ok", "fake-1", "calls=1"]
--- error_log eval
[qr/llm_cache: sentinel 127\.0\.0\.1:\d+ for master "mymaster" refused AUTH: WRONGPASS/,
 qr/\[error\] .*llm_cache: no sentinel named master "mymaster" \(3 asked, 0 do not know it\), requests go to the provider uncached/]
--- no_error_log
Wrong-Pa55-9f3e



=== TEST 10: a master name no sentinel knows: fail open at once, one clear line
--- http_config
    llm_cache_redis sentinel=nosuch $TEST_NGINX_SENTINELS sentinel_password=sentinel-Pa55;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- timeout: 15
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=$::wait",
 "POST /v1/chat/completions\n$::q[1]",
 "POST /v1/chat/completions\n$::q[1]",
 "GET /__stats"]
--- response_headers_like eval
["", "X-LLM-Cache: ERROR", "X-LLM-Cache: ERROR", ""]
--- response_body_like eval
["ok", "fake-1", "fake-2", "calls=2"]
--- error_log eval
qr/\[error\] .*llm_cache: no sentinel knows master "nosuch" \(3 asked\), requests go to the provider uncached/



=== TEST 11: the sentinels name a replica (ROLE slave): not used, fail open
--- http_config
    llm_cache_redis sentinel=notmaster $TEST_NGINX_SENTINELS sentinel_password=sentinel-Pa55;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- timeout: 15
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=$::wait",
 "POST /v1/chat/completions\n$::q[2]",
 "POST /v1/chat/completions\n$::q[2]",
 "GET /__stats"]
--- response_headers_like eval
["", "X-LLM-Cache: ERROR", "X-LLM-Cache: ERROR", ""]
--- response_body_like eval
["ok", "fake-1", "fake-2", "calls=2"]
--- error_log eval
qr/\[warn\] .*llm_cache: redis 127\.0\.0\.1:\d+, named master "notmaster" by the sentinels, says ROLE "slave": not used/



=== TEST 12: a master demoted behind the sentinels' back answers READONLY: they are asked again, the pool moves
The fake sentinel names the test Redis, then the real master.  The test
Redis becomes a replica: lookups still work there, the store is refused
with READONLY, and the sentinel is asked again.
--- http_config
    llm_cache_redis sentinel=mymaster 127.0.0.1:$TEST_NGINX_FAKE_SENTINEL;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- timeout: 15
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=$::wait",
 "POST /v1/chat/completions\n$::q[3]",
 "GET /__redis/replicaof?port=$ENV{TEST_NGINX_CLOSED_PORT}",
 "POST /v1/chat/completions\n$::q[0]",
 "GET /__sleep?ms=$::wait",
 "POST /v1/chat/completions\n$::q[1]",
 "POST /v1/chat/completions\n$::q[1]",
 "GET /__redis/keys",
 "GET /__error_log"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
["ok", "fake-1", "ok", "fake-2", "ok", "fake-3", "fake-3", "^keys=1\n",
 qr/master "mymaster" is 127\.0\.0\.1:$ENV{TEST_NGINX_REDIS_PORT} \(sentinel .*error reply "READONLY.*master "mymaster" is 127\.0\.0\.1:$ENV{TEST_NGINX_SENTINEL_MASTER_PORT} \(sentinel /s]



=== TEST 13: +switch-master for our master moves the pool at once, another master's is ignored
A fake sentinel always names the test Redis, and announces the switches
it is told to.
--- http_config
    llm_cache_redis sentinel=mymaster 127.0.0.1:$TEST_NGINX_FAKE_SENTINEL2;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
    location /publish/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_SENTINEL2;
    }
--- timeout: 15
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=$::wait",
 "POST /v1/chat/completions\n$::q[4]",
 "GET /publish/other/$ENV{TEST_NGINX_REDIS_PORT}/$ENV{TEST_NGINX_SENTINEL_MASTER_PORT}",
 "GET /__sleep?ms=$::wait",
 "POST /v1/chat/completions\n$::q[4]",
 "GET /publish/mymaster/$ENV{TEST_NGINX_REDIS_PORT}/$ENV{TEST_NGINX_SENTINEL_MASTER_PORT}",
 "GET /__sleep?ms=$::wait",
 "POST /v1/chat/completions\n$::q[5]",
 "POST /v1/chat/completions\n$::q[5]",
 "GET /__redis/keys",
 "GET /__error_log"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "", "", "X-LLM-Cache: HIT", "", "",
 "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
["ok", "fake-1", "ok", "ok", "fake-1", "ok", "ok", "fake-2", "fake-2",
 "^keys=1\n",
 qr/redis master "mymaster" moved to 127\.0\.0\.1:$ENV{TEST_NGINX_SENTINEL_MASTER_PORT} \(\+switch-master from sentinel 127\.0\.0\.1:$ENV{TEST_NGINX_FAKE_SENTINEL2}\)/]
