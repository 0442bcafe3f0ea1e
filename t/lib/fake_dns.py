#!/usr/bin/env python3
"""A tiny DNS responder for the tests (Python 3 standard library only).

    fake_dns.py --records FILE [--port N] [--ttl S]

Listens on UDP 127.0.0.1 (port 0: a free one) and prints "READY <port>".
FILE holds one "<name> <IPv4>" a line; it is read again for every query,
so a test re-points a name by rewriting it.  An A query for a name in the
file gets its addresses (TTL --ttl, default 1 s); another type for a known
name gets an empty answer; an unknown name gets NXDOMAIN.  Each query is
appended to FILE.log as "<name> <type>".
"""

import argparse
import socket
import struct
import sys


def read_records(path):
    records = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    records.setdefault(parts[0].lower().rstrip('.'),
                                       []).append(parts[1])
    except OSError:
        pass
    return records


def parse_question(data):
    labels = []
    pos = 12
    while True:
        n = data[pos]
        pos += 1
        if n == 0:
            break
        labels.append(data[pos:pos + n].decode('ascii', 'replace'))
        pos += n
    qtype, qclass = struct.unpack('!HH', data[pos:pos + 4])
    return '.'.join(labels).lower(), qtype, qclass, data[12:pos + 4]


def answer(data, records, ttl):
    qid, flags = struct.unpack('!HH', data[:4])
    name, qtype, qclass, question = parse_question(data)
    rd = flags & 0x0100
    addrs = records.get(name)
    rcode = 0 if addrs is not None else 3
    rrs = b''
    count = 0
    if addrs and qtype == 1:
        for a in addrs:
            rrs += struct.pack('!HHHIH', 0xc00c, 1, 1, ttl, 4)
            rrs += socket.inet_aton(a)
            count += 1
    header = struct.pack('!HHHHHH', qid, 0x8080 | rd | rcode, 1, count, 0, 0)
    return header + question + rrs, name, qtype


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--records', required=True)
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--ttl', type=int, default=1)
    args = ap.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', args.port))
    print('READY %d' % sock.getsockname()[1], flush=True)

    while True:
        data, peer = sock.recvfrom(4096)
        try:
            reply, name, qtype = answer(data, read_records(args.records),
                                        args.ttl)
        except (IndexError, struct.error):
            continue
        with open(args.records + '.log', 'a') as log:
            log.write('%s %d\n' % (name, qtype))
        sock.sendto(reply, peer)


if __name__ == '__main__':
    sys.exit(main())
