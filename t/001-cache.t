use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# Every block starts with an empty Redis and a provider at zero calls.
# Blocks that say `llm_cache_pass /_llm` get the internal provider
# location and `llm_cache_redis` for the test Redis (see t/README.md).

our $chat = LLMCacheTest::request_body('openai/chat-request.json');
our $emb  = LLMCacheTest::request_body('openai/embeddings-request.json');
our $chat_answer_1 = LLMCacheTest::answer('openai/chat-response.json', 1);
our $chat_answer_2 = LLMCacheTest::answer('openai/chat-response.json', 2);
our $emb_answer_1 = LLMCacheTest::answer('openai/embeddings-response.json', 1);

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: miss, then a byte-identical hit, one provider call
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
--- error_code eval
[200, 200, 200]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: application/json\n!Age",
 "X-LLM-Cache: HIT\nContent-Type: application/json",
 ""]
--- response_headers_like eval
["", "Age: [01]", ""]
--- response_body eval
[$::chat_answer_1, $::chat_answer_1, "calls=1\n"]



=== TEST 2: the entry has the configured TTL
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 5m;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys"]
--- response_body_like eval
[".", qr/\Akeys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=(29\d|300) bytes=\d+\n\z/]



=== TEST 3: TTL from a variable (map)
--- http_config
    map $http_x_tier $llm_ttl {
        default  60;
        long     2h;
    }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl $llm_ttl;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nX-Tier: long", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys"]
--- response_body_like eval
[".", qr/\Akeys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=(71\d\d|7200) bytes=\d+\n\z/]



=== TEST 4: key order, number forms and string escapes make the same key
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","temperature":0.7,"max_tokens":100,"messages":[{"role":"user","content":"caf\u00e9"}]}',
 "POST /v1/chat/completions\n" . '{ "messages" : [ { "content" : "café", "role" : "user" } ] ,"max_tokens": 1.0e2, "temperature":7E-1, "model":"m"}',
 "POST /v1/chat/completions\n" . '{"messages":[{"content":"caf\u00E9","role":"user"}],"max_tokens":100.00,"temperature":0.70,"model":"m"}',
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-1"', '"id":"fake-1"', '\Acalls=1\n\z']



=== TEST 5: a different value is a different key (arrays keep their order)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","input":["a","b"]}',
 "POST /v1/chat/completions\n" . '{"model":"m","input":["b","a"]}',
 "POST /v1/chat/completions\n" . '{"model":"m","input":["a","b"],"temperature":0.7}',
 "POST /v1/chat/completions\n" . '{"model":"m","input":["a","b"],"temperature":0.71}',
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: MISS", ""]
--- response_body_like eval
['fake-1', 'fake-2', 'fake-3', 'fake-4', '\Acalls=4\n\z']



=== TEST 6: default normalization trims message text, and only that
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":"Hello world"}]}',
 "POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":"  Hello world\n"}]}',
 "POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":"Hello   world"}]}',
 "POST /v1/chat/completions\n" . '{"model":" m","messages":[{"role":"user","content":"Hello world"}]}',
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: MISS",
 "X-LLM-Cache: MISS", ""]
--- response_body_like eval
['fake-1', 'fake-1', 'fake-2', 'fake-3', '\Acalls=3\n\z']



=== TEST 7: collapse and lowercase, in message parts too
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_normalize trim collapse lowercase;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"Hello World"}]}]}',
 "POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":" hello \t\n  WORLD "}]}]}',
 "POST /v1/chat/completions\n" . '{"model":"M","messages":[{"role":"user","content":[{"type":"text","text":"hello world"}]}]}',
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
['fake-1', 'fake-1', 'fake-2', '\Acalls=2\n\z']



=== TEST 8: normalization off: whitespace counts
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_normalize off;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","prompt":"hi"}',
 "POST /v1/chat/completions\n" . '{"model":"m","prompt":"hi "}',
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
['fake-1', 'fake-2', '\Acalls=2\n\z']



=== TEST 9: user and metadata are excluded from the key by default
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","prompt":"hi","user":"alice","metadata":{"trace":"1"}}',
 "POST /v1/chat/completions\n" . '{"model":"m","prompt":"hi","user":"bob"}',
 "POST /v1/chat/completions\n" . '{"model":"m","prompt":"hi"}',
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['fake-1', 'fake-1', 'fake-1', '\Acalls=1\n\z']



