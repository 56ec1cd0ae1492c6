/**
 * A fleet on PostgreSQL next to K processes on one CODEX_HOME, with real processes: the bundled
 * app server and the tests' `fleet` helper (keyed manager), a throwaway PostgreSQL cluster
 * (test/support/postgres.ts) and a local token endpoint (effect-auth-manager/testing). It measures
 *   1. requests to the endpoint and time to a fresh token when K = 1, 2, 4, 8 replicas are asked
 *      for a token at once on a stale credential (PostgreSQL, then the file store);
 *   2. change propagation: an API-key sign-in through one replica → `account/updated` (the new
 *      snapshot adopted) on the 3 others, p50/p99;
 *   3. refreshes per second for N = 10, 100 stale credentials on 1 and 4 keyed replicas.
 * The 1-minute load average (/proc/loadavg) is printed with every result: the machine is shared.
 * `npm run bench:fleet` (builds the bundles itself). FLEET_ROUNDS (5), FLEET_SIGNINS (30).
 */
import { HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { readFileSync, renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import pg, { type Client } from "pg"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import buildBundles from "../test/support/bundles.js"
import { chatgptJson } from "../test/support/fixtures.js"
import { startCluster } from "../test/support/postgres.js"
import { putCredentials as putRows } from "../test/support/putCredentials.js"
import { appServer, cleanup, endpoint, type Message, type RunningProcess, spawnScript, tempHome } from "../test/support/processes.js"

const rounds = Number(process.env.FLEET_ROUNDS ?? 5)
const signIns = Number(process.env.FLEET_SIGNINS ?? 30)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const load = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0]!
const log = (text: string) => process.stderr.write(`${text}\n`)
const ms = (value: number) => value < 10 ? value.toFixed(1) : value.toFixed(0)
const quantile = (values: ReadonlyArray<number>, q: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
}
const claims = (jwt: string): Record<string, unknown> => JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8"))

/** A token endpoint that accepts any refresh token: a new access token (1 h, carrying the refresh token it answered) each time. */
const issuing: TokenEndpoint.Behaviour = (request) =>
  Effect.sync(() =>
    HttpServerResponse.unsafeJson({
      token_type: "Bearer",
      access_token: TokenEndpoint.unsignedJwt({ exp: Math.floor(Date.now() / 1000) + 3600, rt: request.fields.refresh_token }),
      refresh_token: `${request.fields.refresh_token}-next`,
      expires_in: 3600
    })
  )

/** A credential whose access token expires in 60 s: stale (inside the 5 min window), so the next poll refreshes it. */
let made = 0
const staleCredential = (label: string) => {
  const n = ++made
  const accessToken = TokenEndpoint.unsignedJwt({ exp: Math.floor((Date.now() + 60_000) / 1000), n })
  return { json: chatgptJson({ now: Date.now(), accessToken, refreshToken: `${label}-rt-${n}` }), accessToken }
}

// ---- the databases -------------------------------------------------------------------------

const cluster = await startCluster()
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

const writeAuthFile = (home: string, json: Record<string, unknown>) => {
  const temp = join(home, `.auth.json.bench-${process.pid}`)
  writeFileSync(temp, JSON.stringify(json, null, 2), { mode: 0o600 })
  renameSync(temp, join(home, "auth.json"))
}

const served = (server: RunningProcess): Promise<string | null> =>
  server.request("getAuthStatus", { includeToken: true }).then((m) => m.result.authToken)

/** Bounded: until every replica announced a new snapshot (`account/updated`) after `marks` (it adopted the change). */
const untilAdopted = (servers: ReadonlyArray<RunningProcess>, marks: ReadonlyArray<number>) =>
  Promise.all(servers.map((server, i) =>
    server.waitFor((m: Message) => m.method === "account/updated" && server.messages.indexOf(m) >= marks[i]!, 10_000)
  ))

// ---- 1 and 2: app-server replicas ------------------------------------------------------------

interface StoreRows {
  readonly fresh: Array<string>
  readonly propagation: string
}

const replicas = async (store: "PostgreSQL" | "file"): Promise<StoreRows> => {
  const tokens = await endpoint(issuing)
  const home = tempHome()
  const database = store === "PostgreSQL" ? await newDatabase("replicas") : undefined
  const put = async (json: Record<string, unknown>) =>
    database === undefined ? writeAuthFile(home, json) : putCredentials(database.client, [["default", json]])
  const env: Record<string, string> = {
    EFFECT_AUTH_MIN_REFRESH_INTERVAL: "0 millis",
    EFFECT_AUTH_LOG_LEVEL: "WARN",
    ...(database === undefined ? {} : { EFFECT_AUTH_DATABASE_URL: database.url })
  }
  if (database === undefined) writeAuthFile(home, staleCredential("start").json)
  const started = Date.now()
  const servers = await Promise.all(Array.from({ length: 8 }, () => appServer({ codexHome: home, tokenUrl: tokens.url, env })))
  log(`${store}: 8 app servers up in ${Date.now() - started} ms`)

  const fresh: Array<string> = []
  for (const k of [1, 2, 4, 8]) {
    const group = servers.slice(0, k)
    const times: Array<number> = []
    let requests = 0
    const loadBefore = load()
    for (let r = 0; r < rounds; r++) {
      const stale = staleCredential(`${store}-k${k}`)
      const marks = servers.map((server) => server.messages.length)
      await put(stale.json)
      await untilAdopted(servers, marks)
      const before = await tokens.count()
      const t0 = performance.now()
      const answers = await Promise.all(group.map((server) =>
        server.request("getAuthStatus", { includeToken: true }).then((m) => ({ token: m.result.authToken as string | null, at: performance.now() - t0 }))
      ))
      requests += (await tokens.count()) - before
      times.push(Math.max(...answers.map((a) => a.at)))
      const got = new Set(answers.map((a) => a.token))
      if (got.size !== 1 || got.has(null) || got.has(stale.accessToken)) {
        throw new Error(`${store} K=${k}: the replicas did not all serve one fresh token`)
      }
    }
    const row = `| ${store} | ${k} | ${rounds} | ${requests} | ${ms(quantile(times, 0.5))} | ${ms(Math.max(...times))} | ${loadBefore} → ${load()} |`
    log(row)
    fresh.push(row)
  }

  // Propagation: an API-key sign-in through one of 4 replicas; the 3 others announce the new snapshot.
  const group = servers.slice(0, 4)
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
      if ((await served(server)) !== apiKey) throw new Error(`${store}: a replica announced the sign-in but does not serve it`)
    }
  }
  const propagation = `| ${store} | ${signIns} × 3 | ${ms(quantile(latencies, 0.5))} | ${ms(quantile(latencies, 0.99))} | ${ms(Math.max(...latencies))} | ${loadBefore} → ${load()} |`
  log(propagation)
  await cleanup()
  await database?.client.end()
  return { fresh, propagation }
}

