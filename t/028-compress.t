use lib 't/lib';
use LLMCacheTest;     # starts redis-server + the fake provider, picks a runner
use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';

use IO::Socket::INET;
use IO::Compress::Gzip qw(gzip $GzipError);
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);
use Compress::Zlib ();

# llm_cache_compress: entries deflated in the gzip format (LLMC4), sent
# as stored to a client that takes gzip, inflated for one that does not;
# the bytes the client reads after its own gunzip are the provider's.
# Entries of either kind serve whatever the directive says now.

our $chat = LLMCacheTest::request_body('openai/chat-request.json');
our $json_1 = LLMCacheTest::answer('openai/chat-response.json', 1);
our $json_2 = LLMCacheTest::answer('openai/chat-response.json', 2);
our $stream = LLMCacheTest::request_body('openai/chat-request-stream.json');
our $sse_1 = LLMCacheTest::answer('openai/chat-response-stream.sse', 1);
our $anthropic = LLMCacheTest::request_body('anthropic/messages-request-stream.json');
our $anthropic_1 = LLMCacheTest::answer('anthropic/messages-response-stream.sse', 1);
our $responses = LLMCacheTest::request_body('openai/responses-request-stream.json');
our $responses_2 = LLMCacheTest::answer('openai/responses-response-stream.sse', 2);

our $gz = qr/\A\x1f\x8b\x08/;

# what a gzip answer must inflate to, by test number and request index
our %inflated;

# what the entry in Redis must be, by test number: a code ref on the
# entry, called after each "GET /__redis/keys" of that test
our %entry_check;

sub test_number { ($_[0]->name =~ /TEST (\d+)/)[0] }

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return if $dry_run || !defined $body;

    my $n = test_number($block);
    my $name = $block->name;

    if ($body =~ $gz) {
        my $want = $inflated{$n} && $inflated{$n}[$req_idx];
        my $out;
        my $ok = gunzip(\$body => \$out);
        Test::More::ok($ok, "$name - the gzip answer inflates (req $req_idx)")
            or Test::More::diag($GunzipError);
        Test::More::ok(defined $want && $out eq $want,
                       "$name - inflated, the provider's bytes "
                       . "(req $req_idx)");
        return;
    }

    if ($body =~ /\Akeys=/ && $entry_check{$n}) {
        my %dump = redis_dump();
        my @entries = map { $dump{$_} } grep { !/:lock\z/ } sort keys %dump;
        $entry_check{$n}->($name, \@entries, $req_idx);
    }
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
        return substr($data, 0, $rest);
    }

    if ($type eq '*') {
        return [map { resp_read($sock) } 1 .. $rest];
    }

    return $rest;
}

