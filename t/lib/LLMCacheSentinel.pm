package LLMCacheSentinel;

# A Sentinel-managed Redis for the Sentinel suites (t/020, t/021): a master,
# a replica and three sentinels (quorum 2), real redis-server processes
# (a sentinel is `redis-server <conf> --sentinel`, as Debian's
# redis-sentinel is) on free loopback ports, started through LLMCacheTest
# so they stop with the test file.  Load LLMCacheTest first.
#
#   my $s = LLMCacheSentinel->start(name => 'mymaster',
#                                   password => 'x', sentinel_password => 'y');
#   $s->wait_ready;               # sentinels agree, the replica is in sync
#   $s->{master_port}, $s->{replica_port}, @{$s->{sentinel_ports}}
#   $s->redis($port, @command)    # a reply: string, undef (nil), array ref;
#                                 # an error reply is a string "-ERR ..."
#   $s->sentinel($i, @command)    # the same, to sentinel $i (0..2)
#   $s->kill_master;              # SIGKILL
#   $s->wait_switch;              # the sentinels name the replica
#   $s->restart_replica;          # the old master back, as a replica
#
# start(monitor_replica => 'other') has the sentinels also monitor the
# replica as a master named 'other' (its ROLE says slave).
#
#   my $port = LLMCacheSentinel::fake($p1, $p2, ...);
#
# starts a fake sentinel on a free port: its n-th SENTINEL
# get-master-addr-by-name answer is 127.0.0.1:$pn (the last one repeats),
# AUTH is +OK, SUBSCRIBE is confirmed; an HTTP request
# `GET /publish/<name>/<old port>/<new port>` to it (proxied by nginx)
# publishes +switch-master "<name> 127.0.0.1 <old> 127.0.0.1 <new>" to its
# subscribers and answers `ok`.

use strict;
use warnings;

use IO::Socket::INET ();
use Time::HiRes qw(sleep time);

