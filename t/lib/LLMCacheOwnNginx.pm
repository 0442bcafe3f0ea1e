package LLMCacheOwnNginx;

# For the plain Test::More suites that drive their own nginx and servers
# (t/022-redis-tls.t, t/025-redis-resolver.t; see t/README.md):
#
#   * certs($dir): a CA, a server certificate (SAN 127.0.0.1, localhost),
#     a client certificate, a certificate for a wrong name (wrong.example)
#     and a second, untrusted CA with a server certificate of its own, made
#     with the openssl CLI; returns a hash of file names,
#   * tls_redis(%opt): Debian's redis-server with --port 0 --tls-port P on
#     (bind => '127.0.0.1', cert => ..., key => ..., auth_clients => 0|1);
#     returns (port, pid, log file),
#   * redis_server(bind => IP, port => P): a clear-text one, (port, pid),
#   * tls_cli($certs, $port, @args): redis-cli --tls with the CA and the
#     client certificate (--insecure for a server started with
#     insecure => 1); returns its output without the last newline,
#   * sniffer($port): a TCP relay to 127.0.0.1:$port that records the
#     first byte of each connection (0x16 opens a TLS handshake); returns
#     (relay port, pid, record file),
#   * Nginx->new(...): its own nginx (prefix, conf, start, stop, test, post,
#     get, error_log); with TEST_NGINX_USE_VALGRIND it runs under valgrind
#     in one process and stop() reports what valgrind found.

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Select ();
use IO::Socket::INET ();
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

use LLMCacheTest ();

# ports whose certificate is not from the CA: redis-cli checks no chain
our %Insecure;

sub _run {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    die "failed: $cmd\n$out" if $? != 0;
    return $out;
}

