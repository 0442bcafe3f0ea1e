use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# error_page in the provider location (failover to a backup) and in the
# public location, expires and the provider's caching headers, an answer
# without a status line: each behaves as with plain proxy_pass.

our $chat = LLMCacheTest::request_body('openai/chat-request.json');
our $chat_answer_1 = LLMCacheTest::answer('openai/chat-response.json', 1);
our $chat_answer_2 = LLMCacheTest::answer('openai/chat-response.json', 2);
our $chat_answer_4 = LLMCacheTest::answer('openai/chat-response.json', 4);
our $sse = LLMCacheTest::request_body('openai/chat-request-stream.json');
our $sse_answer_2 =
    LLMCacheTest::answer('openai/chat-response-stream.sse', 2);

our $link_a = '<https://a.example/>; rel=preload';
our $link_b = '<https://b.example/>; rel=preload';

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a 429 fails over to a named location: 200 with the backup's answer, which sees the client's URI; not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
    location /_llm/ {
        internal;
        proxy_pass http://llm_provider/;
        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_intercept_errors on;
        error_page 429 500 = @backup;
    }
    location @backup {
        proxy_pass http://llm_provider;
        proxy_set_header X-Fake-Status "";
        proxy_http_version 1.1;
        proxy_buffering off;
    }
--- more_headers
Authorization: Bearer sk-failover
X-Fake-Status: 429
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__last",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats",
 "GET /__redis/keys"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: application/json", "",
 "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[$::chat_answer_2,
 "POST /v1/chat/completions length=" . length($::chat) . " sha256="
     . LLMCacheTest::sha256_hex($::chat) . "\n",
 $::chat_answer_4, "calls=4\n", "keys=0\n"]



=== TEST 2: a failover to a URI (error_page = /_bk): 200 with its answer (nginx makes it a GET, as for proxy_pass); not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
    location /_llm/ {
        internal;
        proxy_pass http://llm_provider/;
        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_intercept_errors on;
        error_page 500 = /_bk;
    }
    location = /_bk {
        internal;
        default_type application/json;
        return 200 '{"fallback":"$request_method"}';
    }
--- more_headers
Authorization: Bearer sk-failover
X-Fake-Status: 500
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys"]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: application/json", "X-LLM-Cache: MISS",
 ""]
--- response_body eval
['{"fallback":"POST"}', '{"fallback":"POST"}', "keys=0\n"]



=== TEST 3: a streamed answer from a named-location failover streams to the client
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
    location /_llm/ {
        internal;
        proxy_pass http://llm_provider/;
        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_intercept_errors on;
        error_page 500 = @backup;
    }
    location @backup {
        proxy_pass http://llm_provider;
        proxy_set_header X-Fake-Status "";
        proxy_http_version 1.1;
        proxy_buffering off;
    }
--- more_headers
Authorization: Bearer sk-failover
X-Fake-Status: 500
--- request eval
["POST /v1/chat/completions\n$::sse", "GET /__stats"]
--- error_code eval
[200, 200]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: text/event-stream", ""]
--- response_body eval
[$::sse_answer_2, "calls=2\n"]



=== TEST 4: provider down: error_page 502 504 in the provider location fails over
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
    location /_llm/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_CLOSED_PORT/;
        proxy_http_version 1.1;
        error_page 502 504 = @backup;
    }
    location @backup {
        proxy_pass http://llm_provider;
        proxy_http_version 1.1;
    }
--- more_headers
Authorization: Bearer sk-failover
--- request eval
["POST /v1/chat/completions\n$::chat", "GET /__last", "GET /__stats"]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["X-LLM-Cache: MISS", "", ""]
--- response_body eval
[$::chat_answer_1,
 "POST /v1/chat/completions length=" . length($::chat) . " sha256="
     . LLMCacheTest::sha256_hex($::chat) . "\n",
 "calls=1\n"]
--- error_log eval
qr/\[error\] .*connect\(\) failed/



=== TEST 5: provider down, no error_page there: the public location's error_page answers, as with proxy_pass
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        error_page 502 = @fallback;
    }
    location /_llm/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_CLOSED_PORT/;
    }
    location @fallback {
        default_type application/json;
        return 200 '{"fallback":true}';
    }
--- more_headers
Authorization: Bearer sk-failover
--- request eval
"POST /v1/chat/completions\n$::chat"
--- error_code: 200
--- response_body: {"fallback":true}



=== TEST 6: provider down, no error_page anywhere: nginx's own 502 page, once, with the status header
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
    location /_llm/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_CLOSED_PORT/;
    }
