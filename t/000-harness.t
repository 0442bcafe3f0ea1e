use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: plain nginx, return 200
--- config
    location = /t {
        return 200 "hello, $TEST_NGINX_SERVER_PORT\n";
    }
--- request
GET /t
--- response_body
hello, $TEST_NGINX_SERVER_PORT
--- error_code: 200
--- no_error_log
[error]



=== TEST 2: proxy to the fake provider; /__stats and /__last see one call
--- config
    location /v1/ {
        proxy_pass http://llm_provider;
    }
--- request eval
[
    "POST /v1/chat/completions\n" . LLMCacheTest::fixture("openai/chat-request.json"),
    "GET /__stats",
    "GET /__last",
]
--- more_headers eval
["Content-Type: application/json", "", ""]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[
    '^\{"id":"fake-1",.*"object":"chat\.completion"',
    '\Acalls=1\n\z',
    '\APOST /v1/chat/completions length=\d+ sha256=[0-9a-f]{64}\n\z',
]
--- no_error_log
[error]



=== TEST 3: the counters start from zero again in every block
--- request
GET /__stats
--- response_body
calls=0



=== TEST 4: must_die with an unknown directive
--- config
    location = /t {
        no_such_directive_here on;
    }
--- must_die
--- error_log
[emerg]
unknown directive "no_such_directive_here"



=== TEST 5: response headers
--- config
    location = /h {
        add_header X-Harness "yes";
        default_type application/json;
        return 200 '{"ok":true}';
    }
--- request
GET /h
--- response_headers
X-Harness: yes
Content-Type: application/json
Content-Length: 11
!X-Not-There
--- response_body chomp
{"ok":true}



=== TEST 6: error_log eval with a regex, error_code 404
--- config
    location = /missing {
        root html;
    }
--- request
GET /missing
--- error_code: 404
--- error_log eval
qr/\[error\] .*open\(\) ".*\/html\/missing" failed/



=== TEST 7: a streamed (chunked) answer is decoded
--- config
    location /v1/ {
        proxy_pass http://llm_provider;
        proxy_http_version 1.1;
        proxy_buffering off;
    }
--- request eval
"POST /v1/chat/completions\n" . LLMCacheTest::fixture("openai/chat-request-stream.json")
--- response_headers
Transfer-Encoding: chunked
Content-Type: text/event-stream
--- response_body_like chomp
\Adata: \{"id":"fake-1",.*\n\ndata: \[DONE\]\n\n\z



=== TEST 8: HTTP/1.0 request, client timeout with abort keeps the partial answer
--- config
    location /v1/ {
        proxy_pass http://llm_provider;
        proxy_http_version 1.1;
        proxy_buffering off;
    }
--- request eval
"POST /v1/chat/completions HTTP/1.0\n" . LLMCacheTest::fixture("openai/chat-request-stream.json")
--- more_headers
X-Fake-Hold: 1500
--- timeout: 0.5
--- abort
--- response_body_like chomp
\Adata: \{"id":"fake-1",[^\n]*\n\n\z



=== TEST 9: the other introspection locations
--- request eval
["GET /__redis/keys", "GET /__sleep?ms=10", "GET /__last"]
--- response_body eval
["keys=0\n", "ok\n", qr/./]



=== TEST 10: nothing listens on TEST_NGINX_CLOSED_PORT
--- config
    location = /closed {
        proxy_pass http://127.0.0.1:$TEST_NGINX_CLOSED_PORT;
    }
--- request
GET /closed
--- error_code: 502
--- error_log
connect() failed (111: Connection refused) while connecting to upstream