=== TEST 10: llm_cache_key_exclude with a dotted path; user counts again
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_key_exclude metadata.trace seed;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","prompt":"hi","seed":1,"metadata":{"trace":"1","team":"a"}}',
 "POST /v1/chat/completions\n" . '{"model":"m","prompt":"hi","seed":2,"metadata":{"trace":"2","team":"a"}}',
 "POST /v1/chat/completions\n" . '{"model":"m","prompt":"hi","metadata":{"team":"b"}}',
 "POST /v1/chat/completions\n" . '{"model":"m","prompt":"hi","metadata":{"team":"a"},"user":"bob"}',
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: MISS",
 "X-LLM-Cache: MISS", ""]
--- response_body_like eval
['fake-1', 'fake-1', 'fake-2', 'fake-3', '\Acalls=3\n\z']



=== TEST 11: a different model or path is a miss
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/embeddings\n$::emb",
 "POST /v1/completions\n$::emb",
 "POST /v1/embeddings\n" . ($::emb =~ s/text-embedding-3-small/text-embedding-3-large/r),
 "POST /v1/embeddings\n$::emb",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT", ""]
--- response_body eval
[$::emb_answer_1, LLMCacheTest::answer('openai/chat-response.json', 2),
 LLMCacheTest::answer('openai/embeddings-response.json', 3),
 $::emb_answer_1, "calls=3\n"]



=== TEST 12: two credentials never share an entry
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["Authorization: Bearer sk-alice",
 "Authorization: Bearer sk-bob",
 "x-api-key: sk-bob",
 "Authorization: Bearer sk-alice",
 "authorization: Bearer sk-bob",
 ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['fake-1', 'fake-2', 'fake-3', 'fake-1', 'fake-2', '\Acalls=3\n\z']



=== TEST 13: llm_cache_namespace replaces the credential
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace $http_x_tenant;
    }
--- more_headers eval
["Authorization: Bearer sk-alice\nX-Tenant: acme",
 "Authorization: Bearer sk-bob\nX-Tenant: acme",
 "Authorization: Bearer sk-bob\nX-Tenant: globex",
 ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
['fake-1', 'fake-1', 'fake-2', '\Acalls=2\n\z']



=== TEST 14: 429 and 500 pass through and are never stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nX-Fake-Status: 429", "Authorization: Bearer sk-test\nX-Fake-Status: 429", "Authorization: Bearer sk-test\nX-Fake-Status: 500", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats",
 "GET /__redis/keys"]
--- error_code eval
[429, 429, 500, 200, 200]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Type: application/json",
 "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body eval
[LLMCacheTest::fixture('openai/error-429.json'),
 LLMCacheTest::fixture('openai/error-429.json'),
 LLMCacheTest::fixture('openai/error-500.json'),
 "calls=3\n", "keys=0\n"]



=== TEST 15: Cache-Control no-store or private from the provider is honoured
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nX-Fake-Cache-Control: no-store", "Authorization: Bearer sk-test\nX-Fake-Cache-Control: private, max-age=0",
 "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["Cache-Control: no-store", "Cache-Control: private, max-age=0", "", ""]
--- response_body eval
[$::chat_answer_1, $::chat_answer_2, "calls=2\n", "keys=0\n"]



=== TEST 16: a body that is not a JSON object passes through uncached
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '["model","m"]',
 "POST /v1/chat/completions\n" . '["model","m"]',
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", "", ""]
--- response_body_like eval
['fake-1', 'fake-2', '\Acalls=2\n\z', '\Akeys=0\n\z']
--- error_log
not cached: the body is not a JSON object



=== TEST 17: other methods go straight to the provider
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /v1/models", "GET /__last", "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "", ""]
--- response_body_like eval
['"object":"list"', '\AGET /v1/models length=0 ', '\Akeys=0\n\z']



=== TEST 18: a body over llm_cache_max_body_size is forwarded whole, uncached
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_max_body_size 100;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__last",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", "", ""]
--- response_body eval
[$::chat_answer_1, $::chat_answer_2,
 "POST /v1/chat/completions length=" . length($::chat) . " sha256="
     . LLMCacheTest::sha256_hex($::chat) . "\n",
 "keys=0\n"]



