// ioredis `sentinels:` against a kvnode cluster: run by .ci/sentinel-smoke
// (node sentinel-smoke.js NAME PORT:PID,..., ioredis in NODE_PATH). It finds
// the leader through the members' SENTINEL commands, writes, SIGKILLs the
// leader's process, and keeps writing through the same client until the new
// leader acknowledges; then every acknowledged write must read back (the
// cluster runs in sync mode). Exits 1 with what went wrong.
const Redis = require("ioredis");
const name = process.argv[2];
const pids = new Map(process.argv[3].split(",").map((pp) => pp.split(":").map(Number)));
const fail = (m) => { console.error("ioredis: " + m); process.exit(1); };
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const sentinels = [...pids.keys()].map((port) => ({ host: "127.0.0.1", port }));

async function masterPort() {
  for (const { port } of sentinels) {
    const c = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
    try {
      await c.connect();
      const a = await c.call("sentinel", "get-master-addr-by-name", name);
      if (a) return Number(a[1]);
    } catch (e) {
      // a dead member: ask the next
    } finally {
      c.disconnect();
    }
  }
  return 0;
}

(async () => {
  const r = new Redis({ sentinels, name, maxRetriesPerRequest: 1, commandTimeout: 2000,
    sentinelRetryStrategy: () => 50, retryStrategy: () => 50 });
  r.on("error", () => {}); // reconnects are expected; each command's error is handled below
  const port = await masterPort();
  if (!pids.has(port)) fail(`SENTINEL names :${port}, not a member`);
  const acked = [];
  for (let i = 0; i < 50; i++) {
    await r.set(`js:${i}`, String(i));
    acked.push(i);
  }
  process.kill(pids.get(port), "SIGKILL");
  const t0 = Date.now();
  let first = null;
  const errors = new Set();
  for (let i = 50; acked.length < 150; ) {
    if (Date.now() - t0 > 30000) fail(`no new leader took writes within 30 s of the kill (errors seen: ${[...errors]})`);
    try {
      await r.set(`js:${i}`, String(i));
    } catch (e) {
      errors.add(String(e.message).split(" ")[0]);
      await sleep(20);
      continue;
    }
    if (first === null) first = (Date.now() - t0) / 1000;
    acked.push(i);
    i++;
  }
  const next = await masterPort();
  if (next === port || next === 0) fail(`SENTINEL names :${next} after the kill of :${port}`);
  for (const k of acked) {
    const got = await r.get(`js:${k}`);
    if (got !== String(k)) fail(`js:${k} is ${got} after the failover, want ${k}: an acknowledged write was lost`);
  }
  console.log(`ioredis sentinels: leader :${port} killed; first write acknowledged by :${next} ${first.toFixed(2)} s later; ` +
    `${acked.length} acknowledged writes all read back (retried on ${[...errors].join(", ")})`);
  r.disconnect();
})().catch((e) => fail(e.stack || String(e)));
