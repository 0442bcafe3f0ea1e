use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# The Redis connection's life: a pool per worker, AUTH with a password or an
# ACL user, SELECT, unix sockets, multi-MiB entries, and the circuit breaker
# that leaves a failing Redis alone for fail_timeout.

our $chat = LLMCacheTest::request_body('openai/chat-request.json');
our $chat_answer_1 = LLMCacheTest::answer('openai/chat-response.json', 1);
our $other = $chat =~ s/"user"/"user", "name": "other"/r;
our $password = $ENV{TEST_NGINX_REDIS_PASSWORD};
our $acl_password = $ENV{TEST_NGINX_REDIS_ACL_PASSWORD};

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: pool=3: three named connections per worker, kept alive
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT pool=3;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/clients"]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
["ok\n", $::chat_answer_1, $::chat_answer_1, "llm_cache clients=3\n"]



=== TEST 2: AUTH with the default user's password
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_AUTH_PORT password=$TEST_NGINX_REDIS_PASSWORD;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=200",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body eval
["ok\n", $::chat_answer_1, $::chat_answer_1, "calls=1\n"]
--- no_error_log eval
[$::password, "refused"]



=== TEST 3: AUTH as an ACL user allowed only llm:* keys, with SELECT
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_AUTH_PORT user=$TEST_NGINX_REDIS_ACL_USER password=$TEST_NGINX_REDIS_ACL_PASSWORD db=2;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_lock on;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=200",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body eval
["ok\n", $::chat_answer_1, $::chat_answer_1, "calls=1\n"]
--- no_error_log eval
[$::acl_password, "refused", "unlock failed", "NOPERM"]



=== TEST 4: a wrong password: fail open, one clear line, the password never logged
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_AUTH_PORT user=$TEST_NGINX_REDIS_ACL_USER password=Wrong-Pa55-9f3e;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- log_level: debug
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=200",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers_like eval
["", "X-LLM-Cache: ERROR", "X-LLM-Cache: ERROR", ""]
--- response_body eval
["ok\n", LLMCacheTest::answer('openai/chat-response.json', 1),
 LLMCacheTest::answer('openai/chat-response.json', 2), "calls=2\n"]
--- error_log eval
qr/\[error\] .*llm_cache: redis "127\.0\.0\.1:\d+" refused the connection setup: WRONGPASS/
--- no_error_log
Wrong-Pa55-9f3e



=== TEST 5: SELECT: the entry is in the database db= names, not in 0
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT db=3;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 77s;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys?db=3",
 "GET /__redis/keys?db=0"]
--- response_body_like eval
["ok", "fake-1", "^keys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=7[67] bytes=\\d+\n\\z", "^keys=0\n\\z"]



=== TEST 6: a unix socket
--- http_config
    llm_cache_redis unix:$TEST_NGINX_REDIS_SOCKET pool=1;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=200",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "GET /__redis/clients"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
["ok", "fake-1", "fake-1", "^keys=1\n", "^llm_cache clients=1\n"]



=== TEST 7: a 5 MB answer is stored and answered again byte for byte
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT pool=1;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_max_size 8m;
    }
--- more_headers
Authorization: Bearer sk-test
X-Fake-Size: 5000000
Content-Type: application/json
--- request eval
["POST /__fire?n=2&serial=1\n$::chat",
 "GET /__redis/keys",
 "GET /__stats"]
--- response_body_like eval
["^client 0 status=200 cache=MISS sha256=(\\w+)\nclient 1 status=200 cache=HIT sha256=\\1\nHIT=1 MISS=1\nbodies=1\n\\z",
 "^keys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=\\d+ bytes=500\\d{4}\n\\z",
 "^calls=1\n\\z"]
--- timeout: 30



=== TEST 8: the breaker: after max_fails timeouts Redis is left alone for fail_timeout, then used again
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT max_fails=2 fail_timeout=2s pool=2;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 300ms;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=200",
 "POST /__redis/pause?ms=1000",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=700",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "GET /__sleep?ms=2200",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers_like eval
