use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# The semantic layer (llm_cache_semantic): after an exact miss, the last
# user message is embedded by the fake embedder (t/README.md: /__embed/*),
# and a stored answer to a paraphrase at least llm_cache_semantic_threshold
# similar answers as HIT_SEMANTIC.  The fake embedder places two texts at
# an exact cosine, so the threshold and the guards are tested whatever a
# real model would say: pairs that differ in a number, a negation, the
# system prompt, the model, the tenant or the history miss even at 0.99.

sub chat {
    my ($text, %o) = @_;
    my $model = $o{model} // 'gpt-4o-mini';
    my $system = $o{system} // 'You are a helpful support agent.';
    my $history = $o{history} // '';
    my $extra = $o{extra} // '';
    return qq({"model":"$model","messages":[{"role":"system","content":"$system"},$history)
         . qq({"role":"user","content":"$text"}]$extra});
}

sub pair {
    my ($a, $b, $cos) = @_;
    return qq(POST /__embed/pair\n{"a":"$a","b":"$b","cos":$cos});
}

our $refund = 'What is your refund policy?';
our $refunds = 'How do refunds work?';
our $answer_1 = LLMCacheTest::answer('openai/chat-response.json', 1);

our $auth = "Authorization: Bearer sk-test";

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a paraphrase at 0.951 (threshold 0.95) is a HIT_SEMANTIC: no provider call, the first answer byte for byte, the similarity in $llm_cache_similarity
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        add_header X-Sem "$llm_cache_semantic_status" always;
        add_header X-Sim "$llm_cache_similarity" always;
    }
--- more_headers eval
["", "$::auth", "", "$::auth", "", "", ""]
--- request eval
[main::pair($::refund, $::refunds, 0.951),
 "POST /v1/chat/completions\n" . main::chat($::refund),
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n" . main::chat($::refunds),
 "GET /__stats",
 "GET /__embed/stats",
 "GET /__error_log"]
--- response_headers eval
["", "X-LLM-Cache: MISS\nX-Sem: MISS", "",
 "X-LLM-Cache: HIT_SEMANTIC\nX-Sem: HIT\nX-Sim: 0.9510", "", "", ""]
--- response_body_like eval
[qr/^pair cos=0.951000\n\z/, qr/^\Q$::answer_1\E\z/, qr/^ok\n\z/,
 qr/^\Q$::answer_1\E\z/, qr/^calls=1\n\z/,
 qr/^embed_calls=2\ninput=\Q$::refund\E\ninput=\Q$::refunds\E\n\z/,
 qr/semantic hit at 0\.9510, from "llm:v2:/]



=== TEST 2: at 0.949 it is a miss: the provider answers, the similarity is still told
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        add_header X-Sem "$llm_cache_semantic_status" always;
        add_header X-Sim "$llm_cache_similarity" always;
    }
--- more_headers eval
["", "$::auth", "", "$::auth", ""]
--- request eval
[main::pair($::refund, $::refunds, 0.949),
 "POST /v1/chat/completions\n" . main::chat($::refund),
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n" . main::chat($::refunds),
 "GET /__stats"]
--- response_headers eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS\nX-Sem: MISS\nX-Sim: 0.9490", ""]
--- response_body eval
["pair cos=0.949000\n", $::answer_1, "ok\n", LLMCacheTest::answer('openai/chat-response.json', 2), "calls=2\n"]



=== TEST 3: guards: a number or a negation that differs is a miss (GUARD) even at 0.99; a guard-equal paraphrase at 0.99 hits
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        add_header X-Sem "$llm_cache_semantic_status" always;
    }
--- more_headers eval
["", "", "", "$::auth", "", "$::auth", "$::auth", "", "$::auth", "$::auth", ""]
--- request eval
[main::pair("Give me 3 examples of prime numbers", "Give me 5 examples of prime numbers", 0.99),
 main::pair("Is port 6379 open by default?", "Is port 6379 closed by default?", 0.99),
 main::pair("Is port 6379 open by default?", "By default, is port 6379 open?", 0.99),
 "POST /v1/chat/completions\n" . main::chat("Give me 3 examples of prime numbers"),
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n" . main::chat("Give me 5 examples of prime numbers"),
 "POST /v1/chat/completions\n" . main::chat("Is port 6379 open by default?"),
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n" . main::chat("Is port 6379 closed by default?"),
 "POST /v1/chat/completions\n" . main::chat("By default, is port 6379 open?"),
 "GET /__stats"]
