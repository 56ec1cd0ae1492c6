/**
 * A fleet on PostgreSQL, with real processes: the tests' `fleet` helper (keyed manager) and the
 * bundled app server, a throwaway PostgreSQL cluster (test/support/postgres.ts) and a local token
 * endpoint (effect-auth-manager/testing) that answers every refresh at once. It measures
 *   1. refreshes per second: N stale credentials, K keyed replicas each asked for all N at once;
 *      exactly N requests, no refresh token sent twice and every replica ending on every key's
 *      fresh token are checked; the time is until the N-th request (a poll whose key's refresh
 *      failed for now answers with the token held: the bench polls again, as clients do);
 *   2. heap per idle credential: each replica's heap (after a full GC) with its N managers made
 *      and idle, minus its heap before it made any, over N;
 *   3. change propagation: an API-key sign-in through one of 4 app servers → `account/updated` on
 *      the 3 others, p50/p99 (PostgreSQL, then the file store).
 * The 1-minute load average (/proc/loadavg) is recorded with every row: the machine is shared.
 * `npm run bench:fleet` (builds the bundles itself); it prints the table and writes the rows to
 * bench/fleet.json. FLEET_N (1000,10000), FLEET_K (1,2,4,8), FLEET_PARTS (keyed,propagation),
 * FLEET_SIGNINS (30), FLEET_TIMEOUT_S (900, per wait), FLEET_IDLE_TTL_S (60: a replica's unused managers
 * are released after this long, and the heap measured again), FLEET_REFRESHES_AT_ONCE (the keyed
 * manager's `refreshesAtOnce`; its default when unset), FLEET_NODE_OPTIONS (NODE_OPTIONS of the keyed
 * replicas, e.g. `--max-semi-space-size=64`; recorded in each row), FLEET_OUT (bench/fleet.json).
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import pg, { type Client } from "pg"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import buildBundles from "../test/support/bundles.js"
import { issuing } from "../test/support/endpoint.js"
import { chatgptJson } from "../test/support/fixtures.js"
import { startCluster } from "../test/support/postgres.js"
import {
  appServer,
  cleanup,
  endpoint,
  type Message,
  type RunningProcess,
  spawnScript,
  tempHome
} from "../test/support/processes.js"
import { putCredentials as putRows } from "../test/support/putCredentials.js"

const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(",").filter((s) => s !== "")
const sizes = list("FLEET_N", "1000,10000").map(Number)
const replicaCounts = list("FLEET_K", "1,2,4,8").map(Number)
const parts = new Set(list("FLEET_PARTS", "keyed,propagation"))
const signIns = Number(process.env.FLEET_SIGNINS ?? 30)
const timeoutMs = Number(process.env.FLEET_TIMEOUT_S ?? 900) * 1000
const out = process.env.FLEET_OUT ?? join(import.meta.dirname, "fleet.json")
// How long a replica keeps an unused manager: its heap is measured again once they are released.
// Longer than a replica takes to make its N managers (minutes at N = 10,000 on a busy machine): a
// manager released before the heap is read would make the heap per credential look smaller.
const idleTtlMs = Number(process.env.FLEET_IDLE_TTL_S ?? 60) * 1000
// Node's options for the keyed replicas (e.g. a larger young generation: docs/fleet.md).
const nodeOptions = process.env.FLEET_NODE_OPTIONS

const load = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0]!
const log = (text: string) => process.stderr.write(`${text}\n`)
const round = (value: number, digits = 1) => Number(value.toFixed(digits))
const quantile = (values: ReadonlyArray<number>, q: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
}
const claims = (jwt: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8"))

interface Row {
  readonly store: "postgres" | "file"
  readonly K: number
  readonly N: number
  readonly requests: number | null
  readonly refreshes_per_s: number | null
  readonly propagation_p99_ms: number | null
  readonly heap_per_credential_kb: number | null
  /** The 1-minute load average before → after the row's measurement. */
  readonly load: string
  /**
   * Answers (K × N) of the first polls that were the key's fresh token (a poll whose key's refresh
   * failed for now answers with the token it held); the row is exact with N requests, none sent
   * twice, and `fresh_held` = K × N.
   */
  readonly fresh_served?: number
  /** Heap per credential (as `heap_per_credential_kb`) once the idle managers were released. */
  readonly heap_after_release_kb?: number
  /** Replica × key pairs holding the key's fresh token once every replica has answered. */
  readonly fresh_held?: number
  readonly exact?: boolean
  /** The replicas' NODE_OPTIONS, when the row was measured with some (FLEET_NODE_OPTIONS). */
  readonly node_options?: string
}
const rows: Array<Row> = []
let inexact = 0
const record = (row: Row) => {
  rows.push(row)
  log(JSON.stringify(row))
}

