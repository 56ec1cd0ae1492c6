/**
 * The PostgreSQL store's batching of reads (src/postgres/batch.ts), on a statement of our own: calls
 * made at once share statements, each caller gets its own result, a failure reaches every caller of
 * its statement, and closing the scope answers the calls still waiting.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import * as Batch from "../src/postgres/batch.js"

describe("Batch (Effect 4)", () => {
  it.effect("calls made at once share statements, each caller gets its own result, in order", () =>
    Effect.gen(function*() {
      const statements: Array<ReadonlyArray<number>> = []
      const read = yield* Batch.make({
        maxSize: 10,
        concurrency: 2,
        run: (items: ReadonlyArray<number>) =>
          Effect.sync(() => {
            statements.push(items)
            return items.map((item) => item * 10)
          })
      })
      const results = yield* Effect.forEach(Array.from({ length: 25 }, (_, i) => i), read, {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(results, Array.from({ length: 25 }, (_, i) => i * 10))
      // A lone first call runs at once; the rest gather, at most 10 to a statement.
      assert.isAtMost(statements.length, 5)
      assert.isTrue(statements.every((items) => items.length <= 10))
      assert.deepStrictEqual(statements.flat().sort((a, b) => a - b), Array.from({ length: 25 }, (_, i) => i))
    }))

  it.effect("a failed statement fails every call it served, and the next statement runs", () =>
    Effect.gen(function*() {
      let failing = true
      const read = yield* Batch.make({
        maxSize: 10,
        concurrency: 1,
        run: (items: ReadonlyArray<string>) => failing ? Effect.fail("the database is down") : Effect.succeed(items)
      })
      const failed = yield* Effect.forEach(["a", "b", "c"], (item) => Effect.flip(read(item)), {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(failed, ["the database is down", "the database is down", "the database is down"])
      failing = false
      assert.strictEqual(yield* read("d"), "d")
    }))

  it.effect("closing the scope answers the calls still waiting (interrupted), and later calls too", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const gate = yield* Deferred.make<void>()
      const read = yield* Batch.make({
        maxSize: 1,
        concurrency: 1,
        run: (items: ReadonlyArray<string>) => Effect.as(Deferred.await(gate), items)
      }).pipe(Scope.provide(scope))
      const first = yield* Effect.forkChild(read("a"), { startImmediately: true })
      const second = yield* Effect.forkChild(read("b"), { startImmediately: true })
      yield* Scope.close(scope, Exit.void)
      const exits = yield* Effect.forEach([first, second], Fiber.await)
      assert.isTrue(exits.every(Exit.hasInterrupts))
      assert.isTrue(Exit.hasInterrupts(yield* Effect.exit(read("c"))))
    }))
})