# an entry stored compressed: LLMC4, gzip inside, smaller than the answer,
# with the answer's usage, inflating to the answer
sub compressed_entry {
    my ($answer, $type, $prompt, $completion) = @_;

    return sub {
        my ($name, $entries) = @_;
        Test::More::is(scalar @$entries, 1, "$name - one entry");
        my $e = $entries->[0] // '';
        my ($head, $body) = $e =~ /\A([^\n]*\n)\Q$type\E(.*)\z/s;
        Test::More::like($head // '',
                         qr/\ALLMC4 200 \d+ \d+ $prompt $completion \d+ \d+ 1 \d+ \d+\n\z/,
                         "$name - LLMC4 header with the usage");
        Test::More::like($body // '', $gz, "$name - gzip inside");
        Test::More::cmp_ok(length($e), '<', length($answer),
                           "$name - smaller than the answer");
        my $out;
        gunzip(\$body => \$out);
        Test::More::ok(defined $out && $out eq $answer,
                       "$name - the entry inflates to the answer");
    };
}

# entries as another gateway would have written them
our $now = time();
our $ct = 'application/json';
our $old_body = $json_1 =~ s/"fake-1"/"fake-old"/r;
our $old_entry = "LLMC3 200 $now " . length($ct) . " 38 92 5 3600\n$ct$old_body";
our $gz_body;
gzip(\$old_body => \$gz_body, Minimal => 1) or die $GzipError;
our $gz_entry = "LLMC4 200 $now " . length($ct) . " 38 92 5 3600 1 "
    . length($old_body) . ' ' . Compress::Zlib::crc32($gz_body) . "\n$ct$gz_body";
# one bit of the deflated data flipped
our $bad_gz = $gz_body;
substr($bad_gz, 20, 1) = chr(ord(substr($bad_gz, 20, 1)) ^ 0x01);
our $bad_entry = "LLMC4 200 $now " . length($ct) . " 38 92 5 3600 1 "
    . length($old_body) . ' ' . Compress::Zlib::crc32($gz_body) . "\n$ct$bad_gz";
# a right CRC, a wrong length
our $len_entry = "LLMC4 200 $now " . length($ct) . " 38 92 5 3600 1 "
    . (length($old_body) + 1) . ' ' . Compress::Zlib::crc32($gz_body) . "\n$ct$gz_body";
sub hex_of { unpack 'H*', shift }

$inflated{1} = [undef, $json_1];
$entry_check{1} = compressed_entry($json_1, $ct, 38, 92);
$inflated{2} = [undef, $sse_1];
$entry_check{2} = compressed_entry($sse_1, 'text/event-stream', 38, 27);
$inflated{3} = [undef, $anthropic_1, undef, undef, $responses_2];
$entry_check{3} = compressed_entry($anthropic_1, 'text/event-stream', 31, 29);
$entry_check{11} = sub {
    my ($name, $entries) = @_;
    Test::More::is(scalar @$entries, 2, "$name - two entries");
    Test::More::is(join(',', sort map { /\ALLMC[34] 200 \d+ \d+ (\d+ \d+) / ? $1 : '?' } @$entries),
                   '38 27,38 27', "$name - the usage of both");
};
$inflated{4} = [undef, undef, undef, $json_1, undef, $json_1, $json_1, undef,
                $json_1];
$inflated{7} = [undef, undef, $old_body];
$inflated{8} = [undef, undef, undef, undef, $json_2];

# exactly these bytes
sub is_body { my $b = shift; qr/\A\Q$b\E\z/ }
our $any = qr/\A/;

# the semantic layer answers a paraphrase from a compressed entry
our $refund = 'What is your refund policy?';
our $refunds = 'How do refunds work?';
sub chat_of {
    return qq({"model":"gpt-4o-mini","messages":[{"role":"user","content":"$_[0]"}]});
}
$inflated{14} = [undef, undef, undef, $json_1];

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a JSON answer stored compressed: gzip client as stored, identity client inflated, the same bytes
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_compress on;
    }
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys",
 "GET /__stats"]
--- more_headers eval
["", "Accept-Encoding: gzip, deflate, br", "", "", ""]
--- response_headers eval
["X-LLM-Cache: MISS\nContent-Encoding:\nVary:",
 "X-LLM-Cache: HIT\nContent-Encoding: gzip\nVary: Accept-Encoding\nContent-Type: application/json",
 "X-LLM-Cache: HIT\nContent-Encoding:\nVary: Accept-Encoding\nContent-Type: application/json\nContent-Length: " . length($::json_1),
 "", ""]
--- response_body_like eval
[::is_body($::json_1), $::gz, ::is_body($::json_1), qr/\Akeys=1\n/,
 ::is_body("calls=1\n")]
--- no_error_log
[error]



=== TEST 2: an SSE answer (OpenAI chat) stored compressed, byte-identical for both kinds of client
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_compress on;
    }
--- request eval
["POST /v1/chat/completions\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "GET /__redis/keys",
 "GET /__stats"]
--- more_headers eval
["", "Accept-Encoding: gzip", "Accept-Encoding: br", "", ""]
--- response_headers eval
["X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT\nContent-Encoding: gzip\nVary: Accept-Encoding\nContent-Type: text/event-stream",
 "X-LLM-Cache: HIT\nContent-Encoding:\nVary: Accept-Encoding\nContent-Type: text/event-stream\nContent-Length: " . length($::sse_1),
 "", ""]