sub start {
    my ($class, %o) = @_;
    my $self = bless {
        name              => $o{name} // 'mymaster',
        password          => $o{password},
        sentinel_password => $o{sentinel_password},
        down_after        => $o{down_after} // 1000,
        failover_timeout  => $o{failover_timeout} // 4000,
        dir               => $LLMCacheTest::TmpDir,
        n                 => 0,
    }, $class;

    $self->{master_port} = LLMCacheTest::_free_port();
    $self->{master_pid} = $self->_redis($self->{master_port});
    $self->{replica_port} = LLMCacheTest::_free_port();
    $self->{replica_pid} = $self->_redis($self->{replica_port},
                                         $self->{master_port});

    for my $i (0 .. 2) {
        my $port = LLMCacheTest::_free_port();
        my $conf = "$self->{dir}/sentinel-$port.conf";
        my $name = $self->{name};
        open my $f, '>', $conf or die "$conf: $!\n";
        print $f "port $port\nbind 127.0.0.1\ndir $self->{dir}\n";
        my @more = defined $o{monitor_replica}
                   ? ([$o{monitor_replica}, $self->{replica_port}]) : ();
        for my $m ([$name, $self->{master_port}], @more) {
            my ($n, $p) = @$m;
            print $f "sentinel monitor $n 127.0.0.1 $p 2\n"
                   . "sentinel down-after-milliseconds $n "
                   . "$self->{down_after}\n"
                   . "sentinel failover-timeout $n "
                   . "$self->{failover_timeout}\n";
            print $f "sentinel auth-pass $n $self->{password}\n"
                if defined $self->{password};
        }
        if (defined $self->{sentinel_password}) {
            print $f "requirepass $self->{sentinel_password}\n"
                   . "sentinel sentinel-pass $self->{sentinel_password}\n";
        }
        close $f;
        my $server = LLMCacheTest::_find_in_path('redis-server')
            or die "redis-server not found in PATH\n";
        my $pid = LLMCacheTest::_spawn('redis-sentinel',
                                       "$self->{dir}/sentinel-$port.log",
                                       undef, $server, $conf, '--sentinel');
        push @{$self->{sentinel_ports}}, $port;
        push @{$self->{sentinel_pids}}, $pid;
    }
    for my $i (0 .. 2) {
        _wait(sub { ($self->sentinel($i, 'PING') // '') eq 'PONG' }, 10)
            or die "sentinel $i does not answer:\n"
                   . LLMCacheTest::_slurp(
                       "$self->{dir}/sentinel-$self->{sentinel_ports}[$i].log");
    }
    return $self;
}

# a redis-server on $port (a replica of $of if given), answering PING
sub _redis {
    my ($self, $port, $of) = @_;
    my $server = LLMCacheTest::_find_in_path('redis-server')
        or die "redis-server not found in PATH\n";
    my $n = ++$self->{n};
    my @auth = defined $self->{password}
               ? ('--requirepass', $self->{password},
                  '--masterauth', $self->{password}) : ();
    my $log = "$self->{dir}/sentinel-redis-$n.log";
    my $pid = LLMCacheTest::_spawn('redis-server', $log, undef, $server,
        '--port', $port, '--bind', '127.0.0.1', '--save', '',
        '--appendonly', 'no', '--dir', $self->{dir},
        '--dbfilename', "sentinel-redis-$n.rdb", @auth,
        (defined $of ? ('--replicaof', '127.0.0.1', $of) : ()));
    _wait(sub { (eval { $self->redis($port, 'PING') } // '') eq 'PONG' }, 10)
        or die "redis-server on $port does not answer:\n"
               . LLMCacheTest::_slurp($log);
    return $pid;
}

sub _wait {
    my ($what, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        return 1 if eval { $what->() };
        sleep 0.05;
    }
    return 0;
}

sub _read_reply {
    my $s = shift;
    my $line = <$s>;
    die "no reply\n" if !defined $line;
    $line =~ s/\r\n\z//;
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $type eq '+' || $type eq ':';
    return $line if $type eq '-';
    if ($type eq '$') {
        return undef if $rest < 0;
        my $buf = '';
        while (length($buf) < $rest + 2) {
            my $n = read($s, $buf, $rest + 2 - length($buf), length($buf));
            die "short reply\n" if !$n;
        }
        return substr($buf, 0, $rest);
    }
    if ($type eq '*') {
        return undef if $rest < 0;
        return [map { _read_reply($s) } 1 .. $rest];
    }
    die "bad reply: $line\n";
}

sub _command {
    my ($port, $password, @args) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or die "cannot connect to port $port: $!\n";
    my @cmds = ((defined $password ? (['AUTH', $password]) : ()), [@args]);
    my $reply;
    for my $c (@cmds) {
        my $out = '*' . scalar(@$c) . "\r\n";
        $out .= '$' . length($_) . "\r\n$_\r\n" for @$c;
        print $s $out;
        $reply = _read_reply($s);
    }
    close $s;
    return $reply;
}

sub redis {
    my ($self, $port, @args) = @_;
    return _command($port, $self->{password}, @args);
}

sub sentinel {
    my ($self, $i, @args) = @_;
    return _command($self->{sentinel_ports}[$i], $self->{sentinel_password},
                    @args);
}

sub _hash { my $a = shift; return ref $a ? {@$a} : {} }

# every sentinel names the master, knows the two others and sees the
# replica up and in sync: a failover can happen
sub wait_ready {
    my ($self, $timeout) = @_;
    my $ok = _wait(sub {
        for my $i (0 .. 2) {
            my $addr = $self->sentinel($i, 'SENTINEL',
                                       'get-master-addr-by-name',
                                       $self->{name});
            return 0 if !ref $addr || $addr->[1] != $self->{master_port};
            my $m = _hash($self->sentinel($i, 'SENTINEL', 'MASTER',
                                          $self->{name}));
            return 0 if ($m->{flags} // '') ne 'master'
                        || ($m->{'num-other-sentinels'} // 0) != 2;
            my $r = $self->sentinel($i, 'SENTINEL', 'REPLICAS',
                                    $self->{name});
            return 0 if !grep {
                my $h = _hash($_);
                ($h->{port} // 0) == $self->{replica_port}
                    && ($h->{flags} // '') eq 'slave'
                    && ($h->{'master-link-status'} // '') eq 'ok';
            } @{ref $r ? $r : []};
        }
        return 1;
    }, $timeout // 60);
    return $ok;
}

# the fake sentinel (see above), in a process of its own
sub fake {
    my @answers = @_;
    my $port = LLMCacheTest::_free_port();
    LLMCacheTest::_spawn('fake-sentinel',
                         "$LLMCacheTest::TmpDir/fake-sentinel-$port.log",
                         undef, $^X, "-I$LLMCacheTest::LibDir",
                         '-MLLMCacheSentinel', '-e',
                         'LLMCacheSentinel::fake_main(@ARGV)', $port,
                         @answers);
    _wait(sub { (_command($port, undef, 'PING') // '') eq 'PONG' }, 10)
        or die "the fake sentinel does not answer\n";
    return $port;
}

sub _bulk { return '$' . length($_[0]) . "\r\n$_[0]\r\n" }

sub fake_main {
    my ($port, @answers) = @_;
    require IO::Select;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $port, Proto => 'tcp',
                                  Listen => 16, ReuseAddr => 1)
        or die "listen on $port: $!\n";
    my $sel = IO::Select->new($l);
    my (%in, %subscribed);
    my $asked = 0;
    while (1) {
        for my $fh ($sel->can_read) {
            if ($fh == $l) {
                my $c = $l->accept or next;
                $sel->add($c);
                $in{$c} = '';
                next;
            }
            my $n = sysread($fh, my $chunk, 4096);
            if (!$n) {
                $sel->remove($fh);
                delete $in{$fh};
                delete $subscribed{$fh};
                close $fh;
                next;
            }
            $in{$fh} .= $chunk;
            if ($in{$fh} =~ m{\AGET /publish/([^/ ]+)/(\d+)/(\d+) .*?\r\n\r\n}s) {
                my $msg = "$1 127.0.0.1 $2 127.0.0.1 $3";
                syswrite($_, "*3\r\n" . _bulk('message')
                             . _bulk('+switch-master') . _bulk($msg))
                    for values %subscribed;
                syswrite($fh, "HTTP/1.0 200 OK\r\nContent-Type: text/plain"
                              . "\r\nContent-Length: 3\r\n\r\nok\n");
                $sel->remove($fh);
                delete $in{$fh};
                close $fh;
                next;
            }
            # whole commands: *N then N bulk strings
            while ($in{$fh} =~ /\A\*(\d+)\r\n/) {
                my ($argc, $pos, @args) = ($1, length($&));
                for (1 .. $argc) {
                    my $rest = substr($in{$fh}, $pos);
                    last if $rest !~ /\A\$(\d+)\r\n/;
                    last if length($rest) < length($&) + $1 + 2;
                    push @args, substr($rest, length($&), $1);
                    $pos += length($&) + $1 + 2;
                }
                last if @args < $argc;
                substr($in{$fh}, 0, $pos) = '';
                my $cmd = lc $args[0];
                my $out;
                if ($cmd eq 'sentinel') {
                    my $p = $answers[$asked < @answers ? $asked : -1];
                    $asked++;
                    $out = "*2\r\n" . _bulk('127.0.0.1') . _bulk($p);
                } elsif ($cmd eq 'subscribe') {
                    $subscribed{$fh} = $fh;
                    $out = "*3\r\n" . _bulk('subscribe') . _bulk($args[1])
                           . ":1\r\n";
                } elsif ($cmd eq 'ping') {
                    $out = "+PONG\r\n";
                } elsif ($cmd eq 'auth') {
                    $out = "+OK\r\n";
                } else {
                    $out = "-ERR unknown command\r\n";
                }
                syswrite($fh, $out);
            }
        }
    }
}

sub kill_master {
    my $self = shift;
    kill 'KILL', $self->{master_pid};
    LLMCacheTest::_kill_child($self->{master_pid});   # reaps it
    $self->{dead_port} = $self->{master_port};
    $self->{master_pid} = 0;
}

# the sentinels (all of them) name the replica: it is the master now
sub wait_switch {
    my ($self, $timeout) = @_;
    my $ok = _wait(sub {
        for my $i (0 .. 2) {
            my $addr = $self->sentinel($i, 'SENTINEL',
                                       'get-master-addr-by-name',
                                       $self->{name});
            return 0 if !ref $addr || $addr->[1] != $self->{replica_port};
        }
        return 1;
    }, $timeout // 60);
    return 0 if !$ok;
    @$self{qw(master_port master_pid replica_port replica_pid)} =
        @$self{qw(replica_port replica_pid master_port master_pid)};
    return 1;
}

# the killed master back on its port, as a replica of the new one (as the
# sentinels would reconfigure it)
sub restart_replica {
    my $self = shift;
    my $port = delete $self->{dead_port} or die "no dead master\n";
    $self->{replica_port} = $port;
    $self->{replica_pid} = $self->_redis($port, $self->{master_port});
}

1;
