use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# Only the processes that serve requests open Redis pools: with a master
# and two workers, and a proxy_cache_path (so nginx also runs a cache
# manager and a cache loader), Redis sees pool x workers connections.

master_on();
workers(2);
repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: proxy_cache_path: the cache manager and loader open no Redis connections
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT pool=3;
    proxy_cache_path proxy_cache keys_zone=llm_test_zone:1m;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- request eval
["GET /__sleep?ms=500",
 "GET /__redis/clients"]
--- response_body eval
["ok\n", "llm_cache clients=6\n"]