--- response_body_like eval
[::is_body($::sse_1), $::gz, ::is_body($::sse_1), qr/\Akeys=1\n/,
 ::is_body("calls=1\n")]
--- no_error_log
[error]



=== TEST 3: Anthropic and Responses streams, compressed, both kinds of client
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_compress on;
    }
--- request eval
["POST /v1/messages\n$::anthropic",
 "POST /v1/messages\n$::anthropic",
 "POST /v1/messages\n$::anthropic",
 "GET /__redis/keys",
 "POST /v1/responses\n$::responses",
 "POST /v1/responses\n$::responses",
 "GET /__stats"]
--- more_headers eval
["", "Accept-Encoding: gzip", "", "", "Accept-Encoding: gzip", "", ""]
--- response_headers eval
["X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT\nContent-Encoding: gzip",
 "X-LLM-Cache: HIT\nContent-Encoding:",
 "",
 "X-LLM-Cache: MISS\nContent-Encoding:",
 "X-LLM-Cache: HIT\nContent-Encoding:",
 ""]
--- response_body_like eval
[::is_body($::anthropic_1), $::gz, ::is_body($::anthropic_1),
 qr/\Akeys=1\n/, ::is_body($::responses_2), ::is_body($::responses_2),
 ::is_body("calls=2\n")]
--- no_error_log
[error]



=== TEST 4: Accept-Encoding parsed: q=0, identity, *, x-gzip, case, parameters
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_compress on;
    }
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- more_headers eval
["",
 "Accept-Encoding: gzip;q=0",
 "Accept-Encoding: identity",
 "Accept-Encoding: *",
 "Accept-Encoding: *, gzip;q=0",
 "Accept-Encoding: br, GZIP ; Q=0.5",
 "Accept-Encoding: x-gzip",
 "Accept-Encoding: gzip;q=0.000",
 "Accept-Encoding: br;q=1, gzip;q=0.001",
 "Accept-Encoding: gzipx, *;q=0",
 ""]
--- response_headers eval
["X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT\nContent-Encoding:",
 "X-LLM-Cache: HIT\nContent-Encoding:",
 "X-LLM-Cache: HIT\nContent-Encoding: gzip",
 "X-LLM-Cache: HIT\nContent-Encoding:",
 "X-LLM-Cache: HIT\nContent-Encoding: gzip",
 "X-LLM-Cache: HIT\nContent-Encoding: gzip",
 "X-LLM-Cache: HIT\nContent-Encoding:",
 "X-LLM-Cache: HIT\nContent-Encoding: gzip",
 "X-LLM-Cache: HIT\nContent-Encoding:",
 ""]
--- response_body_like eval
[(map { ::is_body($::json_1) } 1 .. 3), $::gz, ::is_body($::json_1), $::gz,
 $::gz, ::is_body($::json_1), $::gz, ::is_body($::json_1),
 ::is_body("calls=1\n")]
--- no_error_log
[error]



=== TEST 5: HTTP/1.0 gets the entry inflated (gzip_http_version 1.1), HEAD is passed to the provider
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_compress on;
    }
--- request eval
["POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions HTTP/1.0\n$::chat",
 "HEAD /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- more_headers eval
["", "Accept-Encoding: gzip\nContent-Length: " . length($::chat), "Accept-Encoding: gzip", ""]
--- response_headers eval
["X-LLM-Cache: MISS",
 "X-LLM-Cache: HIT\nContent-Encoding:\nContent-Length: " . length($::json_1),
 "X-LLM-Cache: BYPASS\nContent-Encoding:",
 ""]
--- error_code eval
[200, 200, 404, 200]
--- response_body_like eval
[::is_body($::json_1), ::is_body($::json_1), qr/\A\z/,
 ::is_body("calls=2\n")]
--- no_error_log
[error]



=== TEST 6: an uncompressed entry (LLMC3) still serves with llm_cache_compress on, to both kinds of client
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_compress on;
    }
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/overwrite?hex=" . ::hex_of($::old_entry),
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- more_headers eval
["", "", "Accept-Encoding: gzip", "", ""]
--- response_headers eval
["X-LLM-Cache: MISS", "",
 "X-LLM-Cache: HIT\nContent-Encoding:\nVary:",
 "X-LLM-Cache: HIT\nContent-Encoding:\nVary:",
 ""]
