package LLMCacheTest;

# Common set-up for the t/*.t suites (see t/README.md):
#
#   use lib 't/lib';
#   use LLMCacheTest;
#   use if  $LLMCacheTest::REAL, 'Test::Nginx::Socket', 'no_plan';
#   use if !$LLMCacheTest::REAL, 'NginxTestLite',       'no_plan';
#
# Loading this module
#   * points TEST_NGINX_LOAD_MODULES / TEST_NGINX_BINARY at the built module
#     and at nginx (before the runner reads them),
#   * picks the runner: openresty's Test::Nginx::Socket when it is
#     installed (LLM_CACHE_TEST_RUNNER=lite forces the fallback, =real
#     insists on the real one), and loads it,
#   * starts a private redis-server and t/lib/fake_provider.py and exports
#     TEST_NGINX_REDIS_PORT / TEST_NGINX_PROVIDER_PORT, and
#     TEST_NGINX_CLOSED_PORT (a free port nothing listens on),
#   * registers a block preprocessor with the runner: before every block
#     Redis is flushed and the provider reset, the `llm_provider` upstream is
#     added to http_config and the introspection locations to config; a
#     block using llm_cache_pass also gets `llm_cache_redis` for the test
#     Redis, and with `llm_cache_pass /_llm` an internal /_llm/ location
#     that passes to the provider (each unless the block has its own);
#     with `llm_cache_semantic_embed /_embed`, an internal /_embed location
#     that passes to the fake embedder (/v1/embeddings), likewise.
# Both children are stopped when the test file ends.
#
# Helpers for blocks (fully qualified): LLMCacheTest::fixture($path),
# LLMCacheTest::answer($path, $n), LLMCacheTest::sha256_hex($data).
#
# Other knobs: LLM_CACHE_MODULE (path of the .so), LLM_CACHE_TEST_VERBOSE=1
# (the provider logs every request to stderr).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Spec ();
use File::Temp qw(tempdir);
use IO::Select ();
use IO::Socket::INET ();
use POSIX qw(:sys_wait_h SIGTERM SIGKILL);
use Time::HiRes qw(sleep time);

our $REAL = 0;
our $RUNNER;
our ($RedisPort, $ProviderPort, $ClosedPort, $BlackholeSocket);
our $RedisProxyPort;
our ($RedisPid, $ProviderPid);
our $RedisAuthPort;
our $RedisPassword    = 'redis-Pa55-for-tests';
our $RedisAclUser     = 'llmcache';
our $RedisAclPassword = 'acl-Pa55-for-tests';
our $TmpDir;
our $OwnerPid = $$;

our $LibDir   = dirname(abs_path(__FILE__));
our $TestDir  = dirname($LibDir);
our $RepoRoot = dirname($TestDir);

my %Children;    # pid => name

# ---------------------------------------------------------------------------
# helpers for the .t files (call them fully qualified: LLMCacheTest::...)

# The contents of a fixture file, e.g. fixture('openai/chat-request.json').
sub fixture {
    my $rel = shift;
    my $path = "$TestDir/fixtures/$rel";
    open my $in, '<:raw', $path or die "cannot open fixture $path: $!\n";
    local $/;
    my $data = <$in>;
    close $in;
    return $data;
}

# A fixture as a request body, exactly as both runners send it: they trim
# the trailing newline of a `--- request` body, so it is left out here too
# and lengths and digests of what the provider got can be compared.
sub request_body {
    return fixture(shift) =~ s/\n\z//r;
}

# What the fake provider answers with this fixture as its call number $n:
# the first "id" value is replaced by "fake-<n>" (in every event of an .sse
# fixture), exactly as fake_provider.py does.
sub answer {
    my ($rel, $n) = @_;
    my $data = fixture($rel);
    my $stamp = sub {
        my $text = shift;
        $text =~ s/("id"\s*:\s*)"(?:[^"\\]|\\.)*"/$1"fake-$n"/;
        return $text;
    };
    if ($rel =~ /\.sse\z/) {
        my @events = $data =~ /(.*?(?:\r?\n\r?\n)|.+\z)/gs;
        return join '', map { $stamp->($_) } @events;
    }
    return $stamp->($data);
}