sub certs {
    my ($dir) = @_;
    my %c = map { $_ => "$dir/$_" } qw(ca.crt ca.key server.crt server.key
        client.crt client.key wrong.crt wrong.key other-ca.crt other-ca.key
        other.crt other.key);
    my $ec = '-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';

    for my $ca ('ca', 'other-ca') {
        _run("openssl req -x509 $ec -days 2 -subj /CN=llm-cache-test-$ca "
             . "-keyout $dir/$ca.key -out $dir/$ca.crt");
    }

    my %leaf = (
        server => ['ca', '/CN=localhost',
                   'subjectAltName=IP:127.0.0.1,DNS:localhost'],
        client => ['ca', '/CN=llm-cache-client',
                   'extendedKeyUsage=clientAuth'],
        wrong  => ['ca', '/CN=wrong.example',
                   'subjectAltName=DNS:wrong.example'],
        other  => ['other-ca', '/CN=localhost',
                   'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    );

    for my $name (sort keys %leaf) {
        my ($ca, $subj, $ext) = @{ $leaf{$name} };
        open my $f, '>', "$dir/$name.ext" or die $!;
        print $f "$ext\n";
        close $f;
        _run("openssl req $ec -subj $subj -keyout $dir/$name.key "
             . "-out $dir/$name.csr");
        _run("openssl x509 -req -in $dir/$name.csr -CA $dir/$ca.crt "
             . "-CAkey $dir/$ca.key -CAcreateserial -days 2 "
             . "-extfile $dir/$name.ext -out $dir/$name.crt");
    }

    chmod 0644, glob "$dir/*";
    return \%c;
}

sub _wait_redis {
    my ($pid, $ping, $log) = @_;
    my $deadline = time + 10;
    while (time < $deadline) {
        die "redis-server exited:\n" . LLMCacheTest::_slurp($log)
            if !LLMCacheTest::_alive($pid);
        my $pong = $ping->();
        return 1 if defined $pong && $pong =~ /^PONG/;
        sleep 0.1;
    }
    die "redis-server does not answer:\n" . LLMCacheTest::_slurp($log);
}

sub tls_redis {
    my (%o) = @_;
    my $dir = $o{dir};
    my $port = $o{port} // LLMCacheTest::_free_port();
    my $name = $o{name} // "tls-$port";
    my $log = "$dir/$name.log";
    $Insecure{$port} = 1 if $o{insecure};
    my $pid = LLMCacheTest::_spawn('redis-server', '/dev/null', undef,
        LLMCacheTest::_find_in_path('redis-server'),
        '--port', 0, '--tls-port', $port, '--bind', $o{bind} // '127.0.0.1',
        '--tls-cert-file', $o{cert}, '--tls-key-file', $o{key},
        '--tls-ca-cert-file', $o{ca},
        '--tls-auth-clients', $o{auth_clients} ? 'yes' : 'no',
        '--save', '', '--appendonly', 'no', '--dir', $dir,
        '--dbfilename', "$name.rdb", '--loglevel', 'verbose',
        '--logfile', $log);
    _wait_redis($pid, sub { tls_cli($o{certs}, $port, 'PING') }, $log);
    return ($port, $pid, $log);
}

sub redis_server {
    my (%o) = @_;
    my $dir = $o{dir};
    my $port = $o{port};
    my $log = "$dir/redis-$o{bind}-$port.log";
    my $pid = LLMCacheTest::_spawn('redis-server', '/dev/null', undef,
        LLMCacheTest::_find_in_path('redis-server'),
        '--port', $port, '--bind', $o{bind}, '--save', '',
        '--appendonly', 'no', '--dir', $dir,
        '--dbfilename', "redis-$o{bind}-$port.rdb", '--logfile', $log);
    _wait_redis($pid, sub { cli($o{bind}, $port, 'PING') }, $log);
    return ($port, $pid);
}

sub tls_cli {
    my ($c, $port, @args) = @_;
    my @cmd = ('redis-cli', '--tls', '--cacert', $c->{'ca.crt'},
               ($Insecure{$port} ? '--insecure' : ()),
               '--cert', $c->{'client.crt'}, '--key', $c->{'client.key'},
               '-h', '127.0.0.1', '-p', $port, @args);
    my $out = _capture(@cmd);
    $out =~ s/\n\z//;
    return $out;
}

sub cli {
    my ($host, $port, @args) = @_;
    my $out = _capture('redis-cli', '-h', $host, '-p', $port, @args);
    $out =~ s/\n\z//;
    return $out;
}

sub _capture {
    my @cmd = @_;
    my $pid = open(my $fh, '-|');
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec { $cmd[0] } @cmd or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return $out;
}

# A relay in a child process: one line per connection accepted, the hex of
# its first byte from the client ("none" if it sent nothing).
sub sniffer {
    my ($target, $dir) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => 0, Proto => 'tcp', Listen => 64, ReuseAddr => 1)
        or die "sniffer: $!";
    my $port = $listen->sockport;
    my $file = "$dir/sniff-$port.txt";
    open my $touch, '>', $file or die $!;
    close $touch;

    my $pid = fork;
    die "fork: $!" if !defined $pid;
    if ($pid) {
        close $listen;
        return ($port, $pid, $file);
    }

    $SIG{TERM} = sub { POSIX::_exit(0) };
    my $sel = IO::Select->new($listen);
    my (%peer, %first);
    while (1) {
        for my $fh ($sel->can_read(1)) {
            if ($fh == $listen) {
                my $c = $listen->accept or next;
                my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                    PeerPort => $target, Proto => 'tcp', Timeout => 5);
                if (!$u) { close $c; next; }
                $peer{$c} = $u;
                $peer{$u} = $c;
                $first{$c} = 1;
                $sel->add($c, $u);
                next;
            }
            next if !$peer{$fh};    # its other end closed it already
            my $n = sysread($fh, my $buf, 65536);
            my $other = $peer{$fh};
            if ($first{$fh}) {
                delete $first{$fh};
                open my $rec, '>>', $file or die $!;
                printf $rec "%s\n", $n ? sprintf('%02x', ord $buf) : 'none';
                close $rec;
            }
            if (!$n) {
                $sel->remove($fh, $other);
                close $fh;
                close $other if $other;
                delete @peer{$fh, $other};
                next;
            }
            syswrite($other, $buf) if $other;
        }
    }
}

# ---------------------------------------------------------------------------

package LLMCacheOwnNginx::Nginx;

use Cwd ();
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use IO::Socket::INET ();

sub new {
    my ($class, %o) = @_;
    my $self = bless {
        bin    => $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx',
        module => $ENV{TEST_NGINX_LOAD_MODULES},
        dir    => $o{dir} // tempdir(CLEANUP => 1),
        port   => $o{port} // LLMCacheTest::_free_port(),
        vg     => $ENV{TEST_NGINX_USE_VALGRIND},
    }, $class;
    chmod 0755, $self->{dir};
    mkdir "$self->{dir}/logs";
    return $self;
}

sub port { $_[0]{port} }
sub dir  { $_[0]{dir} }

# the http{} contents; a server on the port with the provider's locations
sub write_conf {
    my ($self, $http, $locations, $file) = @_;
    $file //= "$self->{dir}/nginx.conf";
    my $d = $self->{dir};
    my $single = $self->{vg} ? "master_process off;\ndaemon off;\n" : '';
    open my $conf, '>', $file or die $!;
    print $conf <<"EOF";
load_module $self->{module};
${single}worker_processes 1;
pid $d/logs/nginx.pid;
error_log $d/logs/error.log info;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    upstream llm_provider { server 127.0.0.1:$LLMCacheTest::ProviderPort; }
$http
    server {
        listen 127.0.0.1:$self->{port};
        location = /__stats { proxy_pass http://llm_provider/__stats; }
        location /_llm/ {
            internal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_pass http://llm_provider/;
        }
$locations
    }
}
EOF
    close $conf;
    return $file;
}

