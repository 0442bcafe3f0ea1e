package NginxTestLite;

# A small fallback for openresty's Test::Nginx::Socket, used when that module
# is not installed.  It implements the subset of the data-driven format that
# the suites in t/ use (see t/README.md) with the same semantics, so that a
# .t file gives the same verdicts under both runners.  It is an independent,
# much smaller implementation; it shares no code with Test::Nginx.
#
# Like the real runner it is a Test::Base subclass, so the __DATA__ blocks
# (sections, "eval"/"chomp" filters, SKIP/ONLY/LAST) parse identically.

use strict;
use warnings;

use Test::Base -base;

use Cwd ();
use File::Path qw(make_path remove_tree);
use File::Spec ();
use File::Temp ();
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(shuffle);
use POSIX qw(:sys_wait_h EAGAIN EINTR SIGQUIT SIGTERM SIGKILL);
use Scalar::Util qw(looks_like_number);
use Test::LongString ();
use Time::HiRes qw(sleep time);

our @EXPORT = qw(
    run_tests repeat_each no_shuffle add_block_preprocessor
    log_level master_on master_off workers worker_connections
    no_long_string no_root_location timeout
    server_port server_root html_dir bail_out is_str
    add_response_body_check
);

# ---------------------------------------------------------------------------
# settings (same environment variables and defaults as Test::Nginx)

our $ServerAddr     = '127.0.0.1';
our $ServerName     = 'localhost';
our $ServerPort     = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                      || 1984;
our $NginxBinary    = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $LoadModules    = $ENV{TEST_NGINX_LOAD_MODULES};
our $UseValgrind    = $ENV{TEST_NGINX_USE_VALGRIND};
our $NoClean        = $ENV{TEST_NGINX_NO_CLEAN};
our $Verbose        = $ENV{TEST_NGINX_VERBOSE};
our $LogLevel       = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $Timeout        = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $SleepTime      = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $MasterProcess  = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $Daemon         = $UseValgrind ? 'off' : 'on';
our $NoShuffle      = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $Workers        = 1;
our $WorkerConnections = 64;
our $RepeatEach     = 1;
our $NoRootLocation = 0;
our $NoLongString   = 0;

our $Randomize      = $ENV{TEST_NGINX_RANDOMIZE};

# TEST_NGINX_RANDOMIZE: like Test::Nginx, a free random port and a server
# root of its own (t/servroot_<port>, removed at the end), so that test
# files can run side by side
if ($Randomize) {
    $ServerPort = _lite_random_free_port();
    die "NginxTestLite: cannot find a free port\n" if !defined $ServerPort;
}

our $ServRoot = $Randomize
                ? File::Spec->rel2abs("t/servroot_$ServerPort")
                : File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT}
                                      || 't/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

our $LogDir     = "$ServRoot/logs";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";
our $PidFile    = "$LogDir/nginx.pid";

# Sections this runner understands.  Anything else in a block is reported as
# a failure instead of being silently ignored.
my %Supported = map { $_ => 1 } qw(
    main_config http_config config post_main_config
    request more_headers
    response_body response_body_like response_body_unlike
    error_code error_code_like
    response_headers response_headers_like
    raw_response_headers_like raw_response_headers_unlike
    error_log no_error_log must_die
    timeout abort wait skip_eval log_level ignore_response
    ONLY LAST SKIP
);

# Leaks of stock nginx itself that valgrind reports in every run (single
# process mode): the environment copy, and the connection/event arrays that
# ngx_event_process_init (static, hence "obj:") allocates.  The project's own
# valgrind.suppress, if any, is used as well.
sub _lite_builtin_suppressions {
    my $bin = Cwd::abs_path(_lite_can_run($NginxBinary) // $NginxBinary)
              // $NginxBinary;
    return <<"_EOS_";
{
   nginx-core-set-environment
   Memcheck:Leak
   match-leak-kinds: definite,possible
   fun:malloc
   fun:ngx_alloc
   fun:ngx_set_environment
}
{
   nginx-core-event-process-init
   Memcheck:Leak
   match-leak-kinds: definite,possible
   fun:malloc
   fun:ngx_alloc
   obj:$bin
   fun:ngx_single_process_cycle
}
_EOS_
}

my $ValgrindErrorExit = 99;

our @BlockPreprocessors;
our @ResponseBodyChecks;
our $ErrLogPos = 0;
our $RandPorts = {};
our $NginxPid;          # nginx that did not die in a must_die block
our $ChildPid;          # valgrind child process (a direct child of ours)
our $ValgrindPid;       # the last one, for its exit status
our %Reaped;            # pid => wait status of children we reaped
our $ConnectFailures = 0;
our $OwnerPid = $$;
my  $SuppressionsFile;

# ---------------------------------------------------------------------------
# public functions

sub repeat_each (@)    { $RepeatEach = shift if @_; $RepeatEach }
sub no_shuffle ()      { $NoShuffle = 1 }
sub no_root_location () { $NoRootLocation = 1 }
sub no_long_string ()  { $NoLongString = 1 }
sub log_level (@)      { $LogLevel = shift if @_; $LogLevel }
sub master_on ()       { $MasterProcess = 'on' }
sub master_off ()      { $MasterProcess = 'off' }
sub workers (@)        { $Workers = shift if @_; $Workers }
sub worker_connections (@) {
    $WorkerConnections = shift if @_;
    $WorkerConnections;
}
sub timeout (@)        { $Timeout = shift if @_; $Timeout }
sub server_port (@)    { $ServerPort = shift if @_; $ServerPort }
sub server_root ()     { $ServRoot }
sub html_dir ()        { $HtmlDir }

sub add_block_preprocessor (&) {
    unshift @BlockPreprocessors, shift;
}

# Like Test::Nginx::Socket: each check is called after every response with
# ($block, $body, $req_idx, $repeated_req_idx, $dry_run).
sub add_response_body_check ($) {
    push @ResponseBodyChecks, shift;
}

sub bail_out (@) {
    _lite_stop_nginx('bail out');
    Test::More::BAIL_OUT(join '', @_);
}

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }
    if ($NoLongString) {
        return Test::More::is($got, $expected, $desc);
    }
    return Test::LongString::is_string($got, $expected, $desc);
}

