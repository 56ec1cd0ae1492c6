/**
 * What one refresh costs a replica, in process: a keyed manager on a throwaway PostgreSQL (one
 * replica, as the fleet's K = 1), asked for N stale credentials at once, its token endpoint in a
 * process of its own (answering at once), so that what is counted is the replica's alone:
 *   - CPU time per refresh (the process's user + system time over the poll);
 *   - fibers started per refresh (a supervisor counts them);
 *   - bytes allocated per refresh (V8's sampling heap profiler, counting what was collected too),
 *     with the functions that allocate most (REFRESH_COST_TOP, default 0: none listed);
 *   - with REFRESH_COST_OPS=1, the Effect operations the refresh's fibers run (a supervisor sees each
 *     one): per refresh, by the span they run under; REFRESH_COST_OPS=K (> 1) also lists the
 *     operations seen every K-th, by kind and the start of their function's text (where they come from);
 *   - before the rounds, what a key waiting for its turn holds (the heap, after a full collection,
 *     of REFRESH_COST_WAITING keys, default 5,000, each asked for at once of a keyed manager on the
 *     memory store that refreshes one key at a time, over that of the same keys asked for nothing).
 * `npm run bench:refresh-cost`; REFRESH_COST_N (2000), REFRESH_COST_ROUNDS (2: the first warms up).
 * Use it to see what a change to the refresh path costs before running `bench:fleet`.
 */
import {
  Context,
  Deferred,
  Effect,
  Fiber,
  FiberRef,
  identity,
  Layer,
  Redacted,
  RuntimeFlags,
  RuntimeFlagsPatch,
  Supervisor,
  Tracer
} from "effect"
import { fork } from "node:child_process"
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector"
import { PerformanceObserver } from "node:perf_hooks"
import pg from "pg"
import { Configuration } from "../src/config/Configuration.js"
import type { RefreshedTokens } from "../src/document/AuthDocument.js"
import { settingsOf } from "../src/manager/AuthManager.js"
import * as KeyedAuthManager from "../src/manager/KeyedAuthManager.js"
import { layerNodeHttpClient } from "../src/node/layerNode.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { PgStore } from "../src/postgres/index.js"
import { CredentialStore } from "../src/stores/CredentialStore.js"
import { RefreshCoordinator } from "../src/stores/RefreshCoordinator.js"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import { issuing } from "../test/support/endpoint.js"
import { chatgptJson } from "../test/support/fixtures.js"
import { heapUsedAfterGc } from "../test/support/heap.js"
import { startCluster } from "../test/support/postgres.js"
import { putCredentials } from "../test/support/putCredentials.js"

// ---- the token endpoint's own process: `refreshCost.ts endpoint` prints its URL ----------------
if (process.argv[2] === "endpoint") {
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const endpoint = yield* TokenEndpoint.make(issuing)
    process.send!(endpoint.url)
    yield* Effect.never
  })))
}

const n = Number(process.env.REFRESH_COST_N ?? 2000)
const rounds = Number(process.env.REFRESH_COST_ROUNDS ?? 2)
const top = Number(process.env.REFRESH_COST_TOP ?? 0)
const depth = Number(process.env.REFRESH_COST_DEPTH ?? 1)

const endpointProcess = fork(import.meta.filename, ["endpoint"], { execArgv: ["--import", "tsx"], stdio: "inherit" })
const tokenUrl = await new Promise<string>((resolve) => endpointProcess.once("message", (url) => resolve(String(url))))
const cluster = await startCluster()
const admin = new pg.Client({ connectionString: cluster.url })
await admin.connect()

interface Frame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}
interface ProfileNode {
  readonly selfSize: number
  readonly callFrame: Frame
  readonly children: ReadonlyArray<ProfileNode>
}
/** What the inspector answers (the profiles asked for). */
interface Answer {
  readonly profile: { readonly head: ProfileNode }
}
/** What is read of a fiber to count its fiber ref writes. */
interface FiberInternals {
  readonly _fiberRefs: { readonly locals: ReadonlyMap<unknown, unknown> }
  getFiberRef<A>(ref: FiberRef.FiberRef<A>): A
}

