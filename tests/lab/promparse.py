#!/usr/bin/python3
"""Parse Prometheus text format from stdin with the reference Python parser
(prometheus_client.parser); print one line per sample and a summary, exit 1
on any parse error."""
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    families = samples = 0
    try:
        for fam in text_string_to_metric_families(text):
            families += 1
            if fam.type not in ("counter", "gauge"):
                print(f"unexpected type {fam.type} for {fam.name}", file=sys.stderr)
                return 1
            for s in fam.samples:
                samples += 1
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                print(f"sample {s.name} {{{labels}}} {s.value}")
    except Exception as e:  # the parser raises ValueError and friends
        print(f"parse error: {e!r}", file=sys.stderr)
        return 1
    print(f"families {families} samples {samples}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
