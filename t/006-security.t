use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

use IO::Socket::INET ();

# Tenant isolation and secrets: two credentials or two namespaces never
# share an entry, the same one hits; no credential reaches Redis (neither
# key nor entry) or a line the module logs, even at debug level; the
# Redis password is logged nowhere.
#
# Elsewhere: credentials in one list with header case (001 TEST 12),
# llm_cache_namespace from a header (001 TEST 13), the right password and
# an ACL user (007 TEST 2, 3), a wrong ACL password (007 TEST 4).
#
# nginx itself writes every request header at debug level ("http header:",
# "http proxy header:") and the request line in the context of every
# other line: those are not the module's.  A line the module writes has
# "llm_cache" in it; none of those may show a credential.

our $chat = LLMCacheTest::request_body('openai/chat-request.json');

# every credential used below: none may ever be found in Redis
our @secrets = map { "sk-secret-$_" } qw(alpha bravo charlie delta);

our $module_line_with_secret = qr/llm_cache[^\n]*sk-secret/;

# nginx's own "http header:" lines show that debug logging is on; a build
# without --with-debug (a plain ./configure, not Debian's) has none
our $nginx_v = do {
    my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
    `'$nginx' -V 2>&1` // '';
};
our $debug = $nginx_v =~ /--with-debug/;

# After every GET /__redis/keys (an answer "keys=N\n..."): Redis holds N
# entries and no key or entry has a credential in it.
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return if $dry_run || !defined $body || $body !~ /\Akeys=(\d+)\n/;

    my $n = $1;
    my $name = $block->name;
    my %dump = redis_dump();

    Test::More::is(scalar keys %dump, $n,
                   "$name - $n entries in Redis (req $req_idx)");

    my @found;
    for my $secret (@::secrets) {
        for my $key (sort keys %dump) {
            push @found, "$secret in key $key" if index($key, $secret) >= 0;
            push @found, "$secret in the entry of $key"
                if index($dump{$key}, $secret) >= 0;
        }
    }

    Test::More::is(join(', ', @found), '',
                   "$name - no credential in Redis (req $req_idx)");
});

# every key of the test Redis and its value
sub redis_dump {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => LLMCacheTest::redis_port(),
                                     Proto => 'tcp', Timeout => 5)
        or die "cannot connect to redis: $!\n";

    my $command = sub {
        my $cmd = '*' . scalar(@_) . "\r\n";
        $cmd .= '$' . length($_) . "\r\n$_\r\n" for @_;
        print $sock $cmd;
        return resp_read($sock);
    };

    my %dump;
    my $keys = $command->('KEYS', '*');
    for my $key (@$keys) {
        $dump{$key} = $command->('GET', $key) // '';
    }

    close $sock;
    return %dump;
}

sub resp_read {
    my $sock = shift;
    my $line = <$sock>;
    die "redis closed the connection\n" if !defined $line;
    $line =~ s/\r\n\z//;
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

    if ($type eq '$') {
        return undef if $rest < 0;
        my $data = '';
        while (length $data < $rest + 2) {
            my $n = read($sock, $data, $rest + 2 - length $data,
                         length $data);
            die "redis closed the connection\n" if !$n;
        }
        return substr $data, 0, $rest;
    }

    if ($type eq '*') {
        return [map { resp_read($sock) } 1 .. $rest];
    }

    die "redis: $rest\n" if $type eq '-';
    return $rest;
}

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: two Authorization credentials never share an entry; each hits its own
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- log_level: debug
--- more_headers eval
["Authorization: Bearer sk-secret-alpha",
 "Authorization: Bearer sk-secret-bravo",
 "Authorization: Bearer sk-secret-alpha",
 "Authorization: Bearer sk-secret-bravo",
 "", ""]
--- request eval
[("POST /v1/chat/completions\n$::chat") x 4, "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-1"', '"id":"fake-2"',
 '\Acalls=2\n\z',
 '\Akeys=2\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=\d+ bytes=\d+\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=\d+ bytes=\d+\n\z']
--- error_log eval
[$::debug ? qr/http header: "Authorization: Bearer sk-secret-alpha"/ : ()]
--- no_error_log eval
[$::module_line_with_secret]



=== TEST 2: two x-api-key credentials (Anthropic) never share an entry
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- log_level: debug
--- more_headers eval
["x-api-key: sk-secret-alpha", "x-api-key: sk-secret-bravo",
 "X-Api-Key: sk-secret-alpha", "x-api-key: sk-secret-bravo", "", ""]
