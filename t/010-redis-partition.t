use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# Redis behind a TCP proxy the test breaks (the Redis proxy in
# t/lib/fake_provider.py): a partition that keeps the sockets open but
# forwards nothing, and a restart (connections closed, connects refused,
# then back).  The pool must replace connections that went silent and be
# caching again soon after Redis answers, without a reload.  /__outage
# answers the statuses seen during the outage, recovered_ms (from the
# first PING Redis answers through the proxy to the first HIT or MISS) and
# the connections the proxy accepted since the outage began.  Each block
# starts with the outage, so that its log lines are there for the
# error_log checks.

our $chat = LLMCacheTest::request_body('openai/chat-request.json');

# recovery bound: 0.5 s asked, with margin for a loaded machine; the old
# behaviour took 1-5 s (a reconnect backoff of up to 5 s, fail_timeout)
our $within = $ENV{TEST_NGINX_USE_VALGRIND} ? 3000 : 600;

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a partition: connections that time out are closed and reopened, caching resumes without a reload
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PROXY_PORT pool=2;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 200ms;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
--- request eval
["POST /__outage?settle=300&mode=freeze&ms=1500&during=1\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/proxy"]
--- response_body_like eval
["^during: ERROR=\\d+\nrecovered_ms=\\d+ status=MISS after: [^\n]*\naccepted=[1-9]\\d*\n\\z",
 "fake-\\d+", "^proxy accepted=\\d+ open=[1-9]"]
--- response_headers_like eval
["", "X-LLM-Cache: HIT", ""]
--- error_log eval
qr/llm_cache: redis "127\.0\.0\.1:\d+" timed out: no reply within llm_cache_redis_timeout/
--- timeout: 30



=== TEST 2: a partition that opens the breaker: the probe goes to a new connection, not to a silent one
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PROXY_PORT pool=2 max_fails=1 fail_timeout=500ms;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 200ms;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
--- request eval
["POST /__outage?settle=300&mode=freeze&ms=1500&during=1\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_body_like eval
["^during: ERROR=\\d+\nrecovered_ms=\\d+ status=MISS after: [^\n]*\naccepted=[1-9]\\d*\n\\z",
 "fake-\\d+"]
--- response_headers_like eval
["", "X-LLM-Cache: HIT"]
--- error_log eval
qr/llm_cache: redis "127\.0\.0\.1:\d+" failed 1 times in a row/
--- timeout: 30



=== TEST 3: TCP keepalive is on for every connection of the pool
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT pool=3;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- request eval
["GET /__sleep?ms=300",
 "GET /__redis/keepalive"]
--- response_body eval
["ok\n", "established=3 keepalive=3\n"]



=== TEST 4: Redis restarted after a long outage with no request in flight (twice): caching again within 0.5 s of it answering
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PROXY_PORT pool=1;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
--- request eval
["POST /__outage?settle=300&mode=down&ms=6000&rounds=2&within=$::within\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_body_like eval
["^during: none\nrecovered_ms=\\d+,\\d+ status=(?:HIT|MISS) after: [^\n]*\nwithin \\d+ ms: yes\n",
 "fake-\\d+"]
--- response_headers_like eval
["", "X-LLM-Cache: HIT"]
--- error_log eval
qr/llm_cache: redis "127\.0\.0\.1:\d+" answers again, in use/
--- timeout: 60



=== TEST 5: Redis restarted with requests failing open meanwhile: caching again within 0.5 s of it answering
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PROXY_PORT pool=1;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
--- request eval
["POST /__outage?settle=300&mode=down&ms=6000&during=1&within=$::within\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_body_like eval
["^during: ERROR=\\d+\nrecovered_ms=\\d+ status=MISS after: [^\n]*\nwithin \\d+ ms: yes\n",
 "fake-\\d+"]
--- response_headers_like eval
["", "X-LLM-Cache: HIT"]
--- error_log eval
qr/llm_cache: redis "127\.0\.0\.1:\d+" answers again, in use/
--- timeout: 40