// ---- 3: the keyed manager, N credentials -----------------------------------------------------

const keyed = async (k: number, n: number): Promise<Array<string>> => {
  const database = await newDatabase(`keyed_${k}_${n}`)
  const tokens = await endpoint(issuing)
  const fleet = Array.from({ length: k }, () =>
    spawnScript("fleet", [], { EFFECT_AUTH_DATABASE_URL: database.url, CODEX_REFRESH_TOKEN_URL_OVERRIDE: tokens.url, FLEET_KEYS: String(n) }))
  await Promise.all(fleet.map((replica) => replica.waitFor((m) => m.method === "<not json>" && m.params === "ready", 60_000)))
  const rows: Array<string> = []
  // Round 1: each replica makes its N managers on first use; round 2: they exist and have adopted new stale credentials.
  for (const round of [1, 2]) {
    const label = `r${round}k${k}n${n}`
    const stale = Array.from({ length: n }, (_, i) =>
      TokenEndpoint.unsignedJwt({ exp: Math.floor((Date.now() + 60_000) / 1000), label, i }))
    await putCredentials(
      database.client,
      stale.map((accessToken, i) => [`fleet-${i}`, chatgptJson({ now: Date.now(), accessToken, refreshToken: `${label}-rt-${i}` })])
    )
    // Round 2: bounded, until every replica's managers hold the new credentials (heard the notifications).
    for (let tries = 0; round === 2; tries++) {
      const held = await Promise.all(fleet.map((replica) => {
        const mark = replica.messages.length
        replica.write("peek\n")
        return replica.waitFor((m) => Array.isArray(m) && replica.messages.indexOf(m) >= mark, 30_000) as unknown as Promise<Array<string | null>>
      }))
      if (held.every((tokens) => tokens.every((token, i) => token === stale[i]))) break
      if (tries > 300) throw new Error("the keyed replicas never adopted the new credentials")
      await sleep(50)
    }
    const loadBefore = load()
    const marks = fleet.map((replica) => replica.messages.length)
    const before = await tokens.count()
    const t0 = performance.now()
    for (const replica of fleet) replica.write("poll\n")
    const answers = await Promise.all(fleet.map((replica, i) =>
      replica.waitFor((m) => Array.isArray(m) && replica.messages.indexOf(m) >= marks[i]!, 60_000)
    )) as unknown as Array<Array<string | null>>
    const elapsed = performance.now() - t0
    const requests = (await tokens.count()) - before
    const fresh = answers.flat().filter((token) => token !== null && String(claims(token).rt ?? "").startsWith(`${label}-rt-`)).length
    const row = `| ${k} | ${n} | ${round === 1 ? "first use" : "warm"} | ${requests} | ${fresh}/${k * n} | ${ms(elapsed)} | ${(requests / (elapsed / 1000)).toFixed(0)} | ${loadBefore} → ${load()} |`
    log(row)
    rows.push(row)
  }
  await cleanup()
  await database.client.end()
  return rows
}