--- request eval
[("POST /v1/messages\n$::chat") x 4, "GET /__stats", "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-1"', '"id":"fake-2"',
 '\Acalls=2\n\z', '\Akeys=2\n']
--- no_error_log eval
[$::module_line_with_secret]



=== TEST 3: two api-key credentials (Azure OpenAI) never share an entry
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- log_level: debug
--- more_headers eval
["api-key: sk-secret-alpha", "api-key: sk-secret-bravo",
 "api-key: sk-secret-alpha", "api-key: sk-secret-bravo", "", ""]
--- request eval
[("POST /v1/chat/completions?api-version=2024-10-21\n$::chat") x 4,
 "GET /__stats", "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-1"', '"id":"fake-2"',
 '\Acalls=2\n\z', '\Akeys=2\n']
--- no_error_log eval
[$::module_line_with_secret]



=== TEST 4: two x-goog-api-key credentials (Gemini) never share an entry
--- config
    location /v1beta/ {
        llm_cache_pass /_llm;
    }
--- log_level: debug
--- more_headers eval
["x-goog-api-key: sk-secret-alpha", "x-goog-api-key: sk-secret-bravo",
 "x-goog-api-key: sk-secret-alpha", "", ""]
--- request eval
[("POST /v1beta/models/gemini-2.0-flash:generateContent\n$::chat") x 3,
 "GET /__stats", "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-1"', '\Acalls=2\n\z',
 '\Akeys=2\n']
--- no_error_log eval
[$::module_line_with_secret]



=== TEST 5: a credential in the query string (Gemini's ?key=) never shares an entry
The arguments are part of the key, as the provider gets them.  nginx puts
the request line, arguments included, in the context of every [info] and
[error] line: only the module's own debug lines are checked here.
--- config
    location /v1beta/ {
        llm_cache_pass /_llm;
    }
--- log_level: debug
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1beta/models/gemini-2.0-flash:generateContent?key=sk-secret-alpha\n$::chat",
 "POST /v1beta/models/gemini-2.0-flash:generateContent?key=sk-secret-bravo\n$::chat",
 "POST /v1beta/models/gemini-2.0-flash:generateContent?key=sk-secret-alpha\n$::chat",
 "POST /v1beta/models/gemini-2.0-flash:generateContent?key=sk-secret-bravo\n$::chat",
 "GET /__stats", "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-1"', '"id":"fake-2"',
 '\Acalls=2\n\z', '\Akeys=2\n']
--- no_error_log eval
[qr/\[debug\][^\n]*llm_cache[^\n]*sk-secret/]



=== TEST 6: the same secret in another header, or two credentials: all apart; none: not cached
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- log_level: debug
--- more_headers eval
["Authorization: sk-secret-alpha",
 "x-api-key: sk-secret-alpha",
 "api-key: sk-secret-alpha",
 "Authorization: sk-secret-alpha\nx-api-key: sk-secret-bravo",
 "",
 "AUTHORIZATION: sk-secret-alpha",
 "", ""]
--- request eval
[("POST /v1/chat/completions\n$::chat") x 6, "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: MISS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-3"', '"id":"fake-4"',
 '"id":"fake-5"', '"id":"fake-1"', '\Acalls=5\n\z', '\Akeys=4\n']
--- no_error_log eval
[$::module_line_with_secret]



=== TEST 7: llm_cache_namespace from a tenant header: tenants apart, a request without one is not cached
A request that lacks the tenant header has an empty namespace: it is no
one's, so it is not cached rather than shared by every such request.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace $http_x_tenant;
    }
--- log_level: debug
--- more_headers eval
["Authorization: Bearer sk-secret-alpha",
 "Authorization: Bearer sk-secret-alpha\nX-Tenant: acme",
 "Authorization: Bearer sk-secret-bravo\nX-Tenant: acme",
 "Authorization: Bearer sk-secret-alpha\nX-Tenant: globex",
 "Authorization: Bearer sk-secret-alpha",
 "", ""]
--- request eval
[("POST /v1/chat/completions\n$::chat") x 5, "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: MISS", "X-LLM-Cache: BYPASS", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-2"', '"id":"fake-3"',
 '"id":"fake-4"', '\Acalls=4\n\z', '\Akeys=2\n']
