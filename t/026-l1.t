use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# L1: llm_cache_l1_zone / llm_cache_l1, entries in shared memory answered
# before Redis; kept coherent by Redis's client-side caching invalidations
# (BCAST), off while that channel is down.  Each block first waits for the
# channel to subscribe (a /__sleep), and for our own SET's invalidation to
# come back before L1 is filled from Redis.

our $chat = LLMCacheTest::request_body('openai/chat-request.json');
our $chat_answer_1 = LLMCacheTest::answer('openai/chat-response.json', 1);
our $chat_answer_2 = LLMCacheTest::answer('openai/chat-response.json', 2);

our @many = map { $chat =~ s/"user"/"user", "name": "u$_"/r } 1 .. 40;

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: L1 hit without Redis: Redis paused, the GET count unchanged, same bytes and headers as the Redis hit
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:1m;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_l1 hot;
        add_header X-Tier $llm_cache_tier;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/gets?reset=1",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/pause?ms=1000",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/gets",
 "GET /__stats"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT\nX-Tier: redis",
 "", "X-LLM-Cache: HIT\nAge: \\d+\nX-Tier: l1", "",
 "X-LLM-Cache: HIT\nX-Tier: l1", "", ""]
--- response_body_like eval
["ok\n", "\Q$::chat_answer_1\E", "ok\n", "\Q$::chat_answer_1\E",
 "gets=\\d+\n", "^\Q$::chat_answer_1\E\$", "ok\n",
 "^\Q$::chat_answer_1\E\$", "gets=0\n", "calls=1\n"]
--- no_error_log
[alert]
[error]



=== TEST 2: llm_cache_l1 off in a location, and $llm_cache_tier empty for a miss
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:1m;
    llm_cache_l1 hot;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_l1 off;
        add_header X-Tier "[$llm_cache_tier]";
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS\nX-Tier: \\[\\]", "",
 "X-LLM-Cache: HIT\nX-Tier: \\[redis\\]",
 "X-LLM-Cache: HIT\nX-Tier: \\[redis\\]",
 "X-LLM-Cache: HIT\nX-Tier: \\[redis\\]"]
--- no_error_log
[alert]



=== TEST 3: expiry: an L1 entry dies with the Redis entry's ttl
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:1m;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_l1 hot;
        llm_cache_ttl 2s;
        add_header X-Tier $llm_cache_tier;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=2600",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT\nX-Tier: redis",
 "X-LLM-Cache: HIT\nX-Tier: l1", "", "X-LLM-Cache: MISS", ""]
--- response_body eval
["ok\n", $::chat_answer_1, "ok\n", $::chat_answer_1, $::chat_answer_1,
 "ok\n", $::chat_answer_2, "calls=2\n"]
--- timeout: 10



=== TEST 4: ttl= of the zone caps an entry's life in L1 (Redis keeps it)
# 2s, not 1s: times are whole seconds, so an entry of ttl=1s filled late in
# a second may be gone a few ms later
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:1m ttl=2s;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_l1 hot;
        add_header X-Tier $llm_cache_tier;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=3100",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT\nX-Tier: redis",
 "X-LLM-Cache: HIT\nX-Tier: l1", "", "X-LLM-Cache: HIT\nX-Tier: redis",
 "X-LLM-Cache: HIT\nX-Tier: l1"]
--- timeout: 10



=== TEST 5: max_entry: a larger entry is answered from Redis, never kept in L1
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:1m max_entry=100;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_l1 hot;
        add_header X-Tier $llm_cache_tier;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT\nX-Tier: redis",
 "X-LLM-Cache: HIT\nX-Tier: redis"]



=== TEST 6: eviction: a small zone keeps the most recent entries, the oldest go, no error
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:32k;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_l1 hot;
        add_header X-Tier $llm_cache_tier;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
[ "GET /__sleep?ms=300",
  (map { "POST /v1/chat/completions\n$_" } @::many),
  "GET /__sleep?ms=200",
  (map { "POST /v1/chat/completions\n$_" } @::many),
  "POST /v1/chat/completions\n$::many[0]",
  "POST /v1/chat/completions\n$::many[39]",
  "GET /__stats" ]
--- response_headers_like eval
[ "", (map { "X-LLM-Cache: MISS" } 1 .. 40), "",
  (map { "X-LLM-Cache: HIT\nX-Tier: redis" } 1 .. 40),
  "X-LLM-Cache: HIT\nX-Tier: redis",
  "X-LLM-Cache: HIT\nX-Tier: l1", "" ]
--- response_body_like eval
[ "ok", (map { "." } 1 .. 83), "calls=40\n" ]
--- no_error_log
[alert]
[error]
[crit]
--- timeout: 30



