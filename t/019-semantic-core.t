use strict;
use warnings;

use Test::More;
use File::Basename qw(dirname);
use File::Spec;
use File::Temp qw(tempdir);
use Cwd qw(abs_path);

# The semantic layer's pure core (ngx_llm_cache_semantic_index.c) under
# the property test t/c/semantic_search.c: the search never returns a
# vector below the threshold and finds what brute force finds, the
# prefilter's bound, the guards, the embedding reply parser, the stored
# formats.  Plain Test::More (no nginx server, no Redis), so it runs the
# same under either runner.
#
# The test is a dynamic module that runs its checks while nginx reads its
# configuration (nginx -t): the code under test calls the real nginx
# (pools, ngx_sprintf, ngx_decode_base64 ...).  It is compiled here with
# cc against the nginx build tree scripts/build.sh made (build/nginx, or
# $BUILD_DIR/nginx); without one the test fails: build first.  Under
# TEST_NGINX_USE_VALGRIND it runs a quick pass under valgrind instead
# (memcheck, definite leaks are errors).

my $repo = abs_path(File::Spec->catdir(dirname(abs_path(__FILE__)), '..'));
my $build = $ENV{BUILD_DIR} || "$repo/build";
my $tree = "$build/nginx";
my $fixture = "$repo/t/fixtures/openai/embeddings-response.json";

sub find_nginx {
    return $ENV{TEST_NGINX_BINARY} if $ENV{TEST_NGINX_BINARY};
    for my $dir (split(/:/, $ENV{PATH} || ''), '/usr/sbin', '/usr/local/sbin') {
        return "$dir/nginx" if -x "$dir/nginx";
    }
    return undef;
}

sub run_cmd {
    my (@argv) = @_;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if (!$pid) {
        open(STDERR, '>&', \*STDOUT) or die $!;
        exec(@argv) or die "exec $argv[0]: $!";
    }
    local $/;
    my $text = <$out> // '';
    close $out;
    return ($? >> 8, $text);
}

if (!-f "$tree/objs/ngx_auto_config.h") {
    fail("an nginx build tree at $tree: none; build the module first "
         . "(bash scripts/build.sh), this test compiles against it");
    done_testing();
    exit;
}

my $nginx = find_nginx();
if (!$nginx) {
    fail('an nginx binary (TEST_NGINX_BINARY, PATH, /usr/sbin): none');
    done_testing();
    exit;
}

my $dir = tempdir(CLEANUP => 1);
my $so = "$dir/semantic_search.so";
my $cc = $ENV{CC} || 'cc';

# nginx's own flags for its modules (-Werror: a warning fails the test)
my @incs = map { ('-I', "$tree/$_") }
           qw(src/core src/event src/event/modules src/os/unix objs);
my ($rc, $out) = run_cmd($cc, qw(-shared -fPIC -O -g -W -Wall -Wpointer-arith
                                  -Wno-unused-parameter -Werror),
                         @incs, '-I', "$repo/ngx_llm_cache_module",
                         "$repo/t/c/semantic_search.c",
                         "$repo/ngx_llm_cache_module/"
                         . "ngx_llm_cache_semantic_index.c",
                         '-o', $so, '-lyajl', '-lm');
if (!is($rc, 0, "t/c/semantic_search.c compiles against $tree")) {
    diag($out);
    done_testing();
    exit;
}

my $valgrind = $ENV{TEST_NGINX_USE_VALGRIND};
my $quick = $valgrind ? ' quick' : '';

mkdir "$dir/logs";
open(my $conf, '>', "$dir/nginx.conf") or die $!;
print $conf <<"EOF";
load_module $so;
llm_cache_semantic_test $fixture$quick;
events {}
EOF
close $conf;

my @cmd = ($nginx, '-t', '-p', "$dir/", '-c', "$dir/nginx.conf",
           '-e', 'stderr');

if ($valgrind) {
    # nginx -t itself leaves its first pool (main) and the pool of the
    # cycle it tested unfreed
    open(my $supp, '>', "$dir/nginx-t.supp") or die $!;
    print $supp <<'EOF';
{
   nginx-t-init-cycle-pool
   Memcheck:Leak
   match-leak-kinds: definite
   fun:memalign
   fun:posix_memalign
   fun:ngx_memalign
   fun:ngx_create_pool
   fun:main
}
{
   nginx-t-tested-cycle-pool
   Memcheck:Leak
   match-leak-kinds: definite
   fun:memalign
   fun:posix_memalign
   fun:ngx_memalign
   fun:ngx_create_pool
   fun:ngx_init_cycle
   fun:main
}
EOF
    close $supp;
    my @supp = ("--suppressions=$dir/nginx-t.supp");
    push @supp, "--suppressions=$repo/valgrind.suppress"
        if -f "$repo/valgrind.suppress";
    unshift @cmd, 'valgrind', '-q', '--tool=memcheck', '--leak-check=full',
        '--show-possibly-lost=no', '--errors-for-leak-kinds=definite',
        '--error-exitcode=99', '--num-callers=50', @supp;
}

($rc, $out) = run_cmd(@cmd);

my (%recall, $done, $cost);
for my $line (split /\n/, $out) {
    if ($line =~ /^ok - (.*)/) {
        pass($1);
    } elsif ($line =~ /^not ok - (.*)/) {
        fail($1);
    } elsif ($line =~ /^recall dims=(\d+) t=([\d.]+) (.*)/) {
        my ($dims, $t, $rest) = ($1, $2, $3);
        $recall{"$dims/$t"} = { map { split /=/ } split ' ', $rest };
        diag($line);
    } elsif ($line =~ /^(signature_cost|candidates_cost|max_hamming) /) {
        $cost = $line if $1 eq 'signature_cost';
        diag($line);
    } elsif ($line =~ /^done (\d+) checks, (\d+) failed/) {
        $done = [$1, $2];
    } elsif ($line =~ /^==\d+==|\[emerg\]|failed|seed/) {
        diag($line);
    }
}

is($rc, 0, 'nginx -t with the property test: exit 0'
           . ($valgrind ? ' (under valgrind: no memcheck error, no leak)' : ''))
    or diag($out);
ok($done && $done->[0] >= 150 && $done->[1] == 0,
   'the checks ran to the end: '
   . ($done ? "$done->[0] checks, $done->[1] failed" : 'no "done" line'));

if (!$valgrind) {
    for my $key ('384/0.95', '1536/0.95') {
        my $r = $recall{$key};
        ok($r && $r->{queries} >= 1000 && $r->{weighted_16} >= 0.99,
           "recall at dims/t $key over >= 1000 queries: "
           . ($r ? "weighted_16 $r->{weighted_16}, hamming_8 $r->{hamming_8}"
                 : 'not reported'));
    }
    ok($cost, 'the signature cost is reported');
}

done_testing();