try {
  const t = Date.now()
  await buildBundles()
  log(`bundles built in ${Date.now() - t} ms; load ${load()}`)
  const onPg = await replicas("PostgreSQL")
  const onFile = await replicas("file")
  const keyedRows: Array<string> = []
  for (const k of [1, 4]) for (const n of [10, 100]) keyedRows.push(...await keyed(k, n))
  console.log(`node ${process.version}; ${new Date().toISOString()}; 2 cores; load = 1-min load average before → after\n`)
  console.log("Stale credential, K replicas asked for a token at once (time: until the last one answered with the fresh token)\n")
  console.log("| store | K | rounds | requests (total) | time p50 ms | time max ms | load |")
  console.log("|---|---|---|---|---|---|---|")
  for (const row of [...onPg.fresh, ...onFile.fresh]) console.log(row)
  console.log("\nAPI-key sign-in through one of 4 replicas → `account/updated` on the 3 others\n")
  console.log("| store | samples | p50 ms | p99 ms | max ms | load |")
  console.log("|---|---|---|---|---|---|")
  console.log(onPg.propagation)
  console.log(onFile.propagation)
  console.log("\nKeyed manager (fleet helper) on PostgreSQL: N stale credentials, K replicas polled for all N at once\n")
  console.log("| K | N | managers | requests | fresh tokens served | time ms | refreshes/s | load |")
  console.log("|---|---|---|---|---|---|---|---|")
  for (const row of keyedRows) console.log(row)
  log(`whole bench ${((Date.now() - t) / 1000).toFixed(0)} s`)
} catch (error) {
  log(String(error instanceof Error ? error.stack : error))
  process.exitCode = 1
} finally {
  await cleanup()
  await cluster.stop()
}
