#!/usr/bin/env python3
"""Samples idle footprint of running processes (used by bench/footprint.sh).

    footprint-sample.py WARMUP WINDOW SLICES NAME=PID [NAME=PID ...]

Waits WARMUP seconds, then splits WINDOW seconds into SLICES slices. Per slice
and process: CPU time (sum of /proc/PID/task/*/schedstat run time) as a share
of one core, and wakeups per second (times scheduled onto a CPU, the third
schedstat field). Per-thread deltas are used so that threads ending inside a
slice do not make the sums go backwards. Prints one line per process: RSS at
the end (VmRSS, KiB), then median/min/max of CPU % and wakeups/s over slices.
"""

import os
import statistics
import sys
import time


def threads(pid):
    """{tid: (run_ns, timeslices)} for the live threads of pid."""
    out = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                run_ns, _wait_ns, slices = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
        out[tid] = (run_ns, slices)
    return out


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def delta(before, after):
    run = wake = 0
    for tid, (r1, s1) in after.items():
        r0, s0 = before.get(tid, (0, 0))
        run += r1 - r0
        wake += s1 - s0
    return run, wake


def spread(values):
    return statistics.median(values), min(values), max(values)


def main():
    warmup, window, slices = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    procs = [arg.split("=", 1) for arg in sys.argv[4:]]
    time.sleep(warmup)
    cpu = {name: [] for name, _ in procs}
    wake = {name: [] for name, _ in procs}
    rss = {name: [] for name, _ in procs}
    prev = {name: threads(pid) for name, pid in procs}
    t_prev = time.monotonic()
    for _ in range(slices):
        time.sleep(window / slices)
        now = time.monotonic()
        dt = now - t_prev
        for name, pid in procs:
            cur = threads(pid)
            run_ns, wakes = delta(prev[name], cur)
            cpu[name].append(100.0 * run_ns / 1e9 / dt)
            wake[name].append(wakes / dt)
            rss[name].append(rss_kib(pid))
            prev[name] = cur
        t_prev = now
    for name, _ in procs:
        c, w = spread(cpu[name]), spread(wake[name])
        print(
            f"{name} {rss[name][-1]} {statistics.median(rss[name]):.0f} "
            f"{c[0]:.3f} {c[1]:.3f} {c[2]:.3f} {w[0]:.2f} {w[1]:.2f} {w[2]:.2f}"
        )


if __name__ == "__main__":
    main()