["", "", "X-LLM-Cache: ERROR", "X-LLM-Cache: ERROR", "",
 "X-LLM-Cache: ERROR", "", "", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
["ok", "ok", "fake-1", "fake-2", "ok", "fake-3", "^keys=0\n", "ok",
 "fake-4", "fake-4", "^calls=4\n"]
--- timeout: 20



=== TEST 9: the breaker says so when it opens
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_BLACKHOLE_PORT max_fails=1 fail_timeout=5s pool=1 connect_timeout=100ms;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=400",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers_like eval
["", "X-LLM-Cache: ERROR", "X-LLM-Cache: ERROR"]
--- response_body_like eval
["ok", "fake-1", "fake-2"]
--- error_log eval
qr/\[warn\] .*llm_cache: redis "127\.0\.0\.1:\d+" failed 1 times in a row, not used until a new connection is set up/



=== TEST 10: Redis's clients killed: the pool reconnects by itself and caches again
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT pool=2;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=200",
 "POST /__redis/kill",
 "GET /__sleep?ms=400",
 "GET /__redis/clients",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers_like eval
["", "", "", "", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
["ok", "ok", "ok", "^llm_cache clients=2\n", "fake-1", "fake-1"]



=== TEST 11: Redis out of memory (maxmemory, noeviction): refused writes are logged, lookups go on, no breaker
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT pool=2;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
X-Fake-Delay: 150
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/config?maxmemory=1&maxmemory-policy=noeviction",
 "POST /__fire?n=8&gap=10\n$::other",
 "POST /__fire?n=8\n$::chat",
 "POST /__fire?n=8&gap=10\n$::other",
 "POST /__fire?n=8\n$::chat",
 "GET /__redis/config?maxmemory=0",
 "GET /__redis/keys",
 "GET /__error_log"]
--- response_body_like eval
["fake-1", "ok",
 "\nMISS=8\n", "\nHIT=8\n", "\nMISS=8\n", "\nHIT=8\n",
 "ok", "^keys=1\n",
 qr/\A(?!.*SET failed.*SET failed).*\[error\] [^\n]*llm_cache: redis "127\.0\.0\.1:\d+" SET failed: error reply "OOM command not allowed when used memory > 'maxmemory'\.", Redis stays in use \(0 similar messages suppressed\)/s]
--- no_error_log
times in a row
GET failed
--- timeout: 30



=== TEST 12: a read-only replica (after a failover): refused writes are logged, lookups go on, no breaker
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT pool=2;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
X-Fake-Delay: 150
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/replicaof?port=$ENV{TEST_NGINX_CLOSED_PORT}",
 "POST /__fire?n=8&gap=10\n$::other",
 "POST /__fire?n=8\n$::chat",
 "POST /__fire?n=8&gap=10\n$::other",
 "POST /__fire?n=8\n$::chat",
 "GET /__redis/replicaof?port=no",
 "GET /__redis/keys",
 "GET /__error_log"]
--- response_body_like eval
["fake-1", "ok",
 "\nMISS=8\n", "\nHIT=8\n", "\nMISS=8\n", "\nHIT=8\n",
 "ok", "^keys=1\n",
 qr/\A(?!.*SET failed.*SET failed).*\[error\] [^\n]*llm_cache: redis "127\.0\.0\.1:\d+" SET failed: error reply "READONLY You can't write against a read only replica\.", Redis stays in use/s]
--- no_error_log
times in a row
GET failed
--- timeout: 30



=== TEST 13: a key of the wrong type: the lookup's error reply is an answer, not a failure
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT pool=1 max_fails=1;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/wrongtype",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::other",
 "GET /__error_log"]
--- response_headers_like eval
["X-LLM-Cache: MISS", "", "X-LLM-Cache: ERROR", "X-LLM-Cache: ERROR",
 "X-LLM-Cache: MISS", ""]
--- response_body_like eval
["fake-1", "^ok\n", "fake-2", "fake-3", "fake-4",
 qr/\[error\] [^\n]*llm_cache: redis "127\.0\.0\.1:\d+" GET failed: error reply "WRONGTYPE Operation against a key holding the wrong kind of value", Redis stays in use/]
--- no_error_log
times in a row



=== TEST 14: Redis out of memory with llm_cache_lock on: the refused lock makes a plain miss, not ERROR
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT pool=2;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_lock on;
        llm_cache_redis_timeout 1s;
    }
--- more_headers
Content-Type: application/json
Authorization: Bearer sk-oom-lock
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/config?maxmemory=1&maxmemory-policy=noeviction",
 "POST /v1/chat/completions\n$::other",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/config?maxmemory=0",
 "GET /__stats"]
--- response_headers_like eval
["X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
["fake-1", "ok", "fake-2", "fake-1", "ok", "^calls=2\n"]
--- no_error_log
times in a row
GET failed
