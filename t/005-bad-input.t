use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

# Whatever a client sends, it gets a clear answer, nothing wrong is stored
# in Redis, the provider is called only when it should be and no worker
# dies (the harness adds [alert] and [crit] to every block's no_error_log).
#
# The matrix: what the module answers
#
#   broken JSON (truncated, trailing garbage, unquoted keys, quotes, commas,
#   a bare "}", control characters, bad escapes and numbers, NaN and
#   Infinity, comments, a BOM)           400 invalid_json, no provider call
#   invalid UTF-8 (bad bytes, overlong, encoded surrogates, > U+10FFFF)
#                                        400 invalid_json, no provider call
#   unpaired \u surrogate escapes        BYPASS: passed through uncached
#   valid JSON, not an object            BYPASS (array: 001 TEST 16)
#   empty body (no Content-Length: 003 TEST 5; Content-Length: 0,
#   whitespace, an empty chunked body)   400 invalid_json
#   chunked bodies                       parsed like any other: 400, MISS and
#                                        HIT, BYPASS over the size limit
#                                        (valid chunked: 003 TEST 12)
#   nesting past 128 levels              BYPASS; unclosed, 400 (a valid
#                                        100000-deep array: 003 TEST 6)
#   huge strings                         900 KB: MISS then HIT; over
#                                        llm_cache_max_body_size: BYPASS
#                                        (a small limit: 001 TEST 18)
#   huge numbers                         compared exactly; 5000 digits and
#                                        exponents over 9 digits: 003 TEST 8
#   duplicate member names               BYPASS (top level: 003 TEST 7)
#   more than 100000 values              BYPASS (the parse tree stays small)
#   member names over 1 KiB              BYPASS
#   Content-Type not JSON (text/plain, forms, multipart)
#                                        BYPASS, never a 400
#   Content-Encoding (gzip)              BYPASS, forwarded as sent
#   HTTP/1.0, JSON and SSE               MISS then a byte-identical HIT
#   client closes mid-request            no provider call, nothing stored
#   client leaves before the provider answers
#                                        nothing stored, next request works
#   client leaves mid-stream             002 TEST 7
#   provider cuts a stream or a body     002 TEST 4, 5, 6
#   provider down or too slow            003 TEST 9, 10

our $chat = LLMCacheTest::request_body('openai/chat-request.json');
our $stream = LLMCacheTest::request_body('openai/chat-request-stream.json');
our $chat_answer_1 = LLMCacheTest::answer('openai/chat-response.json', 1);
our $sse_2 = LLMCacheTest::answer('openai/chat-response-stream.sse', 2);

# the 400 body, with a pattern for the reason
sub invalid {
    my $why = shift;
    return '\A\{"error":\{"message":"We could not parse the JSON body of '
        . 'your request: ' . $why . '","type":"invalid_request_error",'
        . '"param":null,"code":"invalid_json"\}\}\n\z';
}

# a body in chunks of the given sizes
sub chunked {
    my ($body, @sizes) = @_;
    my $out = '';
    for my $n (@sizes) {
        my $chunk = substr $body, 0, $n, '';
        $out .= sprintf("%x\r\n", length $chunk) . "$chunk\r\n";
    }
    $out .= sprintf("%x\r\n", length $body) . "$body\r\n" if length $body;
    return "${out}0\r\n\r\n";
}

sub prompt { '{"model":"m","prompt":"' . shift() . '"}' }

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: broken JSON of many shapes: 400, no provider call (llm_cache_invalid_json reject)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_invalid_json reject;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
[map({ "POST /v1/chat/completions\n$_" }
     '{"model":"m","messages":[{"role":"user","content":"hi"',
     '{"model":"m"}}',
     '{"model":"m"}{"model":"m"}',
     '{model:"m"}',
     '{"model":\'m\'}',
     '{"model":"m",}',
     '{"model":"m","input":["a",]}',
     '}',
     '{"model" "m"}',
     '{"model":"m" "n":1}',
     '{"model":"m',
     '{"model":"m\x41"}',
     '{"model":"m","n":01}',
     '{"model":"m","n":1.}',
     '{"model":"m","n":.5}',
     '{"model":"m","n":+1}',
     '{"model":"m","n":0x10}',
     '{"model":"m","n":Infinity}',
     '{"model":"m","n":-Infinity}',
     '{"model":"m","n":nan}',
     '{"model":"m"} // comment',
     '{"model":/* no */"m"}',
     "\xef\xbb\xbf" . '{"model":"m"}'),
 "GET /__stats",
 "GET /__redis/keys"]