--- response_headers eval
["", "", "", "X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS\nX-Sem: GUARD", "X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS\nX-Sem: GUARD", "X-LLM-Cache: HIT_SEMANTIC\nX-Sem: HIT", ""]
--- response_body_like eval
["pair", "pair", "pair", ".", "ok", ".", ".", "ok", ".", "fake-3", "^calls=4\n\$"]



=== TEST 4: the partition: another system prompt, model, tenant or history never shares an answer, even at 0.99
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        add_header X-Sem "$llm_cache_semantic_status" always;
    }
--- more_headers eval
["", "$::auth", "", "$::auth", "$::auth", "Authorization: Bearer sk-other", "$::auth", "$::auth", ""]
--- request eval
[main::pair($::refund, $::refunds, 0.99),
 "POST /v1/chat/completions\n" . main::chat($::refund),
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n" . main::chat($::refunds, system => 'You are a pirate.'),
 "POST /v1/chat/completions\n" . main::chat($::refunds, model => 'gpt-4o'),
 "POST /v1/chat/completions\n" . main::chat($::refunds),
 "POST /v1/chat/completions\n" . main::chat($::refunds, history => '{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"},'),
 "POST /v1/chat/completions\n" . main::chat($::refunds),
 "GET /__stats"]
--- response_headers eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS\nX-Sem: MISS", "X-LLM-Cache: MISS\nX-Sem: MISS", "X-LLM-Cache: MISS\nX-Sem: MISS", "X-LLM-Cache: MISS\nX-Sem: MISS", "X-LLM-Cache: HIT_SEMANTIC", ""]
--- response_body_like eval
["pair", "fake-1", "ok", "fake-2", "fake-3", "fake-4", "fake-5", "fake-1", "^calls=5\n\$"]



=== TEST 5: an exact hit makes no embedding call; the semantic status stays empty
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        add_header X-Sem "[$llm_cache_semantic_status]" always;
    }
--- more_headers eval
["$::auth", "$::auth", "$::auth", ""]
--- request eval
["POST /v1/chat/completions\n" . main::chat($::refund),
 "POST /v1/chat/completions\n" . main::chat($::refund),
 "POST /v1/chat/completions\n" . main::chat($::refund),
 "GET /__embed/stats"]
--- response_headers eval
["X-LLM-Cache: MISS\nX-Sem: [MISS]", "X-LLM-Cache: HIT\nX-Sem: []",
 "X-LLM-Cache: HIT\nX-Sem: []", ""]
--- response_body eval
[$::answer_1, $::answer_1, $::answer_1, "embed_calls=1\ninput=$::refund\n"]



=== TEST 6: Redis holds the index and the vector under the partition's hash tag, expiring with llm_cache_semantic_ttl (at most the exact TTL)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 100s;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        llm_cache_semantic_ttl 50s;
    }
--- more_headers eval
["$::auth", "", ""]
--- request eval
["POST /v1/chat/completions\n" . main::chat($::refund),
 "GET /__sleep?ms=100",
 "GET /__redis/keys"]
--- response_body_like eval
["fake-1", "ok", qr{^keys=3\nllm:v2:[0-9a-f]{16}:[0-9a-f]{16}:[0-9a-f]{64} ttl=(100|99) bytes=\d+\nllm:v2:[0-9a-f]{16}:[0-9a-f]{16}:s\{[0-9a-f]{32}\}:e:[0-9a-f]{32} ttl=(50|49) bytes=\d+\nllm:v2:[0-9a-f]{16}:[0-9a-f]{16}:s\{[0-9a-f]{32}\}:i ttl=(50|49) bytes=-1\n$}]



=== TEST 7: embedder faults fail open: 500, malformed JSON, a wrong dimension, a timeout: the provider answers, ERROR, one log line each
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        llm_cache_semantic_dimensions 64;
        llm_cache_semantic_timeout 300ms;
        add_header X-Sem "$llm_cache_semantic_status" always;
    }
--- more_headers eval
["", "$::auth", "", "", "$::auth", "", "$::auth", "", "$::auth", "", "$::auth", "",
 ""]
--- request eval
[main::pair($::refund, $::refunds, 0.99),
 "POST /v1/chat/completions\n" . main::chat($::refund),
 "GET /__sleep?ms=100",
 "GET /__embed/config?fail=500&count=1",
 "POST /v1/chat/completions\n" . main::chat($::refunds),
 "GET /__embed/config?malformed=1&count=1",
 "POST /v1/chat/completions\n" . main::chat("$::refunds (3)"),
 "GET /__embed/config?wrong_dims=1&count=1",
 "POST /v1/chat/completions\n" . main::chat("$::refunds (4)"),
 "GET /__embed/config?delay=1500&count=1",
 "POST /v1/chat/completions\n" . main::chat("$::refunds (5)"),
 "GET /__stats",
 "GET /__error_log"]
