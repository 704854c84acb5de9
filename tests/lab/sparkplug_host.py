#!/usr/bin/env python3
"""An independent Sparkplug B host for the lab tests: pysparkplug decodes,
paho carries (a persistent session, so the broker queues what the node
sends while this host reconnects after a broker outage).

Writes one JSON line per message to --out:
  {"t": unix seconds, "type": "NBIRTH"|"NDATA"|"NDEATH", "seq", "bd_seq",
   "metrics": {name: value}, "historical": [names], "timestamps": {name: ms}}
and checks what a host checks: NDATA only after NBIRTH, seq continuity
(NBIRTH restarts it, NDATA is the previous + 1 modulo 256), NDEATH's bdSeq
equal to the NBIRTH's. A broken rule is a line {"violation": "..."}; a
payload pysparkplug cannot decode is {"error": "..."}.

Commands on stdin, one per line (each logged as {"cmd": ..., "t": ...}):
  rebirth   NCMD Node Control/Rebirth = true
  garbage   NCMD that is not protobuf
  unknown   NCMD setting a metric the node does not have
  huge      NCMD of 200 KiB
  online / offline   the primary host's retained STATE
"""
import argparse
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pysparkplug as spb
from pysparkplug import _payload as spb_payload

REBIRTH = "Node Control/Rebirth"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--group", required=True)
    ap.add_argument("--edge", required=True)
    ap.add_argument("--primary", default="")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = open(a.out, "a", buffering=1)
    lock = threading.Lock()

    def log(obj):
        with lock:
            obj.setdefault("t", time.time())
            out.write(json.dumps(obj, default=str) + "\n")

    st = {"birth": None, "expect": None, "bd_seq": None}
    base = f"spBv1.0/{a.group}"

    def on_message(_c, _u, msg):
        try:
            topic = spb.Topic.from_str(msg.topic)
            kind = str(topic.message_type)
            if kind not in ("NBIRTH", "NDATA", "NDEATH"):
                return
            m = spb.Message.from_mqtt_message(msg, birth=st["birth"])
        except Exception as e:  # what a host would reject
            log({"error": f"{msg.topic}: {e!r}"})
            return
        p = m.payload
        rec = {"type": kind, "retained": bool(msg.retain)}
        if kind == "NDEATH":
            bd = p.bd_seq_metric
            rec["bd_seq"] = bd.value
            if bd.name != "bdSeq":
                log({"violation": f"NDEATH metric is {bd.name!r}, not bdSeq"})
            if st["bd_seq"] is not None and bd.value != st["bd_seq"]:
                log({"violation": f"NDEATH bdSeq {bd.value} != NBIRTH bdSeq {st['bd_seq']}"})
            st["expect"] = None
            log(rec)
            return
        metrics = {}
        hist = []
        stamps = {}
        for x in p.metrics:
            metrics[x.name] = x.value
            stamps[x.name] = x.timestamp
            if x.is_historical:
                hist.append(x.name)
        rec.update(seq=p.seq, metrics=metrics, historical=hist, timestamps=stamps)
        if kind == "NBIRTH":
            st["birth"] = p
            st["bd_seq"] = metrics.get("bdSeq")
            rec["bd_seq"] = st["bd_seq"]
            if REBIRTH not in metrics:
                log({"violation": f"NBIRTH without {REBIRTH}"})
        else:
            if st["expect"] is None:
                log({"violation": f"NDATA seq {p.seq} before any NBIRTH"})
            elif p.seq != st["expect"]:
                log({"violation": f"NDATA seq {p.seq}, expected {st['expect']}"})
        st["expect"] = (p.seq + 1) % 256
        log(rec)

    def on_connect(c, _u, _f, rc):
        log({"connected": rc})
        c.subscribe(f"{base}/+/{a.edge}", qos=1)

    c = mqtt.Client(client_id=f"edgereach-test-host-{a.edge}", clean_session=False)
    c.on_message = on_message
    c.on_connect = on_connect
    c.reconnect_delay_set(min_delay=1, max_delay=1)
    c.connect(a.host, a.port, keepalive=10)
    c.loop_start()

    def ncmd(raw):
        c.publish(f"{base}/NCMD/{a.edge}", raw, qos=0)

    def cmd_payload(name, value):
        now = spb.get_current_timestamp()
        metric = spb.Metric(timestamp=now, name=name, datatype=spb.DataType.BOOLEAN, value=value)
        return spb_payload.NCmd(timestamp=now, metrics=(metric,)).encode(include_dtypes=True)

    for line in sys.stdin:
        cmd = line.strip()
        if not cmd:
            continue
        log({"cmd": cmd})
        if cmd == "rebirth":
            ncmd(cmd_payload(REBIRTH, True))
        elif cmd == "garbage":
            ncmd(b"\xff\xfe\xfd not protobuf")
        elif cmd == "unknown":
            ncmd(cmd_payload("Node Control/Reboot", True))
        elif cmd == "huge":
            ncmd(b"\x12\x00" * (100 * 1024))
        elif cmd in ("online", "offline"):
            state = {"online": cmd == "online", "timestamp": spb.get_current_timestamp()}
            c.publish(f"spBv1.0/STATE/{a.primary}", json.dumps(state), qos=1, retain=True)
        else:
            log({"error": f"unknown command {cmd!r}"})
    c.loop_stop()


if __name__ == "__main__":
    main()