--- response_body_like eval
[::is_body($::json_1), ::is_body("overwritten=1\n"), ::is_body($::old_body),
 ::is_body($::old_body), ::is_body("calls=1\n")]
--- no_error_log
[error]



=== TEST 7: a compressed entry (LLMC4) still serves with llm_cache_compress off: as stored for gzip, inflated for others
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
    }
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/overwrite?hex=" . ::hex_of($::gz_entry),
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats"]
--- more_headers eval
["", "", "Accept-Encoding: gzip", "", ""]
--- response_headers eval
["X-LLM-Cache: MISS\nVary:", "",
 "X-LLM-Cache: HIT\nContent-Encoding: gzip\nVary: Accept-Encoding\nContent-Length: " . length($::gz_body),
 "X-LLM-Cache: HIT\nContent-Encoding:\nVary: Accept-Encoding\nContent-Length: " . length($::old_body),
 ""]
--- response_body_like eval
[::is_body($::json_1), ::is_body("overwritten=1\n"), ::is_body($::gz_body),
 ::is_body($::old_body), ::is_body("calls=1\n")]
--- no_error_log
[error]



=== TEST 8: a corrupted compressed entry (a flipped bit) is refused and replaced, never sent
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_compress on;
    }
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/overwrite?hex=" . ::hex_of($::bad_entry),
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats",
 "GET /__error_log"]
--- more_headers eval
["", "", "Accept-Encoding: gzip", "", "Accept-Encoding: gzip", "", ""]
--- response_headers eval
["X-LLM-Cache: MISS", "",
 "X-LLM-Cache: ERROR\nContent-Encoding:",
 "X-LLM-Cache: HIT\nContent-Encoding:",
 "X-LLM-Cache: HIT\nContent-Encoding: gzip",
 "", ""]
--- response_body_like eval
[::is_body($::json_1), ::is_body("overwritten=1\n"), ::is_body($::json_2),
 ::is_body($::json_2), $::gz, ::is_body("calls=2\n"),
 qr/\[error\].*malformed entry under/]



=== TEST 9: a compressed entry whose length does not match its trailer is refused, for either kind of client
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
    }
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/overwrite?hex=" . ::hex_of($::len_entry),
 "POST /v1/chat/completions\n$::chat",
 "GET /__redis/overwrite?hex=" . ::hex_of($::len_entry),
 "POST /v1/chat/completions\n$::chat",
 "GET /__stats",
 "GET /__error_log"]
--- more_headers eval
["", "", "", "", "Accept-Encoding: gzip", "", ""]
--- response_headers eval
["X-LLM-Cache: MISS", "", "X-LLM-Cache: ERROR", "", "X-LLM-Cache: ERROR", "", ""]
--- response_body_like eval
[::is_body($::json_1), ::is_body("overwritten=1\n"),
 ::is_body(LLMCacheTest::answer('openai/chat-response.json', 2)),
 ::is_body("overwritten=1\n"),
 ::is_body(LLMCacheTest::answer('openai/chat-response.json', 3)),
 ::is_body("calls=3\n"), qr/\[error\].*malformed entry under/]



=== TEST 10: llm_cache_compress off: the entry is LLMC3 as before, no Vary, no Content-Encoding
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
    }
--- request eval
["POST /v1/chat/completions\n$::stream",
 "POST /v1/chat/completions\n$::stream",
 "GET /__redis/keys"]
--- more_headers eval
["", "Accept-Encoding: gzip", ""]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT\nContent-Encoding:\nVary:", ""]
--- response_body_like eval
[::is_body($::sse_1), ::is_body($::sse_1), qr/\Akeys=1\n/]
--- no_error_log
[error]



=== TEST 11: the usage of a stream in 7-byte chunks is read across buffers (compressed and not)
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_compress on;
    }
    location /v2/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
    }
