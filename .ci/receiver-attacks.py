#!/usr/bin/env python3
# On demand, not in CI: the README's hostile-input table, measured against the release receiver:
#   cargo build --release --features receiver --bin plain-connect-receiver
#   python3 .ci/receiver-attacks.py target/release/plain-connect-receiver
import socket, subprocess, time, gzip, sys, os, threading
BIN = sys.argv[1]
PORT = 4417

def varint(n):
    out = b""
    while True:
        b = n & 0x7f; n >>= 7
        if n: out += bytes([b | 0x80])
        else: return out + bytes([b])
def field(num, payload): return varint(num << 3 | 2) + varint(len(payload)) + payload
def fixed64(num, v): return varint(num << 3 | 1) + v.to_bytes(8, "little")
def s_any(s): return field(1, s)
def arr_any(inner): return field(5, field(1, inner))
def logs_req(body_any, n=1): return field(1, field(2, b"".join(field(2, field(5, body_any)) for _ in range(n))))
def span(name, attrs=b""): return field(1, b"\x01"*16) + field(2, b"\x02"*8) + field(5, name) + fixed64(7, 1) + fixed64(8, 2000000) + attrs
def traces_req(sp, svc=b"svc"):
    res = field(1, field(1, field(1, b"service.name") + field(2, s_any(svc))))
    return field(1, res + field(2, field(2, sp)))

def rss(pid, key="VmRSS"):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(key + ":"): return int(l.split()[1]) // 1024
def status(resp):
    try: return int(resp.split(b" ")[1])
    except Exception: return 0
def send(data, read=True, timeout=15):
    s = socket.create_connection(("127.0.0.1", PORT)); s.settimeout(timeout)
    s.sendall(data)
    if not read: return s
    try: s.shutdown(socket.SHUT_WR)
    except OSError: pass
    out = b""
    try:
        while True:
            c = s.recv(65536)
            if not c: break
            out += c
    except Exception: pass
    s.close(); return status(out)
def post(path, body, gz=False):
    enc = b"Content-Encoding: gzip\r\n" if gz else b""
    if gz: body = gzip.compress(body)
    return send(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + enc + b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
def legit():
    t = time.time(); st = post(b"/v1/traces", traces_req(span(b"real"))); return st, round((time.time() - t) * 1000)

out = open("/tmp/plain-connect-receiver-attacks-stdout.txt", "wb")
p = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{PORT}"], stdout=out)
time.sleep(0.5)
print("start RSS MiB", rss(p.pid))
# 1
sts = [send(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\nfffffffffffffffb\r\n") for _ in range(100)]
print("1 chunk overflow x100: statuses", sorted(set(sts)), "then legit", legit())
# 2
held = []
for i in range(63):
    held.append(send(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000000\r\n", read=False))
time.sleep(1)
print("2 63 conns declaring 16 MiB chunks: RSS MiB", rss(p.pid), "legit", legit())
for s in held: s.close()
time.sleep(0.3)
# 3
held = [socket.create_connection(("127.0.0.1", PORT)) for _ in range(64)]
time.sleep(0.5)
print("3 64 idle conns: legit", legit(), "RSS", rss(p.pid))
more = [socket.create_connection(("127.0.0.1", PORT)) for _ in range(300)]
time.sleep(0.5)
print("3b 364 idle conns: legit", [legit() for _ in range(3)])
for s in held + more: s.close()
time.sleep(0.3)
# 3c slowloris: 1 byte/s header
s = socket.create_connection(("127.0.0.1", PORT)); s.settimeout(30)
t = time.time(); resp = b""
try:
    for b in b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaa\r\n":
        s.send(bytes([b])); time.sleep(1)
        s.setblocking(False)
        try:
            c = s.recv(4096)
            if c: resp += c; break
        except BlockingIOError: pass
        s.setblocking(True); s.settimeout(30)
except Exception as e: pass
print("3c slowloris 1 byte/s: answered", status(resp), "after s", round(time.time() - t, 1))
s.close()
# 4
body = s_any(b"x" * (8 << 20))
for _ in range(48): body = arr_any(body)
req = logs_req(body)
print("4 8 MiB string in 48 arrays: gz bytes", len(gzip.compress(req)), "status", post(b"/v1/logs", req, gz=True))
time.sleep(2.5)
t = time.time(); page = send(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
print("  GET / status", page, "ms", round((time.time() - t) * 1000), "peak RSS MiB (VmHWM)", rss(p.pid, "VmHWM"), "RSS", rss(p.pid))
# 5
big = logs_req(s_any(b"y" * (15 << 20)))
sts = [post(b"/v1/logs", big, gz=True) for _ in range(24)]
time.sleep(2.5)
print("5 24 x 15 MiB records: statuses", sorted(set(sts)), "RSS MiB", rss(p.pid), "peak", rss(p.pid, "VmHWM"))
# 6
evil = b"\x1b[2J\x1b]0;owned\x07\xc2\x9b31m"
attr = field(9, field(1, b"http.route") + field(2, s_any(evil)))
print("6 escapes: status", post(b"/v1/traces", traces_req(span(b"n" + evil, attr), svc=evil)), post(b"/v1/logs", logs_req(s_any(evil))))
time.sleep(2.5)
# held ones
print("held: bad request line", send(b"GARBAGE\r\n\r\n"), "gzip bomb", post(b"/v1/traces", b"\x00" * (20 << 20), gz=True), "garbage protobuf", post(b"/v1/traces", b"\xff" * 100), "CL+TE", send(b"POST /v1/traces HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"))
print("final legit", legit(), "RSS", rss(p.pid))
p.terminate(); p.wait(); out.close()
data = open("/tmp/plain-connect-receiver-attacks-stdout.txt", "rb").read()
print("stdout bytes", len(data), "ESC bytes", data.count(b"\x1b"), "BEL", data.count(b"\x07"), "C1 CSI", data.count(b"\xc2\x9b"))
