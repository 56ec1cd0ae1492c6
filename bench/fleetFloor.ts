/**
 * The floor under the fleet's throughput on this machine (`npm run bench:fleet-floor`): N stale
 * credentials on K replicas of one PostgreSQL, refreshed the cheapest way the parts this library is
 * built from allow. Not the library's refresh path: a sketch of a batched one, with no manager, no
 * fiber per key and no per-key statement, to say how far batching could take the fleet and what would
 * be left:
 *   - each replica walks the keys in batches of FLOOR_BATCH (200), in an order of its own (a seeded
 *     shuffle), FLOOR_BATCHES_AT_ONCE (2) batches at a time; per batch, one statement takes the leases
 *     of the keys no one holds and reads their rows (locked, so a write that committed meanwhile is
 *     seen), the token requests go out through the library's `TokenRefresher.layerHttp` on its Node
 *     HttpClient (FLOOR_REQUESTS_AT_ONCE, 64, per batch) to a token endpoint in a process of its own,
 *     and one statement saves the refreshed documents, fenced by their leases, releases the leases and
 *     sends one notification naming the keys;
 *   - the other replicas read the keys a notification names in one statement.
 * Printed: refreshes/s (wall), and CPU per refresh by part — the K replicas (this process), the
 * token endpoint (its process), PostgreSQL (its processes, from /proc) — with what two cores could do
 * at that cost. Checked: exactly N requests, every replica ends on every key's refreshed document.
 * FLOOR_N (10000), FLOOR_K (4), FLOOR_BATCH (200), FLOOR_BATCHES_AT_ONCE (2), FLOOR_REQUESTS_AT_ONCE (64).
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Deferred, Effect, Exit, Layer, Redacted, Schedule, Stream } from "effect"
import { fork } from "node:child_process"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import pg from "pg"
import { Configuration } from "../src/config/Configuration.js"
import { layerNodeHttpClient } from "../src/node/layerNode.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { migrate, tables } from "../src/postgres/migrations.js"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import * as Servers from "../test/scenarios/servers.js"
import { issuing } from "../test/support/endpoint.js"
import { chatgptJson } from "../test/support/fixtures.js"
import { startCluster } from "../test/support/postgres.js"
import { putCredentials } from "../test/support/putCredentials.js"

// ---- the token endpoint's own process: it says its URL, then its CPU time and count when asked ----
// FLOOR_ENDPOINT=bare: a token endpoint on node:http alone (the same answers), to see what the test
// endpoint (the library's `TokenEndpoint`, on Effect's HTTP server) costs by difference.
if (process.argv[2] === "endpoint" && process.env.FLOOR_ENDPOINT === "bare") {
  // The scenarios' plain token endpoint, answering as `issuing` does.
  const endpoint = await Servers.tokenEndpoint((fields) => {
    const refreshToken = fields.get("refresh_token") ?? ""
    return {
      status: 200,
      body: {
        token_type: "Bearer",
        access_token: TokenEndpoint.unsignedJwt({ exp: Math.floor(Date.now() / 1000) + 3600, rt: refreshToken }),
        refresh_token: `${refreshToken}-next`,
        expires_in: 3600
      }
    }
  })
  process.on("message", () => process.send!({ count: endpoint.received.length, cpu: process.cpuUsage() }))
  process.send!(endpoint.url)
  // The rest of this file is the bench's: this process only serves.
  await new Promise(() => {})
} else if (process.argv[2] === "endpoint") {
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const endpoint = yield* TokenEndpoint.make(issuing)
    process.on("message", () => {
      Effect.runPromise(endpoint.count).then((count) => process.send!({ count, cpu: process.cpuUsage() }))
    })
    process.send!(endpoint.url)
    yield* Effect.never
  })))
}

const numberOf = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const n = numberOf("FLOOR_N", 10_000)
const k = numberOf("FLOOR_K", 4)
const batchSize = numberOf("FLOOR_BATCH", 200)
const batchesAtOnce = numberOf("FLOOR_BATCHES_AT_ONCE", 2)
const requestsAtOnce = numberOf("FLOOR_REQUESTS_AT_ONCE", 64)

interface EndpointStats {
  readonly count: number
  readonly cpu: NodeJS.CpuUsage
}
const endpointProcess = fork(import.meta.filename, ["endpoint"], { execArgv: ["--import", "tsx"], stdio: "inherit" })
const tokenUrl = await new Promise<string>((resolve) => endpointProcess.once("message", (url) => resolve(String(url))))
const endpointStats = () =>
  new Promise<EndpointStats>((resolve) => {
    endpointProcess.once("message", (stats) => resolve(stats as EndpointStats))
    endpointProcess.send("stats")
  })

const cluster = await startCluster()
const admin = new pg.Client({ connectionString: cluster.url })
await admin.connect()

/** CPU time (ms) of each of the cluster's processes that a session can see, by pid. */
const pgCpu = async (): Promise<Map<number, number>> => {
  const { rows } = (await admin.query("SELECT pid FROM pg_stat_activity")) as { rows: Array<{ pid: number }> }
  const ticks = new Map<number, number>()
  for (const { pid } of rows) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
      ticks.set(pid, (Number(fields[11]) + Number(fields[12])) * 10)
    } catch {
      // ended meanwhile
    }
  }
  return ticks
}