sub run_tests () {
    if (!defined $ENV{TEST_NGINX_SERVER_PORT}) {
        $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;
    }

    if (!_lite_can_run($NginxBinary)) {
        bail_out("Cannot find the nginx executable \"$NginxBinary\"");
    }

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;

    for my $i (0 .. $#blocks) {
        my $block = $blocks[$i];
        for my $hdl (@BlockPreprocessors) {
            $hdl->($block);
        }
        $block->set_value(name => "$0 " . $block->name);
        _lite_run_block($block, $i == $#blocks);
    }
}

# ---------------------------------------------------------------------------
# one block

sub _lite_run_block {
    my ($block, $is_last) = @_;
    my $name = $block->name;

    for my $section (@{ scalar($block->_section_order) || [] }) {
        next if $Supported{$section};
        Test::More::fail("$name - NginxTestLite does not support "
                         . "\"--- $section\" (run under Test::Nginx::Socket)");
    }

    $RandPorts = {};
    my $config = _lite_expand_env(scalar $block->config, $name);

    local $LogLevel = $LogLevel;
    $LogLevel = $block->log_level if $block->log_level;

    my $must_die = $block->must_die;
    local $UseValgrind = defined $must_die ? undef : $UseValgrind;

    if (defined(my $skip = $block->skip_eval)) {
        if ($skip =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            my ($n, $code) = ($1, $2);
            my $should_skip = eval $code;
            if ($@) {
                bail_out("$name - skip_eval - failed to eval the Perl code "
                         . "\"$code\": $@");
            }
            if ($should_skip) {
                SKIP: { Test::More::skip("$name - skip_eval", $n); }
                return;
            }
        }
    }

    _lite_stop_nginx($name);   # normally nothing is running any more
    _lite_setup_servroot($name);
    _lite_write_config($block, $config, $name);

    if (defined $must_die) {
        _lite_run_must_die($block, $must_die, $name);
        return;
    }

    _lite_start_nginx($block, $name);

    $ErrLogPos = 0;
    for my $rep (0 .. $RepeatEach - 1) {
        _lite_run_requests($block, $rep);
    }

    if ($UseValgrind) {
        _lite_stop_nginx($name);
        _lite_check_valgrind($name);

    } elsif (!($NoClean && $is_last)) {
        _lite_stop_nginx($name);
    }
}

sub _lite_run_must_die {
    my ($block, $must_die, $name) = @_;

    for my $rep (0 .. $RepeatEach - 1) {
        $ErrLogPos = 0;
        my ($status, $exec_failed) = _lite_run_nginx_and_wait($name);

        my ($exit_code, $coredump);
        if (defined $status) {
            $exit_code = $status >> 8;
            $coredump  = $status & 128;
        }

        if ($exec_failed) {
            Test::More::fail("$name - failed to execute the nginx command line");
        } elsif ($coredump) {
            Test::More::fail("$name - nginx core dumped");
        } elsif (looks_like_number($must_die)) {
            Test::More::is($must_die, $exit_code,
                           "$name - die with the expected exit code");
        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }

        _lite_check_error_log($block, $rep, 0);

        if (defined $status && $status == 0) {
            warn "WARNING: $name - nginx must die but it does not; "
                 . "killing it (req $rep)\n";
            for (1 .. 15) {
                last if -f $PidFile;
                sleep $SleepTime;
            }
            _lite_stop_nginx($name);
        }
    }
}

# ---------------------------------------------------------------------------
# server root and nginx.conf

sub _lite_setup_servroot {
    my $name = shift;

    if (-d $ServRoot) {
        remove_tree($ConfDir, $LogDir, $HtmlDir, "$ServRoot/cache",
                    glob("$ServRoot/*_cache"), glob("$ServRoot/*_temp"));
    }
    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        next if -d $dir;
        make_path($dir) or bail_out("$name - cannot create $dir: $!");
    }

    open my $out, '>', "$HtmlDir/index.html"
        or bail_out("$name - cannot write $HtmlDir/index.html: $!");
    print $out '<html><head><title>It works!</title></head>'
               . '<body>It works!</body></html>';
    close $out;
}

my $NginxV;

