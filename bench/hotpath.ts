/**
 * The hot path: `getAuthStatus` answered from memory, against a bare Effect
 * step (`Ref.get`), in the same process, interleaved (each round runs every
 * case once, in turn), medians over the rounds. `npm run bench:hotpath`.
 */
import { Effect, Layer, ManagedRuntime, Redacted, Ref } from "effect"
import { PermanentRefreshError } from "../src/errors/Errors.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import { type AuthStatusParams } from "../src/manager/AuthState.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import { chatgptJson } from "../test/support/fixtures.js"

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

export interface HotPathResult {
  /** Calls per second, medians of `rounds`. */
  readonly ref: number
  readonly healthy: number
  readonly poisoned: number
  /** Per round, the ratio to the bare step measured in the same round; medians. */
  readonly healthyRatio: number
  readonly poisonedRatio: number
  readonly heapGrowthKb: number | null
  readonly calls: number
  readonly rounds: number
}

export const hotPath = async (calls = 200_000, rounds = 15): Promise<HotPathResult> => {
  const runtimeFor = (script: Parameters<typeof TokenRefresher.layerTest>[0]) =>
    ManagedRuntime.make(
      Layer.scoped(AuthManager, AuthManager.make({})).pipe(
        // Refreshed long ago, expiring in an hour: fresh for a poll, but a refresh may be attempted.
        Layer.provide(Layer.merge(
          AuthStore.layerMemory(chatgptJson({ now: Date.now(), refreshedAgo: 3_600_000 })),
          TokenRefresher.layerTest(script)
        )),
        Layer.orDie
      )
    )
  const healthyRuntime = runtimeFor([Effect.succeed({ accessToken: Redacted.make("a") })])
  const poisonedRuntime = runtimeFor([Effect.fail(new PermanentRefreshError({ reason: "reused" }))])
  await poisonedRuntime.runPromise(Effect.flatMap(AuthManager, (auth) => Effect.ignore(auth.refresh)))
  const state = await poisonedRuntime.runPromise(Effect.flatMap(AuthManager, (auth) => auth.state))
  if (state.status !== "poisoned") throw new Error(`the poisoned runtime is ${state.status}`)

  // The same loop shape for every case, so the loop's own cost is on both sides.
  const loopOf = (step: Effect.Effect<unknown>) =>
    Effect.gen(function*() {
      for (let i = 0; i < calls; i++) yield* step
    })
  const managerLoop = (params: AuthStatusParams) =>
    Effect.flatMap(AuthManager, (auth) => loopOf(auth.getAuthStatus(params)))
  const bare = Effect.flatMap(Ref.make(1), (ref) => loopOf(Ref.get(ref)))
  const perSecond = async <R>(
    program: Effect.Effect<void, never, R>,
    runtime: ManagedRuntime.ManagedRuntime<R, never>
  ) => {
    const began = performance.now()
    await runtime.runPromise(program)
    return calls / ((performance.now() - began) / 1000)
  }
  const healthy = managerLoop({ includeToken: true })
  const poisoned = managerLoop({ includeToken: true, refreshToken: true })
  const samples = { ref: [] as Array<number>, healthy: [] as Array<number>, poisoned: [] as Array<number> }
  const ratios = { healthy: [] as Array<number>, poisoned: [] as Array<number> }
  // Warm-up: let the JIT settle on every case before counting.
  for (let i = 0; i < 3; i++) {
    await perSecond(bare, healthyRuntime)
    await perSecond(healthy, healthyRuntime)
    await perSecond(poisoned, poisonedRuntime)
  }
  for (let round = 0; round < rounds; round++) {
    const ref = await perSecond(bare, healthyRuntime)
    const h = await perSecond(healthy, healthyRuntime)
    const p = await perSecond(poisoned, poisonedRuntime)
    samples.ref.push(ref)
    samples.healthy.push(h)
    samples.poisoned.push(p)
    ratios.healthy.push(ref / h)
    ratios.poisoned.push(ref / p)
  }
  // Memory: nothing may grow with the number of polls.
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < 5; i++) {
    await healthyRuntime.runPromise(healthy)
    await poisonedRuntime.runPromise(poisoned)
  }
  gc?.()
  const after = process.memoryUsage().heapUsed
  await healthyRuntime.dispose()
  await poisonedRuntime.dispose()
  return {
    ref: median(samples.ref),
    healthy: median(samples.healthy),
    poisoned: median(samples.poisoned),
    healthyRatio: median(ratios.healthy),
    poisonedRatio: median(ratios.poisoned),
    heapGrowthKb: gc === undefined ? null : (after - before) / 1024,
    calls: 10 * calls,
    rounds
  }
}

if (process.argv[1] === import.meta.filename) {
  const result = await hotPath()
  console.log(JSON.stringify(result, null, 2))
}
