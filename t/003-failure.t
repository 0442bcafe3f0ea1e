use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# When Redis or the provider fails, the answer still comes (fail open), the
# status says ERROR, nothing wrong is stored and no worker dies.

our $chat = LLMCacheTest::request_body('openai/chat-request.json');
our $emb = LLMCacheTest::request_body('openai/embeddings-request.json');
our $chat_answer_1 = LLMCacheTest::answer('openai/chat-response.json', 1);
our $chat_answer_2 = LLMCacheTest::answer('openai/chat-response.json', 2);

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: Redis down (nothing listens): the provider answers, status ERROR
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_CLOSED_PORT connect_timeout=200ms;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: ERROR", "X-LLM-Cache: ERROR", ""]
--- response_body eval
[$::chat_answer_1, $::chat_answer_2, "calls=2\n"]
--- error_log eval
qr/\[error\] .*llm_cache: redis "127\.0\.0\.1:\d+" (connect failed|is not available)/



=== TEST 2: a "Redis" that accepts and never answers: never ready, requests fail open at once, the connection is recycled
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_BLACKHOLE_PORT connect_timeout=200ms max_fails=0;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 100ms;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=500",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["", "X-LLM-Cache: ERROR", "X-LLM-Cache: ERROR", ""]
--- response_body eval
["ok\n", $::chat_answer_1, $::chat_answer_2, "calls=2\n"]
--- error_log eval
qr/\[error\] .*llm_cache: redis "127\.0\.0\.1:\d+" connect failed: no answer within connect_timeout/



=== TEST 3: Redis paused past the timeout, then back: ERROR, then caching
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 100ms;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__redis/pause?ms=700",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=800",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["", "X-LLM-Cache: ERROR", "", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body eval
["ok\n", $::chat_answer_1, "ok\n", $::chat_answer_2, $::chat_answer_2,
 "calls=2\n"]



=== TEST 4: Redis drops its connections: the worker reconnects, caching resumes
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/kill",
 "GET /__sleep?ms=600",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "", "", "X-LLM-Cache: HIT", ""]
--- response_body eval
[$::chat_answer_1, "ok\n", "ok\n", $::chat_answer_1, "calls=1\n"]



=== TEST 5: malformed JSON gets a 400 in the providers' format, no provider call (llm_cache_invalid_json reject)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_invalid_json reject;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m",',
 "POST /v1/chat/completions\n" . '{"model":"m"} trailing',
 "POST /v1/chat/completions\n" . '{"model":NaN}',
 "POST /v1/chat/completions\n" . "{\"model\":\"\xff\xfe\"}",
 "POST /v1/chat/completions\n" . "{'model':'m'}",
 "POST /v1/chat/completions\n",
 "GET /__stats"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 200]
--- response_headers eval
["Content-Type: application/json\nX-LLM-Cache: BYPASS", "", "", "", "", "", ""]
--- response_body_like eval
[('\A\{"error":\{"message":"We could not parse the JSON body of your request: [^"]+","type":"invalid_request_error","param":null,"code":"invalid_json"\}\}\n\z') x 6,
 '\Acalls=0\n\z']



=== TEST 6: nesting far too deep is passed through uncached, not parsed
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . ('[' x 100000) . (']' x 100000),
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "", ""]
--- response_body_like eval
['fake-1', '\Acalls=1\n\z', '\Akeys=0\n\z']
--- error_log
request not cached: nested too deeply



=== TEST 7: duplicate member names are not cached (parsers disagree on them)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"a","model":"b","prompt":"hi"}',
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", ""]
--- response_body_like eval
['fake-1', '\Akeys=0\n\z']
--- error_log
request not cached: duplicate member name



=== TEST 8: huge numbers and exponents
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","n":' . ('9' x 5000) . '}',
 "POST /v1/chat/completions\n" . '{"model":"m","n":' . ('9' x 5000) . '.000e0}',
 "POST /v1/chat/completions\n" . '{"model":"m","n":1e99999999999}',
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: BYPASS", ""]
--- response_body_like eval
['fake-1', 'fake-1', 'fake-2', '\Acalls=2\n\z']



=== TEST 9: the provider is down: nginx's 502 reaches the client, nothing stored
--- config
    location /v1/ {
        llm_cache_pass /_down;
    }
    location /_down/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_CLOSED_PORT/;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys"]
--- error_code eval
[502, 200]
--- response_headers eval
["X-LLM-Cache: MISS", ""]
--- response_body_like eval
['502 Bad Gateway', '\Akeys=0\n\z']
--- error_log
connect() failed (111: Connection refused)



=== TEST 10: a provider slower than proxy_read_timeout: 504, nothing stored
--- config
    location /v1/ {
        llm_cache_pass /_slow;
    }
    location /_slow/ {
        internal;
        proxy_pass http://llm_provider/;
        proxy_read_timeout 300ms;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nX-Fake-Delay: 1500", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys"]
--- error_code eval
[504, 200]
--- response_body_like eval
['504 Gateway Time-out', '\Akeys=0\n\z']



=== TEST 11: an answer that is not what its content type says is not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nX-Fake-Content-Type: text/event-stream", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "GET /__stats"]
--- response_headers eval
["Content-Type: text/event-stream\nX-LLM-Cache: MISS", "", ""]
--- response_body eval
[$::chat_answer_1, "keys=0\n", "calls=1\n"]
--- error_log
provider response is not valid "text/event-stream", not stored



=== TEST 12: a chunked request body is hashed and forwarded like any other
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nTransfer-Encoding: chunked", "Authorization: Bearer sk-test\nTransfer-Encoding: chunked", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/embeddings\n" . sprintf("%x", length($::emb)) . "\r\n$::emb\r\n0\r\n\r\n",
 "POST /v1/embeddings\n10\r\n" . substr($::emb, 0, 16) . "\r\n"
     . sprintf("%x", length($::emb) - 16) . "\r\n" . substr($::emb, 16)
     . "\r\n0\r\n\r\n",
 "GET /__last"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body eval
[LLMCacheTest::answer('openai/embeddings-response.json', 1),
 LLMCacheTest::answer('openai/embeddings-response.json', 1),
 "POST /v1/embeddings length=" . length($::emb) . " sha256="
     . LLMCacheTest::sha256_hex($::emb) . "\n"]



=== TEST 13: a "Redis" that answers garbage (an HTTP server): fail open, a clear line, no crash
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_PROVIDER_PORT max_fails=0;
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
 "GET /__stats"]
--- response_headers_like eval
["", "X-LLM-Cache: ERROR", "X-LLM-Cache: ERROR", ""]
--- response_body eval
["ok\n", $::chat_answer_1, $::chat_answer_2, "calls=2\n"]
--- error_log eval
qr/\[error\] .*llm_cache: redis "127\.0\.0\.1:\d+" connection lost: Protocol error/