--- error_code eval
[(400) x 23, 200, 200]
--- response_headers eval
[("Content-Type: application/json\nX-LLM-Cache: BYPASS") x 23, "", ""]
--- response_body_like eval
[map({ ::invalid($_) }
     'parse error: premature EOF',
     'parse error: trailing garbage',
     'parse error: trailing garbage',
     'lexical error: invalid char in json text',
     'lexical error: invalid char in json text',
     'parse error: invalid object key \(must be a string\)',
     'parse error: unallowed token at this point in JSON text',
     'parse error: unallowed token at this point in JSON text',
     'parse error: object key and value must be separated by a colon \(\':\'\)',
     'parse error: after key and value, inside map, I expect \',\' or \'}\'',
     'parse error: premature EOF',
     'lexical error: inside a string, \'\\\\\\\\\' occurs before a character which it may not',
     'parse error: after key and value, inside map, I expect \',\' or \'}\'',
     'lexical error: malformed number, a digit is required after the decimal point',
     'lexical error: invalid char in json text',
     'lexical error: invalid char in json text',
     'lexical error: invalid char in json text',
     'lexical error: invalid char in json text',
     'lexical error: malformed number, a digit is required after the minus sign',
     'lexical error: invalid string in json text',
     'parse error: trailing garbage',
     'lexical error: probable comment found in input text, comments are not enabled',
     'lexical error: invalid char in json text'),
 '\Acalls=0\n\z', '\Akeys=0\n\z']
--- error_log
llm_cache: invalid JSON in request body: parse error: premature EOF



=== TEST 2: control characters inside strings are not JSON (llm_cache_invalid_json reject)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_invalid_json reject;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
[map({ "POST /v1/chat/completions\n" . ::prompt($_) }
     "a\x01b", "line\nbreak", "tab\there", "nul\x00byte", "esc\x1b[0m"),
 "GET /__stats",
 "GET /__redis/keys"]
--- error_code eval
[(400) x 5, 200, 200]
--- response_body_like eval
[(::invalid('lexical error: invalid character inside string')) x 5,
 '\Acalls=0\n\z', '\Akeys=0\n\z']



=== TEST 3: invalid UTF-8 inside strings: 400; valid 4-byte UTF-8 and its escape are one key (llm_cache_invalid_json reject)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_invalid_json reject;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
[map({ "POST /v1/chat/completions\n" . ::prompt($_) }
     "\xff", "caf\xe9", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
     "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\xe2\x82", "\x80",
     "\xf0\x9f\x98\x80", '\ud83d\ude00', '\uD83D\uDE00'),
 "GET /__stats",
 "GET /__redis/keys"]
