# redis-py against a kvnode: run by .ci/clients-smoke (python3 clients-smoke.py PORT,
# the password in $KVSMOKE_PASSWORD). Exits non-zero with the mismatch.
import os, sys, time
import redis

port = int(sys.argv[1])
pw = os.environ["KVSMOKE_PASSWORD"]
r = redis.Redis(host="127.0.0.1", port=port, password=pw, decode_responses=True, socket_timeout=10)
r2 = redis.Redis(host="127.0.0.1", port=port, password=pw, decode_responses=True, socket_timeout=10)

def eq(what, got, want):
    if got != want:
        raise SystemExit(f"redis-py: {what}: got {got!r}, want {want!r}")

def poll(what, cond, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"redis-py: timed out after {seconds}s waiting for {what}")
        time.sleep(0.005)

eq("PING", r.ping(), True)
r.flushall()

# Transactions.
p = r.pipeline(transaction=True)
p.set("tx:a", "1").incr("tx:n").get("tx:a").incrby("tx:n", 5)
eq("MULTI/EXEC", p.execute(), [True, 1, "1", 6])

# WATCH: a write from another connection makes EXEC fail.
with r.pipeline() as p:
    p.watch("w")
    eq("GET under WATCH", p.get("w"), None)
    r2.set("w", "theirs")
    p.multi()
    p.set("w", "mine")
    try:
        p.execute()
        raise SystemExit("redis-py: EXEC after a conflicting write: no WatchError")
    except redis.WatchError:
        pass
eq("w after the aborted EXEC", r.get("w"), "theirs")
# Without a conflict the same transaction applies.
with r.pipeline() as p:
    p.watch("w")
    p.multi()
    p.set("w", "mine")
    eq("EXEC without conflict", p.execute(), [True])
eq("w after EXEC", r.get("w"), "mine")

# A watched key that expires, or is flushed by another client, fails EXEC too.
r.set("w:px", "v", px=50)
with r.pipeline() as p:
    p.watch("w:px")
    poll("w:px to expire", lambda: r2.exists("w:px") == 0)
    p.multi()
    p.set("w:after", "1")
    try:
        p.execute()
        raise SystemExit("redis-py: EXEC after a watched key expired: no WatchError")
    except redis.WatchError:
        pass
r.set("w:flushed", "v")
with r.pipeline() as p:
    p.watch("w:flushed")
    r2.flushall()
    p.multi()
    p.set("w:after", "1")
    try:
        p.execute()
        raise SystemExit("redis-py: EXEC after FLUSHALL removed a watched key: no WatchError")
    except redis.WatchError:
        pass
eq("EXISTS after the aborted EXECs", r.exists("w:after"), 0)

# A queue-time error (unknown command) aborts the whole transaction.
p = r.pipeline(transaction=True)
p.set("tx:abort", "x")
p.execute_command("NOSUCHCOMMAND", "a")
try:
    p.execute()
    raise SystemExit("redis-py: EXEC with an unknown command queued did not fail")
except redis.ResponseError as e:
    if "EXECABORT" not in str(e) and "unknown command" not in str(e).lower():
        raise SystemExit(f"redis-py: EXECABORT expected, got {e}")
eq("EXISTS after EXECABORT", r.exists("tx:abort"), 0)
# A runtime error is that command's reply; the others apply.
p = r.pipeline(transaction=True)
p.set("tx:s", "notanumber").incr("tx:s").set("tx:after", "1")
res = p.execute(raise_on_error=False)
eq("runtime error: first reply", res[0], True)
if not isinstance(res[1], redis.ResponseError):
    raise SystemExit(f"redis-py: INCR of a non-number inside EXEC: got {res[1]!r}, want an error")
eq("runtime error: the rest applied", r.get("tx:after"), "1")

# Expiry.
eq("SET EX", r.set("e:ex", "v", ex=100), True)
t = r.ttl("e:ex")
if not 95 <= t <= 100:
    raise SystemExit(f"redis-py: TTL after SET EX 100: {t}")
eq("EXPIRE", r.expire("e:ex", 50), True)
t = r.ttl("e:ex")
if not 45 <= t <= 50:
    raise SystemExit(f"redis-py: TTL after EXPIRE 50: {t}")
eq("PERSIST", r.persist("e:ex"), True)
eq("TTL after PERSIST", r.ttl("e:ex"), -1)
eq("PERSIST again", r.persist("e:ex"), False)
eq("TTL of a missing key", r.ttl("e:missing"), -2)
eq("SET PX", r.set("e:px", "v", px=200), True)
pt = r.pttl("e:px")
if not 0 < pt <= 200:
    raise SystemExit(f"redis-py: PTTL after SET PX 200: {pt}")
poll("e:px to expire", lambda: r.exists("e:px") == 0)
eq("GET after expiry", r.get("e:px"), None)
eq("TTL after expiry", r.ttl("e:px"), -2)
r.set("e:pexpire", "v")
eq("PEXPIRE", r.pexpire("e:pexpire", 100), True)
poll("e:pexpire to expire", lambda: r.get("e:pexpire") is None)
r.set("e:keep", "v", px=100000)
r.set("e:keep", "w", keepttl=True)
pt = r.pttl("e:keep")
if not 0 < pt <= 100000:
    raise SystemExit(f"redis-py: PTTL after SET KEEPTTL: {pt}")
r.set("e:keep", "x")
eq("TTL after a plain SET", r.ttl("e:keep"), -1)

# SCAN: every key present for the whole scan is returned.
want = {f"scan:{i}" for i in range(3000)}
p = r.pipeline(transaction=False)
for k in want:
    p.set(k, "v")
p.execute()
got = set(r.scan_iter(match="scan:*", count=100))
missing = want - got
if missing or got - want:
    raise SystemExit(f"redis-py: SCAN MATCH scan:*: {len(missing)} missing (e.g. {sorted(missing)[:5]}), {len(got - want)} extra")
allkeys = list(r.scan_iter(count=1000))
if not want <= set(allkeys):
    raise SystemExit("redis-py: SCAN without MATCH missed keys")
eq("DBSIZE", r.dbsize(), len(set(allkeys)))

# FLUSHALL: refused to a client that has not authenticated, done after AUTH.
anon = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=10)
try:
    anon.flushall()
    raise SystemExit("redis-py: FLUSHALL without AUTH succeeded")
except (redis.AuthenticationError, redis.ResponseError):
    pass
if r.dbsize() == 0:
    raise SystemExit("redis-py: the refused FLUSHALL flushed")
anon.auth(pw)
eq("FLUSHALL after AUTH", anon.flushall(), True)
eq("DBSIZE after FLUSHALL", r.dbsize(), 0)
print("redis-py", redis.__version__, "ok")