--- response_headers eval
["", "X-LLM-Cache: MISS", "", "", "X-LLM-Cache: MISS\nX-Sem: ERROR", "",
 "X-LLM-Cache: MISS\nX-Sem: ERROR", "", "X-LLM-Cache: MISS\nX-Sem: ERROR", "",
 "X-LLM-Cache: MISS\nX-Sem: ERROR", "",
 ""]
--- response_body_like eval
["pair", "fake-1", "ok", "ok", "fake-2", "ok", "fake-3", "ok", "fake-4", "ok", "fake-5", "^calls=5\n\$",
 qr/semantic layer not used: the embedder answered 500/]
--- timeout: 20



=== TEST 8: what a failed embedding leaves: no index, no vector, only the exact entry
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
    }
--- more_headers eval
["", "$::auth", "", "",
 ""]
--- request eval
["GET /__embed/config?fail=503",
 "POST /v1/chat/completions\n" . main::chat($::refund),
 "GET /__sleep?ms=200",
 "GET /__redis/keys",
 "GET /__error_log"]
--- response_body_like eval
["ok", "fake-1", "ok", qr{^keys=1\nllm:v2:[0-9a-f]{16}:[0-9a-f]{16}:[0-9a-f]{64} ttl=\d+ bytes=\d+\n$},
 qr/semantic layer not used: the embedder answered 503/]

=== TEST 9: llm_cache_semantic shadow: the similarity is computed and logged, never served
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic shadow;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        add_header X-Sem "$llm_cache_semantic_status" always;
        add_header X-Sim "$llm_cache_similarity" always;
    }
--- more_headers eval
["", "$::auth", "", "$::auth", "",
 ""]
--- request eval
[main::pair($::refund, $::refunds, 0.97),
 "POST /v1/chat/completions\n" . main::chat($::refund),
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n" . main::chat($::refunds),
 "GET /__stats",
 "GET /__error_log"]
--- response_headers eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS\nX-Sem: SHADOW_HIT\nX-Sim: 0.9700", "",
 ""]
--- response_body_like eval
["pair", "fake-1", "ok", "fake-2", "^calls=2\n\$",
 qr/semantic shadow hit at 0\.9700/]

=== TEST 10: not taken (BYPASS, no embedding): an image part, n=2, a tool result last, a text over llm_cache_semantic_max_input
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        llm_cache_semantic_max_input 40;
        add_header X-Sem "$llm_cache_semantic_status" always;
    }
--- more_headers eval
["$::auth", "$::auth", "$::auth", "$::auth", "$::auth", ""]
--- request eval
["POST /v1/chat/completions\n" . q({"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}),
 "POST /v1/chat/completions\n" . main::chat($::refund, extra => ',"n":2'),
 "POST /v1/chat/completions\n" . q({"model":"gpt-4o","messages":[{"role":"user","content":"Weather?"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}]}),
 "POST /v1/chat/completions\n" . main::chat("This question is much longer than forty bytes, surely"),
 "POST /v1/chat/completions\n" . q({"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"Two"},{"type":"text","text":"parts"}]}]}),
 "GET /__embed/stats"]
--- response_headers eval
["X-Sem: BYPASS", "X-Sem: BYPASS", "X-Sem: BYPASS", "X-Sem: BYPASS", "X-Sem: MISS", ""]
--- response_body_like eval
[".", ".", ".", ".", ".", qr{^embed_calls=1\ninput=Two\\nparts\n$}]



=== TEST 11: the embedding request carries none of the client's headers, and the model and dimensions configured
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model text-embedding-3-small;
        llm_cache_semantic_dimensions 32;
    }
    location = /_embed {
        internal;
        if ($http_authorization) {
            return 500;
        }
        proxy_pass http://llm_provider/v1/embeddings;
    }
--- more_headers eval
["$::auth", "", ""]
--- request eval
["POST /v1/chat/completions\n" . main::chat("Say \\\"hi\\\"\\n"),
 "GET /__sleep?ms=100",
 "GET /__embed/stats"]
--- response_body_like eval
["fake-1", "ok", qr{^embed_calls=1\ninput=Say "hi"\\n\n$}]
--- no_error_log
semantic layer not used



=== TEST 12: the metrics count semantic hits, misses and guard refusals
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
    }
    location = /metrics {
        llm_cache_metrics;
    }
--- more_headers eval
["", "", "$::auth", "", "$::auth", "$::auth", ""]
--- request eval
[main::pair($::refund, $::refunds, 0.96),
 main::pair($::refund, "Is there no refund policy?", 0.99),
 "POST /v1/chat/completions\n" . main::chat($::refund),
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n" . main::chat($::refunds),
 "POST /v1/chat/completions\n" . main::chat("Is there no refund policy?"),
 "GET /metrics"]
--- response_body_like eval
["pair", "pair", ".", "ok", ".", ".", qr/llm_cache_requests_total\{status="HIT_SEMANTIC",model="gpt-4o-mini"\} 1\n.*llm_cache_semantic_total\{result="miss"\} 1\nllm_cache_semantic_total\{result="hit"\} 1\nllm_cache_semantic_total\{result="guard"\} 1\n/s]



=== TEST 13: llm_cache_semantic_threshold is a similarity, range-checked at nginx -t
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        llm_cache_semantic_threshold 0.05;
    }
--- must_die
--- error_log
"llm_cache_semantic_threshold" must be a cosine similarity from 0.5 to 1



=== TEST 14: llm_cache_semantic on without an embed location
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_model fake-embed;
    }