--- error_code eval
[(400) x 9, 200, 200, 200, 200, 200]
--- response_headers eval
[("X-LLM-Cache: BYPASS") x 9, "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
[(::invalid('invalid UTF-8 byte sequence')) x 9,
 '"id":"fake-1"', '"id":"fake-1"', '"id":"fake-1"',
 '\Acalls=1\n\z', '\Akeys=1\nllm:v2:[0-9a-f]{16}:[-0-9a-f]{1,16}:[0-9a-f]{64} ttl=\d+ bytes=\d+\n\z']
--- error_log
llm_cache: invalid JSON in request body: invalid UTF-8 byte sequence



=== TEST 4: an unpaired \u surrogate escape is passed through, never cached
yajl would read "\ud800" as "?", and "\ud800\u0041" as U+10041: keys of
different requests would be the same.  "\\ud800" is no escape of one.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
[map({ "POST /v1/chat/completions\n" . ::prompt($_) }
     '\ud800', '?', '\ud800', '\ud800\u0041', '\ud800\\\\u0041', '\udc00',
     '\ud800\ud800\udc00', '\udbff', '\\\\ud800', '\\\\ud800'),
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
[("X-LLM-Cache: BYPASS", "X-LLM-Cache: MISS", ("X-LLM-Cache: BYPASS") x 6,
  "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", "")]
--- response_body_like eval
['fake-1', 'fake-2', 'fake-3', 'fake-4', 'fake-5', 'fake-6', 'fake-7',
 'fake-8', 'fake-9', 'fake-9', '\Acalls=9\n\z', '\Akeys=2\n']
--- error_log
llm_cache: request not cached: unpaired UTF-16 surrogate in a string



=== TEST 5: valid JSON that is not an object is passed through uncached
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
[map({ "POST /v1/chat/completions\n$_" } '"model"', '42', 'null', 'true',
     '-0.5e3'),
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
[("X-LLM-Cache: BYPASS") x 5, "", ""]
--- response_body_like eval
['"id":"fake-1"', '"id":"fake-2"', '"id":"fake-3"', '"id":"fake-4"',
 '"id":"fake-5"', '\Acalls=5\n\z', '\Akeys=0\n\z']
--- error_log
llm_cache: request not cached: the body is not a JSON object



=== TEST 6: an empty body: Content-Length 0, only whitespace, empty chunked (llm_cache_invalid_json reject)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_invalid_json reject;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nContent-Length: 0", "Authorization: Bearer sk-test\nContent-Length: 3", "Authorization: Bearer sk-test\nTransfer-Encoding: chunked",
 "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n",
 "POST /v1/chat/completions\n \t ",
 "POST /v1/chat/completions\n0\r\n\r\n",
 "GET /__stats",
 "GET /__redis/keys"]
--- error_code eval
[400, 400, 400, 200, 200]
--- response_body_like eval
[(::invalid('parse error: premature EOF|the request has no body')) x 3,
 '\Acalls=0\n\z', '\Akeys=0\n\z']



=== TEST 7: chunked bodies: broken JSON is a 400, escapes split across chunks make the same key (llm_cache_invalid_json reject)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_invalid_json reject;
    }
--- more_headers eval
[("Authorization: Bearer sk-test\nTransfer-Encoding: chunked") x 3, "Authorization: Bearer sk-test", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n" . ::chunked('{"model":"m","prompt":"a"', 5, 5),
 "POST /v1/chat/completions\n"
     . ::chunked(::prompt("caf\xc3\xa9 " . '\u00e9\ud83d\ude00'), 26, 1, 5, 3, 7),
 "POST /v1/chat/completions\n"
     . ::chunked(::prompt("caf\xc3\xa9 " . '\u00e9\ud83d\ude00'), (1) x 60),
 "POST /v1/chat/completions\n" . ::prompt("caf\xc3\xa9 \xc3\xa9\xf0\x9f\x98\x80"),
 "GET /__stats",
 "GET /__redis/keys"]
--- error_code eval
[400, 200, 200, 200, 200, 200]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
[::invalid('parse error: premature EOF'), 'fake-1', 'fake-1', 'fake-1',
 '\Acalls=1\n\z', '\Akeys=1\n']



=== TEST 8: a chunked body over llm_cache_max_body_size is forwarded whole, uncached
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_max_body_size 100;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nTransfer-Encoding: chunked", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n" . ::chunked($::chat, 64, 64),
 "GET /__last",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "", ""]
--- response_body eval
[$::chat_answer_1,
 "POST /v1/chat/completions length=" . length($::chat) . " sha256="
     . LLMCacheTest::sha256_hex($::chat) . "\n",
 "keys=0\n"]



=== TEST 9: nesting: deeper than 128 levels is passed through, 128 are cached, unclosed is a 400 (llm_cache_invalid_json reject)
Far beyond the limit (100000 levels) the parser must neither crash nor
build anything.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_invalid_json reject;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","x":' . ('[' x 128) . (']' x 128) . '}',
 "POST /v1/chat/completions\n" . '{"model":"m","x":' . ('[' x 127) . (']' x 127) . '}',
 "POST /v1/chat/completions\n" . ('{"a":' x 100000) . '1' . ('}' x 100000),
 "POST /v1/chat/completions\n" . ('[' x 100000),
 "POST /v1/chat/completions\n" . ('{"a":' x 100000) . '1' . ('}' x 99999),
 "POST /v1/chat/completions\n" . ('[' x 200) . '1,]' . (']' x 199),
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats",
 "GET /__redis/keys"]
--- error_code eval
[200, 200, 200, 400, 400, 400, 200, 200, 200]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: MISS", "X-LLM-Cache: BYPASS",
 "X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS",
 "X-LLM-Cache: MISS", "", ""]
