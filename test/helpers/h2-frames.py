#!/usr/bin/python3
"""Hand-crafted HTTP/2 frames against any h2 server, one case at a time.

Each case opens its own connection (h2c with prior knowledge, or TLS with
ALPN h2 and an optional client certificate), sends exactly the frames it
names -- malformed requests, flow-control and flood abuse -- and reports what
the server did as one JSON line:

  {"case": NAME, "status": 400|null, "rst": "PROTOCOL_ERROR"|null,
   "goaway": "ENHANCE_YOUR_CALM"|null, "closed": bool, "followup": 200|null,
   "ok": <well-formed requests of the case answered 200>, "timeout": bool,
   "info": {...case specific...}, "ms": elapsed, "error": null|"..."}

`status` and `rst` are about the case's own stream, `goaway` and `closed`
about the connection; `followup` is the status of a well-formed request sent
on the same connection after a stream-level refusal (null when the
connection was gone or it failed). The request under test carries
`x-case: NAME` so an upstream can tell whether it was forwarded.

Frames are written by hand (HPACK literals without indexing, no Huffman);
only the server's header blocks are decoded, with the hpack module that
ships with python3-h2. Run it with /usr/bin/python3.

  h2-frames.py --port 8080 --authority svc --cases missing_method,te_gzip
  h2-frames.py --port 8443 --tls --cert c.pem --key k.pem --ca ca.pem --all
  h2-frames.py --list
  h2-frames.py --serve     # JSON requests on stdin, one result line each
"""
import argparse
import json
import os
import socket
import ssl
import struct
import sys
import time

import hpack

PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS, S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = range(1, 7)
ERRORS = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED',
          'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM',
          'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED']


def error_name(code):
    return ERRORS[code] if 0 <= code < len(ERRORS) else 'UNKNOWN_%d' % code


# ---- frame and HPACK encoding ----

def frame(ftype, flags, sid, payload=b''):
    return struct.pack('>I', len(payload))[1:] + bytes([ftype, flags]) + struct.pack('>I', sid & 0xffffffff) + payload


def settings_frame(pairs):
    return frame(SETTINGS, 0, 0, b''.join(struct.pack('>HI', k, v) for k, v in pairs))


def rst_frame(sid, code):
    return frame(RST_STREAM, 0, sid, struct.pack('>I', code))


def window_update_frame(sid, increment):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack('>I', increment))


def goaway_frame(last_sid, code, debug=b''):
    return frame(GOAWAY, 0, 0, struct.pack('>II', last_sid, code) + debug)


def ping_frame(payload, ack=False):
    return frame(PING, ACK if ack else 0, 0, payload)


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def b(x):
    return x if isinstance(x, bytes) else x.encode('latin1')


def literal(name, value):
    """A literal header field without indexing, new name, no Huffman: the bytes go as given."""
    name, value = b(name), b(value)
    return b'\x00' + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def header_block(fields):
    return b''.join(literal(n, v) for n, v in fields)


def headers_frames(sid, block, end_stream=True, max_frame=16384):
    """HEADERS plus CONTINUATION frames carrying `block`, END_HEADERS on the last."""
    chunks = [block[i:i + max_frame] for i in range(0, len(block), max_frame)] or [b'']
    out = []
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        if i == 0:
            out.append(frame(HEADERS, (END_STREAM if end_stream else 0) | (END_HEADERS if last else 0), sid, chunk))
        else:
            out.append(frame(CONTINUATION, END_HEADERS if last else 0, sid, chunk))
    return b''.join(out)


def data_frame(sid, payload, end_stream=False):
    return frame(DATA, END_STREAM if end_stream else 0, sid, payload)


# ---- a connection that records what the server does ----

class Target:
    def __init__(self, host='127.0.0.1', port=0, authority='localhost', tls=None, timeout=5.0, linger=1.0, followup_authority=None):
        self.host = host
        self.port = port
        self.authority = authority
        self.tls = tls  # None or {"cert", "key", "ca", "servername"}
        self.timeout = timeout
        self.linger = linger
        self.followup_authority = followup_authority or authority  # for the well-formed requests

    @property
    def scheme(self):
        return 'https' if self.tls else 'http'


class Stream:
    def __init__(self):
        self.status = None
        self.informational = []
        self.headers = None
        self.trailers = None
        self.data = 0
        self.ended = False
        self.rst = None

    @property
    def done(self):
        return self.ended or self.rst is not None