/** A seeded shuffle (mulberry32): each replica walks the keys in an order of its own. */
const shuffled = <A>(items: ReadonlyArray<A>, seed: number): Array<A> => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

const chunks = <A>(items: ReadonlyArray<A>, size: number) =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

await admin.query("CREATE DATABASE floor")
const url = new URL(cluster.url)
url.pathname = "/floor"
process.env.CODEX_REFRESH_TOKEN_URL_OVERRIDE = tokenUrl
process.env.EFFECT_AUTH_LOG_LEVEL = "WARN"

const prefix = "effect_auth"
const t = tables(prefix)
const keys = Array.from({ length: n }, (_, i) => `k-${i}`)
const take = `WITH taken AS (
    INSERT INTO ${t.leases} (credential_key, fence, holder, expires_at)
    SELECT key, nextval('${t.versions}'), $2, clock_timestamp() + interval '60 seconds' FROM unnest($1::text[]) AS key
    ON CONFLICT (credential_key) DO UPDATE SET fence = excluded.fence, holder = excluded.holder, expires_at = excluded.expires_at
    WHERE ${t.leases}.expires_at <= clock_timestamp()
    RETURNING credential_key, fence
  ) SELECT c.credential_key, taken.fence::text AS fence, c.document, c.version::text AS version
  FROM taken JOIN ${t.credentials} AS c ON c.credential_key = taken.credential_key
  ORDER BY c.credential_key FOR SHARE OF c`
const save = `WITH d AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS d(credential_key, document, hash, fence)
  ), released AS (
    DELETE FROM ${t.leases} AS l USING d WHERE l.credential_key = d.credential_key AND l.fence = d.fence
    RETURNING l.credential_key
  ), written AS (
    UPDATE ${t.credentials} AS c SET document = d.document, hash = d.hash, version = nextval('${t.versions}'),
      health = NULL, health_hash = NULL, updated_at = now()
    FROM d JOIN released USING (credential_key) WHERE c.credential_key = d.credential_key
    RETURNING c.credential_key, c.version::text AS version
  ) SELECT credential_key, version, (SELECT pg_notify('${t.channel}', string_agg(credential_key, ',')) FROM written) IS NULL AS sent
  FROM written`
const releaseUnused = `DELETE FROM ${t.leases} WHERE credential_key = ANY($1) AND holder = $2`
const read =
  `SELECT credential_key, document, version::text AS version FROM ${t.credentials} WHERE credential_key = ANY($1)`

interface Row {
  readonly credential_key: string
  readonly document: string
  readonly version: string
}