=== TEST 7: the channel lost (its connection killed): L1 emptied, no L1 hit; back: Redis, then L1 again
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:1m;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_l1 hot;
        add_header X-Tier $llm_cache_tier;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/kill?type=pubsub",
 "GET /__sleep?ms=50",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=1000",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT\nX-Tier: redis",
 "X-LLM-Cache: HIT\nX-Tier: l1", "", "",
 "X-LLM-Cache: HIT\nX-Tier: redis", "",
 "X-LLM-Cache: HIT\nX-Tier: (redis|l1)",
 "X-LLM-Cache: HIT\nX-Tier: l1"]
--- no_error_log
[alert]



=== TEST 8: Redis gone (the proxy down): no L1 hit, ERROR; back: Redis, then L1 again
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PROXY_PORT;
    llm_cache_l1_zone hot:1m;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_l1 hot;
        add_header X-Tier $llm_cache_tier;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/proxy?op=down",
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/proxy?op=up",
 "GET /__sleep?ms=2500",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT\nX-Tier: redis",
 "X-LLM-Cache: HIT\nX-Tier: l1", "", "",
 "X-LLM-Cache: ERROR", "", "",
 "X-LLM-Cache: HIT\nX-Tier: redis",
 "X-LLM-Cache: HIT\nX-Tier: l1"]
--- no_error_log
[alert]
--- timeout: 15



=== TEST 9: a purge on this nginx reaches L1 through the channel: the next request is a MISS
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:1m;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_l1 hot;
        llm_cache_purge $http_x_purge;
        add_header X-Tier $llm_cache_tier;
    }
--- more_headers eval
["", "Authorization: Bearer sk-test", "", "Authorization: Bearer sk-test",
 "Authorization: Bearer sk-test",
 "Authorization: Bearer sk-test\nX-Purge: 1",
 "Authorization: Bearer sk-test"]
--- request eval
["GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT\nX-Tier: redis",
 "X-LLM-Cache: HIT\nX-Tier: l1", "", "X-LLM-Cache: MISS"]
--- no_error_log
[alert]



=== TEST 10: nginx -t: a zone without a size
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot;
--- config
--- must_die
--- error_log
invalid zone "hot", expected name:size



=== TEST 11: nginx -t: an unknown zone name
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:1m;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_l1 cold;
    }
--- must_die
--- error_log
unknown llm_cache_l1_zone "cold"



=== TEST 12: nginx -t: a bad parameter, a bad size
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:1m max_entry=big;
--- config
--- must_die
--- error_log
invalid max_entry "max_entry=big"



=== TEST 13: nginx -t: a zone declared twice
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:1m;
    llm_cache_l1_zone hot:1m;
--- config
--- must_die
--- error_log
duplicate zone "hot"



=== TEST 14: metrics tell L1 hits from Redis hits: llm_cache_l1_hits_total, the zone's entries and channel
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:1m;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_l1 hot;
    }
    location = /metrics {
        llm_cache_metrics;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /metrics",
 "GET /metrics?format=json"]
--- response_body_like eval
["ok", ".", "ok", ".", ".", ".",
 "llm_cache_requests_total\\{status=\"HIT\",model=\"[^\"]*\"\\} 3\n(?s:.*)"
 . "\nllm_cache_l1_hits_total 2\n(?s:.*)"
 . "\nllm_cache_l1_entries\\{zone=\"hot\"\\} 1\n(?s:.*)"
 . "\nllm_cache_l1_up\\{zone=\"hot\"\\} 1\n",
 "\"l1\":\\{\"hits\":2,\"zones\":\\{\"hot\":\\{\"entries\":1,\"up\":1\\}\\}\\},"]



=== TEST 15: compressed entries (llm_cache_compress) from L1: a gzip client gets them as stored, an identity client inflated, as from Redis
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llm_cache_l1_zone hot:1m;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_l1 hot;
        llm_cache_compress on;
        add_header X-Tier $llm_cache_tier;
    }
--- more_headers eval
["", "Authorization: Bearer sk-test", "",
 "Authorization: Bearer sk-test",
 "Authorization: Bearer sk-test\nAccept-Encoding: gzip",
 "Authorization: Bearer sk-test",
 "Authorization: Bearer sk-test\nAccept-Encoding: gzip",
 ""]
--- request eval
["GET /__sleep?ms=300",
 "POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- response_headers_like eval
["", "X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT\nX-Tier: redis",
 "X-LLM-Cache: HIT\nX-Tier: l1\nContent-Encoding: gzip",
 "X-LLM-Cache: HIT\nX-Tier: l1",
 "X-LLM-Cache: HIT\nX-Tier: l1\nContent-Encoding: gzip", ""]
--- response_body_like eval
["ok", "^\Q$::chat_answer_1\E\$", "ok", "^\Q$::chat_answer_1\E\$",
 "^\\x1f\\x8b", "^\Q$::chat_answer_1\E\$", "^\\x1f\\x8b", "calls=1\n"]
--- no_error_log
[error]
