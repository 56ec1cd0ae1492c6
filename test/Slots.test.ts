import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as Slots from "../src/util/slots.js"

describe("Slots", () => {
  it.effect("waiters are served in order; those that give up leave no slot behind, however many", () =>
    Effect.gen(function*() {
      const slots = Slots.make(2)
      yield* slots.take
      yield* slots.take
      expect(slots.available()).toBe(0)
      const served: Array<number> = []
      const waiters = yield* Effect.forEach(
        Array.from({ length: 1_000 }, (_, i) => i),
        (i) => Effect.fork(Effect.zipRight(slots.take, Effect.sync(() => served.push(i)))),
        { concurrency: "unbounded" }
      )
      yield* Effect.yieldNow()
      // Every waiter but the last two gives up.
      yield* Effect.forEach(waiters.slice(0, 998), Fiber.interrupt, { discard: true })
      yield* slots.free
      yield* slots.free
      yield* Effect.forEach(waiters.slice(998), Fiber.join, { discard: true })
      expect(served).toEqual([998, 999])
      yield* slots.free
      yield* slots.free
      expect(slots.available()).toBe(2)
    }))

  it.effect("a waiter interrupted as its slot is handed over passes the slot on", () =>
    Effect.gen(function*() {
      const slots = Slots.make(1)
      yield* slots.take
      const first = yield* Effect.fork(slots.take)
      const second = yield* Effect.fork(slots.take)
      yield* Effect.yieldNow()
      // The slot is handed to the first waiter, which is interrupted before it runs again.
      yield* slots.free
      yield* Fiber.interrupt(first)
      yield* Fiber.join(second)
      expect(slots.available()).toBe(0)
      yield* slots.free
      expect(slots.available()).toBe(1)
    }))
})
