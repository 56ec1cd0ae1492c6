/**
 * A statement waited for at most a while (postgres/bounded.ts), in virtual time: the caller fails
 * saying so at the bound, or stops when interrupted, and what the statement does once no one waits
 * for it is handed to `unwanted` (a lease it took is released there).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { bounded } from "../src/postgres/bounded.js"

/**
 * A statement that answers "taken" once `gate` opens (`cut` when it is interrupted instead), and
 * the exit `unwanted` was given; `withUnwanted: false` has nothing to undo.
 */
const setupWith = (withUnwanted: boolean) =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    const cut = yield* Deferred.make<void>()
    const unwanted = yield* Deferred.make<Exit.Exit<string, string>>()
    const statement = Effect.as(Deferred.await(gate), "taken").pipe(
      Effect.onInterrupt(() => Deferred.succeed(cut, undefined))
    )
    const waited = bounded(statement, {
      timeout: Duration.seconds(30),
      onTimeout: (problem) => `timed out: ${problem}`,
      ...(withUnwanted
        ? { unwanted: (exit: Exit.Exit<string, string>) => Effect.asVoid(Deferred.succeed(unwanted, exit)) }
        : {})
    })
    return { gate, cut, unwanted, waited }
  })
const setup = setupWith(true)

describe("bounded statements", () => {
  it.effect("answered in time: its answer, and nothing is unwanted", () =>
    Effect.gen(function*() {
      const { gate, unwanted, waited } = yield* setup
      const caller = yield* Effect.forkChild(waited, { startImmediately: true })
      yield* TestClock.adjust("29 seconds")
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(caller), "taken")
      yield* TestClock.adjust("1 minute")
      assert.isFalse(yield* Deferred.isDone(unwanted))
    }))

  it.effect("not answered in time: the caller fails saying so; the late answer goes to unwanted", () =>
    Effect.gen(function*() {
      const { gate, unwanted, waited } = yield* setup
      const caller = yield* Effect.forkChild(Effect.flip(waited), { startImmediately: true })
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(yield* Fiber.join(caller), "timed out: the database did not answer within 30s")
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Deferred.await(unwanted), Exit.succeed("taken"))
    }))

  it.effect("the caller interrupted: it stops at once; the late answer goes to unwanted", () =>
    Effect.gen(function*() {
      const { gate, unwanted, waited } = yield* setup
      const caller = yield* Effect.forkChild(waited, { startImmediately: true })
      yield* Fiber.interrupt(caller)
      assert.isFalse(yield* Deferred.isDone(unwanted))
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Deferred.await(unwanted), Exit.succeed("taken"))
    }))

  it.effect("nothing to undo: the statement is cut at once when its caller stops waiting", () =>
    Effect.gen(function*() {
      const { cut, waited } = yield* setupWith(false)
      const caller = yield* Effect.forkChild(Effect.flip(waited), { startImmediately: true })
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(yield* Fiber.join(caller), "timed out: the database did not answer within 30s")
      yield* Deferred.await(cut)
    }))

  it.effect("something to undo, and no answer for one more bound either: the statement is cut then", () =>
    Effect.gen(function*() {
      const { cut, unwanted, waited } = yield* setup
      const caller = yield* Effect.forkChild(Effect.flip(waited), { startImmediately: true })
      yield* TestClock.adjust("30 seconds")
      yield* Fiber.join(caller)
      assert.isFalse(yield* Deferred.isDone(cut))
      yield* TestClock.adjust("30 seconds")
      yield* Deferred.await(cut)
      // What it ended with as it was cut goes to unwanted too (a take that had just succeeded is undone).
      assert.isTrue(Exit.hasInterrupts(yield* Deferred.await(unwanted)))
    }))
})
