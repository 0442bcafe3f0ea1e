use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# Miss coalescing (llm_cache_lock): concurrent misses for one key make one
# provider call; the others wait for its entry (HIT_WAITED), or go to the
# provider themselves when the leader fails or llm_cache_lock_timeout
# passes (MISS_WAITED).  /__fire sends N concurrent clients through nginx
# and reports each one's cache status and a digest of its body.
# Redis gets 1 s (llm_cache_redis_timeout) where the default 50 ms would
# turn look-ups into ERROR on a loaded machine.

our $chat = LLMCacheTest::request_body('openai/chat-request.json');
our $stream = LLMCacheTest::request_body('openai/chat-request-stream.json');

# the debug line that says a large entry went to Redis without a copy; a
# build without --with-debug has none
our $debug = do {
    my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
    (`'$nginx' -V 2>&1` // '') =~ /--with-debug/;
};

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: without the lock, five concurrent misses are five provider calls
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
X-Fake-Delay: 600
--- request eval
["POST /__fire?n=5&gap=20\n$::chat", "GET /__stats"]
--- response_body_like eval
["\nMISS=5\nbodies=5\n\\z", "^calls=5\n\\z"]
--- timeout: 20



=== TEST 2: with the lock, one provider call; the four others wait and get its answer
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
        llm_cache_lock on;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
X-Fake-Delay: 600
--- request eval
["POST /__fire?n=5&gap=20\n$::chat", "GET /__stats", "GET /__redis/keys"]
--- response_body_like eval
["^(client \\d status=200 cache=(MISS|HIT_WAITED) sha256=\\w+\n){5}HIT_WAITED=4 MISS=1\nbodies=1\n\\z",
 "^calls=1\n\\z",
 "^keys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=\\d+ bytes=\\d+\n\\z"]
--- timeout: 20



=== TEST 3: a streamed answer is coalesced too, once it is complete
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
        llm_cache_lock on;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
X-Fake-Event-Delay: 50
--- request eval
["POST /__fire?n=3&gap=20\n$::stream", "GET /__stats"]
--- response_body_like eval
["\nHIT_WAITED=2 MISS=1\nbodies=1\n\\z", "^calls=1\n\\z"]
--- timeout: 20



=== TEST 4: the leader's answer is an error: it is not stored, one waiter takes over, the rest get its answer
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
        llm_cache_lock on;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
X-Fake-Delay: 400
X-Fake-Fail-First: 500
--- request eval
["POST /__fire?n=5&gap=20\n$::chat", "GET /__stats", "GET /__redis/keys"]
--- response_body_like eval
["status=500 cache=MISS .*\nHIT_WAITED=3 MISS=1 MISS_WAITED=1\nbodies=2\n\\z",
 "^calls=2\n\\z",
 "^keys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl"]
--- timeout: 20



=== TEST 5: past llm_cache_lock_timeout the waiters go to the provider themselves
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
        llm_cache_lock on;
        llm_cache_lock_timeout 300ms;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
X-Fake-Delay: 1500
--- request eval
["POST /__fire?n=4&gap=20\n$::chat", "GET /__stats"]
--- response_body_like eval
["\nMISS=1 MISS_WAITED=3\nbodies=4\n\\z", "^calls=4\n\\z"]
--- error_log
waited llm_cache_lock_timeout for another request's answer
--- timeout: 20



=== TEST 6: the lock is released with the entry: nothing is left behind in Redis
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
        llm_cache_lock on;
        llm_cache_ttl 55s;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
--- request eval
["POST /v1/chat/completions\n$::chat", "GET /__redis/keys",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers_like eval
["X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT"]
--- response_body_like eval
["fake-1", "^keys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=5[45] bytes=\\d+\n\\z", "fake-1"]



=== TEST 7: a leader that is not stored (429) releases the lock at once
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
        llm_cache_lock on;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
X-Fake-Status: 429
--- request eval
["POST /v1/chat/completions\n$::chat", "GET /__sleep?ms=100",
 "GET /__redis/keys"]
--- error_code eval
[429, 200, 200]
--- response_body_like eval
["error", "ok", "^keys=0\n\\z"]



=== TEST 8: Redis down: no lock to take, the request goes on at once
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_CLOSED_PORT;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_lock on;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
--- request eval
["POST /__fire?n=3&gap=0\n$::chat", "GET /__stats"]
--- response_body_like eval
["\nERROR=3\nbodies=3\n\\z", "^calls=3\n\\z"]
--- timeout: 20



=== TEST 9: llm_cache_lock_timeout 0 is refused at nginx -t
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_lock on;
        llm_cache_lock_timeout 0;
    }
--- must_die
--- error_log
"llm_cache_lock_timeout" must be more than 0



=== TEST 10: $llm_cache_lock_wait: how long a request waited, only for those that did
The waits themselves depend on the machine's load: at least the first
look again (10 ms), in seconds with milliseconds.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
        llm_cache_lock on;
        add_header X-Lock-Wait $llm_cache_lock_wait always;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
X-Fake-Delay: 1500
--- request eval
["POST /__fire?n=3&gap=150\n$::chat", "GET /__stats"]
--- response_body_like eval
["\\A(?!.*cache=MISS sha256=\\w+ wait)(?:.*?cache=HIT_WAITED sha256=\\w+ wait=(?!0\\.00)\\d+\\.\\d\\d\\d\n){2}.*HIT_WAITED=2 MISS=1\nbodies=1\n\\z",
 "^calls=1\n\\z"]
--- timeout: 20



=== TEST 11: a miss that takes the lock just after the leader stored and let it go answers the entry: one provider call
The look-up misses; then the entry is stored and the lock removed, and
only then does the SET NX run: /__redis/race takes the entry out and
puts it back (with the unlock) in one script queued behind a pause of
Redis writes, so the look-up passes and the SET NX queues behind it.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_lock on;
        llm_cache_redis_timeout 1s;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
--- request eval
["POST /v1/chat/completions\n$::chat", "GET /__redis/race?ms=300",
 "POST /v1/chat/completions\n$::chat", "GET /__stats", "GET /__redis/keys"]
--- response_headers_like eval
["X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
['"id":"fake-1"', "^ok\n\\z", '"id":"fake-1"', "^calls=1\n\\z",
 "^keys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=\\d+ bytes=\\d+\n\\z"]



=== TEST 12: the same race for a waiter: the lock it takes after waiting was the leader's, gone with its entry: HIT_WAITED
/__redis/race?hold=1 leaves another's lock in place of the entry, so the
request waits; a second later the entry and the unlock queue behind a pause
of writes: the waiter's next look-up misses, its SET NX then finds the
lock free.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_lock on;
        llm_cache_redis_timeout 1s;
        add_header X-Lock-Wait $llm_cache_lock_wait always;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/race?ms=300&after=1000&hold=1",
 "POST /v1/chat/completions\n$::chat", "GET /__stats", "GET /__redis/keys"]
--- response_headers_like eval
["X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT_WAITED", "", ""]
--- response_body_like eval
['"id":"fake-1"', "^ok\n\\z", '"id":"fake-1"', "^calls=1\n\\z",
 "^keys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=\\d+ bytes=\\d+\n\\z"]
--- timeout: 10



=== TEST 13: the lock's token is 16 random bytes in hex
X-Fake-Locks: the provider answers with the values of the "*:lock" keys
as it sees them while the leader calls it.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
        llm_cache_lock on;
    }
