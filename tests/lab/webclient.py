#!/usr/bin/python3
"""A plain HTTP client for the web tests and benchmarks, run inside a lab
namespace (or a private one).

  webclient.py req METHOD URL [NAME:VALUE ...]   body from stdin; prints the
                                                 status, then the body
  webclient.py probe URL COUNT GAP_S [SRC_IP]   COUNT GETs, GAP_S apart, each on
                                                 a new connection (from SRC_IP);
                                                 one line per request, a summary
  webclient.py watch PORT SECONDS               sample `ss` every 100 ms: how long
                                                 each established connection to
                                                 local PORT stayed open
"""
import http.client
import subprocess
import sys
import time
import urllib.parse


def connect(url, source=None):
    u = urllib.parse.urlsplit(url)
    src = (source, 0) if source else None
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10, source_address=src)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return conn, path


def req(method, url, headers):
    body = sys.stdin.buffer.read() if method == "POST" else None
    conn, path = connect(url)
    hdrs = dict(h.split(":", 1) for h in headers)
    hdrs = {k.strip(): v.strip() for k, v in hdrs.items()}
    conn.request(method, path, body=body, headers=hdrs)
    r = conn.getresponse()
    print(r.status)
    loc = r.getheader("Location")
    if loc:
        print("Location: " + loc)
    sys.stdout.write(r.read().decode("utf-8", "replace"))
    return 0


def probe(url, count, gap, source=None):
    lat, ok, failed = [], 0, 0
    for i in range(count):
        start = time.monotonic()
        try:
            conn, path = connect(url, source)
            conn.request("GET", path, headers={"Connection": "close"})
            r = conn.getresponse()
            r.read()
            good = r.status == 200
            conn.close()
        except Exception as e:  # a failed request is a result, not a crash
            good = False
            print(f"req {i} error {e!r}")
        ms = (time.monotonic() - start) * 1000
        lat.append(ms)
        if good:
            ok += 1
        else:
            failed += 1
        print(f"req {i} {'ok' if good else 'fail'} {ms:.1f}ms", flush=True)
        time.sleep(max(0.0, gap - ms / 1000))
    s = sorted(lat)

    def pct(p):
        return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else 0.0

    print(f"summary ok {ok} failed {failed} p50 {pct(50):.1f}ms p99 {pct(99):.1f}ms max {max(s, default=0):.1f}ms")
    return 0


def watch(port, seconds):
    first, last = {}, {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        now = time.monotonic()
        out = subprocess.run(
            ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
            capture_output=True, text=True, timeout=5,
        ).stdout
        for line in out.splitlines():
            f = line.split()
            if len(f) >= 4:
                peer = f[-1]
                first.setdefault(peer, now)
                last[peer] = now
        time.sleep(max(0.0, 0.1 - (time.monotonic() - now)))
    open_s = sorted(last[p] - first[p] for p in last)
    still = sum(1 for p in last if end - last[p] < 0.3)
    med = open_s[len(open_s) // 2] if open_s else 0.0
    print(f"watch conns {len(open_s)} max_open_s {max(open_s, default=0):.2f} "
          f"median_open_s {med:.2f} open_at_end {still}")
    return 0


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "req":
        return req(sys.argv[2], sys.argv[3], sys.argv[4:])
    if len(sys.argv) in (5, 6) and sys.argv[1] == "probe":
        src = sys.argv[5] if len(sys.argv) == 6 else None
        return probe(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), src)
    if len(sys.argv) == 4 and sys.argv[1] == "watch":
        return watch(int(sys.argv[2]), float(sys.argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