sub sha256_hex {
    require Digest::SHA;
    return Digest::SHA::sha256_hex(@_);
}

sub redis_port    { $RedisPort }
sub provider_port { $ProviderPort }
sub closed_port   { $ClosedPort }

# Sends one command to the private Redis; returns the first reply line.
sub redis_command {
    return redis_commands_at($RedisPort, [@_]);
}

# Commands on one connection to the Redis on $port; the last reply line.
sub redis_commands_at {
    my ($port, @cmds) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port,
                                     Proto => 'tcp', Timeout => 5)
        or die "cannot connect to redis on port $port: $!\n";
    my $line;
    for my $args (@cmds) {
        my $cmd = '*' . scalar(@$args) . "\r\n";
        $cmd .= '$' . length($_) . "\r\n$_\r\n" for @$args;
        print $sock $cmd;
        $line = <$sock>;
        die "no reply from redis to @$args\n" if !defined $line;
    }
    close $sock;
    $line =~ s/\r?\n\z//;
    return $line;
}

# A request to the fake provider; returns (status, body).
sub provider_request {
    my ($method, $path, $port) = @_;
    $port //= $ProviderPort;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port,
                                     Proto => 'tcp', Timeout => 5)
        or die "cannot connect to the fake provider on port $port: $!\n";
    print $sock "$method $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              . "Content-Length: 0\r\nConnection: close\r\n\r\n";
    my $resp = '';
    my $sel = IO::Select->new($sock);
    while ($sel->can_read(5)) {
        my $n = sysread($sock, my $buf, 8192);
        last if !$n;
        $resp .= $buf;
    }
    close $sock;
    my ($status) = $resp =~ m{^HTTP/\d\.\d (\d{3})};
    my (undef, $body) = split /\r\n\r\n/, $resp, 2;
    return ($status // 0, $body // '');
}

# ---------------------------------------------------------------------------
# set-up

sub _find_in_path {
    my $cmd = shift;
    for my $dir (split(/:/, $ENV{PATH} // ''), '/usr/local/sbin',
                 '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin')
    {
        next if $dir eq '';
        return "$dir/$cmd" if -f "$dir/$cmd" && -x _;
    }
    return undef;
}

sub _setup_env {
    # error_log checks in a block with several requests see the whole
    # block's log, not only the lines of the request just made
    $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG} //= 1;

    if (defined $ENV{LLM_CACHE_MODULE} && $ENV{LLM_CACHE_MODULE} ne '') {
        $ENV{TEST_NGINX_LOAD_MODULES} =
            File::Spec->rel2abs($ENV{LLM_CACHE_MODULE});
    } elsif (-f "$RepoRoot/build/ngx_llm_cache_module.so") {
        $ENV{TEST_NGINX_LOAD_MODULES} = "$RepoRoot/build/ngx_llm_cache_module.so";
    }

    if (!$ENV{TEST_NGINX_BINARY}) {
        my $nginx = _find_in_path('nginx');
        $ENV{TEST_NGINX_BINARY} = $nginx if $nginx;
    }
}