=== TEST 19: a body buffered to a temporary file is hashed and forwarded
--- config
    client_body_buffer_size 1k;
    client_body_in_file_only clean;
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
my $big = '{"model":"m","messages":[{"role":"user","content":"' . ('x' x 20000) . '"}]}';
["POST /v1/chat/completions\n$big",
 "POST /v1/chat/completions\n$big",
 "GET /__last",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
my $big = '{"model":"m","messages":[{"role":"user","content":"' . ('x' x 20000) . '"}]}';
['fake-1', 'fake-1',
 '\APOST /v1/chat/completions length=' . length($big) . ' sha256='
     . LLMCacheTest::sha256_hex($big) . '\n\z',
 '\Acalls=1\n\z']



=== TEST 20: a response over llm_cache_max_size is delivered whole, not stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_max_size 2k;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nX-Fake-Size: 5000", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Length: 5000", "", ""]
--- response_body_like eval
['\A\{"pad":"x+",.*"id":"fake-1"', '\Akeys=0\n\z', '\Acalls=1\n\z']



=== TEST 21: llm_cache_bypass skips the lookup; its fresh answer replaces the entry
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_bypass $http_x_no_cache;
    }
--- more_headers eval
["Authorization: Bearer sk-test", "Authorization: Bearer sk-test\nX-No-Cache: 1", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['fake-1', 'fake-2', 'fake-2', '\Acalls=2\n\z']



=== TEST 22: variables for logs and maps; a renamed status header
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_status_header X-Cache-Status;
        add_header X-Status $llm_cache_status always;
        add_header X-Key $llm_cache_key always;
        add_header X-Model $llm_cache_model always;
        add_header X-Age $llm_cache_age always;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers_like eval
["X-Cache-Status: MISS\nX-Status: MISS\nX-Key: llm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64}\nX-Model: gpt-4.1-mini",
 "X-Cache-Status: HIT\nX-Status: HIT\nX-Key: llm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64}\nX-Model: gpt-4.1-mini\nX-Age: [0-9]+"]
--- response_headers eval
["!X-Age\n!X-LLM-Cache", "!X-LLM-Cache"]



=== TEST 23: llm_cache_status_header off, llm_cache_key_prefix
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_status_header off;
        llm_cache_key_prefix "tenant-a:";
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys"]
--- response_headers eval
["!X-LLM-Cache", ""]
--- response_body_like eval
['fake-1', '\Akeys=1\ntenant-a:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=\d+ bytes=\d+\n\z']



=== TEST 24: llm_cache off proxies without caching
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache off;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", ""]
--- response_body_like eval
['fake-1', 'fake-2', '\Akeys=0\n\z']



=== TEST 25: the request reaches the provider unchanged
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions?api-version=2024-10-21\n$::chat", "GET /__last"]
--- response_body eval
[$::chat_answer_1,
 "POST /v1/chat/completions?api-version=2024-10-21 length=" . length($::chat)
     . " sha256=" . LLMCacheTest::sha256_hex($::chat) . "\n"]



=== TEST 26: Age counts from when the entry was stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        add_header X-Age $llm_cache_age always;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=2100",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers eval
["X-LLM-Cache: MISS\n!Age\n!X-Age", "", "X-LLM-Cache: HIT"]
--- response_headers_like eval
["", "", "Age: [23]\nX-Age: [23]"]
--- response_body eval
[$::chat_answer_1, "ok\n", $::chat_answer_1]



=== TEST 27: API version and beta headers are part of the key; absent, the key is the plain one
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nanthropic-version: 2023-06-01", "Authorization: Bearer sk-test\nanthropic-version: 2023-01-01",
 "Authorization: Bearer sk-test\nAnthropic-Version: 2023-06-01", "Authorization: Bearer sk-test\nanthropic-version: 2023-06-01\nanthropic-beta: tools-2024",
 "Authorization: Bearer sk-test\nOpenAI-Beta: assistants=v2", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
[("POST /v1/messages\n$::chat") x 7, "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT", ""]
--- response_body_like eval
["fake-1", "fake-2", "fake-1", "fake-3", "fake-4", "fake-5", "fake-5",
 "^calls=5\n"]



=== TEST 28: two locations passing to different providers never share an entry
The same URI (after the rewrite), body and credential through two
llm_cache_pass targets: two provider calls, two keys, each location's
second request a hit on its own entry.
--- config
    location /a/ {
        rewrite ^/a(/.*)$ $1 break;
        llm_cache_pass /_pa;
    }
    location /b/ {
        rewrite ^/b(/.*)$ $1 break;
        llm_cache_pass /_pb;
    }
    location ^~ /_pa/ {
        internal;
        rewrite ^/_pa/+(.*)$ /$1 break;
        proxy_pass http://llm_provider;
    }
    location ^~ /_pb/ {
        internal;
        rewrite ^/_pb/+(.*)$ /$1 break;
        proxy_pass http://llm_provider;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /a/v1/chat/completions\n$::chat",
 "POST /b/v1/chat/completions\n$::chat",
 "POST /a/v1/chat/completions\n$::chat",
 "POST /b/v1/chat/completions\n$::chat",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-1"', '"id":"fake-2"',
 '\Acalls=2\n\z', '\Akeys=2\n']



=== TEST 29: a 200 JSON answer with a top-level "error" is passed on, never stored; a Responses answer with "error": null is stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nX-Fake-Fixture: openai/error-429.json",
 "Authorization: Bearer sk-test\nX-Fake-Fixture: openai/error-429.json",
 "", "",
 "Authorization: Bearer sk-test", "Authorization: Bearer sk-test", ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats", "GET /__redis/keys",
 "POST /v1/responses\n" . LLMCacheTest::request_body('openai/responses-request.json'),
 "POST /v1/responses\n" . LLMCacheTest::request_body('openai/responses-request.json'),
 "GET /__stats"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", "", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['"error"', '"error"', "^calls=2\n", "^keys=0\n", '"error":null',
 '"error":null', "^calls=3\n"]
