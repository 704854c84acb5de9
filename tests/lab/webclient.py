#!/usr/bin/python3
"""A plain HTTP client for the web tests and benchmarks, run inside a lab
namespace (or a private one).

  webclient.py req METHOD URL [NAME:VALUE ...]   body from stdin; prints the
                                                 status, then the body
  webclient.py probe URL COUNT GAP_S            COUNT GETs, GAP_S apart, each on
                                                 a new connection; prints one
                                                 line per request and a summary
"""
import http.client
import sys
import time
import urllib.parse


def connect(url):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
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


def probe(url, count, gap):
    lat, ok, failed = [], 0, 0
    for i in range(count):
        start = time.monotonic()
        try:
            conn, path = connect(url)
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


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "req":
        return req(sys.argv[2], sys.argv[3], sys.argv[4:])
    if len(sys.argv) == 5 and sys.argv[1] == "probe":
        return probe(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