sub _pick_runner {
    my $want = lc($ENV{LLM_CACHE_TEST_RUNNER} // '');

    if ($want ne 'lite') {
        my $installed = grep { !ref && -f "$_/Test/Nginx/Socket.pm" } @INC;
        if ($installed) {
            # found but broken: better to say so than to half-load it and
            # then fall back
            require Test::Nginx::Socket;
            $REAL = 1;
            $RUNNER = 'Test::Nginx::Socket';
            return;
        }
        if ($want eq 'real') {
            die "LLM_CACHE_TEST_RUNNER=real but Test::Nginx::Socket is not "
                . "installed (try PERL5LIB=/path/to/test-nginx/lib)\n";
        }
    }

    require NginxTestLite;
    $REAL = 0;
    $RUNNER = 'NginxTestLite (fallback)';
}

# Linux: adopt orphaned descendants.  nginx daemonizes; when PID 1 does not
# reap (as in some containers) a stopped nginx would stay a zombie and both
# runners would wait for it until their timeout.  As its subreaper we reap it
# (Test::Nginx's kill_process calls waitpid too).
sub _become_subreaper {
    return if $^O ne 'linux';
    local $@;
    my $nr = eval {
        local $SIG{__WARN__} = sub {};
        require 'syscall.ph';     # defines SYS_* in the requiring package
        my $f = __PACKAGE__->can('SYS_prctl') || main->can('SYS_prctl');
        $f ? $f->() : undef;
    };
    if (!defined $nr) {
        require Config;
        my $arch = $Config::Config{archname} // '';
        $nr = $arch =~ /^x86_64/ ? 157 : $arch =~ /^aarch64/ ? 167 : undef;
    }
    return if !defined $nr;
    syscall($nr, 36, 1, 0, 0, 0);    # prctl(PR_SET_CHILD_SUBREAPER, 1)
}

sub _free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or die "cannot get a free port: $!\n";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub _spawn {
    my ($name, $out, $err, @argv) = @_;
    my $pid = fork;
    die "fork failed: $!\n" if !defined $pid;
    if ($pid == 0) {
        chdir $TmpDir;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(126);
        if (defined $err) {
            open STDERR, '>', $err or POSIX::_exit(126);
        }
        { no warnings 'exec'; exec { $argv[0] } @argv; }
        print STDERR "cannot exec $argv[0]: $!\n";
        POSIX::_exit(127);
    }
    $Children{$pid} = $name;
    return $pid;
}

sub _alive {
    my $pid = shift;
    return 0 if !$pid;
    my $r = waitpid($pid, WNOHANG);
    return 0 if $r == $pid || $r == -1;
    return 1;
}

sub _slurp {
    my $file = shift;
    open my $in, '<', $file or return '';
    local $/;
    my $data = <$in> // '';
    close $in;
    return $data;
}

# A redis-server on a free port with these extra arguments, answering PING
# (after AUTH with $password, if given); returns (port, pid).
sub _spawn_redis {
    my ($name, $password, @args) = @_;
    my $server = _find_in_path('redis-server')
        or die "redis-server not found in PATH\n";

    my $log = "$TmpDir/$name.log";
    for my $attempt (1 .. 5) {
        my $port = _free_port();
        my $pid = _spawn('redis-server', $log, undef, $server,
                         '--port', $port, '--bind', '127.0.0.1',
                         '--save', '', '--appendonly', 'no',
                         '--dir', $TmpDir, '--dbfilename', "$name.rdb",
                         @args);
        my $deadline = time + 10;
        while (time < $deadline) {
            if (!_alive($pid)) {
                delete $Children{$pid};
                last;
            }
            my $pong = eval {
                redis_commands_at($port,
                                  (defined $password
                                   ? (['AUTH', $password]) : ()),
                                  ['PING']);
            };
            return ($port, $pid) if defined $pong && $pong eq '+PONG';
            sleep 0.05;
        }
        _kill_child($pid) if _alive($pid);
    }
    die "cannot start redis-server ($name):\n" . _slurp($log);
}

sub _start_redis {
    ($RedisPort, $RedisPid) = _spawn_redis('redis', undef,
        '--unixsocket', "$TmpDir/redis.sock", '--unixsocketperm', '777');
}

# A second Redis that wants a password (default user) and knows an ACL user
# limited to what the module needs, for the AUTH tests.
sub _start_auth_redis {
    ($RedisAuthPort) = _spawn_redis('redis-auth', $RedisPassword,
        '--requirepass', $RedisPassword,
        '--user', $RedisAclUser, 'on', ">$RedisAclPassword",
        '~llm:*', '-@all', '+get', '+set', '+eval', '+del', '+select',
        '+client|setname');
}

sub _start_provider {
    my $python = _find_in_path('python3') or die "python3 not found\n";
    my $script = "$LibDir/fake_provider.py";
    die "$script not found\n" if !-f $script;

    my $out = "$TmpDir/provider.out";
    my $err = "$TmpDir/provider.err";
    my $verbose = $ENV{LLM_CACHE_TEST_VERBOSE};
    local $ENV{PYTHONUNBUFFERED} = 1;
    my $pid = _spawn('fake_provider', $out, $verbose ? undef : $err,
                     $python, $script, '--port', 0,
                     '--redis-port', $RedisPort,
                     ($verbose ? '--verbose' : ()));

    my $deadline = time + 20;
    my $port;
    while (time < $deadline) {
        if (!_alive($pid)) {
            delete $Children{$pid};
            die "fake_provider.py exited at start-up:\n" . _slurp($out)
                . _slurp($err);
        }
        if (_slurp($out) =~ /^READY (\d+)$/m) {
            $port = $1;
            last;
        }
        sleep 0.05;
    }
    if (!$port) {
        _kill_child($pid);
        die "fake_provider.py did not print READY:\n" . _slurp($out)
            . _slurp($err);
    }

    while (time < $deadline) {
        my ($status) = eval { provider_request('GET', '/__stats', $port) };
        if ($status && $status == 200) {
            $ProviderPid = $pid;
            $ProviderPort = $port;
            ($RedisProxyPort) = _slurp($out) =~ /^PROXY (\d+)$/m;
            return;
        }
        sleep 0.05;
    }
    _kill_child($pid);
    die "fake_provider.py does not answer on port $port:\n" . _slurp($err);
}

sub _kill_child {
    my $pid = shift;
    return if !$pid;
    kill SIGTERM, $pid;
    my $deadline = time + 5;
    while (time < $deadline) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid || $r == -1) {
            delete $Children{$pid};
            return;
        }
        sleep 0.02;
    }
    kill SIGKILL, $pid;
    waitpid($pid, 0);
    delete $Children{$pid};
}

