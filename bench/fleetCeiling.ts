/**
 * The ceiling of one replica: the keyed manager with neither PostgreSQL nor HTTP under it. The
 * credentials live in a plain map (a compare-and-set is a map write), the refresh lock is a
 * semaphore per key and the token request answers at once in memory; what is left is the
 * manager's own work (Effect's fibers, parsing and hashing each document). N stale credentials
 * are asked for at once, as bench/fleet.ts asks a replica; the heap per idle credential is
 * measured the same way. Run: `node --expose-gc --import tsx bench/fleetCeiling.ts`
 * (CEILING_N=1000,10000; CEILING_ROUNDS=2). Prints one JSON line per row, with the 1-minute load.
 */
import { Duration, Effect, Either, Layer, Option, Redacted, Stream } from "effect"
import { readFileSync } from "node:fs"
import * as AuthDocument from "../src/document/AuthDocument.js"
import * as KeyedAuthManager from "../src/manager/KeyedAuthManager.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { CredentialStore, type Entry } from "../src/stores/CredentialStore.js"
import { RefreshCoordinator } from "../src/stores/RefreshCoordinator.js"
import { unsignedJwt } from "../src/testing/TokenEndpoint.js"
import { chatgptJson } from "../test/support/fixtures.js"

const sizes = (process.env.CEILING_N ?? "1000,10000").split(",").map(Number)
const rounds = Number(process.env.CEILING_ROUNDS ?? 2)
const load = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0]!
const gc = (globalThis as { gc?: () => void }).gc
const heap = () => {
  gc?.()
  gc?.()
  return process.memoryUsage().heapUsed
}

/** A backend that is a map: no copy per write, nobody else writing (no changes to hear). */
const mapBackend = (initial: Map<string, string>) => {
  let version = 0
  const entries = new Map<string, Entry>(
    [...initial].map(([key, text]) => [key, { text, revision: String(++version) }])
  )
  return CredentialStore.make({
    location: (key) => `map:${key}`,
    read: (key) => Effect.sync(() => Option.fromNullable(entries.get(key))),
    swap: (key, expected, next) =>
      Effect.sync(() => {
        const current = Option.fromNullable(entries.get(key))
        const revision = Option.match(current, { onNone: () => "absent", onSome: (e) => e.revision })
        if (Option.isSome(expected) && expected.value !== revision) return Either.left(current)
        const entry = Option.map(next, ({ text }): Entry => ({ text, revision: String(++version) }))
        if (Option.isSome(entry)) entries.set(key, entry.value)
        else entries.delete(key)
        return Either.right(entry)
      }),
    changes: () => Stream.never,
    // As PostgreSQL's: one change per write (here none), so the manager does not debounce them.
    exactChanges: true,
    changedKeys: Stream.never
  })
}

const instant = TokenRefresher.of({
  refresh: (refreshToken) =>
    Effect.sync(() => ({
      accessToken: Redacted.make(unsignedJwt({ exp: Math.floor(Date.now() / 1000) + 3600 })),
      refreshToken: Redacted.make(`${Redacted.value(refreshToken)}-next`),
      expiresIn: Duration.hours(1)
    }))
})

const run = (n: number, round: number) =>
  Effect.gen(function*() {
    const keys = Array.from({ length: n }, (_, i) => `ceiling-${i}`)
    const texts = new Map(keys.map((key, i) => {
      const doc = Either.getOrThrow(AuthDocument.decode(chatgptJson({
        now: Date.now(),
        accessToken: unsignedJwt({ exp: Math.floor((Date.now() + 60_000) / 1000), i, round }),
        refreshToken: `rt-${i}`
      })))
      return [key, `${AuthDocument.toText(doc)}\n`] as const
    }))
    const before = heap()
    const auth = yield* KeyedAuthManager.make({ idleTimeToLive: Duration.minutes(5) }).pipe(
      Effect.provide(Layer.mergeAll(
        Layer.succeed(CredentialStore, mapBackend(texts)),
        RefreshCoordinator.layerMemory,
        Layer.succeed(TokenRefresher, instant)
      ))
    )
    const ask = (noRefresh: boolean) =>
      Effect.forEach(keys, (key) => auth.getAuthStatus(key, { includeToken: true, noRefresh }), {
        concurrency: "unbounded"
      })
    yield* ask(true)
    const idle = heap()
    const loadBefore = load()
    const t0 = performance.now()
    const answers = yield* ask(false)
    const elapsed = performance.now() - t0
    const fresh = answers.filter((status, i) =>
      status.authToken !== null &&
      Redacted.value(status.authToken) !== JSON.parse(texts.get(keys[i]!)!).tokens.access_token
    ).length
    const row = {
      store: "none (in memory)",
      K: 1,
      N: n,
      refreshes: fresh,
      refreshes_per_s: Math.round(fresh / (elapsed / 1000)),
      heap_per_credential_kb: Number(((idle - before) / n / 1024).toFixed(2)),
      load: `${loadBefore} → ${load()}`
    }
    process.stdout.write(`${JSON.stringify(row)}\n`)
    return row
  }).pipe(Effect.scoped)

for (const n of sizes) {
  for (let round = 0; round < rounds; round++) await Effect.runPromise(run(n, round))
}
