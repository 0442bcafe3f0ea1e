use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# Request controls: llm_cache_bypass (a refresh: no look-up, the fresh
# answer replaces the entry, as proxy_cache_bypass), llm_cache_no_store
# (the answer is not stored, an entry is still served, as proxy_no_cache),
# both evaluated once the body is parsed so that maps of $llm_cache_model
# work; and the client's Cache-Control with llm_cache_client_control on.
# Each answer carries the provider's call number ("fake-<N>").

our $chat = LLMCacheTest::request_body('openai/chat-request.json');
our $o1 = $chat =~ s/"model":"gpt-4\.1-mini"/"model":"o1-mini"/r;
our $auth = "Authorization: Bearer sk-test";

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: llm_cache_bypass refreshes: the provider answers and its answer replaces the entry
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_bypass $http_x_refresh;
    }
--- more_headers eval
[$::auth, "$::auth\nX-Refresh: 1", $::auth, $::auth, $::auth]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: BYPASS\n!Age", "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-2"', '\Acalls=2\n\z',
 '\Akeys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=\d+ bytes=\d+\n\z']



=== TEST 2: a refresh on an empty cache stores its answer; "0" is false
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_bypass $http_x_refresh;
    }
--- more_headers eval
["$::auth\nX-Refresh: yes", "$::auth\nX-Refresh: 0", $::auth]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-1"', '\Acalls=1\n\z']



=== TEST 3: llm_cache_no_store keeps the answer out; an entry there is still served
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_no_store $http_x_no_store;
    }
--- more_headers eval
["$::auth\nX-No-Store: 1", $::auth, $::auth, "$::auth\nX-No-Store: 1", $::auth]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['"id":"fake-1"', '\Akeys=0\n\z', '"id":"fake-2"', '"id":"fake-2"',
 '\Acalls=2\n\z']



=== TEST 4: bypass and no_store together: the provider answers, the entry is left as it was
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_bypass $http_x_refresh;
        llm_cache_no_store $http_x_refresh;
    }
--- more_headers eval
[$::auth, "$::auth\nX-Refresh: 1", $::auth, $::auth]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-1"', '\Acalls=2\n\z']



=== TEST 5: llm_cache_no_store with a map of $llm_cache_model keeps o1 answers out
--- http_config
    map $llm_cache_model $no_cache {
        default  0;
        ~^o1     1;
    }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_no_store $no_cache;
    }
--- more_headers eval
[$::auth, $::auth, $::auth, $::auth, $::auth, $::auth]
--- request eval
["POST /v1/chat/completions\n$::o1",
 "POST /v1/chat/completions\n$::o1",
 "GET /__redis/keys",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '\Akeys=0\n\z', '"id":"fake-3"',
 '"id":"fake-3"', '\Acalls=3\n\z']



=== TEST 6: the same map already evaluated in the rewrite phase, before the model was known, is evaluated again
--- http_config
    map $llm_cache_model $no_cache {
        default  0;
        ~^o1     1;
    }
--- config
    location /v1/ {
        set $early $no_cache;
        llm_cache_pass /_llm;
        llm_cache_no_store $no_cache;
    }
--- more_headers eval
[$::auth, $::auth, $::auth, $::auth]
--- request eval
["POST /v1/chat/completions\n$::o1",
 "POST /v1/chat/completions\n$::o1",
 "GET /__redis/keys",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '\Akeys=0\n\z', '\Acalls=2\n\z']



=== TEST 7: llm_cache_bypass with a map of $llm_cache_model: o1 always refreshed, others cached
--- http_config
    map $llm_cache_model $refresh {
        default  "";
        ~^o1     1;
    }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_bypass $refresh;
    }
--- more_headers eval
[$::auth, $::auth, $::auth, $::auth, $::auth, $::auth]
--- request eval
["POST /v1/chat/completions\n$::o1",
 "POST /v1/chat/completions\n$::o1",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-3"', '"id":"fake-3"',
 '\Acalls=3\n\z', '\Akeys=2\n']



=== TEST 8: a variable that "set" makes keeps its value (not evaluated again)
--- config
    location /v1/ {
        set $skip $http_x_r;
        llm_cache_pass /_llm;
        llm_cache_bypass $skip;
    }