--- error_log
llm_cache: provider response is not valid "application/json", not stored



=== TEST 30: a byte-identical repeat takes its key from the worker's memo: the same entry as the parsed request's, and never another location's
# @other keeps the URI (error_page to a named location) but has its own
# key prefix: the same bytes there are another key.  A request written
# differently reaches the first entry, repeated or not.
--- config
    location /v1/ {
        error_page 418 = @other;
        if ($http_x_other) {
            return 418;
        }
        llm_cache_pass /_llm;
    }
    location @other {
        llm_cache_pass /_llm;
        llm_cache_key_prefix "other:";
    }
--- more_headers eval
["Authorization: Bearer sk-test", "Authorization: Bearer sk-test",
 "Authorization: Bearer sk-test\nX-Other: 1",
 "Authorization: Bearer sk-test\nX-Other: 1",
 "Authorization: Bearer sk-test", "Authorization: Bearer sk-test",
 "Authorization: Bearer sk-other", "", ""]
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":"hi"}]}',
 "POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":"hi"}]}',
 "POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":"hi"}]}',
 "POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":"hi"}]}',
 "POST /v1/chat/completions\n" . '{ "messages": [{"content":"hi", "role":"user"}], "model":"m" }',
 "POST /v1/chat/completions\n" . '{ "messages": [{"content":"hi", "role":"user"}], "model":"m" }',
 "POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":"hi"}]}',
 "GET /__stats", "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT",
 "X-LLM-Cache: MISS", "", ""]
--- response_body_like eval
['fake-1', 'fake-1', 'fake-2', 'fake-2', 'fake-1', 'fake-1', 'fake-3',
 '\Acalls=3\n\z', '\Akeys=3\n(?=[\s\S]*\nllm:)(?=[\s\S]*\nother:)']



=== TEST 31: the key of a known request is the one earlier versions made, parsed or from the memo: an upgrade keeps the cache
# Pinned: made by the module as of 2609efe (EVP SHA-256, no memo).  A change
# to what the key is made of, or how, fails here: it would leave every
# entry in Redis behind.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        add_header X-Key $llm_cache_key always;
    }
--- more_headers
Authorization: Bearer sk-pin
anthropic-version: 2023-06-01
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":" hi "}],"temperature":0.70}',
 "POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","content":" hi "}],"temperature":0.70}',
 "POST /v1/chat/completions?api-version=1\n" . '{"temperature":7e-1, "messages":[{"content":"hi","role":"user"}],"model":"m"}']
--- response_headers eval
["X-Key: llm:v2:7e98fd94053cf3bc:62c66a7a5dd70c31:eff6c6a05ca0b7e385b16dbb101081b2a908a3e2d0d474c97d2158be3266989d",
 "X-Key: llm:v2:7e98fd94053cf3bc:62c66a7a5dd70c31:eff6c6a05ca0b7e385b16dbb101081b2a908a3e2d0d474c97d2158be3266989d",
 "X-Key: llm:v2:7e98fd94053cf3bc:62c66a7a5dd70c31:46f14041d15aecfc6e59432821e52399326ce21270e01252739903e04930349d"]