sub _lite_write_config {
    my ($block, $config, $name) = @_;

    my $http_config = _lite_expand_env(scalar $block->http_config, $name) // '';
    my $main_config = $block->main_config // '';
    my $post_main   = _lite_expand_env(scalar $block->post_main_config, $name) // '';
    $config //= '';

    if ($LoadModules) {
        my @load = map { "load_module $_;" } grep { length } split /\s+/,
                   $LoadModules;
        $main_config = join ' ', @load, $main_config if @load;
    }
    $main_config = _lite_expand_env($main_config, $name);

    $NginxV //= `$NginxBinary -V 2>&1` // '';
    my @temp_paths;
    push @temp_paths, "client_body_temp_path $ServRoot/client_body_temp;"
        unless $http_config =~ /\bclient_body_temp_path\b/;
    push @temp_paths, "proxy_temp_path $ServRoot/proxy_temp;"
        unless $http_config =~ /\bproxy_temp_path\b/;
    for my $m (qw(fastcgi scgi uwsgi)) {
        push @temp_paths, "${m}_temp_path $ServRoot/${m}_temp;"
            unless $NginxV =~ /--without-http_${m}_module/;
    }
    my $temp_paths = join ' ', @temp_paths;

    my $root_location = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    my $user = $> == 0 ? "user root;\n" : '';

    my $conf = <<"_EOC_";
worker_processes  $Workers;
daemon $Daemon;
master_process $MasterProcess;
error_log $ErrLogFile $LogLevel;
pid       $PidFile;
env LD_PRELOAD;
env LD_LIBRARY_PATH;
env ASAN_OPTIONS;

$main_config

http {
    access_log $AccLogFile; $temp_paths

    default_type text/plain;
    keepalive_timeout  68000ms;

$http_config
    server {
        listen          $ServerPort;
        server_name     '$ServerName';
        client_max_body_size 30M;

        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

$post_main

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
}
$user
_EOC_

    open my $out, '>', $ConfFile
        or bail_out("$name - cannot write $ConfFile: $!");
    print $out $conf;
    close $out;
}

sub _lite_expand_env {
    my ($text, $name) = @_;
    return undef if !defined $text;

    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        my $val;
        if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
            $val = $RandPorts->{$var} //= _lite_rand_port($name);
        } else {
            bail_out("$name - No environment $var defined.\n")
                if !defined $ENV{$var};
            $val = $ENV{$var};
        }
        $val;
    }ge;

    return $text;
}

sub _lite_random_free_port {
    for (1 .. 1000) {
        my $port = int(rand 63547) + 1988;
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $port, Proto => 'tcp',
                                      Listen => 5, ReuseAddr => 1)
            or next;
        close $s;
        return $port;
    }
    return undef;
}

sub _lite_rand_port {
    my $name = shift;
    my %used = ($ServerPort => 1, map { $_ => 1 } grep { defined } values %$RandPorts);
    for (1 .. 1000) {
        my $port = int(rand 63547) + 1988;
        next if $used{$port};
        my $s = IO::Socket::INET->new(LocalAddr => $ServerAddr,
                                      LocalPort => $port, Proto => 'tcp',
                                      Listen => 5, ReuseAddr => 1);
        if ($s) {
            close $s;
            return $port;
        }
    }
    bail_out("$name - Cannot find an available listening port number.\n");
}

# ---------------------------------------------------------------------------
# nginx processes

sub _lite_can_run {
    my $cmd = shift;
    if ($cmd =~ m{/}) {
        return -f $cmd && -x _ ? $cmd : undef;
    }
    for my $dir (split /:/, $ENV{PATH} // '') {
        next if $dir eq '';
        return "$dir/$cmd" if -f "$dir/$cmd" && -x _;
    }
    return undef;
}

sub _lite_nginx_argv {
    return ($NginxBinary, '-e', $ErrLogFile, '-p', "$ServRoot/",
            '-c', $ConfFile);
}

sub _lite_valgrind_argv {
    my $vglog = shift;

    if (!defined $SuppressionsFile) {
        my $tmp = File::Temp->new(SUFFIX => '.supp', TMPDIR => 1);
        print $tmp _lite_builtin_suppressions();
        close $tmp;
        $SuppressionsFile = $tmp;    # unlinked when we exit
    }

    my @opts;
    if ($UseValgrind =~ /^\d+$/) {
        @opts = qw(--tool=memcheck --leak-check=full --keep-debuginfo=yes
                   --show-possibly-lost=no --errors-for-leak-kinds=definite
                   --num-callers=100 --gen-suppressions=all);
    } else {
        @opts = split ' ', $UseValgrind;
    }
    push @opts, "--suppressions=$SuppressionsFile";
    push @opts, '--suppressions=valgrind.suppress' if -f 'valgrind.suppress';
    return ('valgrind', '-q', @opts, "--error-exitcode=$ValgrindErrorExit",
            "--log-file=$vglog");
}

sub _lite_spawn {
    my (@argv) = @_;
    warn "command: @argv\n" if $Verbose;
    my $pid = fork;
    if (!defined $pid) {
        bail_out("fork() failed: $!");
    }
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        { no warnings 'exec'; exec { $argv[0] } @argv; }
        print STDERR "cannot exec $argv[0]: $!\n";
        POSIX::_exit(127);
    }
    return $pid;
}