--- must_die
--- error_log
"llm_cache_semantic" needs "llm_cache_semantic_embed"



=== TEST 15: llm_cache_semantic_guard off with a guard
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        llm_cache_semantic_guard off numbers;
    }
--- must_die
--- error_log
"llm_cache_semantic_guard off" cannot be combined with guards



=== TEST 16: a purged exact entry answers no paraphrase: its index entry goes, the provider answers; a namespace purge takes the semantic keys too
--- http_config
    map $request_method $purge { PURGE 1; default 0; }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_purge $purge;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        add_header X-Sem "$llm_cache_semantic_status" always;
    }
--- more_headers eval
["", "$::auth", "", "$::auth", "$::auth", "", "", "$::auth\nLLM-Cache-Purge: namespace", ""]
--- request eval
[main::pair($::refund, $::refunds, 0.99),
 "POST /v1/chat/completions\n" . main::chat($::refund),
 "GET /__sleep?ms=100",
 "PURGE /v1/chat/completions\n" . main::chat($::refund),
 "POST /v1/chat/completions\n" . main::chat($::refunds),
 "GET /__sleep?ms=100",
 "GET /__redis/keys",
 "PURGE /v1/chat/completions",
 "GET /__redis/keys"]
--- response_headers eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: PURGE", "X-LLM-Cache: MISS\nX-Sem: MISS", "", "", "X-LLM-Cache: PURGE", ""]
--- response_body_like eval
["pair", "fake-1", "ok", '"purged": 1', "fake-2", "ok",
 qr{^keys=3\n(llm:v2:[0-9a-f]{16}:[0-9a-f]{16}:[0-9a-f]{64} ttl=\d+ bytes=\d+\n)(llm:v2:\S+:s\{[0-9a-f]{32}\}:e:[0-9a-f]{32} ttl=\d+ bytes=\d+\n)(llm:v2:\S+:s\{[0-9a-f]{32}\}:i ttl=\d+ bytes=-1\n)$},
 '"purged": 3', qr{^keys=0\n$}]



=== TEST 17: Anthropic Messages (system at the top, text blocks) hit the same way; Gemini and Responses shapes are not taken (BYPASS)
--- config
    location ~ ^/v1(beta)?/ {
        llm_cache_pass /_llm;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
        add_header X-Sem "$llm_cache_semantic_status" always;
    }
--- more_headers eval
["", "x-api-key: sk-ant", "", "x-api-key: sk-ant", "x-goog-api-key: g-key", "$::auth", ""]
--- request eval
[main::pair($::refund, $::refunds, 0.98),
 "POST /v1/messages\n" . qq({"model":"claude-3-5-haiku","max_tokens":256,"system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"$::refund"}]}]}),
 "GET /__sleep?ms=100",
 "POST /v1/messages\n" . qq({"model":"claude-3-5-haiku","max_tokens":256,"system":"Be brief.","messages":[{"role":"user","content":"$::refunds"}]}),
 "POST /v1beta/models/gemini-2.0-flash:generateContent\n" . qq({"contents":[{"role":"user","parts":[{"text":"$::refunds"}]}]}),
 "POST /v1/responses\n" . qq({"model":"gpt-4o","input":"$::refunds"}),
 "GET /__stats"]
--- response_headers eval
["", "X-LLM-Cache: MISS\nX-Sem: MISS", "", "X-LLM-Cache: HIT_SEMANTIC\nX-Sem: HIT",
 "X-Sem: BYPASS", "X-Sem: BYPASS", ""]
--- response_body_like eval
["pair", ".", "ok", ".", ".", ".", "^calls=3\n\$"]
