use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# llm_cache_use_stale: an entry past its llm_cache_ttl is kept by Redis
# llm_cache_stale_ttl longer; a request for it goes to the provider, and
# when the provider fails in a listed way the client gets the entry
# (STALE, its real Age) instead of the error, never a mix of both.
# Ages are whole seconds: an entry of ttl N is fresh for at least N - 1 s
# of real time, so the sleeps and TTLs below leave a second to spare.

our $chat = LLMCacheTest::request_body('openai/chat-request.json');
our $chat_answer_1 = LLMCacheTest::answer('openai/chat-response.json', 1);
our $chat_answer_2 = LLMCacheTest::answer('openai/chat-response.json', 2);

our $auth = "Authorization: Bearer sk-test";

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: expired entry served on provider 429, 500, timeout and down (error), byte-identical, status STALE, Age past the TTL
--- http_config
    map $http_x_down $llm_target {
        default  llm_provider;
        1        127.0.0.1:$TEST_NGINX_CLOSED_PORT;
    }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 1s;
        llm_cache_stale_ttl 60s;
        llm_cache_use_stale error timeout http_429 http_500;
    }
    location ^~ /_llm/ {
        internal;
        rewrite ^/_llm/+(.*)$ /$1 break;
        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_read_timeout 1s;
        proxy_pass http://$llm_target;
    }
--- more_headers eval
["$::auth", "", "$::auth\nX-Fake-Status: 429", "$::auth\nX-Fake-Status: 500",
 "$::auth\nX-Fake-Delay: 3000", "$::auth\nX-Down: 1", ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=2100",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200]
--- response_headers eval
["X-LLM-Cache: MISS", "", "X-LLM-Cache: STALE\nContent-Type: application/json",
 "X-LLM-Cache: STALE", "X-LLM-Cache: STALE", "X-LLM-Cache: STALE", ""]
--- response_headers_like eval
["", "", "Age: ([2-9]|\\d\\d)", "Age: ([2-9]|\\d\\d)", "Age: ([2-9]|\\d\\d)",
 "Age: ([2-9]|\\d\\d)", ""]
--- response_body eval
[$::chat_answer_1, "ok\n", $::chat_answer_1, $::chat_answer_1,
 $::chat_answer_1, $::chat_answer_1, "calls=4\n"]
--- timeout: 20



=== TEST 2: llm_cache_use_stale off (the default): the provider's error passes through
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 1s;
        llm_cache_stale_ttl 60s;
    }
--- more_headers eval
["$::auth", "", "$::auth\nX-Fake-Status: 429", ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=2100",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- error_code eval
[200, 200, 429, 200]
--- response_headers eval
["X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS", ""]
--- response_body eval
[$::chat_answer_1, "ok\n", LLMCacheTest::fixture('openai/error-429.json'),
 "calls=2\n"]
--- timeout: 20




=== TEST 3: a failure not in the list passes through; a listed one gets the entry
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 1s;
        llm_cache_stale_ttl 60s;
        llm_cache_use_stale http_500;
    }
--- more_headers eval
["$::auth", "", "$::auth\nX-Fake-Status: 429", "$::auth\nX-Fake-Status: 500",
 ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=2100",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- error_code eval
[200, 200, 429, 200, 200]
--- response_headers eval
["X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS", "X-LLM-Cache: STALE", ""]
--- response_body eval
[$::chat_answer_1, "ok\n", LLMCacheTest::fixture('openai/error-429.json'),
 $::chat_answer_1, "calls=3\n"]
--- timeout: 20




=== TEST 4: a good answer replaces the expired entry; Redis keeps it ttl + stale_ttl
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 3s;
        llm_cache_stale_ttl 60s;
        llm_cache_use_stale error timeout http_429;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "GET /__sleep?ms=4100",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "", "", "X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
["fake-1", qr/\Akeys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=(5\d|6[0-3]) bytes=\d+\n\z/,
 "ok", "fake-2", "ok", "fake-2", "\\Acalls=2\\n\\z"]
--- timeout: 20



=== TEST 5: never served after llm_cache_stale_ttl: Redis has dropped it
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 1s;
        llm_cache_stale_ttl 1s;
        llm_cache_use_stale http_429;
    }
--- more_headers eval
["Authorization: Bearer sk-test", "", "", "Authorization: Bearer sk-test\nX-Fake-Status: 429", ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=3100",
 "GET /__redis/keys",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- error_code eval
[200, 200, 200, 429, 200]
--- response_headers eval
["X-LLM-Cache: MISS", "", "", "X-LLM-Cache: MISS", ""]
--- response_body eval
[$::chat_answer_1, "ok\n", "keys=0\n",
 LLMCacheTest::fixture('openai/error-429.json'), "calls=2\n"]
--- timeout: 20



=== TEST 6: the metrics count STALE, $llm_cache_status says it
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 1s;
        llm_cache_stale_ttl 60s;
        llm_cache_use_stale http_503;
        add_header X-Status $llm_cache_status;
    }
    location = /metrics {
        llm_cache_metrics;
    }
--- more_headers eval
["Authorization: Bearer sk-test", "", "Authorization: Bearer sk-test\nX-Fake-Status: 503", ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=2100",
 "POST /v1/chat/completions\n$::chat",
 "GET /metrics"]
--- response_headers eval
["X-LLM-Cache: MISS", "", "X-LLM-Cache: STALE\nX-Status: STALE", ""]
--- response_body_like eval
["fake-1", "ok", "fake-1",
 qr/^llm_cache_requests_total\{status="STALE",model="gpt-4.1-mini"\} 1$/m]
--- timeout: 20




=== TEST 7: llm_cache_use_stale with an unknown value
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_use_stale error http_404;
    }
--- must_die
--- error_log
invalid value "http_404"



=== TEST 8: llm_cache_stale_ttl that is not a time
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_stale_ttl forever;
    }
--- must_die
--- error_log
"llm_cache_stale_ttl" directive invalid value
