use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# Server-sent events: streamed through on a miss, replayed on a hit, never
# stored when cut.

our $stream = LLMCacheTest::request_body('openai/chat-request-stream.json');
our $sse_1 = LLMCacheTest::answer('openai/chat-response-stream.sse', 1);
our $sse_2 = LLMCacheTest::answer('openai/chat-response-stream.sse', 2);
our $first_event = qr/\Adata: \{"id":"fake-1",[^\n]*"role":"assistant"[^\n]*\n\n\z/;

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: an SSE miss streams, the hit replays the same bytes as SSE
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: text/event-stream\nTransfer-Encoding: chunked",
 "X-LLM-Cache: HIT\nContent-Type: text/event-stream",
 ""]
--- response_headers_like eval
["", "Age: [01]", ""]
--- response_body eval
[$::sse_1, $::sse_1, "calls=1\n"]



=== TEST 2: the first event reaches the client while the provider still works
The provider holds the stream for 3 s after its first event; the client
gives up after 1 s and must have that first event by then (an HTTP/1.0
client, so the partial body is readable without chunked framing).
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
X-Fake-Hold: 3000
--- request eval
"POST /v1/chat/completions HTTP/1.0\n$::stream"
--- timeout: 1
--- abort
--- response_body_like eval
$::first_event



=== TEST 3: events arrive spaced out and still make one stored stream
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nX-Fake-Event-Delay: 20", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "GET /__stats"]
--- response_body eval
[$::sse_1, $::sse_1, "calls=1\n"]



=== TEST 4: a stream the provider cuts is not stored, the next one is
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nX-Fake-Cut: 3", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions HTTP/1.0\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body eval
[CORE::join("", (split /(?<=\n\n)/, $::sse_1)[0 .. 2]), $::sse_2, $::sse_2,
 "calls=2\n"]
--- error_log
llm_cache: provider response is incomplete, closing the client connection



=== TEST 5: a cut stream ends the client connection without the last chunk
Like plain proxy_pass: an HTTP/1.1 client gets a chunked body with no
terminating chunk, so it knows the answer is broken.  (The response is
not parsed here: both runners would report the missing last chunk.)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
X-Fake-Cut: 2
--- request eval
"POST /v1/chat/completions\n$::stream"
--- ignore_response
--- error_log
llm_cache: provider response is incomplete, closing the client connection



=== TEST 6: a JSON answer cut short is not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nX-Fake-Cut: 1", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions HTTP/1.0\n" . LLMCacheTest::fixture('openai/chat-request.json'),
 "GET /__stats",
 "GET /__redis/keys"]
--- response_body_like eval
['\A\{"id":"fake-1"', '\Acalls=1\n\z', '\Akeys=0\n\z']
--- error_log
llm_cache: provider response is incomplete



=== TEST 7: a stream the client leaves is not stored
The client gives up 0.5 s into a stream the provider holds for 1.5 s;
nothing may be stored for it.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nX-Fake-Hold: 1500", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions HTTP/1.0\n$::stream",
 "GET /__sleep?ms=600",
 "GET /__sleep?ms=600",
 "GET /__redis/keys"]
--- timeout: 0.8
--- abort
--- response_body_like eval
[$::first_event, '\Aok\n\z', '\Aok\n\z', '\Akeys=0\n\z']
