use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# The fake embedder of t/lib/fake_provider.py (see t/README.md): what the
# semantic cache's tests rely on.  Requests go through nginx to
# /v1/embeddings; the control endpoints through the harness's /__embed/
# location.  The hashed bag of words is computed here independently, from
# its description, and compared byte for byte.

use Digest::SHA ();
use MIME::Base64 ();

our $emb = LLMCacheTest::request_body('openai/embeddings-request.json');

# one number of a float reply, and a reply of one vector of $n of them
our $num = '-?\d+(?:\.\d+)?(?:e-?\d+)?';
sub shape {
    my ($n, $model, $tokens) = @_;
    return '\A\{"object":"list","data":\[\{"object":"embedding","index":0,'
        . '"embedding":\[' . ($n > 1 ? "(?:$::num,){" . ($n - 1) . "}" : '')
        . "$::num\\]\\}\\],\"model\":\"$model\",\"usage\":\\{"
        . "\"prompt_tokens\":$tokens,\"total_tokens\":$tokens\\}\\}\\z";
}

# the hashed bag of words: lowercase, split on non-alphanumerics, each
# token +-1 at (first 4 bytes of its sha256, big endian) mod d, minus when
# bit 0 of byte 5 is set; normalized
sub bow {
    my ($text, $d) = @_;
    my @v = (0) x $d;
    my @tokens = grep { length } split /[\W_]+/, lc $text;
    for my $t (@tokens ? @tokens : ($text =~ s/^\s+|\s+$//gr)) {
        my $h = Digest::SHA::sha256($t);
        $v[unpack('N', $h) % $d] += (ord(substr($h, 4, 1)) & 1) ? -1 : 1;
    }
    my $n = 0;
    $n += $_ * $_ for @v;
    $n = sqrt $n;
    return map { $_ / $n } @v;
}

sub f32 { return unpack 'f<', pack 'f<', shift }

# the shortest decimal that reads back as the same float32
sub f32_text {
    my $v = f32(shift);
    my $s;
    for my $p (1 .. 9) {
        $s = sprintf '%.*g', $p, $v;
        last if f32($s) == $v;
    }
    $s .= '.0' if $s !~ /[.e]/;
    return $s;
}

sub cosine {
    my ($a, $b) = @_;
    my ($ab, $aa, $bb) = (0, 0, 0);
    for my $i (0 .. $#$a) {
        $ab += $a->[$i] * $b->[$i];
        $aa += $a->[$i] ** 2;
        $bb += $b->[$i] ** 2;
    }
    return $ab / sqrt($aa * $bb);
}

# the whole reply for one vector, float or base64
sub reply {
    my ($model, $tokens, $base64, @v) = @_;
    my $e = $base64
        ? '"' . MIME::Base64::encode_base64(pack('f<*', @v), '') . '"'
        : '[' . join(',', map { f32_text($_) } @v) . ']';
    return '{"object":"list","data":[{"object":"embedding","index":0,'
        . '"embedding":' . $e . '}],"model":"' . $model . '","usage":'
        . '{"prompt_tokens":' . $tokens . ',"total_tokens":' . $tokens . '}}';
}

# a regex matching exactly this text
sub exact { return '\A' . quotemeta(shift) . '\z' }

# "cos=<6 decimals>\n" if c is in [lo, hi], else a text saying it is not
sub cos_in {
    my ($c, $lo, $hi) = @_;
    return $c >= $lo && $c <= $hi ? sprintf("cos=%.6f\n", $c)
                                  : "cos $c is not in [$lo, $hi]\n";
}

our $fox = 'The quick brown fox jumps over the lazy dog';
our $refund = 'What is your refund policy?';
our $refund_q = 'What%20is%20your%20refund%20policy%3F';

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: the reply has OpenAI's shape: 64 floats by default, the request's model (else fake-embed), usage, a list input gets one item per text
--- config
    location = /_embed_test {
        proxy_pass http://llm_provider/v1/embeddings;
    }
--- request eval
["POST /_embed_test\n{\"input\":\"The quick brown fox\",\"model\":\"text-embedding-3-small\",\"encoding_format\":\"float\"}",
 "POST /_embed_test\n{\"input\":\"The quick brown fox\"}",
 "POST /_embed_test\n{\"input\":[\"first text\",\"second\"]}"]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["Content-Type: application/json", "Content-Type: application/json",
 "Content-Type: application/json"]
--- response_body_like eval
[::shape(64, 'text-embedding-3-small', 4),
 ::shape(64, 'fake-embed', 4),
 "\\A\\{\"object\":\"list\",\"data\":\\[\\{\"object\":\"embedding\",\"index\":0,\"embedding\":\\[(?:$::num,){63}$::num\\]\\},"
 . "\\{\"object\":\"embedding\",\"index\":1,\"embedding\":\\[(?:$::num,){63}$::num\\]\\}\\],"
 . "\"model\":\"fake-embed\",\"usage\":\\{\"prompt_tokens\":3,\"total_tokens\":3\\}\\}\\z"]



=== TEST 2: the hashed bag of words is exactly as documented (float and base64, "dimensions" in the body), the same for the same text
--- config
    location = /_embed_test {
        proxy_pass http://llm_provider/v1/embeddings;
    }
--- request eval
["POST /_embed_test\n{\"input\":\"$::fox\",\"model\":\"m\",\"dimensions\":16}",
 "POST /_embed_test\n{\"input\":\"$::fox\",\"model\":\"m\",\"dimensions\":16,\"encoding_format\":\"base64\"}",
 "POST /_embed_test\n{\"input\":\"$::fox\",\"model\":\"m\",\"dimensions\":16}",
 "POST /_embed_test\n{\"input\":\"Refunds: 5 business days, not 10.\"}",
 "POST /_embed_test\n{\"input\":\"Refunds: 5 business days, not 10.\",\"encoding_format\":\"base64\"}",
 "POST /_embed_test\n{\"input\":\" ?! \"}"]
--- response_body eval
[::reply('m', 9, 0, ::bow($::fox, 16)),
 ::reply('m', 9, 1, ::bow($::fox, 16)),
 ::reply('m', 9, 0, ::bow($::fox, 16)),
 ::reply('fake-embed', 6, 0, ::bow('Refunds: 5 business days, not 10.', 64)),
 ::reply('fake-embed', 6, 1, ::bow('Refunds: 5 business days, not 10.', 64)),
 ::reply('fake-embed', 1, 0, ::bow('?!', 64))]



=== TEST 3: bag of words: a paraphrase sharing words scores high, unrelated text low, identical text 1 (/__embed/cosine)
--- config
--- request eval
["GET /__embed/cosine?a=How%20do%20I%20reset%20my%20password%3F&b=How%20can%20I%20reset%20my%20password",
 "GET /__embed/cosine?a=How%20do%20I%20reset%20my%20password%3F&b=What%20is%20the%20weather%20in%20Paris%20today",
 "GET /__embed/cosine?a=How%20do%20I%20reset%20my%20password%3F&b=how%20do%20i%20RESET%20my%20password",
 "GET /__embed/cosine?a=How%20do%20I%20reset%20my%20password%3F&b=How%20can%20I%20reset%20my%20password&dims=1536",
 "GET /__embed/stats"]
--- response_body eval
[::cos_in(::cosine([::bow('How do I reset my password?', 64)],
                   [::bow('How can I reset my password', 64)]), 0.7, 1),
 ::cos_in(::cosine([::bow('How do I reset my password?', 64)],
                   [::bow('What is the weather in Paris today', 64)]), -0.3, 0.3),
 "cos=1.000000\n",
 ::cos_in(::cosine([::bow('How do I reset my password?', 1536)],
                   [::bow('How can I reset my password', 1536)]), 0.7, 1),
 "embed_calls=0\n"]



=== TEST 4: a pair placed at 0.951 and a third text at 0.949 around the same anchor: exact cosines at any dimension, the anchor kept
--- config
    location = /_embed_test {
        proxy_pass http://llm_provider/v1/embeddings;
    }
--- request eval
["POST /__embed/pair\n{\"a\":\"$::refund\",\"b\":\"How do refunds work?\",\"cos\":0.951}",
 "GET /__embed/pair?a=$::refund_q&b=Can%20I%20get%20my%20money%20back%3F&cos=0.949",
 "GET /__embed/cosine?a=$::refund_q&b=How%20do%20refunds%20work%3F",
 "GET /__embed/cosine?a=$::refund_q&b=Can%20I%20get%20my%20money%20back%3F",
 "GET /__embed/cosine?a=$::refund_q&b=How%20do%20refunds%20work%3F&dims=1536",
 "GET /__embed/cosine?a=$::refund_q&b=How%20do%20refunds%20work%3F&dims=2",
 "GET /__embed/cosine?a=$::refund_q&b=%20How%20do%20refunds%20work%3F%0A",
 "POST /__embed/pair\n{\"a\":\"$::refund\",\"b\":\"Refund rules\",\"cos\":-0.5,\"dims\":256}",
 "POST /_embed_test\n{\"input\":\"How do refunds work?\",\"dimensions\":1536}",
 "GET /__embed/stats"]
--- response_body_like eval
[::exact("pair cos=0.951000\n"),
 ::exact("pair cos=0.949000\n"),
 ::exact("cos=0.951000\n"),
 ::exact("cos=0.949000\n"),
 ::exact("cos=0.951000\n"),
 ::exact("cos=0.951000\n"),
 ::exact("cos=0.951000\n"),
 ::exact("pair cos=-0.500000\n"),
 ::shape(1536, 'fake-embed', 4),
 ::exact("embed_calls=1\ninput=How do refunds work?\n")]



=== TEST 5: /__embed/vector sets a vector exactly (float and base64 replies, the text stripped); a pair around it has its dimension
--- config
    location = /_embed_test {
        proxy_pass http://llm_provider/v1/embeddings;
    }
--- request eval
["POST /__embed/vector\n{\"text\":\"t\",\"vector\":[0.5,-0.25,1,0.125]}",
 "POST /_embed_test\n{\"input\":\"  t\\n\"}",
 "POST /_embed_test\n{\"input\":\"t\",\"encoding_format\":\"base64\"}",
 "POST /__embed/vector\n{\"text\":\"anchor text\",\"vector\":[1,0,0,0]}",
 "POST /__embed/pair\n{\"a\":\"anchor text\",\"b\":\"placed text\",\"cos\":0.6}",
 "POST /_embed_test\n{\"input\":\"placed text\",\"dimensions\":64}",
 "GET /__embed/vector?text=t",
 "GET /__embed/vector?text=nothing%20set&dims=16"]
--- response_body_like eval
[::exact("ok\n"),
 ::exact(::reply('fake-embed', 1, 0, 0.5, -0.25, 1, 0.125)),
 ::exact(::reply('fake-embed', 1, 1, 0.5, -0.25, 1, 0.125)),
 ::exact("ok\n"),
 ::exact("pair cos=0.600000\n"),
 ::shape(4, 'fake-embed', 2) =~ s/\\\[\(\?:/\\[0\\.6,(?:/r =~ s/\{3\}/{2}/r,
 ::exact("[0.5,-0.25,1.0,0.125]\n"),
 ::exact("[" . CORE::join(',', map { ::f32_text($_) } ::bow('nothing set', 16)) . "]\n")]



=== TEST 6: bad control requests get a 400 and a reason
--- config
--- request eval
["POST /__embed/pair\n{\"a\":\"x\",\"b\":\"y\",\"cos\":1.5}",
 "POST /__embed/pair\n{\"a\":\"x\",\"b\":\" x \",\"cos\":0.9}",
 "GET /__embed/pair?a=x&cos=0.9",
 "POST /__embed/pair\n{\"a\":\"x\",\"b\":\"y\",\"cos\":\"high\"}",
 "POST /__embed/pair\n{\"a\":\"x\",\"b\":\"y\",\"cos\":0.9}",
 "POST /__embed/pair\n{\"a\":\"y\",\"b\":\"x\",\"cos\":0.9}",
 "POST /__embed/vector\n{\"text\":\"x\",\"vector\":[\"1\"]}",
 "POST /__embed/vector\n[1]",
 "GET /__embed/config?dims=abc",
 "GET /__embed/config?dims=0",
 "GET /__embed/nope"]
--- error_code eval
[400, 400, 400, 400, 200, 400, 400, 400, 400, 400, 404]
--- response_body eval
["cos must be in [-1, 1]\n",
 "a and b must be two different non-empty texts\n",
 "want a and b (texts) and cos\n",
 "cos must be a number, dims an integer\n",
 "pair cos=0.900000\n",
 "a is placed relative to b\n",
 "want text (a string) and vector (a list of numbers)\n",
 "bad JSON body: not a JSON object\n",
 "dims must be an integer\n",
 "dims must be 1..16384\n",
 "unknown control endpoint\n"]



=== TEST 7: faults by /__embed/config: fail=500 for the next 2 calls, 429 for 1, then 400 until cleared; OpenAI-shaped errors; every call counted, none in /__stats
--- config
    location = /_embed_test {
        proxy_pass http://llm_provider/v1/embeddings;
    }
--- request eval
["GET /__embed/config?fail=500&count=2",
 "POST /_embed_test\n{\"input\":\"one\"}",
 "POST /_embed_test\n{\"input\":\"two\"}",
 "POST /_embed_test\n{\"input\":\"three\"}",
 "GET /__embed/config?fail=429&count=1",
 "POST /_embed_test\n{\"input\":\"four\"}",
 "POST /_embed_test\n{\"input\":\"five\"}",
 "GET /__embed/config?fail=400",
 "POST /_embed_test\n{\"input\":\"six\"}",
 "POST /_embed_test\n{\"input\":\"seven\"}",
 "GET /__embed/config?clear=1",
 "POST /_embed_test\n{\"input\":\"eight\"}",
 "GET /__embed/stats",
 "GET /__stats"]
--- error_code eval
[200, 500, 500, 200, 200, 429, 200, 200, 400, 400, 200, 200, 200, 200]
--- response_headers eval
["", "Content-Type: application/json", "Content-Type: application/json", "",
 "", "Content-Type: application/json", "", "", "Content-Type: application/json",
 "", "", "", "", ""]
--- response_body_like eval
[::exact("ok\n"),
 ::exact(LLMCacheTest::fixture('openai/error-500.json')),
 ::exact(LLMCacheTest::fixture('openai/error-500.json')),
 ::shape(64, 'fake-embed', 1),
 ::exact("ok\n"),
 ::exact(LLMCacheTest::fixture('openai/error-429.json')),
 ::shape(64, 'fake-embed', 1),
 ::exact("ok\n"),
 ::exact(LLMCacheTest::fixture('openai/error-400.json')),
 ::exact(LLMCacheTest::fixture('openai/error-400.json')),
 ::exact("ok\n"),
 ::shape(64, 'fake-embed', 1),
 ::exact("embed_calls=8\ninput=one\ninput=two\ninput=three\ninput=four\n"
         . "input=five\ninput=six\ninput=seven\ninput=eight\n"),
 ::exact("calls=0\n")]



=== TEST 8: faults by /__embed/config: dims sets the default ("dimensions" still wins), wrong_dims answers one value more, malformed a 200 with broken JSON
--- config
    location = /_embed_test {
        proxy_pass http://llm_provider/v1/embeddings;
    }
--- request eval
["GET /__embed/config?dims=8",
 "POST /_embed_test\n{\"input\":\"$::fox\"}",
 "POST /_embed_test\n{\"input\":\"$::fox\",\"dimensions\":16}",
 "GET /__embed/config?wrong_dims=1&count=1",
 "POST /_embed_test\n{\"input\":\"$::fox\"}",
 "POST /_embed_test\n{\"input\":\"$::fox\"}",
 "GET /__embed/config?malformed=1&count=1&dims=64",
 "POST /_embed_test\n{\"input\":\"$::fox\"}",
 "POST /_embed_test\n{\"input\":\"$::fox\"}"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 200, 200]
--- response_body_like eval
[::exact("ok\n"),
 ::exact(::reply('fake-embed', 9, 0, ::bow($::fox, 8))),
 ::exact(::reply('fake-embed', 9, 0, ::bow($::fox, 16))),
 ::exact("ok\n"),
 ::exact(::reply('fake-embed', 9, 0, ::bow($::fox, 8), 0)),
 ::exact(::reply('fake-embed', 9, 0, ::bow($::fox, 8))),
 ::exact("ok\n"),
 ::exact(substr(::reply('fake-embed', 9, 0, ::bow($::fox, 64)), 0,
                int(length(::reply('fake-embed', 9, 0, ::bow($::fox, 64))) / 2))),
 ::exact(::reply('fake-embed', 9, 0, ::bow($::fox, 64)))]



=== TEST 9: delay by /__embed/config: the next call waits (a 1 s proxy_read_timeout gives 504), the one after does not; a measured delay
--- config
    location = /_embed_test {
        proxy_pass http://llm_provider/v1/embeddings;
        add_header X-Upstream-Time $upstream_header_time always;
    }
    location = /_embed_slow {
        proxy_read_timeout 1s;
        proxy_pass http://llm_provider/v1/embeddings;
    }
--- request eval
["GET /__embed/config?delay=3000&count=1",
 "POST /_embed_slow\n{\"input\":\"one\"}",
 "POST /_embed_test\n{\"input\":\"two\"}",
 "GET /__embed/config?delay=1200&count=1",
 "POST /_embed_test\n{\"input\":\"three\"}",
 "GET /__embed/stats",
 "GET /__error_log"]
--- error_code eval
[200, 504, 200, 200, 200, 200, 200]
--- response_headers_like eval
["", "", "X-Upstream-Time: \\d+\\.\\d+", "",
 "X-Upstream-Time: (?:1\\.[2-9]\\d*|[2-9]\\.\\d+|\\d\\d+\\.\\d+)", "", ""]
--- response_body_like eval
["", "", ::shape(64, 'fake-embed', 1), "", ::shape(64, 'fake-embed', 1),
 ::exact("embed_calls=3\ninput=one\ninput=two\ninput=three\n"),
 'upstream timed out \(110: Connection timed out\) while reading response header from upstream']
--- timeout: 10



=== TEST 10: faults by query arguments on the embeddings URL (no state: the plain location is unaffected)
--- config
    location = /_embed_test {
        proxy_pass http://llm_provider/v1/embeddings;
    }
    location = /_embed_500   { proxy_pass http://llm_provider/v1/embeddings?fail=500; }
    location = /_embed_429   { proxy_pass http://llm_provider/v1/embeddings?fail=429; }
    location = /_embed_bad   { proxy_pass http://llm_provider/v1/embeddings?malformed=1; }
    location = /_embed_wrong { proxy_pass http://llm_provider/v1/embeddings?wrong_dims=1; }
    location = /_embed_d8    { proxy_pass http://llm_provider/v1/embeddings?dims=8; }
    location = /_embed_slow  {
        proxy_read_timeout 1s;
        proxy_pass http://llm_provider/v1/embeddings?delay=3000;
    }
--- request eval
["POST /_embed_500\n{\"input\":\"$::fox\"}",
 "POST /_embed_429\n{\"input\":\"$::fox\"}",
 "POST /_embed_bad\n{\"input\":\"$::fox\"}",
 "POST /_embed_wrong\n{\"input\":\"$::fox\"}",
 "POST /_embed_d8\n{\"input\":\"$::fox\"}",
 "POST /_embed_d8\n{\"input\":\"$::fox\",\"dimensions\":16}",
 "POST /_embed_slow\n{\"input\":\"$::fox\"}",
 "POST /_embed_test\n{\"input\":\"$::fox\"}",
 "GET /__embed/stats",
 "GET /__error_log"]
--- error_code eval
[500, 429, 200, 200, 200, 200, 504, 200, 200, 200]
--- response_body_like eval
[::exact(LLMCacheTest::fixture('openai/error-500.json')),
 ::exact(LLMCacheTest::fixture('openai/error-429.json')),
 ::exact(substr(::reply('fake-embed', 9, 0, ::bow($::fox, 64)), 0,
                int(length(::reply('fake-embed', 9, 0, ::bow($::fox, 64))) / 2))),
 ::exact(::reply('fake-embed', 9, 0, ::bow($::fox, 64), 0)),
 ::exact(::reply('fake-embed', 9, 0, ::bow($::fox, 8))),
 ::exact(::reply('fake-embed', 9, 0, ::bow($::fox, 16))),
 "",
 ::exact(::reply('fake-embed', 9, 0, ::bow($::fox, 64))),
 ::exact("embed_calls=8\n" . "input=$::fox\n" x 8),
 'upstream timed out \(110: Connection timed out\) while reading response header from upstream']
--- timeout: 10



=== TEST 11: stats list the embedded texts in order (newlines escaped); the canned request and a body without "input" keep the fixture answer and count in /__stats; X-Fake-* headers are ignored
--- config
    location = /_embed_test {
        proxy_pass http://llm_provider/v1/embeddings;
    }
--- more_headers
X-Fake-Status: 500
X-Fake-Fixture: openai/chat-response.json
--- request eval
["POST /_embed_test\n{\"input\":\"What is the capital of France?\"}",
 "POST /_embed_test\n{\"input\":\"line one\\nline two \\\\ end\"}",
 "POST /_embed_test\n{\"input\":[\"x\",\"y\"]}",
 "GET /__embed/stats",
 "GET /__stats"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_body_like eval
[::shape(64, 'fake-embed', 6),
 ::shape(64, 'fake-embed', 5),
 '\A\{"object":"list","data":\[\{"object":"embedding","index":0,.*"index":1,',
 ::exact("embed_calls=3\ninput=What is the capital of France?\n"
         . "input=line one\\nline two \\\\ end\ninput=x\ninput=y\n"),
 ::exact("calls=0\n")]



=== TEST 12: the canned embeddings request and a body without "input" are answered by the fixture, counted in /__stats, not by the embedder
--- config
    location = /_embed_test {
        proxy_pass http://llm_provider/v1/embeddings;
    }
--- request eval
["POST /_embed_test\n$::emb",
 "POST /_embed_test\n{\"model\":\"text-embedding-3-small\"}",
 "POST /_embed_test\nnot json",
 "GET /__embed/stats",
 "GET /__stats"]
--- response_body eval
[LLMCacheTest::answer('openai/embeddings-response.json', 1),
 LLMCacheTest::answer('openai/embeddings-response.json', 2),
 LLMCacheTest::answer('openai/embeddings-response.json', 3),
 "embed_calls=0\n",
 "calls=3\n"]



=== TEST 13: bad embedding requests get an OpenAI-shaped 400 (empty input, a bad dimension), counted as calls
--- config
    location = /_embed_test {
        proxy_pass http://llm_provider/v1/embeddings;
    }
--- request eval
["POST /_embed_test\n{\"input\":\"\"}",
 "POST /_embed_test\n{\"input\":[]}",
 "POST /_embed_test\n{\"input\":\"x\",\"dimensions\":0}",
 "POST /_embed_test\n{\"input\":\"x\",\"dimensions\":\"8\"}",
 "GET /__embed/stats"]
--- error_code eval
[400, 400, 400, 400, 200]
--- response_body_like eval
['\A\{"error":\{"message":"fake embedder: input must be a non-empty string or a non-empty list of them","type":"invalid_request_error","param":null,"code":null\}\}\z',
 '\A\{"error":\{"message":"fake embedder: input must be',
 '\A\{"error":\{"message":"fake embedder: dimensions must be an integer in 1\.\.16384","type":"invalid_request_error","param":null,"code":null\}\}\z',
 '\A\{"error":\{"message":"fake embedder: dimensions must be an integer',
 ::exact("embed_calls=4\ninput=\ninput=x\ninput=x\n")]



=== TEST 14: POST /__reset clears the table, the default dimension, the pending fault and the stats
--- config
    location = /_embed_test {
        proxy_pass http://llm_provider/v1/embeddings;
    }
    location = /__reset { proxy_pass http://llm_provider; }
--- request eval
["POST /__embed/pair\n{\"a\":\"alpha\",\"b\":\"beta\",\"cos\":0.99}",
 "POST /__embed/vector\n{\"text\":\"v\",\"vector\":[1,2]}",
 "GET /__embed/config?dims=8&fail=500",
 "POST /_embed_test\n{\"input\":\"v\"}",
 "GET /__embed/cosine?a=alpha&b=beta",
 "POST /__reset",
 "GET /__embed/cosine?a=alpha&b=beta",
 "POST /_embed_test\n{\"input\":\"v\"}",
 "GET /__embed/stats"]
--- error_code eval
[200, 200, 200, 500, 200, 200, 200, 200, 200]
--- response_body_like eval
[::exact("pair cos=0.990000\n"),
 ::exact("ok\n"),
 ::exact("ok\n"),
 ::exact(LLMCacheTest::fixture('openai/error-500.json')),
 ::exact("cos=0.990000\n"),
 ::exact("ok\n"),
 ::exact(sprintf("cos=%.6f\n", ::cosine([::bow('alpha', 64)], [::bow('beta', 64)]))),
 ::exact(::reply('fake-embed', 1, 0, ::bow('v', 64))),
 ::exact("embed_calls=1\ninput=v\n")]