class Conn:
    def __init__(self, target, settings=None, auto_ack=True):
        self.target = target
        self.auto_ack = auto_ack
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 26
        self.decoder.max_allowed_table_size = 1 << 16
        self.streams = {}
        self.server_settings = {}
        self.settings_seen = 0
        self.settings_acks = 0
        self.pings_acked = 0
        self.ping_payloads = set()
        self.goaway = None  # the first GOAWAY: (code, last_sid, debug)
        self.goaways = []  # every GOAWAY's code, in order
        self.goaway_at = None
        self.closed = False
        self.write_failed = False
        self.send_window = 65535
        self.window_updates = {}
        self.next_sid = 1
        self.frames_in = 0
        self.buf = b''
        self.hblock = None  # (sid, flags, bytes) of a header block in progress
        self.decode_error = None
        raw = socket.create_connection((target.host, target.port), timeout=target.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if target.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            if target.tls.get('ca'):
                ctx.load_verify_locations(target.tls['ca'])
            else:
                ctx.verify_mode = ssl.CERT_NONE
            if target.tls.get('cert'):
                ctx.load_cert_chain(target.tls['cert'], target.tls['key'])
            ctx.set_alpn_protocols(['h2'])
            raw = ctx.wrap_socket(raw, server_hostname=target.tls.get('servername') or 'localhost')
            if raw.selected_alpn_protocol() != 'h2':
                raise RuntimeError('ALPN did not select h2 (got %r)' % raw.selected_alpn_protocol())
        self.sock = raw
        pairs = [(S_ENABLE_PUSH, 0)] + list(settings or [])
        self.send(PREFACE + settings_frame(pairs))

    # -- writing --

    def send(self, data, timeout=None):
        """Writes everything or notes why not; returns False when the peer stopped reading or is gone."""
        if self.closed or self.write_failed:
            return False
        self.sock.settimeout(timeout if timeout is not None else self.target.timeout)
        try:
            self.sock.sendall(data)
            return True
        except (socket.timeout, ssl.SSLWantWriteError):
            return False
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.write_failed = True
            return False

    def new_sid(self):
        sid = self.next_sid
        self.next_sid += 2
        return sid

    def request(self, fields, end_stream=True, sid=None, body=None):
        sid = sid if sid is not None else self.new_sid()
        self.next_sid = max(self.next_sid, sid + 2)
        self.streams.setdefault(sid, Stream())
        data = headers_frames(sid, header_block(fields), end_stream=end_stream and body is None)
        if body is not None:
            data += data_frame(sid, body, end_stream=True)
        self.send(data)
        return sid

    def ping(self):
        """Sends a PING; returns a check that holds once its ACK came (every frame before it was processed)."""
        payload = os.urandom(8)
        self.send(ping_frame(payload))
        return lambda: payload in self.ping_payloads

    # -- reading --

    def pump(self, deadline):
        """Reads what arrives before `deadline` (at most one recv) and handles the frames."""
        if self.closed:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            return
        self.sock.settimeout(min(left, 0.5))
        try:
            chunk = self.sock.recv(1 << 16)
        except (socket.timeout, ssl.SSLWantReadError):
            return
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            self.closed = True
            return
        if not chunk:
            self.closed = True
            return
        self.buf += chunk
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[0:3], 'big')
            if len(self.buf) < 9 + length:
                break
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], 'big') & 0x7fffffff
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            self.on_frame(ftype, flags, sid, payload)

    def on_frame(self, ftype, flags, sid, payload):
        self.frames_in += 1
        if ftype == SETTINGS:
            if flags & ACK:
                self.settings_acks += 1
                return
            self.settings_seen += 1
            for i in range(0, len(payload) - 5, 6):
                k, v = struct.unpack('>HI', payload[i:i + 6])
                self.server_settings[k] = v
            if self.auto_ack:
                self.send(frame(SETTINGS, ACK, 0))
        elif ftype == PING:
            if flags & ACK:
                self.pings_acked += 1
                self.ping_payloads.add(payload)
            elif self.auto_ack:
                self.send(ping_frame(payload, ack=True))
        elif ftype == GOAWAY:
            last, code = struct.unpack('>II', payload[:8])
            self.goaways.append(error_name(code))
            if self.goaway is None:
                self.goaway = (code, last & 0x7fffffff, payload[8:200].decode('latin1'))
                self.goaway_at = time.monotonic()
        elif ftype == RST_STREAM:
            self.streams.setdefault(sid, Stream()).rst = struct.unpack('>I', payload[:4])[0]
        elif ftype == WINDOW_UPDATE:
            inc = struct.unpack('>I', payload[:4])[0] & 0x7fffffff
            self.window_updates[sid] = self.window_updates.get(sid, 0) + inc
        elif ftype in (HEADERS, CONTINUATION):
            if ftype == HEADERS:
                if flags & PADDED:
                    pad = payload[0]
                    payload = payload[1:len(payload) - pad]
                if flags & PRIORITY_FLAG:
                    payload = payload[5:]
                self.hblock = (sid, flags, payload)
            elif self.hblock:
                self.hblock = (self.hblock[0], self.hblock[1], self.hblock[2] + payload)
            if flags & END_HEADERS and self.hblock:
                hsid, hflags, block = self.hblock
                self.hblock = None
                self.on_headers(hsid, hflags, block)
        elif ftype == DATA:
            s = self.streams.setdefault(sid, Stream())
            s.data += len(payload)
            if flags & END_STREAM:
                s.ended = True
            if len(payload) and self.auto_ack:
                self.send(window_update_frame(0, len(payload)) + (window_update_frame(sid, len(payload)) if not s.ended else b''))

    def on_headers(self, sid, flags, block):
        s = self.streams.setdefault(sid, Stream())
        try:
            fields = [(n.decode('latin1') if isinstance(n, bytes) else n, v.decode('latin1') if isinstance(v, bytes) else v)
                      for n, v in self.decoder.decode(block, raw=True)]
        except Exception as e:  # noqa: BLE001 - any decoding failure is a finding, not a crash
            self.decode_error = '%s: %s' % (type(e).__name__, e)
            return
        status = next((v for n, v in fields if n == ':status'), None)
        if s.status is None and status is not None and status.isdigit() and 100 <= int(status) < 200:
            s.informational.append(int(status))
        elif s.headers is None:
            s.headers = fields
            s.status = int(status) if status and status.isdigit() else None
        else:
            s.trailers = fields
        if flags & END_STREAM:
            s.ended = True

    def wait(self, pred, timeout=None):
        """Reads until pred() holds, the server ends the connection, or the timeout; returns pred()."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.target.timeout)
        while not pred():
            if self.closed or time.monotonic() >= deadline:
                return pred()
            self.pump(deadline)
        return True

    def gone(self):
        return self.goaway is not None or self.closed

    def wait_stream(self, sid, timeout=None):
        s = self.streams.setdefault(sid, Stream())
        return self.wait(lambda: s.done or self.goaway is not None, timeout)

    def wait_settled(self, timeout=None):
        """Until a PING round trip completes (all earlier frames were handled) or the connection ends."""
        acked = self.ping()
        return self.wait(lambda: acked() or self.gone(), timeout)

    def wait_closed(self, timeout=None):
        return self.wait(lambda: self.closed, timeout)

    def linger(self, r, timeout=1.0):
        """After a GOAWAY: how long until the server closes the connection (None: still open after `timeout`)."""
        if self.goaway is not None and self.wait_closed(timeout):
            r.info['closed_ms_after_goaway'] = round((time.monotonic() - self.goaway_at) * 1000)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- cases ----

CASES = {}


def base_fields(t, name, method='GET', path=None):
    return [(':method', method), (':scheme', t.scheme), (':authority', t.authority), (':path', path or '/c/' + name), ('x-case', name)]


def good_fields(t, tag):
    return [(':method', 'GET'), (':scheme', t.scheme), (':authority', t.followup_authority), (':path', '/ok/' + tag), ('x-probe', tag)]


def replace(fields, name, value):
    return [(n, value if n == name else v) for n, v in fields]


def without(fields, name):
    return [(n, v) for n, v in fields if n != name]


class Result:
    def __init__(self, name):
        self.name = name
        self.status = None
        self.rst = None
        self.followup = None
        self.ok = 0
        self.timeout = False
        self.info = {}


def outcome_of(c, sid, r):
    s = c.streams.get(sid)
    if s is not None:
        r.status = s.status
        r.rst = error_name(s.rst) if s.rst is not None else None
        if s.status == 200 and s.ended:
            r.ok += 1


def followup(c, r):
    """A well-formed request on the same connection after a stream-level refusal."""
    if c.gone() or c.write_failed:
        return
    sid = c.request(good_fields(c.target, r.name))
    c.wait_stream(sid)
    s = c.streams[sid]
    if s.ended and s.status is not None:
        r.followup = s.status
        if s.status == 200:
            r.ok += 1
    elif s.rst is not None:
        r.info['followup_rst'] = error_name(s.rst)


def stream_case(c, r, fields, end_stream=True, frames=None, late=None):
    """Sends one request (HEADERS, then `frames` in the same write, then `late` after the server handled the
    HEADERS), waits for its outcome, then a follow-up if the connection lives."""
    sid = c.new_sid()
    c.streams[sid] = Stream()
    data = headers_frames(sid, header_block(fields), end_stream=end_stream)
    for f in frames or []:
        data += f(sid)
    c.send(data)
    if late:
        c.wait_settled()
        for f in late:
            if c.gone():
                break
            c.send(f(sid))
            c.wait_settled()
    if not c.wait_stream(sid):
        r.timeout = True
    outcome_of(c, sid, r)
    followup(c, r)
    return sid


def malformed(fields_fn, end_stream=True, frames=None, late=None):
    def run(c, r):
        stream_case(c, r, fields_fn(c.target, r.name), end_stream=end_stream, frames=frames, late=late)
    return run


def define(name, kind, fn):
    CASES[name] = (kind, fn)


# -- RFC 9113 §8.3: pseudo-header fields --
define('missing_method', 'malformed', malformed(lambda t, n: without(base_fields(t, n), ':method')))
define('missing_path', 'malformed', malformed(lambda t, n: without(base_fields(t, n), ':path')))
define('missing_scheme', 'malformed', malformed(lambda t, n: without(base_fields(t, n), ':scheme')))
define('dup_method', 'malformed', malformed(lambda t, n: base_fields(t, n)[:1] + [(':method', 'POST')] + base_fields(t, n)[1:]))
define('dup_path', 'malformed', malformed(lambda t, n: base_fields(t, n)[:4] + [(':path', '/other')] + base_fields(t, n)[4:]))
define('dup_scheme', 'malformed', malformed(lambda t, n: base_fields(t, n)[:2] + [(':scheme', t.scheme)] + base_fields(t, n)[2:]))
define('dup_authority', 'malformed', malformed(lambda t, n: base_fields(t, n)[:3] + [(':authority', 'other.example')] + base_fields(t, n)[3:]))
define('pseudo_after_regular', 'malformed', malformed(lambda t, n: without(base_fields(t, n), ':path') + [(':path', '/c/' + n)]))
define('unknown_pseudo', 'malformed', malformed(lambda t, n: base_fields(t, n)[:4] + [(':foo', 'bar')] + base_fields(t, n)[4:]))
define('status_in_request', 'malformed', malformed(lambda t, n: base_fields(t, n)[:4] + [(':status', '200')] + base_fields(t, n)[4:]))
# -- §8.2: field names and connection-specific fields --
define('uppercase_name', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('X-Upper', '1')]))
define('conn_connection', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('connection', 'keep-alive')]))
define('conn_keep_alive', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('keep-alive', 'timeout=5')]))
define('conn_proxy_connection', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('proxy-connection', 'keep-alive')]))
define('conn_transfer_encoding', 'malformed', malformed(lambda t, n: replace(base_fields(t, n), ':method', 'POST') + [('transfer-encoding', 'chunked')],
                                                        end_stream=False, frames=[lambda sid: data_frame(sid, b'0\r\n\r\n', True)]))
define('conn_upgrade', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('upgrade', 'websocket')]))
define('te_gzip', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('te', 'gzip')]))
define('te_trailers_gzip', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('te', 'trailers, gzip')]))


# -- §8.1.1: content-length against DATA --
def post(cl):
    return lambda t, n: replace(base_fields(t, n), ':method', 'POST') + [('content-length', str(cl))]


define('cl_more_one', 'malformed', malformed(post(5), end_stream=False, frames=[lambda sid: data_frame(sid, b'0123456789', True)]))
define('cl_more_split', 'malformed', malformed(post(5), end_stream=False, frames=[lambda sid: data_frame(sid, b'012'), lambda sid: data_frame(sid, b'345', True)]))
define('cl_more_late', 'malformed', malformed(post(5), end_stream=False, late=[lambda sid: data_frame(sid, b'012'), lambda sid: data_frame(sid, b'345', True)]))
define('cl_fewer_one', 'malformed', malformed(post(10), end_stream=False, frames=[lambda sid: data_frame(sid, b'01234', True)]))
define('cl_fewer_split', 'malformed', malformed(post(10), end_stream=False, frames=[lambda sid: data_frame(sid, b'012'), lambda sid: data_frame(sid, b'345', True)]))
define('cl_fewer_late', 'malformed', malformed(post(10), end_stream=False, late=[lambda sid: data_frame(sid, b'012'), lambda sid: data_frame(sid, b'345', True)]))
define('cl_without_data', 'malformed', malformed(post(5)))
# -- §8.2.1: field validity --
define('name_nul', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('x-a\x00b', 'v')]))
define('name_space', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('x a', 'v')]))
define('name_colon_inside', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('x:a', 'v')]))
define('name_empty', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('', 'v')]))
define('value_nul', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('x-a', 'a\x00b')]))
define('value_cr', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('x-a', 'a\rb')]))
define('value_lf', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('x-a', 'a\nb')]))
define('value_crlf_injection', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('x-a', 'a\r\nx-injected: 1')]))
define('value_leading_space', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('x-a', ' v')]))
define('value_trailing_space', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('x-a', 'v ')]))
define('value_trailing_tab', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('x-a', 'v\t')]))
# -- §8.3.1: :path and :authority --
define('path_absolute_uri', 'malformed', malformed(lambda t, n: replace(base_fields(t, n), ':path', 'http://x/c/' + n)))
define('path_no_slash', 'malformed', malformed(lambda t, n: replace(base_fields(t, n), ':path', 'abc')))
define('path_empty', 'malformed', malformed(lambda t, n: replace(base_fields(t, n), ':path', '')))
define('path_space', 'malformed', malformed(lambda t, n: replace(base_fields(t, n), ':path', '/c/a b')))
define('path_asterisk_get', 'malformed', malformed(lambda t, n: replace(base_fields(t, n), ':path', '*')))
define('host_differs', 'malformed', malformed(lambda t, n: base_fields(t, n) + [('host', 'other.example')]))
# -- §8.5: CONNECT (weft does not tunnel) --
define('connect', 'malformed', malformed(lambda t, n: [(':method', 'CONNECT'), (':authority', t.authority if ':' in t.authority else t.authority + ':443'), ('x-case', n)], end_stream=False))


# -- frames on the wrong stream --
def connection_case(build):
    def run(c, r):
        c.wait_settled()
        c.send(build(c))
        if not c.wait_settled():
            r.timeout = True
        # A server that ignores the frame answers the PING: then the connection must still serve.
        if not c.gone():
            r.info['ignored'] = True
            followup(c, r)
    return run


define('headers_stream0', 'malformed', connection_case(lambda c: headers_frames(0, header_block(base_fields(c.target, 'headers_stream0')))))
define('headers_even_stream', 'malformed', connection_case(lambda c: headers_frames(2, header_block(base_fields(c.target, 'headers_even_stream')))))
define('data_idle_stream', 'malformed', connection_case(lambda c: data_frame(5, b'hello', True)))


def data_closed_stream(c, r):
    sid = c.request(good_fields(c.target, 'data_closed_stream-first'))
    c.wait_stream(sid)
    outcome_of(c, sid, r)
    r.info['first'] = r.status
    r.status = None
    r.rst = None
    c.send(data_frame(sid, b'late', True))
    if not c.wait_settled():
        r.timeout = True
    r.rst = error_name(c.streams[sid].rst) if c.streams[sid].rst is not None else None
    if not c.gone():
        r.info['ignored'] = r.rst is None
        followup(c, r)


define('data_closed_stream', 'malformed', data_closed_stream)


def headers_lower_stream_id(c, r):
    """A new stream whose id is lower than one already used: PROTOCOL_ERROR (§5.1.1)."""
    sid = c.request(good_fields(c.target, 'headers_lower_stream_id'), sid=5)
    c.wait_stream(sid)
    if c.streams[sid].status == 200:
        r.ok += 1
    r.info['first'] = c.streams[sid].status
    c.send(headers_frames(3, header_block(base_fields(c.target, 'headers_lower_stream_id'))))
    if not c.wait_settled():
        r.timeout = True
    s = c.streams.get(3)
    if s:
        r.status, r.rst = s.status, error_name(s.rst) if s.rst is not None else None
    if not c.gone():
        r.info['ignored'] = True
        followup(c, r)


define('headers_lower_stream_id', 'malformed', headers_lower_stream_id)


# ---- flow control ----

def held_stream(c, name):
    """A POST whose body never ends: the stream stays open while the upstream waits for the rest."""
    sid = c.request(replace(base_fields(c.target, name), ':method', 'POST'), end_stream=False)
    c.wait_settled()
    return sid


def stream_window_case(increment):
    def run(c, r):
        sid = held_stream(c, r.name)
        c.send(window_update_frame(sid, increment))
        if not c.wait(lambda: c.streams[sid].done or c.gone()):
            r.timeout = True
        outcome_of(c, sid, r)
        if c.streams[sid].rst is None and not c.gone():
            c.send(rst_frame(sid, 8))  # CANCEL: let the held request go before the follow-up
        followup(c, r)
    return run


define('wu_overflow_conn', 'flow', connection_case(lambda c: window_update_frame(0, 0x7fffffff)))
define('wu_overflow_stream', 'flow', stream_window_case(0x7fffffff))
define('wu_zero_conn', 'flow', connection_case(lambda c: window_update_frame(0, 0)))
define('wu_zero_stream', 'flow', stream_window_case(0))


def data_over_window(c, r):
    """More DATA than the server's windows allow, in one write. The server must not have granted more in the
    meantime: aim it at a request the server holds without reading its body (e.g. one a filter delays), or the
    WINDOW_UPDATEs it sends as it consumes make the extra bytes legal by the time they arrive."""
    c.wait(lambda: c.settings_seen > 0)
    c.wait_settled()
    stream_window = c.server_settings.get(S_INITIAL_WINDOW_SIZE, 65535)
    conn_window = 65535 + c.window_updates.get(0, 0)
    allowed = min(stream_window, conn_window)
    r.info['stream_window'] = stream_window
    r.info['conn_window'] = conn_window
    sid = c.request(replace(base_fields(c.target, r.name), ':method', 'POST'), end_stream=False)
    total = allowed + 16384
    frames = []
    sent = 0
    while sent < total:
        n = min(16384, total - sent)
        sent += n
        frames.append(data_frame(sid, b'x' * n, end_stream=sent >= total))
    r.info['sent'] = sent
    c.send(b''.join(frames))
    if not c.wait(lambda: c.streams[sid].done or c.gone()):
        r.timeout = True
    outcome_of(c, sid, r)
    followup(c, r)


define('data_over_window', 'flow', data_over_window)


# ---- floods ----

def other_connection(c, r):
    """A second connection opened before the flood; after it, one well-formed request on it."""
    other = Conn(c.target)
    other.wait_settled()
    return other


def finish_other(other, r):
    sid = other.request(good_fields(other.target, r.name + '-other'))
    other.wait_stream(sid, 10)
    s = other.streams[sid]
    r.info['other_status'] = s.status if s.ended else None
    if s.status == 200 and s.ended:
        r.ok += 1
    other.close()


def flood(make, count, chunk=1000):
    def run(c, r):
        c.wait_settled()
        other = other_connection(c, r)
        c.auto_ack = False  # the flooder reads nothing until it is done
        one = make(c)
        sent = 0
        blocked = False
        while sent < count:
            n = min(chunk, count - sent)
            if not c.send(one * n, timeout=2.0):
                blocked = not c.write_failed
                break
            sent += n
        r.info['sent'] = sent
        r.info['write_blocked'] = blocked
        r.info['write_failed'] = c.write_failed
        finish_other(other, r)
        # Read everything back: the ACKs that were sent, then a GOAWAY or the end, or our own PING's ACK.
        c.auto_ack = True
        acked = c.ping() if not c.write_failed else (lambda: False)
        if not c.wait(lambda: acked() or c.gone(), 15):
            r.timeout = True
        c.linger(r)
        r.info['settings_acks'] = c.settings_acks
        r.info['pings_acked'] = c.pings_acked
    return run


define('settings_flood', 'flood', flood(lambda c: settings_frame([]), 100000))
define('ping_flood', 'flood', flood(lambda c: ping_frame(b'floodfld'), 100000))


def rapid_reset(c, r, count=10000):
    """CVE-2023-44487: HEADERS immediately cancelled by RST_STREAM, over and over, reading nothing."""
    c.wait_settled()
    c.auto_ack = False
    sent = 0
    block = header_block(base_fields(c.target, 'rapid_reset'))
    while sent < count:
        batch = []
        for _ in range(100):
            sid = c.new_sid()
            batch.append(headers_frames(sid, block, end_stream=True) + rst_frame(sid, 8))
        if not c.send(b''.join(batch), timeout=2.0):
            break
        sent += len(batch)
        if c.goaway is not None:
            break
    r.info['sent'] = sent
    c.auto_ack = True
    acked = c.ping() if not c.write_failed else (lambda: False)
    if not c.wait(lambda: acked() or c.gone(), 15):
        r.timeout = True
    c.linger(r)
    r.info['responses'] = sum(1 for s in c.streams.values() if s.status is not None)
    r.info['rst_received'] = sum(1 for s in c.streams.values() if s.rst is not None)


define('rapid_reset', 'flood', rapid_reset)


def continuation_flood(c, r, limit=32 << 20):
    """CVE-2024-27316 class: HEADERS without END_HEADERS, then CONTINUATION frames without end."""
    c.wait_settled()
    sid = c.new_sid()
    first = header_block(base_fields(c.target, 'continuation_flood'))
    c.send(frame(HEADERS, END_STREAM, sid, first))
    sent = len(first)
    i = 0
    blocked = False
    while sent < limit and not c.gone():
        chunk = b''.join(frame(CONTINUATION, 0, sid, literal('x-flood-%06d' % (i + k), 'a' * 16000)) for k in range(16))
        i += 16
        if not c.send(chunk, timeout=2.0):
            blocked = not c.write_failed
            break
        sent += len(chunk)
        c.pump(time.monotonic() + 0.001) if i % 256 == 0 else None
    r.info['bytes_sent'] = sent
    r.info['write_blocked'] = blocked
    # The server must end the connection: wait for the close (a GOAWAY alone may precede it).
    if not c.wait(lambda: c.gone(), 10):
        r.timeout = True
    c.linger(r)
    s = c.streams.get(sid)
    if s:
        r.status, r.rst = s.status, error_name(s.rst) if s.rst is not None else None


define('continuation_flood', 'flood', continuation_flood)


def huge_headers(total, field_size):
    def run(c, r):
        fields = base_fields(c.target, r.name)
        n = max(1, total // field_size)
        fields += [('x-big-%04d' % k, 'b' * field_size) for k in range(n)]
        r.info['header_bytes'] = len(header_block(fields))
        stream_case(c, r, fields)
    return run


define('huge_header_block', 'flood', huge_headers(1 << 20, 8000))
define('huge_single_header', 'flood', huge_headers(100_000, 100_000))
define('many_small_headers', 'flood', huge_headers(10_000 * 4, 4))


def max_concurrent_streams(c, r):
    """Streams beyond the advertised SETTINGS_MAX_CONCURRENT_STREAMS must be refused (REFUSED_STREAM)."""
    c.wait(lambda: c.settings_seen > 0)
    c.wait_settled()
    limit = c.server_settings.get(S_MAX_CONCURRENT_STREAMS)
    r.info['advertised'] = limit
    n = (limit if limit is not None and limit <= 2000 else 1000) + 10
    sids = []
    for k in range(0, n, 100):
        data = b''
        for _ in range(min(100, n - k)):
            sid = c.new_sid()
            c.streams[sid] = Stream()
            sids.append(sid)
            data += headers_frames(sid, header_block(replace(base_fields(c.target, r.name), ':method', 'POST')), end_stream=False)
        c.send(data)
    if not c.wait_settled(10):
        r.timeout = True
    r.info['last_within_limit'] = sids[limit - 1] if limit is not None and limit <= len(sids) else None
    refused = [s for s in sids if c.streams[s].rst == 7]
    other = [s for s in sids if c.streams[s].rst not in (None, 7) or c.streams[s].status is not None]
    r.info['opened'] = len(sids)
    r.info['refused'] = len(refused)
    r.info['first_refused_index'] = sids.index(refused[0]) if refused else None
    r.info['other_outcomes'] = len(other)
    r.info['other_example'] = (c.streams[other[0]].status, c.streams[other[0]].rst) if other else None
    # Let the held requests go, then the connection must still serve.
    c.send(b''.join(rst_frame(s, 8) for s in sids if not c.streams[s].done))
    followup(c, r)


define('max_concurrent_streams', 'flood', max_concurrent_streams)


def client_goaway(c, r):
    """The client says GOAWAY while a request is in flight: that request still completes."""
    sid = held_stream(c, r.name)
    c.send(goaway_frame(0, 0))
    c.wait_settled()
    c.send(data_frame(sid, b'rest of the body', True))
    # The server's own GOAWAY (NO_ERROR, last-stream-id >= sid) ends nothing in flight: wait for the
    # stream's end, its reset, or the connection's close, not merely for a GOAWAY.
    s = c.streams[sid]
    if not c.wait(lambda: s.done or c.closed):
        r.timeout = True
    outcome_of(c, sid, r)
    r.info['goaway_before'] = c.goaway is not None
    r.info['closed_after'] = c.wait_closed(3)


define('client_goaway', 'flood', client_goaway)


def reset_mid_body(c, r):
    """A POST without content-length whose client resets it mid-body (RST_STREAM CANCEL), after the server
    had time to forward the head and the first DATA: the upstream must see an aborted request, never an end."""
    sid = c.request(replace(base_fields(c.target, r.name), ':method', 'POST'), end_stream=False)
    c.send(data_frame(sid, b'partial-body'))
    c.wait_settled()
    time.sleep(0.3)
    c.send(rst_frame(sid, 8))
    if not c.wait_settled():
        r.timeout = True
    s = c.streams[sid]
    r.status, r.rst = s.status, error_name(s.rst) if s.rst is not None else None
    followup(c, r)


define('reset_mid_body', 'flood', reset_mid_body)


def well_formed(c, r):
    """The control: a plain GET is answered 200 (nothing abusive)."""
    stream_case(c, r, good_fields(c.target, 'well_formed'))


define('well_formed', 'control', well_formed)


# ---- running ----

def run_case(name, target):
    r = Result(name)
    started = time.monotonic()
    error = None
    c = None
    try:
        kind, fn = CASES[name]
        c = Conn(target)
        fn(c, r)
        # A write that failed (the server reset the connection, e.g. over TLS) stops the case early:
        # read what the server sent before it closed, its GOAWAY among it.
        if c.write_failed and not c.closed:
            c.wait_closed(target.linger)
        # RFC 9113 §5.4.1: after a GOAWAY for an error, the server MUST close the TCP connection.
        if c.goaway is not None and c.goaway[0] != 0 and not c.closed and 'closed_ms_after_goaway' not in r.info:
            c.linger(r, target.linger)
    except Exception as e:  # noqa: BLE001 - reported in the JSON line
        error = '%s: %s' % (type(e).__name__, e)
    out = {
        'case': name,
        'status': r.status,
        'rst': r.rst,
        'goaway': error_name(c.goaway[0]) if c and c.goaway else None,
        'goaway_last_stream': c.goaway[1] if c and c.goaway else None,
        'goaway_debug': c.goaway[2] if c and c.goaway and c.goaway[2] else None,
        'goaways': c.goaways if c else [],
        'closed': bool(c and c.closed),
        'followup': r.followup,
        'ok': r.ok,
        'timeout': r.timeout,
        'info': r.info,
        'ms': round((time.monotonic() - started) * 1000),
        'error': error or (c.decode_error if c else None),
    }
    if c:
        c.close()
    return out


def target_from(d, defaults):
    t = dict(defaults)
    t.update({k: v for k, v in d.items() if k in ('host', 'port', 'authority', 'tls', 'timeout', 'linger', 'followup_authority') and v is not None})
    return Target(**t)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--authority', default='localhost')
    p.add_argument('--tls', action='store_true')
    p.add_argument('--cert')
    p.add_argument('--key')
    p.add_argument('--ca')
    p.add_argument('--timeout', type=float, default=5.0)
    p.add_argument('--cases', help='comma-separated case names')
    p.add_argument('--kind', help='every case of this kind (malformed, flow, flood, control)')
    p.add_argument('--all', action='store_true')
    p.add_argument('--list', action='store_true')
    p.add_argument('--serve', action='store_true', help='read {"case", "port", ...} JSON lines on stdin')
    a = p.parse_args()
    if a.list:
        for name, (kind, fn) in CASES.items():
            print(json.dumps({'case': name, 'kind': kind}))
        return 0
    defaults = {'host': a.host, 'port': a.port, 'authority': a.authority, 'timeout': a.timeout,
                'tls': {'cert': a.cert, 'key': a.key, 'ca': a.ca} if a.tls else None}
    if a.serve:
        print(json.dumps({'ready': True, 'cases': list(CASES)}), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            print(json.dumps(run_case(req['case'], target_from(req, defaults))), flush=True)
        return 0
    names = a.cases.split(',') if a.cases else [n for n, (k, _) in CASES.items() if a.all or k == a.kind]
    for name in names:
        print(json.dumps(run_case(name, target_from({}, defaults))), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