// ---- the databases -------------------------------------------------------------------------

// FLEET_PROFILE=DIR: each keyed replica writes a V8 CPU profile into DIR, and the statements'
// totals (pg_stat_statements) are printed after each keyed row.
const profile = process.env.FLEET_PROFILE
let profiled = 0
const cluster = await startCluster(profile === undefined ? [] : ["shared_preload_libraries=pg_stat_statements"])
let databases = 0
const newDatabase = async (label: string) => {
  const name = `bench_${label}_${++databases}`
  const admin = new pg.Client({ connectionString: cluster.url })
  await admin.connect()
  await admin.query(`CREATE DATABASE "${name}"`)
  await admin.end()
  const url = new URL(cluster.url)
  url.pathname = `/${name}`
  const client = new pg.Client({ connectionString: url.toString() })
  client.on("error", () => undefined) // the cluster stops at the end, under a client perhaps still open after a failure
  await client.connect()
  return { url: url.toString(), client }
}

/** Writes credentials as another replica would: one statement, one notification per key. */
const putCredentials = (client: Client, entries: Parameters<typeof putRows>[1]) =>
  putRows((sql, params) => client.query(sql, [...params]), entries)

// ---- 1 and 2: the keyed manager, N credentials on K replicas ---------------------------------

/** Sends `line` to every replica and waits for each one's next JSON answer. */
const ask = <A>(fleet: ReadonlyArray<RunningProcess>, line: string) => {
  const marks = fleet.map((replica) => replica.messages.length)
  for (const replica of fleet) replica.write(`${line}\n`)
  return Promise.all(
    fleet.map((replica, i) =>
      replica.waitFor((m) => (Array.isArray(m) || "heap" in m) && replica.messages.indexOf(m) >= marks[i]!, timeoutMs)
    )
  ) as unknown as Promise<Array<A>>
}