--- more_headers
Authorization: Bearer sk-failover
--- request eval
"POST /v1/chat/completions\n$::chat"
--- error_code: 502
--- response_headers
Content-Type: text/html
X-LLM-Cache: MISS
--- response_body_like: ^<html>\r?\n<head><title>502 Bad Gateway</title></head>.*</html>\r?\n$



=== TEST 7: a provider error intercepted in the provider location reaches the public location's error_page
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        error_page 429 = @busy;
    }
    location /_llm/ {
        internal;
        proxy_pass http://llm_provider/;
        proxy_http_version 1.1;
        proxy_intercept_errors on;
    }
    location @busy {
        default_type application/json;
        return 503 '{"busy":true}';
    }
--- more_headers
Authorization: Bearer sk-failover
X-Fake-Status: 429
--- request eval
"POST /v1/chat/completions\n$::chat"
--- error_code: 503
--- response_body: {"busy":true}



=== TEST 8: expires in the public location replaces the provider's Cache-Control and Expires, as with proxy_pass; $sent_http_cache_control sees it
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        expires 1h;
        add_header X-Seen-CC "$sent_http_cache_control";
    }
--- more_headers
Authorization: Bearer sk-expires
X-Fake-Cache-Control: max-age=5
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers eval
["X-LLM-Cache: MISS\nCache-Control: max-age=3600\nX-Seen-CC: max-age=3600",
 "X-LLM-Cache: HIT\nCache-Control: max-age=3600\nX-Seen-CC: max-age=3600"]
--- response_body eval
[$::chat_answer_1, $::chat_answer_1]



=== TEST 9: without expires the provider's Cache-Control is the one sent, and the variable sees it
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        add_header X-Seen-CC "$sent_http_cache_control";
    }
--- more_headers
Authorization: Bearer sk-expires
X-Fake-Cache-Control: max-age=5
--- request eval
"POST /v1/chat/completions\n$::chat"
--- response_headers
X-LLM-Cache: MISS
Cache-Control: max-age=5
X-Seen-CC: max-age=5



=== TEST 10: an answer without a status line (HTTP/0.9) is a 502, not "HTTP/1.1 000"; not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-http09
X-Fake-No-Status-Line: 1
--- request eval
["POST /v1/chat/completions\n$::chat", "GET /__redis/keys"]
--- error_code eval
[502, 200]
--- response_body_like eval
[qr/502 Bad Gateway/, qr/^keys=0\n$/]
--- error_log eval
qr/\[error\] .*llm_cache: the provider's answer has no valid status line/



=== TEST 11: two Cache-Control lines from the provider: expires replaces both with one, on the miss and the hit (the copied headers keep nginx's chain of Cache-Control lines, 1.23+)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        expires 1h;
        add_header X-Seen-CC "$sent_http_cache_control";
    }
--- more_headers
Authorization: Bearer sk-two-cc
X-Fake-Cache-Control: max-age=5
X-Fake-Cache-Control: must-revalidate
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers eval
["X-LLM-Cache: MISS\nCache-Control: max-age=3600\nX-Seen-CC: max-age=3600",
 "X-LLM-Cache: HIT\nCache-Control: max-age=3600\nX-Seen-CC: max-age=3600"]
--- response_body eval
[$::chat_answer_1, $::chat_answer_1]



=== TEST 12: two Cache-Control lines from the provider without expires: both are sent, and the variable sees both
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        add_header X-Seen-CC "$sent_http_cache_control";
    }
--- more_headers
Authorization: Bearer sk-two-cc
X-Fake-Cache-Control: max-age=5
X-Fake-Cache-Control: must-revalidate
--- request eval
"POST /v1/chat/completions\n$::chat"
--- response_headers
X-LLM-Cache: MISS
Cache-Control: max-age=5, must-revalidate
X-Seen-CC: max-age=5, must-revalidate



=== TEST 13: two Link lines from the provider: both are sent, and $sent_http_link sees both (nginx's chain of Link lines from 1.23, its array before)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        add_header X-Seen-Link "$sent_http_link";
    }
--- more_headers eval
"Authorization: Bearer sk-two-links\nX-Fake-Link: $::link_a\n"
. "X-Fake-Link: $::link_b"
--- request eval
"POST /v1/chat/completions\n$::chat"
--- response_headers eval
"X-LLM-Cache: MISS\nLink: $::link_a, $::link_b\n"
. "X-Seen-Link: $::link_a, $::link_b"
