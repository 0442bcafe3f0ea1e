use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# A bad directive value stops nginx at start-up (and `nginx -t`) with a
# message that names the directive.

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: llm_cache_ttl that is not a time
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_ttl 10parsecs;
    }
--- must_die
--- error_log
invalid time "10parsecs" in "llm_cache_ttl"



=== TEST 2: llm_cache_normalize with an unknown mode
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_normalize trim stem;
    }
--- must_die
--- error_log
invalid value "stem" in "llm_cache_normalize"



=== TEST 3: llm_cache_redis with an unknown parameter
--- config
    location /v1/ {
        llm_cache_redis 127.0.0.1:6379 database=2;
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
invalid parameter "database=2" in "llm_cache_redis"



=== TEST 4: llm_cache_redis with a bad port
--- config
    location /v1/ {
        llm_cache_redis 127.0.0.1:99999;
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
invalid port in "llm_cache_redis" address "127.0.0.1:99999"



=== TEST 5: llm_cache_redis user= without password=
--- config
    location /v1/ {
        llm_cache_redis 127.0.0.1:6379 user=app;
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
"llm_cache_redis" user= needs password=



=== TEST 6: llm_cache_pass without any Redis
--- config
    location /v1/ {
        llm_cache_redis off;
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
"llm_cache_pass" needs "llm_cache_redis" (or "llm_cache off")



=== TEST 7: llm_cache_pass that is not a URI
--- config
    location /v1/ {
        llm_cache_pass http://api.openai.com;
    }
--- must_die
--- error_log
"llm_cache_pass" must be a URI prefix starting with "/", not "http://api.openai.com"



=== TEST 8: llm_cache_pass outside a location
--- config
    llm_cache_pass /_llm;
--- must_die
--- error_log
"llm_cache_pass" directive is not allowed here



=== TEST 9: sizes and timeouts that are not sizes and timeouts
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_max_size lots;
    }
--- must_die
--- error_log
"llm_cache_max_size" directive invalid value



=== TEST 10: llm_cache_redis_timeout that is not a time
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout soon;
    }
--- must_die
--- error_log
"llm_cache_redis_timeout" directive invalid value



=== TEST 11: llm_cache_key_exclude with an empty path segment
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_key_exclude metadata..trace;
    }
--- must_die
--- error_log
invalid path "metadata..trace" in "llm_cache_key_exclude"



=== TEST 12: llm_cache_status_header that is not a header name
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_status_header "X Cache";
    }
--- must_die
--- error_log
invalid header name "X Cache" in "llm_cache_status_header"



=== TEST 13: llm_cache takes on or off
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache maybe;
    }
--- must_die
--- error_log
invalid value "maybe" in "llm_cache" directive, it must be "on" or "off"



=== TEST 14: a duplicate llm_cache_pass
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_pass /_other;
    }
--- must_die
--- error_log
"llm_cache_pass" directive is duplicate



=== TEST 15: a good configuration with every directive starts and serves
--- http_config
    map $http_x_tier $llm_ttl {
        default  10m;
        batch    1d;
    }
--- config
    llm_cache_redis_timeout 2s;
    location /v1/ {
        llm_cache on;
        llm_cache_pass /_llm/;
        llm_cache_ttl $llm_ttl;
        llm_cache_key_prefix "gw1:";
        llm_cache_key_exclude user metadata stream_options.include_usage;
        llm_cache_normalize trim collapse;
        llm_cache_namespace "shared";
        llm_cache_bypass $http_x_no_cache;
        llm_cache_max_body_size 256k;
        llm_cache_max_size 4m;
        llm_cache_status_header X-Cache;
        llm_cache_invalid_json reject;
    }
--- request eval
["POST /v1/chat/completions\n" . LLMCacheTest::fixture('openai/chat-request.json'),
 "POST /v1/chat/completions\n" . LLMCacheTest::fixture('openai/chat-request.json')]
--- response_headers eval
["X-Cache: MISS", "X-Cache: HIT"]
--- no_error_log
[error]
[warn]



=== TEST 16: llm_cache_redis_timeout 0 (a lookup would wait for ever)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 0;
    }
--- must_die
--- error_log
"llm_cache_redis_timeout" directive must be more than 0



=== TEST 17: llm_cache_redis db= past 2^31-1 (it would wrap to another database)
--- config
    location /v1/ {
        llm_cache_redis 127.0.0.1:6379 db=4294967296;
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
"llm_cache_redis" db= must be from 0 to 2147483647, not "db=4294967296"



=== TEST 18: llm_cache_redis db= negative
--- config
    location /v1/ {
        llm_cache_redis 127.0.0.1:6379 db=-1;
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
"llm_cache_redis" db= must be from 0 to 2147483647, not "db=-1"



=== TEST 19: llm_cache_redis db=2147483647 is accepted
--- config
    location /v1/ {
        llm_cache_redis 127.0.0.1:$TEST_NGINX_CLOSED_PORT db=2147483647;
        llm_cache_pass /_llm;
    }
--- request
GET /__stats
--- response_body
calls=0



=== TEST 20: llm_cache_invalid_json takes pass or reject
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_invalid_json refuse;
    }
--- must_die
--- error_log
invalid value "refuse"



=== TEST 21: llm_cache_redis_ssl_certificate without its key
--- config
    location /v1/ {
        llm_cache_redis rediss://127.0.0.1:6380;
        llm_cache_redis_ssl_certificate /etc/nginx/redis-client.crt;
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
no "llm_cache_redis_ssl_certificate_key" for "llm_cache_redis_ssl_certificate" "/etc/nginx/redis-client.crt"



=== TEST 22: TLS settings next to a clear-text llm_cache_redis (clear text by mistake)
--- http_config
    llm_cache_redis 127.0.0.1:6379;
    llm_cache_redis_ssl_verify on;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
"llm_cache_redis_ssl_*" directives need a "rediss://" address in "llm_cache_redis", not "127.0.0.1:6379"



=== TEST 23: rediss:// on a unix socket
--- config
    location /v1/ {
        llm_cache_redis rediss://unix:/tmp/redis.sock;
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
"llm_cache_redis" "rediss://unix:/tmp/redis.sock": Redis has no TLS on a unix socket



=== TEST 24: llm_cache_redis_ssl_protocols with an unknown protocol
--- config
    location /v1/ {
        llm_cache_redis rediss://127.0.0.1:6380;
        llm_cache_redis_ssl_protocols TLSv1.3 TLSv9;
        llm_cache_pass /_llm;
    }
--- must_die
--- error_log
invalid value "TLSv9"



=== TEST 25: rediss:// without a CA file verifies against the system's trust store; a clear-text address elsewhere is unaffected
--- http_config
    llm_cache_redis_ssl_name redis.example;
--- config
    location /v1/ {
        llm_cache_redis rediss://127.0.0.1:$TEST_NGINX_CLOSED_PORT connect_timeout=100ms;
        llm_cache_pass /_llm;
    }
    location /v2/ {
        llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
        llm_cache_pass /_llm;
    }
--- request
GET /__stats
--- response_body
calls=0