--- response_body_like eval
['fake-1', 'fake-2', 'fake-3',
 ::invalid('parse error: premature EOF'),
 ::invalid('parse error: premature EOF'),
 ::invalid('parse error: unallowed token at this point in JSON text'),
 'fake-4', '\Acalls=4\n\z', '\Akeys=2\n']
--- error_log
llm_cache: request not cached: nested too deeply



=== TEST 10: a 900 KB string under the default 1m limit is cached
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
my $big = ::prompt('x' x (900 * 1024));
["POST /v1/chat/completions\n$big",
 "POST /v1/chat/completions\n$big",
 "GET /__last",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "", "", ""]
--- response_body_like eval
my $big = ::prompt('x' x (900 * 1024));
['fake-1', 'fake-1',
 '\APOST /v1/chat/completions length=' . length($big) . ' sha256='
     . LLMCacheTest::sha256_hex($big) . '\n\z',
 '\Acalls=1\n\z', '\Akeys=1\n']



=== TEST 11: a string past the 1m limit is forwarded whole, uncached
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
my $big = ::prompt('x' x (1024 * 1024));
["POST /v1/chat/completions\n$big",
 "POST /v1/chat/completions\n$big",
 "GET /__last",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", "", ""]
--- response_body_like eval
my $big = ::prompt('x' x (1024 * 1024));
['fake-1', 'fake-2',
 '\APOST /v1/chat/completions length=' . length($big) . ' sha256='
     . LLMCacheTest::sha256_hex($big) . '\n\z',
 '\Akeys=0\n\z']



=== TEST 12: huge numbers are compared exactly, by value
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
[map({ "POST /v1/chat/completions\n" . '{"model":"m","n":' . $_ . '}' }
     '1e1000000000', '1e999999', '10e999998', '0.0001E+1000003',
     '-1e999999', '1e-999999', ('7' x 400), ('7' x 400) . '.000',
     ('7' x 399) . '70e-1', ('7' x 399) . '8'),
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT",
 "X-LLM-Cache: MISS", "", ""]
--- response_body_like eval
['fake-1', 'fake-2', 'fake-2', 'fake-2', 'fake-3', 'fake-4', 'fake-5',
 'fake-5', 'fake-5', 'fake-6', '\Acalls=6\n\z', '\Akeys=5\n']
--- error_log
llm_cache: request not cached: number exponent out of range



=== TEST 13: more than 100000 values: passed through uncached, so no body can make the tree cost tens of MB
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_max_body_size 2m;
        client_max_body_size 2m;
        client_body_buffer_size 2m;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
['POST /v1/chat/completions' . "\n" . '{"model":"m","input":[' . join(',', (0) x 99998) . ']}',
 'POST /v1/chat/completions' . "\n" . '{"model":"m","input":[' . join(',', (0) x 99998) . ']}',
 'POST /v1/chat/completions' . "\n" . '{"model":"m","input":[' . join(',', (0) x 99997) . ']}',
 'POST /v1/chat/completions' . "\n" . '{"model":"m","input":[' . join(',', (0) x 99997) . ']}',
 "GET /__stats"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT", ""]
--- response_body_like eval
['fake-1', 'fake-2', 'fake-3', 'fake-3', '\Acalls=3\n\z']
--- error_log
llm_cache: request not cached: more than 100000 values



=== TEST 14: duplicate member names anywhere, however they are spelled
Inside a member left out of the key (metadata) they do not matter.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","messages":[{"role":"user","role":"system","content":"hi"}]}',
 "POST /v1/chat/completions\n" . '{"model":"m","\u006dodel":"n"}',
 "POST /v1/chat/completions\n" . '{"model":"m","response_format":{"type":"text","type":"json_object"}}',
 "POST /v1/chat/completions\n" . '{"model":"m","metadata":{"a":1,"a":2}}',
 "POST /v1/chat/completions\n" . '{"model":"m","metadata":{"a":3}}',
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
[("X-LLM-Cache: BYPASS") x 3, "X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "",
 ""]
--- response_body_like eval
['fake-1', 'fake-2', 'fake-3', 'fake-4', 'fake-4', '\Acalls=4\n\z',
 '\Akeys=1\n']
--- error_log
llm_cache: request not cached: duplicate member name



=== TEST 15: member names over 1 KiB are not cached, up to 1 KiB they are
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions\n" . '{"model":"m","' . ('k' x 1025) . '":1}',
 "POST /v1/chat/completions\n" . '{"model":"m","' . ('k' x 1024) . '":1}',
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
['fake-1', 'fake-2', '\Akeys=1\n']
--- error_log
llm_cache: request not cached: member name too long



=== TEST 16: a body that is not JSON by its Content-Type is passed through, never refused (llm_cache_invalid_json reject)
Audio transcriptions are multipart, and a form or text body is the
provider's to judge: no 400, nothing stored.  JSON types, with
parameters, in any case, and a request without a Content-Type are parsed.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_invalid_json reject;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nContent-Type: text/plain",
 "Authorization: Bearer sk-test\nContent-Type: application/x-www-form-urlencoded",
 "Authorization: Bearer sk-test\nContent-Type: multipart/form-data; boundary=b0undary",
 "Authorization: Bearer sk-test",
 "Authorization: Bearer sk-test\nContent-Type: text/plain",
 "Authorization: Bearer sk-test\nContent-Type: application/json; charset=utf-8",
 "Authorization: Bearer sk-test\nContent-Type: APPLICATION/JSON",
 "Authorization: Bearer sk-test\nContent-Type: application/vnd.api+json",
 "Authorization: Bearer sk-test",
 "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
my $multipart = "--b0undary\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
    . "--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
    . "Content-Type: audio/wav\r\n\r\nRIFF\x00\x01\x02\xff\r\n--b0undary--";
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/audio/transcriptions\n$multipart",
 "GET /__last",
 "POST /v1/chat/completions\n" . '{"model":',
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", "",
 "X-LLM-Cache: BYPASS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", "X-LLM-Cache: HIT", "", ""]
--- response_body_like eval
my $multipart = "--b0undary\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
    . "--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
    . "Content-Type: audio/wav\r\n\r\nRIFF\x00\x01\x02\xff\r\n--b0undary--";
['fake-1', 'fake-2', 'fake-3',
 '\APOST /v1/audio/transcriptions length=' . length($multipart) . ' sha256='
     . LLMCacheTest::sha256_hex($multipart) . '\n\z',
 'fake-4', 'fake-5', 'fake-5', 'fake-5', 'fake-5',
 '\Acalls=5\n\z', '\Akeys=1\n']
--- error_log
llm_cache: request not cached: the content type is not JSON



=== TEST 17: a compressed body is passed through as it came
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers eval
use IO::Compress::Gzip qw(gzip);
gzip(\$::chat => \my $gz, Minimal => 1) or die;
["Authorization: Bearer sk-test\nContent-Type: application/json\n"
     . "Content-Encoding: gzip\nContent-Length: " . length($gz),
 "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
use IO::Compress::Gzip qw(gzip);
gzip(\$::chat => \my $gz, Minimal => 1) or die;
["POST /v1/chat/completions\n$gz", "GET /__last", "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "", ""]
--- response_body_like eval
use IO::Compress::Gzip qw(gzip);
gzip(\$::chat => \my $gz, Minimal => 1) or die;
['fake-1',
 '\APOST /v1/chat/completions length=' . length($gz) . ' sha256='
     . LLMCacheTest::sha256_hex($gz) . '\n\z',
 '\Akeys=0\n\z']
--- error_log
llm_cache: request not cached: the body has a content encoding



=== TEST 18: HTTP/1.0 clients: JSON and SSE, a miss then a byte-identical hit
An HTTP/1.0 client cannot take chunks: the streamed miss ends when the
connection closes, the hit has a Content-Length.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/chat/completions HTTP/1.0\n$::chat",
 "POST /v1/chat/completions HTTP/1.0\n$::chat",
 "POST /v1/chat/completions HTTP/1.0\n$::stream",
 "POST /v1/chat/completions HTTP/1.0\n$::stream",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Length: " . length($::chat_answer_1),
 "X-LLM-Cache: HIT\nContent-Length: " . length($::chat_answer_1),
 "X-LLM-Cache: MISS\nContent-Type: text/event-stream\n!Transfer-Encoding\n!Content-Length",
 "X-LLM-Cache: HIT\nContent-Type: text/event-stream\n!Transfer-Encoding\nContent-Length: " . length($::sse_2),
 "", ""]
--- response_body eval
[$::chat_answer_1, $::chat_answer_1, $::sse_2, $::sse_2, "calls=2\n",
 qr/\Akeys=2\n/]



=== TEST 19: a client that closes in the middle of its body: no provider call, nothing stored
Half the body of a declared length, then the client gives up.  The
timeout is every request's, so it leaves room for a loaded machine; the
wait lets nginx log the close before the first check of the log.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nContent-Length: " . length($::chat), "Authorization: Bearer sk-test", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n" . substr($::chat, 0, length($::chat) / 2),
 "GET /__stats",
 "GET /__redis/keys",
 "POST /v1/chat/completions\n$::chat"]
--- timeout: 1.5
--- wait: 0.2
--- abort
--- error_code eval
["", 200, 200, 200]
--- response_headers eval
["", "", "", "X-LLM-Cache: MISS"]
--- response_body_like eval
['\A\z', '\Acalls=0\n\z', '\Akeys=0\n\z', '"id":"fake-1"']
--- error_log
client prematurely closed connection



=== TEST 20: a client that leaves before the provider answers: nothing stored, the next request works
The client leaves at the timeout (1.5 s), a second before the provider
answers (2.5 s); the sleeps (each well within the timeout) take the look
at Redis past the answer.
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_redis_timeout 1s;
    }
