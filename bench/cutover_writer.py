#!/usr/bin/env python3
"""The application of the write-freeze benchmark (bench/cutover_bench.sh).

Plays seed 004's chronicle-service: while the simulated cluster says the
Deployment has replicas, a pgbench (about RATE transactions a second, each one
INSERT into `writes`) writes to the PostgreSQL server the chronicle-db
Service selects; when the Deployment is scaled to 0 the pgbench is stopped
(SIGKILL: its pods are gone), and when it comes back it writes wherever the Service
points then. It polls the simulator's API every 20 ms, as fast as a real
application's pods would notice, and never decides anything else.

  cutover_writer.py SIM_URL BLUE_PORT GREEN_PORT DATABASE RATE LOG

Runs until SIGTERM; pgbench's output goes to LOG. The freeze is computed
afterwards from the rows themselves (each row carries the port of the server
that accepted it and clock_timestamp()), not from this process.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

SCRIPT = "INSERT INTO writes (port) VALUES (inet_server_port());\n"


def get(url):
    with urllib.request.urlopen(url, timeout=2) as r:
        return json.load(r)


def main():
    sim, blue, green, db, rate, log = sys.argv[1:7]
    script = os.path.join(os.path.dirname(os.path.abspath(log)), "writer.sql")
    with open(script, "w") as f:
        f.write(SCRIPT)
    out = open(log, "ab")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    proc, port = None, None

    def end_pgbench():
        nonlocal proc, port
        if proc:
            proc.kill()  # the pods are gone (pgbench ignores SIGINT and SIGTERM while it runs)
            proc.wait()
            out.write(b"== pgbench on port %s ended (exit %d)\n" % (port.encode(), proc.returncode))
            out.flush()
        proc, port = None, None

    while not stop:
        try:
            app = get(sim + "/apis/apps/v1/namespaces/dsm/deployments/chronicle-service")
            svc = get(sim + "/api/v1/namespaces/dsm/services/chronicle-db")
        except Exception:
            time.sleep(0.02)
            continue
        want = None
        if app.get("spec", {}).get("replicas", 0) > 0:
            on_green = svc.get("spec", {}).get("selector", {}).get("app") == "chronicle-db-v17"
            want = green if on_green else blue
        if proc and proc.poll() is not None:  # pgbench gave up (an error): say so, start again
            out.write(b"== pgbench on port %s exited %d\n" % (port.encode(), proc.returncode))
            proc, port = None, None
        if want != port:
            end_pgbench()
            if want:
                out.write(b"== pgbench to port %s\n" % want.encode())
                out.flush()
                proc = subprocess.Popen(
                    ["pgbench", "-n", "-c", "2", "-j", "1", "-R", rate, "-T", "86400", "-f", script,
                     "-h", "127.0.0.1", "-p", want, db],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                port = want
        time.sleep(0.02)
    end_pgbench()


if __name__ == "__main__":
    main()