# Runs nginx (must_die blocks) and returns its wait status.  A daemonized
# nginx returns at once; one running in the foreground (daemon off) is given
# the usual timeout and then counts as "did not die".
sub _lite_run_nginx_and_wait {
    my $name = shift;
    my $pid = _lite_spawn(_lite_nginx_argv());
    my $deadline = time + $Timeout;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) {
            my $status = $?;
            return ($status, ($status >> 8) == 127 ? 1 : 0);
        }
        if (time > $deadline) {
            $NginxPid = $pid;
            $ChildPid = $pid;
            return (0, 0);
        }
        sleep 0.01;
    }
}

sub _lite_start_nginx {
    my ($block, $name) = @_;

    if ($UseValgrind) {
        warn "$name\n";
        unlink $PidFile;
        my $vglog = "$LogDir/valgrind.log";
        my $pid = fork;
        bail_out("$name - fork() failed: $!") if !defined $pid;
        if ($pid == 0) {
            setpgrp(0, 0);
            open STDIN, '<', '/dev/null';
            open STDOUT, '>', '/dev/null';
            my @argv = (_lite_valgrind_argv($vglog), _lite_nginx_argv());
            warn "command: @argv\n" if $Verbose;
            { no warnings 'exec'; exec { $argv[0] } @argv; }
            print STDERR "cannot exec valgrind: $!\n";
            POSIX::_exit(127);
        }
        $ChildPid = $ValgrindPid = $pid;
        delete $Reaped{$pid};

        # valgrind is slow to start: wait for nginx to write its pid file
        my $deadline = time + 30;
        while (time < $deadline) {
            last if -s $PidFile;
            last if !_lite_is_running($pid);
            sleep 0.05;
        }
        sleep $SleepTime;
        return;
    }

    my $waited = 0;
    my $tries = 0;
    while (1) {
        my $pid = _lite_spawn(_lite_nginx_argv());
        waitpid($pid, 0);
        my $status = $?;
        last if $status == 0;

        # same as Test::Nginx: retry (the port may still be in use)
        my $delay = 0.1 * ++$tries;
        $delay = 1 if $delay > 1;
        sleep $delay;
        $waited += $delay;
        next if $waited < 30;
        bail_out("$name - Cannot start nginx using command \""
                 . join(' ', _lite_nginx_argv()) . "\" (status code $status).");
    }

    # (the pid file is read when nginx is stopped: the daemon may not
    # have written it yet)
    sleep $SleepTime;
}