const program = Effect.gen(function*() {
  const database = yield* PgClient.make({ url: Redacted.make(url.toString()), maxConnections: 2 }).pipe(
    Effect.provide(Reactivity.layer)
  )
  yield* Effect.provideService(migrate(prefix), SqlClient.SqlClient, database)
  const stale = keys.map((_, i) => chatgptJson({ now: Date.now(), expiresIn: 60_000, refreshToken: `rt-${i}` }))
  const floor = new pg.Client({ connectionString: url.toString() })
  yield* Effect.promise(() => floor.connect())
  yield* Effect.promise(() =>
    putCredentials((text, params) => floor.query(text, [...params]), keys.map((key, i) => [key, stale[i]!] as const))
  )
  const staleVersions = new Map(
    ((yield* Effect.promise(() => floor.query(read, [keys]))) as { rows: Array<Row> }).rows.map((
      row
    ) => [row.credential_key, row.version])
  )
  yield* Effect.promise(() => floor.end())
  const refresher = yield* TokenRefresher

  const replicas = yield* Effect.forEach(Array.from({ length: k }, (_, r) => r), (r) =>
    Effect.gen(function*() {
      const sql = yield* PgClient.make({ url: Redacted.make(url.toString()), maxConnections: 4 }).pipe(
        Effect.provide(Reactivity.layer)
      )
      const holder = `replica-${r}`
      const documents = new Map<string, string>()
      const done = yield* Deferred.make<void>()
      const adopt = (row: Row) => {
        if (row.version === staleVersions.get(row.credential_key) || documents.has(row.credential_key)) return
        JSON.parse(row.document)
        documents.set(row.credential_key, row.document)
        if (documents.size === n) Deferred.unsafeDone(done, Exit.void)
      }
      const heard = yield* Deferred.make<void>()
      yield* sql.listen(t.channel).pipe(
        Stream.runForEach((payload) => {
          if (payload === "ready") return Deferred.succeed(heard, undefined)
          const unknown = payload.split(",").filter((key) => !documents.has(key))
          return unknown.length === 0 ? Effect.void : Effect.map(
            sql.unsafe<Row>(read, [unknown]),
            (rows) => rows.forEach(adopt)
          )
        }),
        Effect.forkScoped
      )
      const refreshBatch = (batch: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          // In one order everywhere: replicas taking overlapping batches lock rows in the same order.
          const wanted = batch.filter((key) => !documents.has(key)).sort()
          if (wanted.length === 0) return
          const taken = yield* sql.unsafe<Row & { readonly fence: string }>(take, [wanted, holder])
          const unused = taken.filter((row) => row.version !== staleVersions.get(row.credential_key))
          unused.forEach(adopt)
          if (unused.length > 0) yield* sql.unsafe(releaseUnused, [unused.map((row) => row.credential_key), holder])
          const due = [...taken].sort((a, b) => a.credential_key < b.credential_key ? -1 : 1).filter((row) =>
            row.version === staleVersions.get(row.credential_key)
          )
          if (due.length === 0) return
          const refreshed = yield* Effect.forEach(due, (row) =>
            Effect.map(
              Effect.flatMap(
                Effect.sync(() => JSON.parse(row.document) as { tokens: Record<string, unknown> }),
                (doc) =>
                  Effect.map(
                    refresher.refresh(Redacted.make(String(doc.tokens.refresh_token))),
                    (tokens) => {
                      if (tokens.accessToken !== undefined) doc.tokens.access_token = Redacted.value(tokens.accessToken)
                      if (tokens.refreshToken !== undefined) {
                        doc.tokens.refresh_token = Redacted.value(tokens.refreshToken)
                      }
                      const text = `${JSON.stringify(doc, null, 2)}\n`
                      return { row, text, hash: createHash("sha256").update(text).digest("hex") }
                    }
                  )
              ),
              (result) => result
            ), { concurrency: requestsAtOnce })
          const written = yield* sql.unsafe<{ readonly credential_key: string; readonly version: string }>(save, [
            refreshed.map((r) => r.row.credential_key),
            refreshed.map((r) => r.text),
            refreshed.map((r) => r.hash),
            refreshed.map((r) => r.row.fence)
          ])
          const texts = new Map(refreshed.map((r) => [r.row.credential_key, r.text]))
          for (const w of written) {
            adopt({ credential_key: w.credential_key, document: texts.get(w.credential_key)!, version: w.version })
          }
        }).pipe(
          Effect.tapError((error) => Effect.sync(() => console.error(String((error as { cause?: unknown }).cause))))
        )
      return { sql, heard, done, documents, refreshBatch, order: shuffled(keys, r + 1) }
    }))
  // Every replica listens before any starts (said until each has heard it: LISTEN has no answer of its own).
  const allHeard = Effect.forEach(replicas, (replica) => Deferred.await(replica.heard), { discard: true })
  yield* Effect.raceFirst(
    allHeard,
    database`SELECT pg_notify(${t.channel}, 'ready')`.pipe(
      Effect.repeat(Schedule.spaced("50 millis")),
      Effect.andThen(Effect.never)
    )
  )

  const pgBefore = yield* Effect.promise(pgCpu)
  const endpointBefore = yield* Effect.promise(endpointStats)
  const cpuBefore = process.cpuUsage()
  const load = loadavg()[0]!.toFixed(2)
  const started = performance.now()
  yield* Effect.forEach(replicas, (replica) =>
    Effect.andThen(
      Effect.forEach(chunks(replica.order, batchSize), replica.refreshBatch, {
        concurrency: batchesAtOnce,
        discard: true
      }),
      Deferred.await(replica.done).pipe(
        Effect.timeoutFail({ duration: "120 seconds", onTimeout: () => "not all fresh" })
      )
    ), { concurrency: "unbounded", discard: true })
  const seconds = (performance.now() - started) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  const endpointAfter = yield* Effect.promise(endpointStats)
  const pgAfter = yield* Effect.promise(pgCpu)

  const requests = endpointAfter.count - endpointBefore.count
  const endpointMs = (endpointAfter.cpu.user + endpointAfter.cpu.system - endpointBefore.cpu.user -
    endpointBefore.cpu.system) / 1000
  let pgMs = 0
  for (const [pid, ms] of pgAfter) pgMs += ms - (pgBefore.get(pid) ?? 0)
  const replicasMs = (cpu.user + cpu.system) / 1000
  const per = (ms: number) => (ms / n).toFixed(2)
  const totalPer = (replicasMs + endpointMs + pgMs) / n
  const allFresh = replicas.every((replica) => replica.documents.size === n)
  console.log(
    `N=${n} K=${k} batch=${batchSize}×${batchesAtOnce} requests at once=${requestsAtOnce}; load ${load}; ` +
      `${cpus().length} cores\n` +
      `${requests} requests (${
        requests === n ? "exact" : "NOT exact"
      }); every replica on every refreshed document: ${allFresh}\n` +
      `${(n / seconds).toFixed(0)} refreshes/s (${seconds.toFixed(1)} s)\n` +
      `CPU per refresh: replicas ${per(replicasMs)} ms, token endpoint ${per(endpointMs)} ms, PostgreSQL ${
        per(pgMs)
      } ms; total ${totalPer.toFixed(2)} ms: ${
        (cpus().length * 1000 / totalPer).toFixed(0)
      }/s on ${cpus().length} cores at most`
  )
}).pipe(
  Effect.scoped,
  Effect.provide(
    TokenRefresher.layerHttp.pipe(Layer.provide(Configuration.layerConfig), Layer.provide(layerNodeHttpClient))
  )
)

try {
  await Effect.runPromise(program)
} finally {
  await admin.end()
  await cluster.stop()
  endpointProcess.kill()
}