# nginx -t: (exit status, output)
sub test_conf {
    my ($self, $file) = @_;
    my $out = LLMCacheOwnNginx::_capture($self->{bin}, '-t', '-p',
        "$self->{dir}/", '-c', $file, '-e', "$self->{dir}/logs/t.log");
    return ($? >> 8, $out);
}

sub start {
    my ($self) = @_;
    my $d = $self->{dir};
    unlink "$d/logs/nginx.pid";
    if ($self->{vg}) {
        my @opts = qw(--tool=memcheck --leak-check=full --show-possibly-lost=no
                      --errors-for-leak-kinds=definite --num-callers=50
                      --error-exitcode=99);
        push @opts, "--suppressions=$LLMCacheTest::RepoRoot/valgrind.suppress"
            if -f "$LLMCacheTest::RepoRoot/valgrind.suppress";

        # stock nginx's own, in every single-process run (as the runners)
        my $bin = Cwd::abs_path($self->{bin}) // $self->{bin};
        open my $supp, '>', "$d/nginx.supp" or die $!;
        print $supp <<"EOS";
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
EOS
        close $supp;
        push @opts, "--suppressions=$d/nginx.supp";
        my $pid = fork;
        die "fork: $!" if !defined $pid;
        if ($pid == 0) {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>', '/dev/null';
            { no warnings 'exec';
              exec 'valgrind', '-q', @opts, "--log-file=$d/logs/valgrind.log",
                   $self->{bin}, '-p', "$d/", '-c', "$d/nginx.conf"; }
            POSIX::_exit(127);
        }
        $self->{vgpid} = $pid;
    } else {
        system($self->{bin}, '-p', "$d/", '-c', "$d/nginx.conf") == 0
            or return 0;
    }
    my $deadline = time + ($self->{vg} ? 60 : 10);
    while (time < $deadline) {
        my ($status) = $self->get('/__stats');
        return 1 if $status == 200;
        sleep 0.1;
    }
    return 0;
}

sub master {
    my ($self) = @_;
    open my $f, '<', "$self->{dir}/logs/nginx.pid" or return 0;
    my $pid = <$f> // 0;
    close $f;
    chomp $pid;
    return $pid;
}

# stops it; under valgrind: (1, '') if valgrind found nothing, else
# (0, what it said)
sub stop {
    my ($self) = @_;
    my $master = $self->master;
    kill 'QUIT', $master if $master;
    my $deadline = time + ($self->{vg} ? 60 : 10);
    if ($self->{vg}) {
        my $pid = delete $self->{vgpid};
        while (time < $deadline) {
            my $r = waitpid($pid, WNOHANG);
            if ($r == $pid) {
                my $status = $? >> 8;
                my $log = LLMCacheTest::_slurp("$self->{dir}/logs/valgrind.log");
                return ($status != 99 && $log !~ /\S/ ? 1 : 0, $log);
            }
            sleep 0.1;
        }
        kill 'KILL', $pid;
        waitpid($pid, 0);
        return (0, 'valgrind did not exit');
    }
    while ($master && time < $deadline) {
        1 while waitpid(-1, WNOHANG) > 0;
        last if !kill(0, $master);
        sleep 0.05;
    }
    return (1, '');
}

sub error_log {
    my ($self) = @_;
    return LLMCacheTest::_slurp("$self->{dir}/logs/error.log");
}

sub request {
    my ($self, $raw) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $self->{port}, Proto => 'tcp', Timeout => 30)
        or return (0, '', '');
    print $s $raw;
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($cache) = $resp =~ m{^X-LLM-Cache: (\S+)\r$}mi;
    my (undef, $body) = split /\r\n\r\n/, $resp, 2;
    return ($status // 0, $cache // '', $body // '');
}

sub get {
    my ($self, $path) = @_;
    my ($status, undef, $body) = $self->request(
        "GET $path HTTP/1.0\r\nHost: t\r\n\r\n");
    return ($status, $body);
}

# POST a chat request with a credential; (status, X-LLM-Cache, body)
sub post {
    my ($self, $body, $path) = @_;
    $path //= '/v1/chat/completions';
    return $self->request("POST $path HTTP/1.0\r\nHost: t\r\n"
        . "Authorization: Bearer sk-test\r\n"
        . "Content-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body");
}

sub calls {
    my ($self) = @_;
    my (undef, $body) = $self->get('/__stats');
    return $body =~ /calls=(\d+)/ ? $1 : -1;
}

1;