--- error_log
llm_cache: request not cached: llm_cache_namespace is empty
--- no_error_log eval
[$::module_line_with_secret]



=== TEST 8: llm_cache_namespace from a map of credentials to teams
Two keys of one team share, another team does not, a key the map does
not know (empty namespace) is not cached.
--- http_config
    map $http_authorization $llm_team {
        "Bearer sk-secret-alpha"    red;
        "Bearer sk-secret-bravo"    red;
        "Bearer sk-secret-charlie"  blue;
        default                     "";
    }
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace $llm_team;
    }
--- log_level: debug
--- more_headers eval
["Authorization: Bearer sk-secret-alpha",
 "Authorization: Bearer sk-secret-bravo",
 "Authorization: Bearer sk-secret-charlie",
 "Authorization: Bearer sk-secret-delta",
 "", ""]
--- request eval
[("POST /v1/chat/completions\n$::chat") x 4, "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: MISS",
 "X-LLM-Cache: BYPASS", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-1"', '"id":"fake-2"', '"id":"fake-3"',
 '\Acalls=3\n\z', '\Akeys=2\n']
--- no_error_log eval
[$::module_line_with_secret]



=== TEST 9: no credential in any line the module writes, at debug level: broken body, miss, hit, provider error
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_invalid_json reject;
    }
--- log_level: debug
--- more_headers eval
[("Authorization: Bearer sk-secret-alpha\nx-api-key: sk-secret-bravo\n"
  . "api-key: sk-secret-charlie\nx-goog-api-key: sk-secret-delta") x 3,
 "Authorization: Bearer sk-secret-alpha\nX-Fake-Status: 429",
 "", ""]
--- request eval
["POST /v1/chat/completions\n{\"model\":",
 ("POST /v1/chat/completions\n$::chat") x 3,
 "GET /__stats", "GET /__redis/keys"]
--- error_code eval
[400, 200, 200, 429, 200, 200]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: MISS", "", ""]
--- response_body_like eval
['"code":"invalid_json"', '"id":"fake-1"', '"id":"fake-1"', '"error"',
 '\Acalls=2\n\z', '\Akeys=1\n']
--- error_log eval
[$::debug ? qr/http header: "x-api-key: sk-secret-bravo"/ : (),
 "llm_cache: invalid JSON in request body"]
--- no_error_log eval
[$::module_line_with_secret]



=== TEST 10: no credential in any line the module writes, at debug level: not cached, namespace
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
    location /v2/ {
        llm_cache_pass /_llm;
        llm_cache_namespace $http_x_tenant;
    }
--- log_level: debug
--- more_headers eval
[("Authorization: Bearer sk-secret-alpha\nx-api-key: sk-secret-bravo\n"
  . "api-key: sk-secret-charlie\nx-goog-api-key: sk-secret-delta") x 2,
 "", ""]