sub _lite_read_pid {
    open my $in, '<', $PidFile or return undef;
    my $pid = do { local $/; <$in> };
    close $in;
    return undef if !defined $pid;
    $pid =~ s/\s+//g;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

# true while $pid exists and is not a zombie (reaps it if it is ours)
sub _lite_is_running {
    my $pid = shift;
    return 0 if !$pid;
    my $r = waitpid($pid, WNOHANG);
    if ($r == $pid) {
        $Reaped{$pid} = $?;
        return 0;
    }
    return 0 if !kill 0, $pid;
    if (open my $st, '<', "/proc/$pid/stat") {
        my $line = <$st> // '';
        close $st;
        return 0 if $line =~ /^\d+ \(.*\) Z/s;
    }
    return 1;
}

sub _lite_stop_nginx {
    my $name = shift;

    my @pids = grep { defined } ($NginxPid, $ChildPid);
    if (!@pids && -f $PidFile) {
        # only if it is an nginx: the pid file may be a stale one
        my $pid = _lite_read_pid();
        if (defined $pid && open my $in, '<', "/proc/$pid/cmdline") {
            my $cmd = do { local $/; <$in> } // '';
            close $in;
            push @pids, $pid if $cmd =~ /nginx|valgrind/;
        }
    }
    my %seen;
    @pids = grep { !$seen{$_}++ } @pids;

    my $wait = $UseValgrind ? ($Timeout > 30 ? $Timeout : 30) : $Timeout;
    for my $pid (@pids) {
        next if !_lite_is_running($pid);
        warn "sending QUIT signal to $pid\n" if $Verbose;
        kill SIGQUIT, $pid;
        my $deadline = time + $wait;
        while (time < $deadline && _lite_is_running($pid)) {
            sleep 0.02;
        }
        next if !_lite_is_running($pid);

        warn "$name - timeout when waiting for the process $pid to exit\n";
        kill SIGTERM, $pid;
        $deadline = time + 1;
        while (time < $deadline && _lite_is_running($pid)) {
            sleep 0.02;
        }
        next if !_lite_is_running($pid);

        warn "$name - WARNING: killing the process $pid with force\n";
        if (defined $ChildPid && $pid == $ChildPid) {
            kill SIGKILL, -$pid;
        }
        kill SIGKILL, $pid;
        $deadline = time + 2;
        while (time < $deadline && _lite_is_running($pid)) {
            sleep 0.02;
        }
    }

    undef $NginxPid;
    undef $ChildPid;
}

sub _lite_check_valgrind {
    my $name = shift;
    my $vglog = "$LogDir/valgrind.log";

    my $log = '';
    if (open my $in, '<', $vglog) {
        local $/;
        $log = <$in> // '';
        close $in;
    }

    my $status = defined $ValgrindPid ? delete $Reaped{$ValgrindPid} : undef;
    my $bad_exit = defined $status && ($status >> 8) == $ValgrindErrorExit;

    if ($log =~ /\S/ || $bad_exit) {
        Test::More::fail("$name - valgrind found no errors");
        Test::More::diag($log =~ /\S/ ? $log
                         : "valgrind exited with $ValgrindErrorExit\n");
    } else {
        Test::More::pass("$name - valgrind found no errors");
    }
}

END {
    if (defined $OwnerPid && $$ == $OwnerPid) {
        local $?;
        if (!$NoClean || $UseValgrind) {
            _lite_stop_nginx('END');

            if ($Randomize && $ServRoot =~ m{/t/servroot_\d+\z}) {
                remove_tree($ServRoot);
            }
        }
    }
}

# ---------------------------------------------------------------------------
# requests

sub _lite_parse_more_headers {
    my $in = shift;
    my ($out, $chunked) = ('', 0);
    for my $line (split /\n+/, $in) {
        next if $line =~ /^\s*#/;
        my ($key, $val) = split /:\s*/, $line, 2;
        $val //= '';
        $chunked = 1 if lc($key) eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $chunked);
}

sub _lite_build_one_request {
    my ($name, $more_headers, $text) = @_;

    my ($hdrs, $chunked) = _lite_parse_more_headers($more_headers);

    $text //= '';
    my ($first, $content) = $text =~ /\A([^\n]*\n?)(.*)\z/s;
    if (!defined $first || $first eq '') {
        bail_out("$name - Request line should be non-empty");
    }
    my ($meth, $url, $ver) =
        $first =~ /^\s*(\S+) *(?:(\S+) *)?(?:(\S+) *)?\s*$/
        or bail_out("$name - Request line is not valid. Should be "
                    . "'meth [url [version]]' but got \"$first\".");
    $url //= '/';
    $ver //= 'HTTP/1.1';

    my $len_header = '';
    if (!$chunked && $content ne '' && $hdrs !~ /(?:^|\n)Content-Length:/) {
        $content =~ s/^\s+|\s+$//gs;
        $len_header = 'Content-Length: ' . length($content) . "\r\n";
    }

    my $head = '';
    $head .= "Host: $ServerName\r\n" if $hdrs !~ /(?:^|\n)Host:/msi;
    $head .= "Connection: close\r\n" if $hdrs !~ /(?:^|\n)Connection/msi;

    return "$meth $url $ver\r\n$head$hdrs$len_header\r\n$content";
}

sub _lite_requests_of {
    my $block = shift;
    my $name = $block->name;

    my $request = $block->request;
    my $more = $block->more_headers || '';
    my @out;

    if (!defined $request || !ref $request) {
        if (defined $request) {
            1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;
        }
        my $hdr = $more;
        if (ref $more eq 'ARRAY') {
            $hdr = $more->[0];
            bail_out("--- more_headers lacks data for the request")
                if !defined $hdr;
        }
        push @out, _lite_build_one_request($name, $hdr, $request);

    } elsif (ref $request eq 'ARRAY') {
        my $i = 0;
        for my $one (@$request) {
            my $hdr = $more;
            if (ref $more eq 'ARRAY') {
                $hdr = $more->[$i];
                bail_out("--- more_headers lacks data for the ${i}th request")
                    if !defined $hdr;
            }
            if (ref $one eq 'ARRAY') {
                # a request given as packets: sent as one piece here
                $one = join '', map { ref $_ eq 'HASH' ? $_->{value} : $_ }
                                @$one;
            } elsif (ref $one) {
                bail_out("$name - Invalid syntax. $one should be a string "
                         . "or an array of packets.");
            }
            push @out, _lite_build_one_request($name, $hdr, $one);
            $i++;
        }

    } else {
        bail_out("$name - invalid ---request : MUST be string or array "
                 . "of requests");
    }

    return @out;
}

sub _lite_connect {
    my ($name, $timeout) = @_;
    for (my $try = 1; ; $try++) {
        my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                         PeerPort => $ServerPort,
                                         Proto => 'tcp',
                                         Timeout => $timeout);
        return $sock if $sock;
        my $err = $!;

        if (defined $ChildPid && !_lite_is_running($ChildPid)) {
            warn "WARNING: Child process $ChildPid is already gone.\n";
            _lite_no_ending();
            Test::More::fail("$name - Can't connect to $ServerAddr:"
                             . "$ServerPort: $err (aborted)\n");
            return undef;
        }

        my $total = $ConnectFailures ? 20 : 50;
        if ($try > $total) {
            my $msg = "$name - Can't connect to $ServerAddr:$ServerPort: "
                      . "$err (aborted)\n";
            if (++$ConnectFailures < 3) {
                _lite_no_ending();
                Test::More::fail($msg);
                return undef;
            }
            bail_out($msg);
        }

        my $wait = ($SleepTime + $SleepTime * $try) * $try / 2;
        $wait = 1 if $wait > 1;
        if ($wait >= 0.6) {
            warn "$name - Can't connect to $ServerAddr:$ServerPort: $err\n"
                 . "\tRetry connecting after $wait sec\n";
        }
        sleep $wait;
    }
}