--- more_headers eval
["Content-Type: application/json\nX-Fake-Locks: 1\nAuthorization: Bearer sk-test",
 "Content-Type: application/json\nX-Fake-Locks: 1\nAuthorization: Bearer sk-other",
 "", ""]
--- request eval
["POST /v1/chat/completions\n$::chat", "POST /v1/chat/completions\n$::chat",
 "GET /__stats", "GET /__redis/keys"]
--- response_headers_like eval
["X-Fake-Locks: [0-9a-f]{32}", "X-Fake-Locks: [0-9a-f]{32}", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', "^calls=2\n\\z", "^keys=2\n"]



=== TEST 14: a large answer, whose SET is written around it where it was captured, is stored with the lock's release right behind it
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 5s;
        llm_cache_lock on;
        llm_cache_max_size 1m;
        llm_cache_ttl 55s;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
X-Fake-Size: 200000
--- request eval
["POST /__fire?n=2&serial=1\n$::chat", "GET /__redis/keys", "GET /__stats"]
--- response_body_like eval
["^client 0 status=200 cache=MISS sha256=(\\w+)\nclient 1 status=200 cache=HIT sha256=\\1\nHIT=1 MISS=1\nbodies=1\n\\z",
 "^keys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=5[45] bytes=200\\d{3}\n\\z",
 "^calls=1\n\\z"]
--- error_log eval
$::debug ? [qr/llm_cache redis: 200\d{3} bytes sent from where they are/] : []
--- timeout: 20