sub _stop_children {
    for my $pid ($ProviderPid, $RedisPid) {
        _kill_child($pid) if $pid;
    }
    _kill_child($_) for keys %Children;
    undef $ProviderPid;
    undef $RedisPid;
}

# ---------------------------------------------------------------------------
# Redis Cluster, on demand (t/023): 6 redis-server --cluster-enabled yes on
# free ports, made 3 masters + 3 replicas by redis-cli --cluster create.

my %ClusterNode;    # port => { pid, args }

# Starts the cluster, waits for cluster_state:ok on every node; the ports.
sub start_redis_cluster {
    my $cli = _find_in_path('redis-cli') or die "redis-cli not found\n";
    my @ports;
    for my $i (1 .. 6) {
        my @args = ('--cluster-enabled', 'yes',
                    '--cluster-config-file', "$TmpDir/nodes-$i.conf",
                    '--cluster-node-timeout', '1000');
        my ($port, $pid) = _spawn_redis("cluster-$i", undef, @args);
        $ClusterNode{$port} = { pid => $pid, name => "cluster-$i",
                                args => \@args };
        push @ports, $port;
    }
    my $out = `$cli --cluster create @{[map { "127.0.0.1:$_" } @ports]} --cluster-replicas 1 --cluster-yes 2>&1`;
    die "redis-cli --cluster create failed:\n$out" if $? != 0;
    wait_cluster_ok(@ports) or die "the cluster is not ok:\n$out";
    return @ports;
}

# redis-cli against one node (no -c: no redirection followed); its output
sub cluster_cli {
    my ($port, @args) = @_;
    my $cli = _find_in_path('redis-cli') or die "redis-cli not found\n";
    open my $fh, '-|', $cli, '-p', $port, @args or die "redis-cli: $!\n";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return $out;
}