# Sends one request and reads until the server closes the connection.  On
# a read timeout the socket is closed; that is a failure unless the block
# says "--- abort", and in any case what arrived so far is the response.
sub _lite_send_request {
    my ($block, $data, $timeout) = @_;
    my $name = $block->name;

    my $sock = _lite_connect($name, $timeout) or return undef;
    $sock->blocking(0);
    local $SIG{PIPE} = 'IGNORE';

    my $sel = IO::Select->new($sock);
    my ($resp, $off, $writing) = ('', 0, 1);

    while (1) {
        my ($rd, $wr) = IO::Select->select($sel, $writing ? $sel : undef,
                                           undef, $timeout);
        if (!$rd && !$wr) {
            next if $! == EINTR;
            close $sock;
            if (!defined $block->abort) {
                _lite_no_ending();
                Test::More::fail("ERROR: client socket timed out - $name\n");
            } else {
                sleep 0.005;
            }
            last;
        }

        if ($wr && @$wr) {
            my $n = syswrite($sock, $data, length($data) - $off, $off);
            if (!defined $n) {
                if ($! != EAGAIN) {
                    warn "write failed: $!\n";
                    $resp = "write failed: $!" if $resp eq '';
                    close $sock;
                    last;
                }
            } else {
                $off += $n;
                $writing = 0 if $off >= length $data;
            }
        }

        if ($rd && @$rd) {
            my $closed;
            while (1) {
                my $n = sysread($sock, my $buf, 4096);
                if (!defined $n) {
                    last if $! == EAGAIN;
                    warn "WARNING: $name - HTTP response read failure: $!";
                    $closed = 1;
                    last;
                }
                if ($n == 0) {
                    $closed = 1;
                    last;
                }
                $resp .= $buf;
            }
            if ($closed) {
                close $sock;
                last;
            }
        }
    }

    return $resp;
}

# Returns ($res, $raw_headers, $left); an empty list when a chunked body is
# broken or incomplete (then a failure has been reported, as Test::Nginx
# does).
sub _lite_parse_response {
    my ($name, $raw, $head_req) = @_;

    my $raw_headers = '';
    $raw_headers = $1 if $raw =~ /(.*?\r\n)\r\n/s;

    my $res = HTTP::Response->parse($raw);
    my $code = $res->code;
    if ($code && $code !~ /^\d+$/) {
        $res->code(undef);
        $code = undef;
    }
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $te  = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my @trailers = $res->header('Trailer');
    my $left;

    if (defined $te && $te eq 'chunked') {
        my $body = $res->content // '';
        my $decoded = '';
        pos($body) = 0;
        while (1) {
            if ($body =~ /\G0[ \t]*\r\n/gc) {
                for my $t (@trailers) {
                    if ($body !~ /\G\Q$t\E: [^\n]*\r\n/gc) {
                        _lite_no_ending();
                        Test::More::fail("$name - invalid trailer data "
                                         . "received (expected $t).");
                        return;
                    }
                }
                if ($body !~ /\G\r\n/gc) {
                    _lite_no_ending();
                    Test::More::fail("$name - invalid chunked data received "
                                     . "(expected CRLF).");
                    return;
                }
                $left = $1 if $body =~ /\G(.+)/gcs;
                last;
            }
            if ($body =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*\r\n/gc) {
                my $size = hex $1;
                my $p = pos $body;
                if (length($body) - $p < $size) {
                    _lite_no_ending();
                    Test::More::fail("$name - invalid chunked data received "
                                     . "(not enought octets for the data "
                                     . "section)");
                    return;
                }
                $decoded .= substr($body, $p, $size);
                pos($body) = $p + $size;
                if ($body !~ /\G\r\n/gc) {
                    _lite_no_ending();
                    Test::More::fail("$name - invalid chunked data received "
                                     . "(expected CRLF).");
                    return;
                }
                next;
            }
            if ($body =~ /\G(.+)/gcs) {
                _lite_no_ending();
                Test::More::fail("$name - invalid chunked body received: $1");
                return;
            }
            _lite_no_ending();
            Test::More::fail("$name - no last chunk found - $body");
            return;
        }
        $res->content($decoded);

    } elsif (defined $len && $len ne '' && $len =~ /^\d+$/) {
        my $body = $res->content // '';
        if (length $body < $len) {
            warn "WARNING: $name - response body truncated: $len expected, "
                 . "but got " . length($body) . "\n" if !$head_req;
        } elsif (length $body > $len) {
            $left = substr $body, $len;
            $res->content(substr $body, 0, $len);
        }
    }

    return ($res, $raw_headers, $left);
}

sub _lite_parse_time {
    my $t = shift;
    return undef if !defined $t;
    $t =~ s/^\s+|\s+$//g;
    if ($t =~ s/([^_a-zA-Z])ms$/$1/) {
        $t = $t / 1000;
    } else {
        $t =~ s/([^_a-zA-Z])s$/$1/;
    }
    return $t;
}

