use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# Server-sent events: streamed through on a miss, replayed on a hit, never
# stored when cut.  Each API's stream is stored only when its terminal event
# is its last event and no error event came (t/fixtures: OpenAI chat and
# Responses, Anthropic, Dify, Gemini), whatever the chunk boundaries.

our $stream = LLMCacheTest::request_body('openai/chat-request-stream.json');
our $sse_1 = LLMCacheTest::answer('openai/chat-response-stream.sse', 1);
our $sse_2 = LLMCacheTest::answer('openai/chat-response-stream.sse', 2);
our $first_event = qr/\Adata: \{"id":"fake-1",[^\n]*"role":"assistant"[^\n]*\n\n\z/;

our $responses = LLMCacheTest::request_body('openai/responses-request-stream.json');
our $anthropic = LLMCacheTest::request_body('anthropic/messages-request-stream.json');
our $dify = LLMCacheTest::request_body('dify/chat-messages-request-stream.json');
our $gemini = LLMCacheTest::request_body('gemini/generate-content-request.json');
our $gemini_uri = '/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse';

# bytes added after a stream (X-Fake-Append takes them with \n escaped)
our $late_error = qq{event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n};
our $late_data = qq{data: {"choices":[{"index":0,"delta":{"content":" more"}}]}\n\n};
our $chat_error = qq{data: {"error":{"message":"The server had an error","type":"server_error"}}\n\ndata: [DONE]\n\n};
our $pings = qq{event: ping\ndata: {"type": "ping"}\n\n: keep-alive\n\ndata: [DONE]\n\n};
our $quoted_done = qq{data: {"choices":[{"index":0,"delta":{"content":"data: [DONE]"}}]}\n\n};
sub esc { my $s = shift; $s =~ s/\n/\\n/g; return $s }
our ($late_error_h, $late_data_h, $chat_error_h, $pings_h, $quoted_done_h)
    = map { 'X-Fake-Append: ' . esc($_) }
          $late_error, $late_data, $chat_error, $pings, $quoted_done;

# the OpenAI chat stream without its last event ("data: [DONE]\n\n")
our $sse_1_cut = substr($sse_1, 0, -14);
our $sse_2_cut = substr($sse_2, 0, -14);

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



=== TEST 8: an OpenAI Responses stream (response.completed, no [DONE]) is stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/responses\n$::responses",
 "POST /v1/responses\n$::responses",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: text/event-stream", "X-LLM-Cache: HIT\nContent-Type: text/event-stream", ""]
--- response_body eval
[LLMCacheTest::answer('openai/responses-response-stream.sse', 1), LLMCacheTest::answer('openai/responses-response-stream.sse', 1), "calls=1\n"]
--- no_error_log
not stored



=== TEST 9: an Anthropic stream (message_stop, a ping inside) is stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/messages\n$::anthropic",
 "POST /v1/messages\n$::anthropic",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: text/event-stream", "X-LLM-Cache: HIT\nContent-Type: text/event-stream", ""]
--- response_body eval
[LLMCacheTest::answer('anthropic/messages-response-stream.sse', 1), LLMCacheTest::answer('anthropic/messages-response-stream.sse', 1), "calls=1\n"]
--- no_error_log
not stored



=== TEST 10: a Dify stream ("event": "message_end" in the data, pings without data) is stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat-messages\n$::dify",
 "POST /v1/chat-messages\n$::dify",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: text/event-stream", "X-LLM-Cache: HIT\nContent-Type: text/event-stream", ""]
--- response_body eval
[LLMCacheTest::answer('dify/chat-messages-response-stream.sse', 1), LLMCacheTest::answer('dify/chat-messages-response-stream.sse', 1), "calls=1\n"]
--- no_error_log
not stored



=== TEST 11: a Gemini alt=sse stream (last chunk with finishReason STOP) is stored
--- config
    location /v1beta/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST $::gemini_uri\n$::gemini",
 "POST $::gemini_uri\n$::gemini",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: text/event-stream", "X-LLM-Cache: HIT\nContent-Type: text/event-stream", ""]
--- response_body eval
[LLMCacheTest::answer('gemini/stream-generate-content.sse', 1), LLMCacheTest::answer('gemini/stream-generate-content.sse', 1), "calls=1\n"]
--- no_error_log
not stored



=== TEST 12: pings, comments and a gateway's [DONE] after the terminal event are harmless
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } $::pings_h, $::pings_h, ""]
--- request eval
["POST /v1/messages\n$::anthropic",
 "POST /v1/messages\n$::anthropic",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: text/event-stream", "X-LLM-Cache: HIT\nContent-Type: text/event-stream", ""]
--- response_body eval
[(LLMCacheTest::answer('anthropic/messages-response-stream.sse', 1) . $::pings), (LLMCacheTest::answer('anthropic/messages-response-stream.sse', 1) . $::pings), "calls=1\n"]
--- no_error_log
not stored



=== TEST 13: events split anywhere, CRLF line ends split between CR and LF
The provider sends the stream in 7-byte chunks, 1 ms apart, with CRLF line
ends: chunks end inside field names, values, and between CR and LF.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Newline: crlf\nX-Fake-Chunk: 7\nX-Fake-Event-Delay: 1", "X-Fake-Newline: crlf\nX-Fake-Chunk: 7\nX-Fake-Event-Delay: 1", ""]
--- request eval
["POST /v1/messages\n$::anthropic",
 "POST /v1/messages\n$::anthropic",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: text/event-stream", "X-LLM-Cache: HIT\nContent-Type: text/event-stream", ""]
--- response_body eval
[(LLMCacheTest::answer('anthropic/messages-response-stream.sse', 1) =~ s/\n/\r\n/gr), (LLMCacheTest::answer('anthropic/messages-response-stream.sse', 1) =~ s/\n/\r\n/gr), "calls=1\n"]
--- no_error_log
not stored



=== TEST 14: events split anywhere, CR line ends
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Newline: cr\nX-Fake-Chunk: 13\nX-Fake-Event-Delay: 1", "X-Fake-Newline: cr\nX-Fake-Chunk: 13\nX-Fake-Event-Delay: 1", ""]
--- request eval
["POST /v1/chat-messages\n$::dify",
 "POST /v1/chat-messages\n$::dify",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: text/event-stream", "X-LLM-Cache: HIT\nContent-Type: text/event-stream", ""]
--- response_body eval
[(LLMCacheTest::answer('dify/chat-messages-response-stream.sse', 1) =~ s/\n/\r/gr), (LLMCacheTest::answer('dify/chat-messages-response-stream.sse', 1) =~ s/\n/\r/gr), "calls=1\n"]
--- no_error_log
not stored



=== TEST 15: [DONE] followed by an error event is not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } $::late_error_h, $::late_error_h, "", ""]
--- request eval
["POST /v1/chat/completions\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[LLMCacheTest::answer('openai/chat-response-stream.sse', 1) . $::late_error,
 LLMCacheTest::answer('openai/chat-response-stream.sse', 2) . $::late_error,
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: an error event



=== TEST 16: a data event after [DONE] is not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } $::late_data_h, $::late_data_h, "", ""]
--- request eval
["POST /v1/chat/completions\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[LLMCacheTest::answer('openai/chat-response-stream.sse', 1) . $::late_data,
 LLMCacheTest::answer('openai/chat-response-stream.sse', 2) . $::late_data,
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: an event after the terminal one



=== TEST 17: an OpenAI chat error event before [DONE] is not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Drop: 14\n$::chat_error_h", "X-Fake-Drop: 14\n$::chat_error_h", "", ""]
--- request eval
["POST /v1/chat/completions\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[$::sse_1_cut . $::chat_error,
 $::sse_2_cut . $::chat_error,
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: an error event



=== TEST 18: a stream that ends cleanly inside its [DONE] event is not stored
The last blank line is missing: by the event-stream rules the event
is never dispatched, so a client never sees the [DONE].
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Drop: 1", "X-Fake-Drop: 1", "", ""]
--- request eval
["POST /v1/chat/completions\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[substr($::sse_1, 0, -1),
 substr($::sse_2, 0, -1),
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: it ends inside an event



=== TEST 19: a stream that ends cleanly without its terminal event is not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Drop: 14", "X-Fake-Drop: 14", "", ""]
--- request eval
["POST /v1/chat/completions\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[$::sse_1_cut,
 $::sse_2_cut,
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: no terminal event



=== TEST 20: an Anthropic stream with an error event is not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Fixture: anthropic/messages-response-stream-error.sse", "X-Fake-Fixture: anthropic/messages-response-stream-error.sse", "", ""]
--- request eval
["POST /v1/messages\n$::anthropic",
 "POST /v1/messages\n$::anthropic",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[LLMCacheTest::answer('anthropic/messages-response-stream-error.sse', 1),
 LLMCacheTest::answer('anthropic/messages-response-stream-error.sse', 2),
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: an error event



=== TEST 21: an Anthropic error event split into small CRLF chunks is not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Fixture: anthropic/messages-response-stream-error.sse\nX-Fake-Newline: crlf\nX-Fake-Chunk: 5\nX-Fake-Event-Delay: 1", "X-Fake-Fixture: anthropic/messages-response-stream-error.sse\nX-Fake-Newline: crlf\nX-Fake-Chunk: 5\nX-Fake-Event-Delay: 1", "", ""]
--- request eval
["POST /v1/messages\n$::anthropic",
 "POST /v1/messages\n$::anthropic",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[LLMCacheTest::answer('anthropic/messages-response-stream-error.sse', 1) =~ s/\n/\r\n/gr,
 LLMCacheTest::answer('anthropic/messages-response-stream-error.sse', 2) =~ s/\n/\r\n/gr,
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: an error event



=== TEST 22: an OpenAI Responses stream ending in response.failed is not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Fixture: openai/responses-response-stream-failed.sse", "X-Fake-Fixture: openai/responses-response-stream-failed.sse", "", ""]
--- request eval
["POST /v1/responses\n$::responses",
 "POST /v1/responses\n$::responses",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[LLMCacheTest::answer('openai/responses-response-stream-failed.sse', 1),
 LLMCacheTest::answer('openai/responses-response-stream-failed.sse', 2),
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: an error event



=== TEST 23: an OpenAI Responses stream ending in response.incomplete is not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Fixture: openai/responses-response-stream-incomplete.sse", "X-Fake-Fixture: openai/responses-response-stream-incomplete.sse", "", ""]
--- request eval
["POST /v1/responses\n$::responses",
 "POST /v1/responses\n$::responses",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[LLMCacheTest::answer('openai/responses-response-stream-incomplete.sse', 1),
 LLMCacheTest::answer('openai/responses-response-stream-incomplete.sse', 2),
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: an error event



=== TEST 24: a Dify stream with an error event is not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Fixture: dify/chat-messages-response-stream-error.sse", "X-Fake-Fixture: dify/chat-messages-response-stream-error.sse", "", ""]
--- request eval
["POST /v1/chat-messages\n$::dify",
 "POST /v1/chat-messages\n$::dify",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[LLMCacheTest::answer('dify/chat-messages-response-stream-error.sse', 1),
 LLMCacheTest::answer('dify/chat-messages-response-stream-error.sse', 2),
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: an error event



=== TEST 25: a Gemini stream whose last chunk has no finishReason is not stored
--- config
    location /v1beta/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Fixture: gemini/stream-generate-content-no-finish.sse", "X-Fake-Fixture: gemini/stream-generate-content-no-finish.sse", "", ""]
--- request eval
["POST $::gemini_uri\n$::gemini",
 "POST $::gemini_uri\n$::gemini",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[LLMCacheTest::answer('gemini/stream-generate-content-no-finish.sse', 1),
 LLMCacheTest::answer('gemini/stream-generate-content-no-finish.sse', 2),
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: no terminal event



=== TEST 26: a Gemini stream that finishes with SAFETY is not stored
--- config
    location /v1beta/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Fixture: gemini/stream-generate-content-safety.sse", "X-Fake-Fixture: gemini/stream-generate-content-safety.sse", "", ""]
--- request eval
["POST $::gemini_uri\n$::gemini",
 "POST $::gemini_uri\n$::gemini",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[LLMCacheTest::answer('gemini/stream-generate-content-safety.sse', 1),
 LLMCacheTest::answer('gemini/stream-generate-content-safety.sse', 2),
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: an error event



=== TEST 27: "data: [DONE]" inside the text of the last event is no terminal event
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[map { "Authorization: Bearer sk-test\n$_" } "X-Fake-Drop: 14\n$::quoted_done_h", "X-Fake-Drop: 14\n$::quoted_done_h", "", ""]
--- request eval
["POST /v1/chat/completions\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[$::sse_1_cut . $::quoted_done,
 $::sse_2_cut . $::quoted_done,
 "calls=2\n", "keys=0\n"]
--- error_log
provider response is not valid "text/event-stream", not stored: no terminal event