--- more_headers eval
["Authorization: Bearer sk-test\nX-Fake-Delay: 2500", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test", "Authorization: Bearer sk-test"]
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__sleep?ms=800",
 "GET /__sleep?ms=800",
 "GET /__sleep?ms=800",
 "GET /__stats",
 "GET /__redis/keys",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat"]
--- timeout: 1.5
--- abort
--- error_code eval
["", 200, 200, 200, 200, 200, 200, 200]
--- response_headers eval
["", "", "", "", "", "", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
['\A\z', '\Aok\n\z', '\Aok\n\z', '\Aok\n\z', '\Acalls=1\n\z',
 '\Akeys=0\n\z', '"id":"fake-2"', '"id":"fake-2"']



=== TEST 21: malformed JSON goes to the provider by default: its own error, the exact bytes, nothing stored
--- config
    location /v1/ {
        llm_cache_pass /_llm;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
["POST /v1/messages\n" . '{"model":"m", "messages":[',
 "GET /__last",
 "POST /v1/chat/completions\n" . "{'model':'m'}",
 "GET /__last",
 "GET /__stats",
 "GET /__redis/keys"]
--- response_headers eval
["X-LLM-Cache: BYPASS", "", "X-LLM-Cache: BYPASS", "", "", ""]
--- response_body_like eval
['"id":"fake-1"',
 '\APOST /v1/messages length=26 sha256='
     . LLMCacheTest::sha256_hex('{"model":"m", "messages":[') . '\n\z',
 '"id":"fake-2"',
 '\APOST /v1/chat/completions length=13 sha256='
     . LLMCacheTest::sha256_hex("{'model':'m'}") . '\n\z',
 '\Acalls=2\n\z',
 '\Akeys=0\n\z']
--- error_log
llm_cache: request not cached: invalid JSON in request body



=== TEST 22: llm_cache_invalid_json reject: a 400 in the shape of the path's API, no provider call
--- config
    location /v1 {
        llm_cache_pass /_llm;
        llm_cache_invalid_json reject;
    }
--- more_headers
Authorization: Bearer sk-test
--- request eval
[(map { "POST $_\n" . '{"model":' }
     '/v1/chat/completions', '/v1/completions', '/v1/embeddings',
     '/v1/responses', '/v1/other', '/v1/messages',
     '/v1beta/models/gemini-2.0-flash:generateContent',
     '/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse'),
 "GET /__stats"]
--- error_code eval
[(400) x 8, 200]
--- response_headers eval
[("Content-Type: application/json\nX-LLM-Cache: BYPASS") x 8, ""]
--- response_body_like eval
[(::invalid('[^"]+')) x 5,
 '\A\{"type":"error","error":\{"type":"invalid_request_error","message":"The request body is not valid JSON: [^"]+"\}\}\n\z',
 ('\A\{"error":\{"code":400,"message":"Invalid JSON payload received: [^"]+","status":"INVALID_ARGUMENT"\}\}\n\z') x 2,
 '\Acalls=0\n\z']
--- error_log
llm_cache: invalid JSON in request body