sub _lite_run_requests {
    my ($block, $rep) = @_;
    my $name = $block->name;

    my @reqs = _lite_requests_of($block);
    my $need_array = @reqs > 1;
    my $timeout = _lite_parse_time(scalar $block->timeout) // $Timeout;

    for my $idx (0 .. $#reqs) {
        my $head_req = $reqs[$idx] =~ /^\s*HEAD\s+/ ? 1 : 0;
        my $raw = _lite_send_request($block, $reqs[$idx], $timeout) // '';

        if (!defined $block->ignore_response) {
            _lite_check_response($block, $raw, $head_req, $idx, $rep,
                                 $need_array);
        }

        if ($idx < $#reqs) {
            sleep $block->wait if $block->wait;
            # Test::Nginx checks the error log after every request of an
            # array, each time on what was logged since the previous check
            _lite_check_error_log($block, $rep);
        }
    }

    sleep $block->wait if $block->wait;
    _lite_check_error_log($block, $rep);
}

sub _lite_check_response {
    my ($block, $raw, $head_req, $idx, $rep, $need_array) = @_;
    my $name = $block->name;

    my ($res, $raw_headers, $left) =
        _lite_parse_response($name, $raw, $head_req);

    if (defined $left && length $left) {
        (my $l = $left) =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
        warn "WARNING: $name - unexpected extra bytes after last chunk "
             . "in response: \"$l\"\n";
    }

    _lite_check_code($block, $res, $idx, $need_array);
    _lite_check_raw_headers($block, $raw_headers, $idx, $need_array);
    _lite_check_headers($block, $res, $raw_headers, $idx, $need_array);
    _lite_check_body($block, $res, $idx, $rep, $need_array);
}

# ---------------------------------------------------------------------------
# checks

sub _lite_indexed {
    my ($name, $value, $idx, $need_array) = @_;
    if ($need_array) {
        return $value->[$idx] if ref $value && ref $value eq 'ARRAY';
        bail_out("$name - You asked for many requests, the expected results "
                 . "should be arrays as well.");
    }
    if (ref $value && ref $value eq 'ARRAY') {
        return $value->[0];
    }
    return $value;
}

sub _lite_check_code {
    my ($block, $res, $idx, $need_array) = @_;
    my $name = $block->name;
    my $got = ($res && $res->code) || '';

    if (defined $block->error_code_like) {
        my $pat = _lite_indexed($name, scalar $block->error_code_like, $idx,
                                $need_array);
        Test::More::like($got, qr/$pat/sm, "$name - status code ok");
    } elsif (defined $block->error_code) {
        is($got, _lite_indexed($name, scalar $block->error_code, $idx, $need_array),
           "$name - status code ok");
    } else {
        is($got, 200, "$name - status code ok");
    }
}

sub _lite_check_raw_headers {
    my ($block, $raw_headers, $idx, $need_array) = @_;
    my $name = $block->name;
    $raw_headers //= '';
    if (defined $block->raw_response_headers_like) {
        my $pat = _lite_indexed($name, scalar $block->raw_response_headers_like,
                                $idx, $need_array);
        Test::More::like($raw_headers, qr/$pat/s,
                         "$name - raw resp headers like");
    }
    if (defined $block->raw_response_headers_unlike) {
        my $pat = _lite_indexed($name, scalar $block->raw_response_headers_unlike,
                                $idx, $need_array);
        Test::More::unlike($raw_headers, qr/$pat/s,
                           "$name - raw resp headers unlike");
    }
}

sub _lite_header_spec {
    my $text = shift // '';
    my @out;
    for my $line (split /\n/, $text) {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if ($line =~ s/^!\s*//) {
            push @out, [$line, undef];
        } else {
            my ($k, $v) = split /\s*:\s*/, $line, 2;
            push @out, [$k, $v];
        }
    }
    # a later line for the same header wins, as with Test::Nginx's hash
    my %last = map { $out[$_][0] => $_ } 0 .. $#out;
    return map { $out[$_] } sort { $a <=> $b } values %last;
}

sub _lite_check_headers {
    my ($block, $res, $raw_headers, $idx, $need_array) = @_;
    my $name = $block->name;
    $raw_headers //= '';

    if (defined $block->response_headers) {
        my $spec = _lite_indexed($name, scalar $block->response_headers, $idx,
                                 $need_array);
        for my $h (_lite_header_spec($spec)) {
            my ($key, $val) = @$h;
            if (!defined $val) {
                Test::More::unlike($raw_headers, qr/^\s*\Q$key\E\s*:/ms,
                    "$name - header $key not present in the raw headers");
                next;
            }
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPort/g;
            my $got = $res ? $res->header($key) : undef;
            is($got // '', $val, "$name - header $key ok");
        }

    } elsif (defined $block->response_headers_like) {
        my $spec = _lite_indexed($name, scalar $block->response_headers_like, $idx,
                                 $need_array);
        for my $h (_lite_header_spec($spec)) {
            my ($key, $val) = @$h;
            $val //= '';
            my $got = $res ? $res->header($key) : undef;
            Test::More::like($got // '', qr/^$val$/,
                             "$name - header $key like ok");
        }
    }
}

sub _lite_trim {
    my $s = shift;
    return undef if !defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /gs;
    $s =~ s/\s{2,}/ /gs;
    return $s;
}

sub _lite_check_body {
    my ($block, $res, $idx, $rep, $need_array) = @_;
    my $name = $block->name;

    my $content = $res ? $res->content : undef;
    if (defined $content) {
        $content =~ s/^TE: deflate,gzip;q=0\.3\r\n//gms;
        $content =~ s/^Connection: TE, close\r\n//gms;
    }

    if (defined $block->response_body) {
        my $expected = _lite_indexed($name, scalar $block->response_body, $idx,
                                     $need_array);
        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPort/g;
            $expected = _lite_expand_env($expected, $name);
        }
        my $what = "(repeated req $rep, req $idx)";
        if (ref $expected) {
            Test::More::like($content, $expected,
                             "$name - response_body - like $what");
        } elsif ($NoLongString) {
            is($content, $expected,
               "$name - response_body - response is expected $what");
        } else {
            Test::LongString::is_string($content, $expected,
                "$name - response_body - response is expected $what");
        }

    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $pats = $type eq 'like' ? $block->response_body_like
                                   : $block->response_body_unlike;
        my $pat = _lite_indexed($name, $pats, $idx, $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPort/g;
        my $summary = _lite_trim($content) // '';
        my $desc = "$name - response_body_$type - response is expected "
                   . "($summary)";
        if ($type eq 'like') {
            Test::More::like($content, qr/$pat/s, $desc);
        } else {
            Test::More::unlike($content, qr/$pat/s, $desc);
        }
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $res ? $res->content : undef, $idx, $rep, 0);
    }
}

