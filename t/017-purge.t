use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# Purge (llm_cache_purge, LLM-Cache-Purge: entry|namespace|model|all) on
# the v2 key layout <prefix>v2:<namespace id>:<model id>:<hash>; many keys
# go by SCAN + UNLINK steps.  Each answer carries the provider's call
# number ("fake-<N>").

our $chat = LLMCacheTest::request_body('openai/chat-request.json');
our $o1 = $chat =~ s/"model":"gpt-4\.1-mini"/"model":"o1-mini"/r;
our $ta = "Authorization: Bearer sk-test";
our $tb = "Authorization: Bearer sk-other";
our $key = 'llm:v2:[0-9a-f]{16}:[0-9a-f]{16}:[0-9a-f]{64} ttl=\d+ bytes=\d+\n';

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: PURGE of one entry removes exactly the entry that request hits; another request's and another tenant's stay
--- http_config
    map $request_method $purge { PURGE 1; default 0; }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_purge $purge;
        limit_except POST { allow 127.0.0.1; deny all; }
    }
--- more_headers eval
[$::ta, $::ta, $::tb, $::ta, $::ta, $::ta, $::ta, $::ta, $::ta, $::tb, $::ta]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::o1",
 "POST /v1/chat/completions\n$::chat",
 "PURGE /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "PURGE /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::o1",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- error_code eval
[200, 200, 200, 200, 200, 404, 200, 200, 200, 200, 200]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "Content-Type: application/json\nX-LLM-Cache: PURGE", "",
 "Content-Type: application/json", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-3"',
 '\A\{"purged": 1, "scope": "entry"\}\n\z',
 "\\Akeys=2\n$::key$::key\\z",
 '\A\{"purged": 0, "scope": "entry"\}\n\z',
 '"id":"fake-4"', '"id":"fake-4"', '"id":"fake-2"', '"id":"fake-3"',
 '\Acalls=4\n\z']



=== TEST 2: a namespace purge removes that tenant's entries only, and says how many; no body needed
--- http_config
    map $request_method $purge { PURGE 1; default 0; }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_purge $purge;
        limit_except POST { allow 127.0.0.1; deny all; }
    }
--- more_headers eval
[$::ta, $::ta, $::tb, "$::ta\nLLM-Cache-Purge: namespace", $::ta, $::tb, $::ta,
 $::ta]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::o1",
 "POST /v1/chat/completions\n$::chat",
 "PURGE /v1/chat/completions",
 "GET /__redis/keys",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", "",
 "X-LLM-Cache: HIT", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-3"',
 '\A\{"purged": 2, "scope": "namespace"\}\n\z',
 "\\Akeys=1\n$::key\\z",
 '"id":"fake-3"', '"id":"fake-4"', '\Acalls=4\n\z']



=== TEST 3: a model purge removes that model's entries of all tenants: the body's model, or model=<name>
--- http_config
    map $request_method $purge { PURGE 1; default 0; }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_purge $purge;
        limit_except POST { allow 127.0.0.1; deny all; }
    }
--- more_headers eval
[$::ta, $::ta, $::tb, "$::ta\nLLM-Cache-Purge: model", $::ta,
 "$::tb\nLLM-Cache-Purge: model=o1-mini", $::ta]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::o1",
 "POST /v1/chat/completions\n$::chat",
 "PURGE /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "PURGE /v1/chat/completions",
 "GET /__redis/keys"]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-3"',
 '\A\{"purged": 2, "scope": "model"\}\n\z',
 "\\Akeys=1\n$::key\\z",
 '\A\{"purged": 1, "scope": "model"\}\n\z',
 '\Akeys=0\n\z']



=== TEST 4: "all" removes every key under the prefix (another format's too), none outside it; the prefix's glob characters are escaped
--- http_config
    map $request_method $purge { PURGE 1; default 0; }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_key_prefix "c[1]*:";
        llm_cache_purge $purge;
        limit_except POST { allow 127.0.0.1; deny all; }
    }