--- more_headers eval
[$::auth, "$::auth\nX-R: 1", $::auth, $::auth]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-2"', '\Acalls=2\n\z']
--- no_error_log
uninitialized



=== TEST 9: the client's Cache-Control is ignored by default
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 5m;
    }
--- more_headers eval
["$::auth\nCache-Control: no-store, max-age=10",
 "$::auth\nCache-Control: no-cache",
 $::auth, $::auth]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-1"',
 '\Akeys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=(29\d|300) bytes=\d+\n\z',
 '\Acalls=1\n\z']



=== TEST 10: llm_cache_client_control on: no-cache refreshes the entry
--- config
    llm_cache_client_control on;
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[$::auth, "$::auth\nCache-Control: max-age=600, No-Cache", $::auth, $::auth]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-2"', '\Acalls=2\n\z']



=== TEST 11: llm_cache_client_control on: no-store keeps the answer out, an entry is still served
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_client_control on;
    }
--- more_headers eval
["$::auth\nCache-Control: no-store", $::auth, $::auth,
 "$::auth\nCache-Control: private\nCache-Control: no-store", $::auth]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['"id":"fake-1"', '\Akeys=0\n\z', '"id":"fake-2"', '"id":"fake-2"',
 '\Acalls=2\n\z']



=== TEST 12: llm_cache_client_control on: max-age sets the TTL of what is stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 5m;
        llm_cache_client_control on;
    }
--- more_headers eval
["$::auth\nCache-Control: foo=\"a,b\", MAX-AGE=\"45\", max-age=60", $::auth]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys"]
--- response_body_like eval
['"id":"fake-1"', '\Akeys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=(4\d) bytes=\d+\n\z']



=== TEST 13: max-age is capped by llm_cache_ttl; an invalid one is ignored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 5m;
        llm_cache_client_control on;
    }
--- more_headers eval
["$::auth\nCache-Control: max-age=99999999999999999999",
 "$::auth\nCache-Control: max-age=12s", $::auth]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::o1",
 "GET /__redis/keys"]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"',
 '\Akeys=2\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=(29\d|300) bytes=\d+\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=(29\d|300) bytes=\d+\n\z']



=== TEST 14: max-age=0: nothing stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_client_control on;
    }
--- more_headers eval
["$::auth\nCache-Control: max-age=0", $::auth, $::auth]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '\Acalls=2\n\z']



=== TEST 15: llm_cache_client_control off in a location under a server that has it on
--- config
    llm_cache_client_control on;
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_client_control off;
    }
--- more_headers eval
["$::auth\nCache-Control: no-store", "$::auth\nCache-Control: no-cache",
 $::auth]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-1"', '\Acalls=1\n\z']



=== TEST 16: with llm_cache_lock, refreshes neither wait for one another nor coalesce
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
        llm_cache_lock on;
        llm_cache_bypass $http_x_fake_delay;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
X-Fake-Delay: 600
--- request eval
["POST /__fire?n=3&gap=20\n$::chat", "GET /__stats", "GET /__redis/keys"]
--- response_body_like eval
["\nBYPASS=3\nbodies=3\n\\z", "^calls=3\n\\z",
 "^keys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=\\d+ bytes=\\d+\n\\z"]
--- timeout: 20



=== TEST 17: with llm_cache_lock, misses not to be stored take no lock and go each to the provider
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
        llm_cache_lock on;
        llm_cache_no_store $http_x_fake_delay;
    }
--- more_headers
Authorization: Bearer sk-test
Content-Type: application/json
X-Fake-Delay: 600
--- request eval
["POST /__fire?n=3&gap=20\n$::chat", "GET /__stats", "GET /__redis/keys"]
--- response_body_like eval
["\nMISS=3\nbodies=3\n\\z", "^calls=3\n\\z", "^keys=0\n\\z"]
--- timeout: 20



=== TEST 18: llm_cache_client_control with a bad value
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_client_control yes;
    }
--- must_die
--- error_log
invalid value "yes" in "llm_cache_client_control" directive, it must be "on" or "off"



=== TEST 19: llm_cache_no_store with no value
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_no_store;
    }
--- must_die
--- error_log
invalid number of arguments in "llm_cache_no_store" directive



=== TEST 20: llm_cache_no_store with an unknown variable
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_no_store $no_such_thing;
    }
--- must_die
--- error_log
unknown "no_such_thing" variable