# the part of the error log written since the previous call
sub _lite_error_log_lines {
    sleep $SleepTime * 3;
    open my $in, '<', $ErrLogFile or return [];
    # TEST_NGINX_CHECK_ACCUM_ERR_LOG: every check sees the block's whole log
    my $accum = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
    seek $in, $ErrLogPos, 0 if $ErrLogPos > 0 && !$accum;
    my @lines = <$in>;
    $ErrLogPos = tell $in if !$accum;
    close $in;
    return \@lines;
}

sub _lite_fmt {
    my $s = shift;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

sub _lite_contains {
    my ($val, $str) = @_;
    return 0 if !defined $val;
    if (ref $val eq 'ARRAY') {
        for (@$val) {
            return 1 if _lite_contains($_, $str);
        }
        return 0;
    }
    return "$val" =~ /\Q$str\E/ ? 1 : 0;
}

sub _lite_patterns {
    my $pats = shift;
    if (!ref $pats) {
        chomp $pats;
        return split /\n+/, $pats;
    }
    return ($pats) if ref $pats eq 'Regexp';
    return @$pats;
}

sub _lite_line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ /$pat/ : index($line, $pat) >= 0;
}

sub _lite_check_error_log {
    my ($block, $rep) = @_;
    my $name = $block->name;
    my $lines = _lite_error_log_lines();
    my %warn_about = (alert => 1, crit => 1, emerg => 1);

    if (defined(my $spec = $block->error_log)) {
        for my $level (keys %warn_about) {
            delete $warn_about{$level} if _lite_contains($spec, "[$level");
        }
        my @pats = _lite_patterns($spec);
        for my $line (@$lines) {
            for my $pat (@pats) {
                next if !defined $pat;
                if (_lite_line_matches($line, $pat)) {
                    Test::More::pass("$name - pattern \"$pat\" matches a line "
                                     . "in error.log (req $rep)");
                    undef $pat;
                }
            }
        }
        for my $pat (grep { defined } @pats) {
            Test::More::fail("$name - pattern \"$pat\" should match a line "
                             . "in error.log (req $rep)");
        }
    }

    if (defined(my $spec = $block->no_error_log)) {
        for my $level (keys %warn_about) {
            delete $warn_about{$level} if _lite_contains($spec, "[$level");
        }
        my @pats = _lite_patterns($spec);
        my %found;
        for my $i (0 .. $#$lines) {
            my $line = $lines->[$i];
            for my $pat (@pats) {
                next if !defined $pat;
                next if !_lite_line_matches($line, $pat);
                _lite_no_ending() if $found{$pat}++;
                my $more = join '', @{$lines}[$i + 1 .. _lite_min($i + 9,
                                                          $#$lines - 1)];
                Test::More::fail("$name - pattern \"" . _lite_fmt($pat)
                    . "\" should not match any line in error.log but matches "
                    . "line \"" . _lite_fmt($line) . "\" (req $rep)\n$more");
            }
        }
        for my $pat (@pats) {
            next if !defined $pat || $found{$pat};
            Test::More::pass("$name - pattern \"" . _lite_fmt($pat)
                             . "\" does not match a line in error.log "
                             . "(req $rep)");
        }
    }

    for my $level (sort keys %warn_about) {
        for my $line (@$lines) {
            warn "WARNING: $name - " . _lite_fmt($line) . "\n"
                if $line =~ /\[\Q$level\E\]/;
        }
    }

    for my $line (@$lines) {
        if ($line =~ /\bAssertion .*?failed\b/) {
            chomp(my $l = $line);
            _lite_no_ending();
            Test::More::fail("$name - $l\n");
        }
    }
}

# Like Test::Nginx: after some failures the final "1..N" line is left out.
sub _lite_no_ending {
    Test::More->builder->no_ending(1);
}

sub _lite_min {
    my ($a, $b) = @_;
    return $a < $b ? $a : $b;
}

1;
