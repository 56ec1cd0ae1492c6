/**
 * What the Effect 4 edition's keyed manager does with N stale credentials on one PostgreSQL, one
 * replica in this process (KEYED_REPLICAS: more, each on a store of its own), its token endpoint in a process of its own (answering at once): every key
 * polled at once, the time until every poll has answered, the CPU this process spent, and how many
 * answers carry a fresh token. The Effect 3 edition's figure for the same poll is
 * `npm run bench:refresh-cost` (REFRESH_COST_REPLICAS for more). Needs the core built (`npm run build`).
 * `npm run bench:keyed-effect4`; KEYED_N (1000), KEYED_REPLICAS (1), KEYED_ROUNDS (2: the first warms up),
 * KEYED_STATS=1 (the statements run, counted by pg_stat_statements).
 */
import { Effect, Layer, Redacted } from "effect"
import { fork } from "node:child_process"
import { join } from "node:path"
import pg from "pg"
import { chatgptJson } from "../../../test/support/fixtures.js"
import { startCluster } from "../../../test/support/postgres.js"
import { putCredentials } from "../../../test/support/putCredentials.js"
import { Configuration } from "../src/config/Configuration.js"
import { settingsOf } from "../src/manager/AuthManager.js"
import { KeyedAuthManager } from "../src/manager/KeyedAuthManager.js"
import { layerNodeHttpClient } from "../src/node/layerNode.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { PgStore } from "../src/postgres/index.js"

const root = join(import.meta.dirname, "..", "..", "..")
const n = Number(process.env.KEYED_N ?? 1000)
const rounds = Number(process.env.KEYED_ROUNDS ?? 2)
const k = Number(process.env.KEYED_REPLICAS ?? 1)

const endpointProcess = fork(join(root, "bench", "refreshCost.ts"), ["endpoint"], {
  execArgv: ["--import", "tsx"],
  stdio: "inherit"
})
const tokenUrl = await new Promise<string>((resolve) => endpointProcess.once("message", (url) => resolve(String(url))))
const cluster = await startCluster(process.env.KEYED_STATS ? ["shared_preload_libraries=pg_stat_statements"] : [])

const unsignedJwt = (payload: Record<string, unknown>) =>
  `${Buffer.from(JSON.stringify({ alg: "none" })).toString("base64url")}.${
    Buffer.from(JSON.stringify(payload)).toString("base64url")
  }.`

const round = async (r: number) => {
  const database = `keyed_${r}`
  const admin = new pg.Client({ connectionString: cluster.url })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${database}`)
  await admin.end()
  const url = new URL(cluster.url)
  url.pathname = `/${database}`
  process.env.CODEX_REFRESH_TOKEN_URL_OVERRIDE = tokenUrl
  process.env.EFFECT_AUTH_LOG_LEVEL = "Warn"
  const keys = Array.from({ length: n }, (_, i) => `cost-${i}`)
  const stale = keys.map((_, i) => unsignedJwt({ exp: Math.floor((Date.now() + 60_000) / 1000), i }))
  const staleTokens = new Set(stale)
  const documents = keys.map((key, i) =>
    [key, chatgptJson({ now: Date.now(), accessToken: stale[i]!, refreshToken: `${database}-rt-${i}` })] as const
  )
  const layer = Layer.effect(
    KeyedAuthManager,
    Effect.flatMap(Configuration, (configuration) => KeyedAuthManager.make({ settings: settingsOf(configuration) }))
  ).pipe(
    Layer.provide(Layer.mergeAll(
      PgStore.layer({ url: Redacted.make(url.toString()) }),
      TokenRefresher.layerHttp
    )),
    Layer.provide(Configuration.layerConfig),
    Layer.provide(layerNodeHttpClient)
  )
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const replicas = yield* Effect.forEach(
      Array.from({ length: k }),
      () =>
        Effect.map(
          Layer.build(layer),
          (context) => context.mapUnsafe.get(KeyedAuthManager.key) as KeyedAuthManager["Service"]
        )
    )
    const client = new pg.Client({ connectionString: url.toString() })
    yield* Effect.promise(() => client.connect())
    if (process.env.KEYED_STATS) {
      yield* Effect.promise(() => client.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
    }
    yield* Effect.promise(() => putCredentials((sql, params) => client.query(sql, [...params]), documents))
    yield* Effect.promise(() => client.end())
    // Every key read once, with no refresh: what is measured next is the refresh alone.
    const askAll = (noRefresh: boolean) =>
      Effect.map(
        Effect.forEach(
          replicas,
          (auth) =>
            Effect.forEach(keys, (key) => auth.getAuthStatus(key, { includeToken: true, noRefresh }), {
              concurrency: "unbounded"
            }),
          { concurrency: "unbounded" }
        ),
        (answers) => answers.flat()
      )
    yield* askAll(true)
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const answers = yield* askAll(false)
    const ms = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const fresh = answers.filter((answer) =>
      answer.authToken !== null && !staleTokens.has(Redacted.value(answer.authToken))
    ).length
    console.log(
      `round ${r}: N=${n} in ${ms.toFixed(0)} ms (${(n / (ms / 1000)).toFixed(0)}/s), ${fresh}/${
        k * n
      } fresh tokens served; ` +
        `CPU per refresh ${((cpu.user + cpu.system) / 1000 / n).toFixed(2)} ms`
    )
    // KEYED_STATS=1: the statements PostgreSQL ran (pg_stat_statements), most frequent first.
    if (process.env.KEYED_STATS) {
      const looking = new pg.Client({ connectionString: url.toString() })
      yield* Effect.promise(() => looking.connect())
      const statements = yield* Effect.promise(() =>
        looking.query(
          `SELECT calls, round(total_exec_time) AS ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 140) AS query
          FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY calls DESC LIMIT 8`
        )
      )
      for (const row of (statements as { rows: ReadonlyArray<Record<string, unknown>> }).rows) {
        console.log(`  ${row.calls} calls, ${row.ms} ms: ${row.query}`)
      }
      yield* Effect.promise(() => looking.end())
    }
  })))
}

try {
  for (let r = 1; r <= rounds; r++) await round(r)
} finally {
  endpointProcess.kill()
  await cluster.stop()
}
