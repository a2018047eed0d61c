# redis-py's Sentinel against a kvnode cluster: run by .ci/sentinel-smoke
# (python3 sentinel-smoke.py NAME PORT:PID,...). It finds the leader through
# the members' SENTINEL commands, writes, SIGKILLs the leader's process, and
# keeps writing through the same Sentinel-managed client until the new
# leader acknowledges; then every acknowledged write must read back (the
# cluster runs in sync mode). Exits 1 with what went wrong.
import os
import signal
import sys
import time

import redis
from redis.sentinel import Sentinel

name = sys.argv[1]
pids = dict(tuple(map(int, pp.split(":"))) for pp in sys.argv[2].split(","))


def fail(msg):
    print("redis-py: " + msg, file=sys.stderr)
    sys.exit(1)


s = Sentinel([("127.0.0.1", p) for p in pids], socket_timeout=1.0)
m = s.master_for(name, socket_timeout=1.0)
host, port = s.discover_master(name)
if int(port) not in pids:
    fail(f"SENTINEL names {host}:{port}, not a member")
acked = []
for i in range(50):
    m.set(f"py:{i}", i)
    acked.append(i)

os.kill(pids[int(port)], signal.SIGKILL)
t0 = time.monotonic()
first = None
errors = set()
i = 50
while len(acked) < 150:
    if time.monotonic() - t0 > 30:
        fail(f"no new leader took writes within 30 s of the kill (errors seen: {sorted(errors)})")
    try:
        m.set(f"py:{i}", i)
    except redis.RedisError as e:
        # Connection refused (the dead leader), READONLY, TRYAGAIN or no
        # master known while the cluster elects: retry, as an application
        # does.
        errors.add(type(e).__name__)
        time.sleep(0.02)
        continue
    if first is None:
        first = time.monotonic() - t0
    acked.append(i)
    i += 1

nhost, nport = s.discover_master(name)
if int(nport) == int(port):
    fail(f"SENTINEL still names the killed leader {port}")
for k in acked:
    got = m.get(f"py:{k}")
    if got != str(k).encode():
        fail(f"py:{k} is {got!r} after the failover, want {k}: an acknowledged write was lost")
print(f"redis-py Sentinel: leader :{port} killed; first write acknowledged by :{nport} {first:.2f} s later; "
      f"{len(acked)} acknowledged writes all read back (retried on {sorted(errors)})")