--- more_headers eval
[$::ta, $::tb, "", "$::ta\nLLM-Cache-Purge: all", ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::o1",
 "GET /__redis/fill?set=c1xx:a&set=c[1]*x&set=other:1&set=c[1]*:v1:old",
 "PURGE /v1/chat/completions",
 "GET /__redis/keys"]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '\Aok\n\z',
 '\A\{"purged": 3, "scope": "all"\}\n\z',
 '\Akeys=3\nc1xx:a ttl=-1 bytes=1\nc\[1\]\*x ttl=-1 bytes=1\nother:1 ttl=-1 bytes=1\n\z']



=== TEST 5: a purge from a denied address is refused (limit_except); POST goes on, and a purge header on it does nothing
--- http_config
    map $request_method $purge { PURGE 1; default 0; }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_purge $purge;
        limit_except POST { deny all; }
    }
--- more_headers eval
[$::ta, "$::ta\nLLM-Cache-Purge: all", $::ta, "$::ta\nLLM-Cache-Purge: all",
 ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "PURGE /v1/chat/completions",
 "PURGE /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys"]
--- error_code eval
[200, 403, 403, 200, 200]
--- response_headers eval
["X-LLM-Cache: MISS", "", "", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['"id":"fake-1"', '403 Forbidden', '403 Forbidden', '"id":"fake-1"',
 "\\Akeys=1\n$::key\\z"]



=== TEST 6: without llm_cache_purge a PURGE is not a purge: passed to the provider (the fake one answers 501 to it), nothing removed
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
[$::ta, "$::ta\nLLM-Cache-Purge: all", "", ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "PURGE /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "GET /__stats"]
--- error_code eval
[200, 501, 200, 200]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: BYPASS", "", ""]
--- response_body_like eval
['"id":"fake-1"', '.', "\\Akeys=1\n$::key\\z", '\Acalls=1\n\z']



=== TEST 7: a namespace purge of 3001 keys goes in several SCAN steps, with the count right; another tenant's entry stays
--- http_config
    map $request_method $purge { PURGE 1; default 0; }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_purge $purge;
        limit_except POST { allow 127.0.0.1; deny all; }
    }
--- log_level: info
--- timeout: 30
--- more_headers eval
[$::ta, "", $::tb, "", "$::ta\nLLM-Cache-Purge: namespace", "", ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/fill?copy=3000",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "PURGE /v1/chat/completions",
 "GET /__redis/keys",
 "GET /__error_log"]
--- response_body_like eval
['"id":"fake-1"', '\Aok\n\z', '"id":"fake-2"', '\Akeys=3002\n',
 '\A\{"purged": 3001, "scope": "namespace"\}\n\z',
 "\\Akeys=1\n$::key\\z",
 'purge of namespace "llm:v2:[0-9a-f]{16}:\*": 3001 keys in ([2-9]|\d\d+) steps']



=== TEST 8: a purge it cannot do is a 400 and removes nothing: an unknown scope, an entry or model purge without a JSON body
--- http_config
    map $request_method $purge { PURGE 1; default 0; }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_purge $purge;
    }
--- more_headers eval
[$::ta, "$::ta\nLLM-Cache-Purge: everything", $::ta,
 "$::ta\nLLM-Cache-Purge: model", ""]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "PURGE /v1/chat/completions",
 "PURGE /v1/chat/completions\nnot json",
 "PURGE /v1/chat/completions",
 "GET /__redis/keys"]
--- error_code eval
[200, 400, 400, 400, 200]
--- response_body_like eval
['"id":"fake-1"',
 '\A\{"purged": 0, "scope": "\?", "error": "LLM-Cache-Purge is not one of',
 '\A\{"purged": 0, "scope": "entry", "error": "',
 '\A\{"purged": 0, "scope": "model", "error": "',
 "\\Akeys=1\n$::key\\z"]