let gcMs = 0
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMs += entry.duration
}).observe({ entryTypes: ["gc"] })

let fibers = 0
const fibersBySpan = new Map<string, number>()
// REFRESH_COST_OPS: the operations run, by the span they run under, and (every K-th) where they come from.
const opsEvery = Number(process.env.REFRESH_COST_OPS ?? 0)
let ops = 0
const opsBySpan = new Map<string, number>()
const opsBySite = new Map<string, number>()
/** What is read of an operation: its kind and, for most kinds, the function it runs. */
interface Operation {
  readonly _op: string
  readonly effect_instruction_i0?: unknown
  readonly effect_instruction_i1?: unknown
}
const spanName = (context: Context.Context<never>) => {
  const span = Context.getOption(context, Tracer.ParentSpan)
  return span._tag === "Some" && span.value._tag === "Span" ? span.value.name : "(no span)"
}
class Counting extends Supervisor.AbstractSupervisor<void> {
  value = Effect.void
  override onEffect(fiber: { getFiberRef<A>(ref: FiberRef.FiberRef<A>): A }, effect: unknown) {
    ops++
    const where = spanName(fiber.getFiberRef(FiberRef.currentContext))
    opsBySpan.set(where, (opsBySpan.get(where) ?? 0) + 1)
    if (opsEvery > 1 && ops % opsEvery === 0) {
      const op = effect as Operation
      const f = op.effect_instruction_i0 ?? op.effect_instruction_i1
      const site = `${op._op} ${typeof f === "function" ? String(f).replace(/\s+/g, " ").slice(0, 120) : ""}`
      opsBySite.set(site, (opsBySite.get(site) ?? 0) + 1)
    }
  }
  override onStart(context: Context.Context<never>, effect: Effect.Effect<unknown, unknown, unknown>) {
    fibers++
    if (process.env.REFRESH_COST_REFS) {
      const where = `${spanName(context)} ${(effect as unknown as { readonly _op?: string })._op ?? ""}`
      fibersBySpan.set(where, (fibersBySpan.get(where) ?? 0) + 1)
    }
  }
}

const profiler = new Session()
profiler.connect()
const post = (method: string, params?: object) =>
  new Promise<Answer>((resolve, reject) =>
    profiler.post(method, params, (error, result) => error ? reject(error) : resolve(result as Answer))
  )
await post("HeapProfiler.enable")