--- request eval
["POST /v1/chat/completions\n$::stream",
 "POST /v2/chat/completions\n$::stream",
 "GET /__redis/keys",
 "POST /v1/chat/completions\n$::stream",
 "POST /v2/chat/completions\n$::stream"]
--- more_headers eval
["X-Fake-Chunk: 7", "X-Fake-Chunk: 7", "", "", ""]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT"]
--- response_body_like eval
[::is_body($::sse_1), ::is_body($::sse_1 =~ s/fake-1/fake-2/gr),
 qr/\Akeys=2\n/, ::is_body($::sse_1),
 ::is_body($::sse_1 =~ s/fake-1/fake-2/gr)]
--- no_error_log
[error]



=== TEST 12: a large JSON answer (300 kB) with a Content-Length and without (the capture buffer grows), compressed or not, replayed byte-identical
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_compress on;
        llm_cache_max_size 1m;
    }
    location /v2/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_max_size 1m;
    }
    location /v3/ {
        llm_cache_pass /_nolength;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_compress on;
        llm_cache_max_size 1m;
    }
    location /v4/ {
        llm_cache_pass /_nolength;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_max_size 1m;
    }
    location ^~ /_llm/ {
        internal;
        rewrite ^/_llm/+(.*)$ /$1 break;
        proxy_pass http://llm_provider;
        proxy_http_version 1.1;
        proxy_buffering off;
    }
    location ^~ /_nolength/ {
        internal;
        rewrite ^/_nolength/+(.*)$ /$1 break;
        proxy_pass http://llm_provider;
        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_hide_header Content-Length;
    }
--- request eval
[map { ("POST /v$_/chat/completions\n$::chat") x 2 } 1 .. 4]
--- more_headers eval
[("X-Fake-Size: 300000") x 8]
--- response_headers eval
[("X-LLM-Cache: MISS", "X-LLM-Cache: HIT") x 4]
--- response_body_like eval
[map { (qr/\A\{"pad":"x{30000}.*"id":"fake-$_"/s) x 2 } 1 .. 4]
--- no_error_log
[error]



=== TEST 13: a JSON answer that is not one ({"error": ...}) is judged as it passes and not stored, compressed or not
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_compress on;
    }
--- request eval
["POST /v1/chat/completions\n$::chat",
 "GET /__redis/keys"]
--- more_headers eval
["X-Fake-Fixture: openai/error-400.json", ""]
--- response_headers eval
["X-LLM-Cache: MISS", ""]
--- response_body_like eval
[::is_body(LLMCacheTest::fixture('openai/error-400.json')), qr/\Akeys=0\n\z/]
--- error_log
it does not parse



=== TEST 14: a paraphrase answered from a compressed entry (HIT_SEMANTIC): as stored for gzip, inflated for others
--- config
    location /v1/ {
        llm_cache_pass /_llm;
        llm_cache_namespace t025;
        llm_cache_redis_timeout 5s;
        llm_cache_compress on;
        llm_cache_semantic on;
        llm_cache_semantic_embed /_embed;
        llm_cache_semantic_model fake-embed;
    }
--- more_headers eval
["", "", "", "Accept-Encoding: gzip", "", ""]
--- request eval
[qq(POST /__embed/pair\n{"a":"$::refund","b":"$::refunds","cos":0.99}),
 "POST /v1/chat/completions\n" . ::chat_of($::refund),
 "GET /__sleep?ms=100",
 "POST /v1/chat/completions\n" . ::chat_of($::refunds),
 "POST /v1/chat/completions\n" . ::chat_of($::refunds),
 "GET /__stats"]
--- response_headers eval
["", "X-LLM-Cache: MISS", "",
 "X-LLM-Cache: HIT_SEMANTIC\nContent-Encoding: gzip\nVary: Accept-Encoding",
 "X-LLM-Cache: HIT_SEMANTIC\nContent-Encoding:\nVary: Accept-Encoding",
 ""]
--- response_body_like eval
[qr/^pair cos=0.99/, ::is_body($::json_1), qr/^ok\n\z/, $::gz,
 ::is_body($::json_1), ::is_body("calls=1\n")]
--- no_error_log
[error]
