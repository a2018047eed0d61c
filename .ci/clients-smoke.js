// ioredis against a kvnode: run by .ci/clients-smoke (node clients-smoke.js PORT,
// the password in $KVSMOKE_PASSWORD, ioredis in NODE_PATH). Exits 1 with the mismatch.
const Redis = require("ioredis");
const port = Number(process.argv[2]);
const password = process.env.KVSMOKE_PASSWORD;
const opts = { host: "127.0.0.1", port, password, maxRetriesPerRequest: 1, commandTimeout: 10000, lazyConnect: false };
const r = new Redis(opts), r2 = new Redis(opts);
const fail = (m) => { console.error("ioredis: " + m); process.exit(1); };
const eq = (what, got, want) => {
  if (JSON.stringify(got) !== JSON.stringify(want)) fail(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
};
async function poll(what, cond, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 5));
  }
}
(async () => {
  eq("PING", await r.ping(), "PONG");
  await r.flushall();

  // Transactions.
  eq("MULTI/EXEC", await r.multi().set("tx:a", "1").incr("tx:n").get("tx:a").exec(),
    [[null, "OK"], [null, 1], [null, "1"]]);
  // WATCH: a write from another connection makes EXEC return null.
  eq("WATCH", await r.watch("w"), "OK");
  await r2.set("w", "theirs");
  eq("EXEC after a conflicting write", await r.multi().set("w", "mine").exec(), null);
  eq("w after the aborted EXEC", await r.get("w"), "theirs");
  await r.watch("w");
  eq("EXEC without conflict", await r.multi().set("w", "mine").exec(), [[null, "OK"]]);
  eq("w after EXEC", await r.get("w"), "mine");
  // A queue-time error aborts the whole transaction.
  let aborted = false;
  try {
    await r.multi().set("tx:abort", "x").call("NOSUCHCOMMAND", "a").exec();
  } catch (e) {
    aborted = /EXECABORT/.test(String(e.message));
  }
  if (!aborted) fail("EXEC with an unknown command queued: want an EXECABORT error");
  eq("EXISTS after EXECABORT", await r.exists("tx:abort"), 0);

  // Expiry.
  eq("SET EX", await r.set("e:ex", "v", "EX", 100), "OK");
  let t = await r.ttl("e:ex");
  if (t < 95 || t > 100) fail(`TTL after SET EX 100: ${t}`);
  eq("EXPIRE", await r.expire("e:ex", 50), 1);
  t = await r.ttl("e:ex");
  if (t < 45 || t > 50) fail(`TTL after EXPIRE 50: ${t}`);
  eq("PERSIST", await r.persist("e:ex"), 1);
  eq("TTL after PERSIST", await r.ttl("e:ex"), -1);
  eq("SET PX", await r.set("e:px", "v", "PX", 200), "OK");
  const pt = await r.pttl("e:px");
  if (pt <= 0 || pt > 200) fail(`PTTL after SET PX 200: ${pt}`);
  await poll("e:px to expire", async () => (await r.exists("e:px")) === 0);
  eq("TTL after expiry", await r.ttl("e:px"), -2);
  await r.set("e:pexpire", "v");
  eq("PEXPIRE", await r.pexpire("e:pexpire", 100), 1);
  await poll("e:pexpire to expire", async () => (await r.get("e:pexpire")) === null);

  // SCAN through scanStream: every key present for the whole scan.
  const want = new Set();
  const p = r.pipeline();
  for (let i = 0; i < 3000; i++) { want.add(`scan:${i}`); p.set(`scan:${i}`, "v"); }
  await p.exec();
  const got = new Set();
  await new Promise((resolve, reject) => {
    const s = r.scanStream({ match: "scan:*", count: 100 });
    s.on("data", (keys) => keys.forEach((k) => got.add(k)));
    s.on("end", resolve);
    s.on("error", reject);
  });
  const missing = [...want].filter((k) => !got.has(k));
  const extra = [...got].filter((k) => !want.has(k));
  if (missing.length || extra.length) fail(`scanStream: ${missing.length} missing (e.g. ${missing.slice(0, 5)}), ${extra.length} extra`);

  // FLUSHALL: refused before AUTH, done after it. RESP2 and no ready check:
  // ioredis's default handshake (HELLO 3, then INFO) is itself refused
  // (NOAUTH) by a node with a password, as by Redis.
  const anon = new Redis({ host: "127.0.0.1", port, protocol: 2, enableReadyCheck: false, maxRetriesPerRequest: 1, commandTimeout: 10000 });
  let refused = false;
  try { await anon.flushall(); } catch (e) { refused = true; }
  if (!refused) fail("FLUSHALL without AUTH succeeded");
  if ((await r.dbsize()) === 0) fail("the refused FLUSHALL flushed");
  await anon.auth(password);
  eq("FLUSHALL after AUTH", await anon.flushall(), "OK");
  eq("DBSIZE after FLUSHALL", await r.dbsize(), 0);
  console.log("ioredis", require("ioredis/package.json").version, "ok");
  for (const c of [r, r2, anon]) c.disconnect();
})().catch((e) => fail(e.stack || String(e)));