const round = async (r: number) => {
  const database = `cost_${r}`
  await admin.query(`CREATE DATABASE ${database}`)
  const url = new URL(cluster.url)
  url.pathname = `/${database}`
  process.env.EFFECT_AUTH_DATABASE_URL = url.toString()
  process.env.CODEX_REFRESH_TOKEN_URL_OVERRIDE = tokenUrl
  process.env.EFFECT_AUTH_LOG_LEVEL = "WARN"
  const keys = Array.from({ length: n }, (_, i) => `cost-${i}`)
  const stale = keys.map((_, i) => TokenEndpoint.unsignedJwt({ exp: Math.floor((Date.now() + 60_000) / 1000), i }))
  const documents = keys.map((key, i) =>
    [key, chatgptJson({ now: Date.now(), accessToken: stale[i]!, refreshToken: `${database}-rt-${i}` })] as const
  )
  const staleTokens = new Set(stale)
  const memory = process.env.REFRESH_COST_STORE === "memory"
  let issued = 0
  const tokensNow = (): RefreshedTokens => ({
    accessToken: Redacted.make(TokenEndpoint.unsignedJwt({ exp: Math.floor(Date.now() / 1000) + 3600, n: issued })),
    refreshToken: Redacted.make(`test-rt-${issued++}`)
  })
  const layer = Layer.scoped(
    KeyedAuthManager.KeyedAuthManager,
    Effect.flatMap(Configuration, (configuration) =>
      KeyedAuthManager.make({
        settings: settingsOf(configuration),
        ...(process.env.REFRESH_COST_AT_ONCE === undefined
          ? {}
          : { refreshesAtOnce: Number(process.env.REFRESH_COST_AT_ONCE) })
      }))
  ).pipe(
    Layer.provide(Layer.mergeAll(
      // REFRESH_COST_STORE=memory: the memory store instead (what PostgreSQL costs, by difference);
      // REFRESH_COST_REFRESHER=test: a refresher with no HTTP (what the token request costs).
      memory
        ? Layer.merge(CredentialStore.layerMemory(Object.fromEntries(documents)), RefreshCoordinator.layerMemory)
        : PgStore.layerConfig,
      process.env.REFRESH_COST_REFRESHER === "test"
        ? TokenRefresher.layerTest(() => Effect.sync(() => tokensNow()))
        : TokenRefresher.layerHttp
    )),
    Layer.provide(Configuration.layerConfig),
    Layer.provide(layerNodeHttpClient)
  )
  return Effect.runPromise(Effect.scoped(
    Effect.gen(function*() {
      // REFRESH_COST_REPLICAS=K (PostgreSQL only): K keyed managers, each on a store of its own (its
      // pool, its listener), in this one process: the fleet's CPU per refresh, all replicas counted.
      const replicas = yield* Effect.forEach(
        Array.from({ length: memory ? 1 : Math.max(1, Number(process.env.REFRESH_COST_REPLICAS ?? 1)) }),
        () => Effect.map(Layer.build(layer), (context) => Context.get(context, KeyedAuthManager.KeyedAuthManager))
      )
      if (!memory) {
        const client = new pg.Client({ connectionString: url.toString() })
        yield* Effect.promise(() => client.connect())
        yield* Effect.promise(() => putCredentials((sql, params) => client.query(sql, [...params]), documents))
        yield* Effect.promise(() => client.end())
      }
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
      fibers = 0
      fibersBySpan.clear()
      // REFRESH_COST_REFS=1: which fiber refs are set, how often, and how large the maps copied are.
      const sets = new Map<unknown, number>()
      const setsBySpan = new Map<string, number>()
      let mapSizes = 0
      // Puts the fiber runtime's own method back once the poll is measured (the next round patches it again).
      let unpatch = () => {}
      if (process.env.REFRESH_COST_REFS) {
        yield* Effect.withFiberRuntime<void>((fiber) => {
          const proto = Object.getPrototypeOf(fiber)
          const original = proto.setFiberRef
          unpatch = () => {
            proto.setFiberRef = original
          }
          proto.setFiberRef = function(this: FiberInternals, ref: unknown, value: unknown) {
            sets.set(ref, (sets.get(ref) ?? 0) + 1)
            const span = Context.getOption(this.getFiberRef(FiberRef.currentContext), Tracer.ParentSpan)
            const where = span._tag === "Some" && span.value._tag === "Span" ? span.value.name : "(no span)"
            setsBySpan.set(where, (setsBySpan.get(where) ?? 0) + 1)
            mapSizes += this._fiberRefs.locals.size
            return original.call(this, ref, value)
          }
          return Effect.void
        })
      }
      const cpuProfile = process.env.REFRESH_COST_CPU_PROFILE
      if (cpuProfile !== undefined) {
        yield* Effect.promise(() => post("Profiler.enable").then(() => post("Profiler.start")))
      }
      const sampling = process.env.REFRESH_COST_ALLOC !== "0"
      if (sampling) {
        yield* Effect.promise(() =>
          post("HeapProfiler.startSampling", {
            samplingInterval: 16384,
            includeObjectsCollectedByMajorGC: true,
            includeObjectsCollectedByMinorGC: true
          })
        )
      }
      const cpu0 = process.cpuUsage()
      gcMs = 0
      const t0 = performance.now()
      ops = 0
      opsBySpan.clear()
      opsBySite.clear()
      const served = yield* askAll(false).pipe(
        Effect.supervised(new Counting()),
        // The supervisor sees each operation only with the runtime's op supervision on (it costs).
        opsEvery > 0 ? Effect.withRuntimeFlagsPatch(RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision)) : identity
      )
      const elapsed = performance.now() - t0
      unpatch()
      const cpu = process.cpuUsage(cpu0)
      const gcDuring = gcMs
      const { profile } = sampling
        ? yield* Effect.promise(() => post("HeapProfiler.stopSampling"))
        : { profile: { head: { selfSize: 0, callFrame: { functionName: "", url: "", lineNumber: 0 }, children: [] } } }
      if (cpuProfile !== undefined) {
        const cpuResult = yield* Effect.promise(() => post("Profiler.stop"))
        writeFileSync(cpuProfile, JSON.stringify(cpuResult.profile))
      }
      const fresh = served.filter((s) => s.authToken !== null && !staleTokens.has(Redacted.value(s.authToken))).length
      let bytes = 0
      const sites = new Map<string, number>()
      const nameOf = (frame: Frame) =>
        `${frame.functionName || "(anonymous)"} ${
          frame.url.replace(/.*node_modules\//, "").replace(/.*\/work\/[^/]+\//, "")
        }:${frame.lineNumber + 1}`
      // A site is the allocating function and the callers above it (REFRESH_COST_DEPTH, default 1: itself).
      const walk = (node: ProfileNode, callers: ReadonlyArray<string>) => {
        bytes += node.selfSize
        const stack = [nameOf(node.callFrame), ...callers].slice(0, depth)
        const site = stack.join(" ← ")
        sites.set(site, (sites.get(site) ?? 0) + node.selfSize)
        for (const child of node.children) walk(child, stack)
      }
      walk(profile.head, [])
      const perRefresh = (x: number) => x / n
      process.stdout.write(
        `round ${r + 1}: N=${n} in ${elapsed.toFixed(0)} ms (${
          (n / (elapsed / 1000)).toFixed(0)
        }/s), ${fresh}/${served.length} fresh tokens served; per refresh: CPU ${
          (perRefresh(cpu.user + cpu.system) / 1000).toFixed(2)
        } ms (GC ${perRefresh(gcDuring).toFixed(2)} ms), ${perRefresh(fibers).toFixed(1)} fibers, ${
          (perRefresh(bytes) / 1024).toFixed(0)
        } KB allocated\n`
      )
      const names = new Map<unknown, string>(
        Object.entries(FiberRef).filter(([, v]) =>
          FiberRef.FiberRefTypeId !== undefined && typeof v === "object" && v !== null &&
          FiberRef.FiberRefTypeId in (v as object)
        ).map(([k, v]) => [v, k])
      )
      const totalSets = [...sets.values()].reduce((a, b) => a + b, 0)
      if (totalSets > 0) {
        process.stdout.write(
          `  fiber ref sets per refresh: ${perRefresh(totalSets).toFixed(1)}, maps of ${
            (mapSizes / totalSets).toFixed(1)
          } entries on average\n`
        )
      }
      for (const [ref, count] of [...sets].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
        process.stdout.write(
          `    ${perRefresh(count).toFixed(2).padStart(6)}  ${
            names.get(ref) ?? typeof (ref as { readonly initial?: unknown }).initial
          }\n`
        )
      }
      for (const [where, count] of [...fibersBySpan].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
        process.stdout.write(`    ${perRefresh(count).toFixed(2).padStart(6)}  fibers started under span ${where}\n`)
      }
      for (const [where, count] of [...setsBySpan].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
        process.stdout.write(`    ${perRefresh(count).toFixed(2).padStart(6)}  under span ${where}\n`)
      }
      if (opsEvery > 0) {
        process.stdout.write(`  Effect operations per refresh: ${perRefresh(ops).toFixed(0)}\n`)
        for (const [where, count] of [...opsBySpan].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
          process.stdout.write(`    ${perRefresh(count).toFixed(1).padStart(7)}  under span ${where}\n`)
        }
        for (const [site, count] of [...opsBySite].sort((a, b) => b[1] - a[1]).slice(0, 40)) {
          process.stdout.write(`    ${perRefresh(count * opsEvery).toFixed(1).padStart(7)}  ${site}\n`)
        }
      }
      for (const [site, size] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, top)) {
        process.stdout.write(`  ${(perRefresh(size) / 1024).toFixed(1).padStart(7)} KB  ${site}\n`)
      }
    })
  ))
}