--- request eval
["POST /v1/chat/completions\n[1]",
 "POST /v2/chat/completions\n$::chat",
 "GET /__stats", "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '\Acalls=2\n\z', '\Akeys=0\n']
--- error_log eval
[$::debug ? qr/http header: "api-key: sk-secret-charlie"/ : (),
 "llm_cache: request not cached: the body is not a JSON object"]
--- no_error_log eval
[$::module_line_with_secret]



=== TEST 11: a Redis password is never logged, even when Redis refuses it
The test Redis has no password: AUTH fails, the requests go to the
provider (ERROR) and the error log says why, without the password.
--- http_config
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=wrong-s3cret-pw;
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- log_level: debug
--- more_headers
Authorization: Bearer sk-test
--- request eval
["GET /__sleep?ms=200",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["", "X-LLM-Cache: ERROR", "X-LLM-Cache: ERROR", "", ""]
--- response_body_like eval
['\Aok\n\z', '"id":"fake-1"', '"id":"fake-2"', '\Acalls=2\n\z',
 '\Akeys=0\n\z']
--- error_log eval
qr/\[error\] [^\n]*llm_cache: redis "127\.0\.0\.1:\d+"[^\n]*AUTH/
--- no_error_log
wrong-s3cret-pw



=== TEST 12: no credential (or empty ones) and no llm_cache_namespace: not cached, and a notice says how to cache them
--- config
    location /v1 {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["", "", "Authorization: ", "x-api-key: ", "", "", ""]
--- request eval
[("POST /v1/chat/completions\n$::chat") x 4,
 "POST /v1beta/models/g:generateContent?key=\n$::chat",
 "GET /__stats", "GET /__redis/keys"]
--- response_headers eval
[("X-LLM-Cache: BYPASS") x 5, "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-3"', '"id":"fake-4"',
 '"id":"fake-5"', '\Acalls=5\n\z', '\Akeys=0\n\z']
--- error_log eval
[qr/\[notice\] .*llm_cache: requests without a credential header are not cached; to cache them, set "llm_cache_namespace" to a variable naming the tenant, or to a fixed string/,
 "llm_cache: request not cached: no credential and no llm_cache_namespace"]



=== TEST 13: no credential with a fixed llm_cache_namespace: shared on purpose
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace "everyone";
    }
--- request eval
[("POST /v1/chat/completions\n$::chat") x 2, "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-1"', '\Acalls=1\n\z', '\Akeys=1\n']



=== TEST 14: OpenAI-Organization and OpenAI-Project split one key's namespace; Gemini's ?key= is a credential
--- config
    location /v1 {
        llm_cache_pass /_llm;
    }
--- more_headers eval
["Authorization: Bearer sk-secret-alpha\nOpenAI-Organization: org-1",
 "Authorization: Bearer sk-secret-alpha\nOpenAI-Organization: org-2",
 "Authorization: Bearer sk-secret-alpha\nOpenAI-Organization: org-1\nOpenAI-Project: proj-1",
 "Authorization: Bearer sk-secret-alpha\nopenai-project: proj-1\nOpenAI-Organization: org-1",
 "Authorization: Bearer sk-secret-alpha\nOpenAI-Organization: org-1",
 "", "", "", ""]
--- request eval
[("POST /v1/chat/completions\n$::chat") x 5,
 "POST /v1beta/models/g:generateContent?key=sk-secret-bravo\n$::chat",
 "POST /v1beta/models/g:generateContent?key=sk-secret-bravo\n$::chat",
 "POST /v1beta/models/g:generateContent?key=sk-secret-charlie\n$::chat",
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-3"', '"id":"fake-4"',
 '"id":"fake-1"', '"id":"fake-5"', '"id":"fake-5"', '"id":"fake-6"',
 '\Acalls=6\n\z']



=== TEST 15: an entry the module would not have written is refused, answered from the provider and replaced
Header injection through the content type, NUL bytes, statuses it never
stores, absurd creation times, numbers it never writes: each is an ERROR
answered by the provider, with no injected header, and its answer
replaces the entry (overwritten=1 each time: the key is still there).
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
my @bad = (
    "LLMC1 200 1 24\ntext/plain\r\nX-Injected: 1{}",
    "LLMC1 200 1700000000 31\napplication/json\r\nX-Injected: 1{}",
    "LLMC1 200 1700000000 31\napplication/json\nX-Injected: 1\n{}",
    "LLMC1 200 1700000000 17\napplication/json\0{}",
    "LLMC1 200 1700000000 16\napplication/json{\"a\":\"\0\"}",
    "LLMC1 204 1700000000 16\napplication/json{}",
    "LLMC1 304 1700000000 16\napplication/json{}",
    "LLMC1 599 1700000000 16\napplication/json{}",
    "LLMC1 0200 1700000000 16\napplication/json{}",
    "LLMC1 200 0 16\napplication/json{}",
    "LLMC1 200 4102444800 16\napplication/json{}",
    "LLMC1 200 1700000000 10\ntext/plain{}",
    "LLMC1 200 1700000000 32\napplication/json; charset=\"utf-8{}",
);
[ "POST /v1/chat/completions\n$::chat",
  (map { ("GET /__redis/overwrite?hex=" . unpack('H*', $_),
          "POST /v1/chat/completions\n$::chat") } @bad),
  "POST /v1/chat/completions\n$::chat",
  "GET /__stats" ]
--- response_headers eval
[ "X-LLM-Cache: MISS",
  (("", "X-LLM-Cache: ERROR\n!X-Injected") x 13),
  "X-LLM-Cache: HIT\n!X-Injected", "" ]
--- response_body_like eval
[ '"id":"fake-1"',
  (map { ('\Aoverwritten=1\n\z', '"id":"fake-' . ($_ + 1) . '"') } 1 .. 13),
  '"id":"fake-14"', '\Acalls=14\n\z' ]