const keyed = async (k: number, n: number) => {
  const database = await newDatabase(`keyed_${k}_${n}`)
  const tokens = await endpoint(issuing)
  const fleet = Array.from({ length: k }, () =>
    spawnScript("fleet", [], {
      EFFECT_AUTH_DATABASE_URL: database.url,
      CODEX_REFRESH_TOKEN_URL_OVERRIDE: tokens.url,
      EFFECT_AUTH_LOG_LEVEL: "WARN",
      ...(nodeOptions === undefined ? {} : { NODE_OPTIONS: nodeOptions }),
      FLEET_KEYS: String(n),
      FLEET_IDLE_TTL_MS: String(idleTtlMs),
      ...(process.env.FLEET_REFRESHES_AT_ONCE === undefined
        ? {}
        : { FLEET_REFRESHES_AT_ONCE: process.env.FLEET_REFRESHES_AT_ONCE }),
      ...(profile === undefined ? {} : { FLEET_CPU_PROFILE: join(profile, `k${k}n${n}-${++profiled}.cpuprofile`) })
    }))
  await Promise.all(
    fleet.map((replica) => replica.waitFor((m) => m.method === "<not json>" && m.params === "ready", 60_000))
  )
  if (profile !== undefined) await database.client.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
  const label = `k${k}n${n}`
  const stale = Array.from(
    { length: n },
    (_, i) => TokenEndpoint.unsignedJwt({ exp: Math.floor((Date.now() + 60_000) / 1000), label, i })
  )
  for (let from = 0; from < n; from += 2_000) {
    await putCredentials(
      database.client,
      stale.slice(from, from + 2_000).map((accessToken, j) => [
        `fleet-${from + j}`,
        chatgptJson({ now: Date.now(), accessToken, refreshToken: `${label}-rt-${from + j}` })
      ])
    )
  }
  const heapBefore = await ask<{ heap: number; live: number }>(fleet, "heap")
  // Every replica makes its N managers, each reading its credential: they are then idle and hold the stale tokens.
  const held = await ask<Array<string | null>>(fleet, "peek")
  if (!held.every((served) => served.every((token, i) => token === stale[i]))) {
    throw new Error(`${label}: the replicas did not read the stale credentials`)
  }
  const heapIdle = await ask<{ heap: number }>(fleet, "heap")
  const perCredential = heapIdle.map((after, i) => (after.heap - heapBefore[i]!.heap) / n / 1024)
  const loadBefore = load()
  const before = await tokens.count()
  const t0 = performance.now()
  // A replica that does not answer in time counts as serving no fresh token.
  const polled = ask<Array<string | null>>(fleet, "poll").catch(() =>
    fleet.map(() => Array<string | null>(n).fill(null))
  )
  // The time is until the endpoint has had N requests: a poll whose key's refresh failed for now
  // (it backs off) answers with the token it holds, before its key is refreshed.
  const requested = tokens.received(before + n, timeoutMs).then(() => performance.now(), () => undefined)
  const answers = await polled
  // Clients poll again and again: a key whose request failed for now (its refresh backs off) is
  // asked for again by the next poll, once a second, as long as some keys have had no request.
  let allRequested = false
  const requestedAt = requested.then((at) => {
    allRequested = true
    return at
  })
  while (!allRequested && performance.now() - t0 < timeoutMs) {
    await Promise.race([requestedAt, new Promise((resolve) => setTimeout(resolve, 1_000))])
    if (!allRequested) await ask(fleet, "poll")
  }
  const elapsed = ((await requestedAt) ?? performance.now()) - t0
  const requests = (await tokens.count()) - before
  const presented = (await tokens.requests()).slice(before).map((request) => request.fields.refresh_token)
  const replayed = presented.length - new Set(presented).size
  if (replayed > 0) log(`  ${replayed} refresh tokens were sent more than once`)
  const freshFor = (token: string | null, j: number) => token !== null && claims(token).rt === `${label}-rt-${j % n}`
  const wrong = answers.flat().filter((token, j) => !freshFor(token, j)).length
  // What the wrong answers were: no token, the stale one, or another.
  const stalePerReplica = answers.map((served) => served.filter((token, i) => token === stale[i]).length)
  const none = answers.flat().filter((token) => token === null).length
  // What every replica holds once the N requests are answered: each write is adopted by the others
  // a moment after it is saved, so this is asked again (once a second, 30 times at most) until all do.
  let endedFresh = 0
  for (let attempt = 0; attempt < 30; attempt++) {
    const ended = await ask<Array<string | null>>(fleet, "peek")
    endedFresh = ended.flat().filter(freshFor).length
    if (endedFresh === k * n) break
    await new Promise((resolve) => setTimeout(resolve, 1_000))
  }
  log(
    `K=${k} N=${n}: ${requests} requests in ${elapsed.toFixed(0)} ms; ${k * n - wrong}/${
      k * n
    } fresh tokens served, ${endedFresh}/${k * n} held at the end`
  )
  // Exact: N requests, no refresh token sent twice, every replica holding every key's fresh token.
  const exact = requests === n && replayed === 0 && endedFresh === k * n
  // The idle release: every manager unused for the idle time is released, and the heap goes back.
  // (A key held lightly is let go within a quarter of its idle time more.)
  await new Promise((resolve) => setTimeout(resolve, idleTtlMs * 1.25 + 2_000))
  const released = await ask<{ heap: number; live: number }>(fleet, "heap")
  const afterRelease = released.map((after, i) => (after.heap - heapBefore[i]!.heap) / n / 1024)
  log(`  after the idle release: ${released.map((r) => r.live).join(", ")} managers alive`)
  if (!exact) {
    inexact++
    // Why: the distinct warnings the replicas logged (messages and problems, never tokens).
    log(`  wrong answers: ${none} without a token; the stale token served per replica: ${stalePerReplica.join(", ")}`)
    const said = new Set(
      fleet.flatMap((replica) =>
        [
          ...replica.stderr().split("\n"),
          ...replica.messages.flatMap((m) => m.method === "<not json>" ? [String(m.params)] : [])
        ].filter((line) => line.includes("level=WARN") || line.includes("level=ERROR"))
          .map((line) =>
            line.replace(/^timestamp=\S+ /, "").replace(/fiber=#\d+ /, "").replace(/credential=\S+ ?/, "").slice(0, 300)
          )
      )
    )
    for (const line of [...said].slice(0, 6)) log(`  ${line}`)
  }
  record({
    store: "postgres",
    K: k,
    N: n,
    requests,
    refreshes_per_s: round(requests / (elapsed / 1000), 0),
    propagation_p99_ms: null,
    heap_per_credential_kb: round(perCredential.reduce((a, b) => a + b, 0) / k, 2),
    heap_after_release_kb: round(afterRelease.reduce((a, b) => a + b, 0) / k, 2),
    load: `${loadBefore} → ${load()}`,
    fresh_served: k * n - wrong,
    fresh_held: endedFresh,
    exact,
    ...(nodeOptions === undefined ? {} : { node_options: nodeOptions })
  })
  if (profile !== undefined) {
    const statements = await database.client.query(
      `SELECT calls, round(total_exec_time) AS ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY total_exec_time DESC LIMIT 12`
    )
    for (const row of (statements as unknown as { rows: Array<Record<string, unknown>> }).rows) {
      log(`  ${row.calls} calls, ${row.ms} ms: ${row.query}`)
    }
    // The profiles are written when the replicas exit by themselves.
    await Promise.all(fleet.map((replica) => replica.close()))
  }
  await cleanup()
  await database.client.end()
}

// ---- 3: propagation through app servers ------------------------------------------------------

const writeAuthFile = (home: string, json: Record<string, unknown>) => {
  const temp = join(home, `.auth.json.bench-${process.pid}`)
  writeFileSync(temp, JSON.stringify(json, null, 2), { mode: 0o600 })
  renameSync(temp, join(home, "auth.json"))
}

const propagation = async (store: "postgres" | "file") => {
  const tokens = await endpoint(issuing)
  const home = tempHome()
  const database = store === "postgres" ? await newDatabase("propagation") : undefined
  const env: Record<string, string> = {
    EFFECT_AUTH_LOG_LEVEL: "WARN",
    ...(database === undefined ? {} : { EFFECT_AUTH_DATABASE_URL: database.url })
  }
  const fresh = chatgptJson({ now: Date.now(), refreshToken: "propagation-rt" })
  if (database === undefined) writeAuthFile(home, fresh)
  // The replicas create the schema as they start: the credential is written then, and adopted by all.
  const group = await Promise.all(
    Array.from({ length: 4 }, () => appServer({ codexHome: home, tokenUrl: tokens.url, env }))
  )
  if (database !== undefined) {
    const marks = group.map((server) => server.messages.length)
    const adopted = group.map((server, j) =>
      server.waitFor((m: Message) => m.method === "account/updated" && server.messages.indexOf(m) >= marks[j]!, 30_000)
    )
    await putCredentials(database.client, [["default", fresh]])
    await Promise.all(adopted)
  }
  const latencies: Array<number> = []
  const loadBefore = load()
  for (let i = 0; i < signIns; i++) {
    const signer = group[i % group.length]!
    const others = group.filter((server) => server !== signer)
    const marks = others.map((server) => server.messages.length)
    const apiKey = `sk-bench-${store}-${i}`
    const t0 = performance.now()
    // Waiting from before the request: each latency is when that replica's announcement arrived.
    const updated = others.map((server, j) =>
      server.waitFor((m: Message) => m.method === "account/updated" && server.messages.indexOf(m) >= marks[j]!, 10_000)
        .then(() => performance.now() - t0)
    )
    const answer = await signer.request("account/login/start", { type: "apiKey", apiKey })
    if (answer.error !== undefined) throw new Error(`sign-in failed: ${answer.error.message}`)
    latencies.push(...await Promise.all(updated))
    for (const server of others) {
      const served = (await server.request("getAuthStatus", { includeToken: true })).result.authToken
      if (served !== apiKey) throw new Error(`${store}: a replica announced the sign-in but does not serve it`)
    }
  }
  log(`${store} propagation: p50 ${quantile(latencies, 0.5).toFixed(1)} ms`)
  record({
    store,
    K: 4,
    N: 1,
    requests: null,
    refreshes_per_s: null,
    propagation_p99_ms: round(quantile(latencies, 0.99)),
    heap_per_credential_kb: null,
    load: `${loadBefore} → ${load()}`
  })
  await cleanup()
  await database?.client.end()
}

try {
  const t = Date.now()
  await buildBundles()
  log(`bundles built in ${Date.now() - t} ms; load ${load()}`)
  if (parts.has("keyed")) { for (const n of sizes) for (const k of replicaCounts) await keyed(k, n) }
  if (parts.has("propagation")) { for (const store of ["postgres", "file"] as const) await propagation(store) }
  writeFileSync(out, `${JSON.stringify(rows, null, 2)}\n`)
  console.log(
    `node ${process.version}; ${new Date().toISOString()}; 2 cores; load = 1-min load average before → after\n`
  )
  console.log(
    "| store | K | N | requests | fresh tokens served | refreshes/s | propagation p99 ms | heap per credential KB | load |"
  )
  console.log("|---|---|---|---|---|---|---|---|---|")
  const cell = (value: number | null) => value === null ? "–" : String(value)
  for (const row of rows) {
    console.log(
      `| ${row.store} | ${row.K} | ${row.N} | ${cell(row.requests)} | ${
        row.fresh_served === undefined ? "–" : `${row.fresh_served}/${row.K * row.N}`
      } | ${cell(row.refreshes_per_s)} | ${cell(row.propagation_p99_ms)} | ${
        cell(row.heap_per_credential_kb)
      } | ${row.load} |`
    )
  }
  log(`whole bench ${((Date.now() - t) / 1000).toFixed(0)} s`)
  if (inexact > 0) {
    log(`${inexact} rows were not exact (a request count other than N, or answers without the fresh token)`)
    process.exitCode = 1
  }
} catch (error) {
  log(String(error instanceof Error ? error.stack : error))
  writeFileSync(out, `${JSON.stringify(rows, null, 2)}\n`)
  process.exitCode = 1
} finally {
  await cleanup()
  await cluster.stop()
}