sub wait_cluster_ok {
    my @ports = @_;
    my $deadline = time + 60;
    while (time < $deadline) {
        my $ok = grep {
            (eval { cluster_cli($_, 'cluster', 'info') } // '')
                =~ /^cluster_state:ok\r?$/m
        } @ports;
        return 1 if $ok == @ports;
        sleep 0.1;
    }
    return 0;
}

sub kill_cluster_node {
    my $port = shift;
    my $pid = $ClusterNode{$port}{pid};
    kill SIGKILL, $pid;
    waitpid($pid, 0);
    delete $Children{$pid};
}

# the same node again (its nodes-N.conf: it rejoins, as a replica)
sub restart_cluster_node {
    my $port = shift;
    my $node = $ClusterNode{$port};
    my $server = _find_in_path('redis-server')
        or die "redis-server not found\n";
    $node->{pid} = _spawn('redis-server', "$TmpDir/$node->{name}.log",
                          undef, $server, '--port', $port,
                          '--bind', '127.0.0.1', '--save', '',
                          '--appendonly', 'no', '--dir', $TmpDir,
                          '--dbfilename', "$node->{name}.rdb",
                          @{ $node->{args} });
    my $deadline = time + 10;
    while (time < $deadline) {
        my $pong = eval { redis_commands_at($port, ['PING']) };
        return 1 if defined $pong && $pong eq '+PONG';
        sleep 0.05;
    }
    return 0;
}

# ---------------------------------------------------------------------------
# the block preprocessor

my $UPSTREAM = <<'_EOC_';
    upstream llm_provider { server 127.0.0.1:$TEST_NGINX_PROVIDER_PORT; }
_EOC_

my $LOCATIONS = <<'_EOC_';

        location = /__stats      { proxy_pass http://llm_provider/__stats; }
        location = /__redis/keys { proxy_pass http://llm_provider/__redis/keys; }
        location = /__last       { proxy_pass http://llm_provider/__last; }
        location ^~ /__redis/    { proxy_pass http://llm_provider; }
        location = /__sleep      { proxy_pass http://llm_provider; }
        location ^~ /__embed/    { proxy_pass http://llm_provider; }
        location = /__error_log  { alias logs/error.log; default_type text/plain; }
        location = /__outage {
            proxy_set_header X-Fire-Port $server_port;
            proxy_read_timeout 60s;
            proxy_pass http://llm_provider;
        }
        location = /__fire {
            proxy_set_header X-Fire-Port $server_port;
            proxy_read_timeout 60s;
            proxy_pass http://llm_provider;
        }
_EOC_

# For blocks that use llm_cache_pass (as t/00[1-4]*.t do): the test Redis,
# and for `llm_cache_pass /_llm` the internal location that passes to the
# fake provider, each unless the block has its own.
my $PASS_LOCATION = <<'_EOC_';

        location ^~ /_llm/ {
            internal;
            rewrite ^/_llm/+(.*)$ /$1 break;
            proxy_pass http://llm_provider;
            proxy_http_version 1.1;
            proxy_buffering off;
        }
_EOC_

# For blocks that say `llm_cache_semantic_embed /_embed`: the internal
# location that passes to the fake embedder, unless the block has its own.
my $EMBED_LOCATION = <<'_EOC_';

        location = /_embed {
            internal;
            proxy_pass http://llm_provider/v1/embeddings;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
_EOC_

my $REDIS = <<'_EOC_';
    llm_cache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
_EOC_

sub _preprocess {
    my $block = shift;

    # a block may have left Redis read-only or out of memory on purpose
    my $ok = eval {
        redis_commands_at($RedisPort, ['REPLICAOF', 'NO', 'ONE'],
                          ['CONFIG', 'SET', 'maxmemory', '0'],
                          ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'],
                          ['FLUSHALL']);
    };
    if (!defined $ok || $ok ne '+OK') {
        die "LLMCacheTest: FLUSHALL failed: " . ($@ || $ok // '') . "\n";
    }
    $ok = eval {
        redis_commands_at($RedisAuthPort, ['AUTH', $RedisPassword],
                          ['FLUSHALL']);
    };
    if (!defined $ok || $ok ne '+OK') {
        die "LLMCacheTest: FLUSHALL (password redis) failed: "
            . ($@ || $ok // '') . "\n";
    }
    my ($status, $body) = provider_request('POST', '/__reset');
    if ($status != 200) {
        die "LLMCacheTest: POST /__reset to the fake provider failed "
            . "(status $status): $body\n";
    }
    ($status, $body) = provider_request('GET', '/__redis/proxy?op=reset');
    if ($status != 200) {
        die "LLMCacheTest: resetting the Redis proxy failed "
            . "(status $status): $body\n";
    }

    my $http_config = $block->http_config // '';
    my $config = $block->config // '';
    my $all = "$http_config\n$config";
    my ($pass_location, $redis) = ('', '');
    if ($all =~ /\bllm_cache_pass\s/) {
        $redis = $REDIS if $all !~ /\bllm_cache_redis\s/;
    }
    if ($all =~ m{\bllm_cache_pass\s+/_llm\b}
        && $all !~ m{\blocation\s+(?:[=~^*]+\s*)?/_llm\b})
    {
        $pass_location = $PASS_LOCATION;
    }
    if ($all =~ m{\bllm_cache_semantic_embed\s+/_embed\s*;}
        && $all !~ m{\blocation\s+(?:[=~^*]+\s*)?/_embed\b})
    {
        $pass_location .= $EMBED_LOCATION;
    }

    # a worker crash or a leak report is a failure, not a warning
    if (!defined $block->must_die) {
        my $no = $block->no_error_log;
        my @pats = !defined $no ? () : ref $no eq 'ARRAY' ? @$no
                   : ref $no ? ($no) : split /\n+/, $no;
        push @pats, grep { !LLMCacheTest::_has(\@pats, $_) } '[alert]', '[crit]';
        $block->set_value(no_error_log => \@pats);
    }

    # under valgrind everything is tens of times slower: a lookup must not
    # time out unless the block is about timeouts
    if ($ENV{TEST_NGINX_USE_VALGRIND} && $all !~ /\bllm_cache_redis_timeout\s/) {
        $redis .= "    llm_cache_redis_timeout 5s;\n";
    }

    $block->set_value(http_config => $UPSTREAM . $redis . $http_config);
    $block->set_value(config => $config . $LOCATIONS . $pass_location);
}

sub _has {
    my ($list, $s) = @_;
    return scalar grep { !ref $_ && $_ eq $s } @$list;
}

sub _register_preprocessor {
    if ($REAL) {
        Test::Nginx::Util::add_block_preprocessor(\&_preprocess);
    } else {
        NginxTestLite::add_block_preprocessor(\&_preprocess);
    }
}

# ---------------------------------------------------------------------------

sub _init {
    _setup_env();
    _pick_runner();
    print STDERR "# runner: $RUNNER\n";

    _become_subreaper();

    $TmpDir = tempdir('llm-cache-test-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    # so that END blocks (ours, the runner's) stop everything on ^C
    my %signo = (HUP => 1, INT => 2, TERM => 15);
    for my $sig (keys %signo) {
        next if $SIG{$sig} && $SIG{$sig} ne 'DEFAULT';
        $SIG{$sig} = sub { exit 128 + $signo{$sig} };
    }

    eval {
        _start_redis();
        _start_auth_redis();
        _start_provider();
        1;
    } or do {
        my $err = $@;
        _stop_children();
        die "LLMCacheTest: $err";
    };

    $ClosedPort = _free_port();    # nothing listens there

    # connects, never answers: a listening socket nobody accepts on (the
    # kernel completes the handshake), for a Redis that hangs
    $BlackholeSocket = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => 0, Proto => 'tcp', Listen => 64, ReuseAddr => 1)
        or die "cannot listen on a black hole port: $!\n";
    $ENV{TEST_NGINX_BLACKHOLE_PORT} = $BlackholeSocket->sockport;
    $ENV{TEST_NGINX_REDIS_PORT}    = $RedisPort;
    $ENV{TEST_NGINX_REDIS_PROXY_PORT} = $RedisProxyPort;
    $ENV{TEST_NGINX_PROVIDER_PORT} = $ProviderPort;
    $ENV{TEST_NGINX_CLOSED_PORT}   = $ClosedPort;
    $ENV{TEST_NGINX_REDIS_SOCKET}  = "$TmpDir/redis.sock";
    $ENV{TEST_NGINX_REDIS_AUTH_PORT} = $RedisAuthPort;
    $ENV{TEST_NGINX_REDIS_PASSWORD}  = $RedisPassword;
    $ENV{TEST_NGINX_REDIS_ACL_USER}  = $RedisAclUser;
    $ENV{TEST_NGINX_REDIS_ACL_PASSWORD} = $RedisAclPassword;

    _register_preprocessor();
}

_init();

END {
    if (defined $OwnerPid && $$ == $OwnerPid) {
        local $?;
        _stop_children();
    }
}

1;