// ---- what a key waiting for its turn holds ---------------------------------------------------
const waitingHolds = (count: number) => {
  const keys = Array.from({ length: count }, (_, i) => `waiting-${i}`)
  const stale = TokenEndpoint.unsignedJwt({ exp: Math.floor((Date.now() + 60_000) / 1000) })
  const documents = Object.fromEntries(
    keys.map((key, i) => [key, chatgptJson({ now: Date.now(), accessToken: stale, refreshToken: `waiting-rt-${i}` })])
  )
  return Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    // The one refresh allowed at once waits for this: every other key waits for its turn.
    const held = yield* Deferred.make<void>()
    const context = yield* Layer.build(
      Layer.scoped(KeyedAuthManager.KeyedAuthManager, KeyedAuthManager.make({ refreshesAtOnce: 1 })).pipe(
        Layer.provide(Layer.mergeAll(
          CredentialStore.layerMemory(documents),
          RefreshCoordinator.layerMemory,
          TokenRefresher.layerTest(() =>
            Effect.as(Deferred.await(held), { accessToken: Redacted.make(stale), refreshToken: Redacted.make("rt") })
          )
        ))
      )
    )
    const auth = Context.get(context, KeyedAuthManager.KeyedAuthManager)
    yield* Effect.forEach(keys, (key) => auth.getAuthStatus(key, { noRefresh: true }), { discard: true })
    const before = heapUsedAfterGc()
    const asked = yield* Effect.forEach(keys, (key) => Effect.fork(auth.getAuthStatus(key, { refreshToken: true })))
    // Until every one is suspended: waiting for its turn (or, the one refreshing, for its answer).
    for (const fiber of asked) {
      while ((yield* Fiber.status(fiber))._tag !== "Suspended") yield* Effect.yieldNow()
    }
    const during = heapUsedAfterGc()
    yield* Deferred.succeed(held, undefined)
    yield* Fiber.joinAll(asked)
    // For comparison: as many fibers waiting for nothing but a Deferred each.
    const idle = yield* Deferred.make<void>()
    const bareBefore = heapUsedAfterGc()
    const bare = yield* Effect.forEach(keys, () => Effect.fork(Deferred.await(idle)))
    for (const fiber of bare) {
      while ((yield* Fiber.status(fiber))._tag !== "Suspended") yield* Effect.yieldNow()
    }
    const bareDuring = heapUsedAfterGc()
    yield* Deferred.succeed(idle, undefined)
    const kb = (bytes: number) => (bytes / count / 1024).toFixed(1)
    process.stdout.write(
      `a key waiting for its turn holds ${kb(during - before)} KB, its caller's fiber included (a fiber waiting ` +
        `for nothing else: ${kb(bareDuring - bareBefore)} KB); ${count} keys asked for at once, one turn\n`
    )
  })))
}

try {
  await waitingHolds(Number(process.env.REFRESH_COST_WAITING ?? 5000))
  for (let r = 0; r < rounds; r++) await round(r)
} finally {
  endpointProcess.kill()
  await admin.end()
  await cluster.stop()
}
