import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, FiberId, Option, Scope, TestClock } from "effect"
import { type RefreshError, TransientRefreshError } from "../src/errors/Errors.js"
import * as Turns from "../src/manager/internal/turns.js"
import type * as RefreshState from "../src/manager/RefreshState.js"

/** An entry whose run waits for its gate; what starts and what is cancelled is written down. */
const entryOf = (name: string, log: { started: Array<string>; cancelled: Array<string> }) =>
  Effect.map(Deferred.make<void>(), (gate) => {
    const claim: RefreshState.Flight["claim"] = { phase: "queued", fiber: undefined }
    const entry: Turns.Entry = {
      claim,
      // Interruptible, as a flight's attempt is (a turn starts it from an uninterruptible region).
      run: Effect.zipRight(Effect.sync(() => log.started.push(name)), Effect.interruptible(Deferred.await(gate))),
      cancel: Effect.sync(() => log.cancelled.push(name))
    }
    return { entry, claim, open: Deferred.succeed(gate, undefined) }
  })

/** A flight still in line, as the keyed manager makes one. */
const flightOf = Effect.map(Deferred.make<void, RefreshError>(), (done): RefreshState.Flight => ({
  hash: "h",
  base: "b",
  done,
  ended: Deferred.unsafeMake(FiberId.none),
  claim: { phase: "queued", fiber: undefined }
}))

describe("Turns", () => {
  it.scoped("at most `limit` run at once; a batch starts in a random order, and before the batch after it", () =>
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const turns = yield* Turns.make(2, scope, Duration.seconds(30))
      const log = { started: Array<string>(), cancelled: Array<string>() }
      const first = yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => `a${i}`), (name) => entryOf(name, log))
      for (const { entry } of first) yield* turns.enqueue(entry)
      yield* Effect.yieldNow()
      expect(log.started.length).toBe(2)
      expect(yield* turns.size).toEqual({ running: 2, waiting: 8 })
      // One ends: the eight waiting become the batch being started; a second batch arrives meanwhile.
      yield* first[0]!.open
      yield* Effect.yieldNow()
      const second = yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => `b${i}`), (name) => entryOf(name, log))
      for (const { entry } of second) yield* turns.enqueue(entry)
      const gates = new Map([...first, ...second].map((made, i) => [i < 10 ? `a${i}` : `b${i - 10}`, made.open]))
      // The running entries end one by one: two run at any time until all twenty have run.
      const opened = new Set<string>(["a0"])
      while (opened.size < 20) {
        const next = log.started.find((name) => !opened.has(name))!
        opened.add(next)
        yield* gates.get(next)!
        yield* Effect.yieldNow()
        yield* Effect.yieldNow()
        expect((yield* turns.size).running).toBe(Math.min(2, 20 - opened.size))
      }
      expect(new Set(log.started).size).toBe(20)
      // Every a before every b; the batch of eight not in the order it came.
      expect(log.started.slice(0, 10).every((name) => name.startsWith("a"))).toBe(true)
      expect(log.started.slice(2, 10)).not.toEqual(first.slice(2).map((_, i) => `a${i + 2}`))
      expect(log.cancelled).toEqual([])
    }))

  it.scoped("an entry abandoned while it waits never starts and takes no turn; closing cancels the rest", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const turns = yield* Turns.make(1, scope, Duration.seconds(30))
      const log = { started: Array<string>(), cancelled: Array<string>() }
      const [a, b, c, d] = yield* Effect.forEach(["a", "b", "c", "d"], (name) => entryOf(name, log))
      for (const made of [a!, b!, c!, d!]) yield* turns.enqueue(made.entry)
      yield* Effect.yieldNow()
      expect(log.started).toEqual(["a"])
      // b and c are abandoned while they wait (their newer credentials were adopted).
      b!.claim.phase = "abandoned"
      c!.claim.phase = "abandoned"
      yield* a!.open
      yield* Effect.yieldNow()
      yield* Effect.yieldNow()
      expect(log.started).toEqual(["a", "d"])
      // Closing with one running and one more waiting: the waiting one is cancelled, none starts.
      const [e] = yield* Effect.forEach(["e"], (name) => entryOf(name, log))
      yield* turns.enqueue(e!.entry)
      yield* turns.close
      yield* d!.open
      yield* Effect.yieldNow()
      expect(log.started).toEqual(["a", "d"])
      expect(log.cancelled).toEqual(["e"])
      expect(e!.claim.phase).toBe("abandoned")
      // After closing, an entry is cancelled at once.
      const [f] = yield* Effect.forEach(["f"], (name) => entryOf(name, log))
      yield* turns.enqueue(f!.entry)
      expect(log.cancelled).toEqual(["e", "f"])
      yield* Scope.close(scope, Exit.void)
    }))

  it.scoped("a caller of a flight in line waits until the flight's answer or its own deadline, whichever comes first", () =>
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const turns = yield* Turns.make(1, scope, Duration.seconds(30))
      const late = yield* flightOf
      const answered = yield* flightOf
      // Two callers of one flight, 10 s apart; a caller of another flight, answered in time.
      const early = yield* Effect.fork(Effect.either(turns.await(late)))
      yield* TestClock.adjust(Duration.seconds(10))
      const joined = yield* Effect.fork(Effect.either(turns.await(late)))
      const intime = yield* Effect.fork(Effect.either(turns.await(answered)))
      yield* TestClock.adjust(Duration.seconds(5))
      yield* Turns.settle(answered, Exit.void)
      expect((yield* Fiber.join(intime))._tag).toBe("Right")
      // The first caller's deadline (30 s from its call): it alone is told to stop waiting.
      yield* TestClock.adjust(Duration.seconds(15))
      const first = yield* Fiber.join(early)
      expect(first._tag === "Left" && first.left).toBeInstanceOf(TransientRefreshError)
      expect(first._tag === "Left" && first.left.message).toMatch(/waited over 30s for its turn/)
      expect(Option.isNone(yield* Fiber.poll(joined))).toBe(true)
      // The flight ends before the second caller's deadline: it gets the flight's answer, once.
      yield* TestClock.adjust(Duration.seconds(5))
      yield* Turns.settle(late, Exit.fail(new TransientRefreshError({ kind: "status", detail: "the flight's own" })))
      const second = yield* Fiber.join(joined)
      expect(second._tag === "Left" && second.left.message).toMatch(/the flight's own/)
      yield* TestClock.adjust(Duration.seconds(60))
      // A caller that joined in line whose flight got its turn meanwhile: told so at its deadline.
      const turned = yield* flightOf
      const joinedInLine = yield* Effect.fork(Effect.either(turns.await(turned)))
      yield* TestClock.adjust(Duration.seconds(10))
      turned.claim.phase = "running"
      yield* TestClock.adjust(Duration.seconds(20))
      const told = yield* Fiber.join(joinedInLine)
      expect(told._tag === "Left" && told.left.message).toMatch(/did not end within 30s of the call/)
      // A flight that has started is waited for as any: no deadline of the line.
      const started = yield* flightOf
      started.claim.phase = "running"
      const waiting = yield* Effect.fork(turns.await(started))
      yield* TestClock.adjust(Duration.minutes(5))
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      yield* Turns.settle(started, Exit.void)
      yield* Fiber.join(waiting)
    }))

  it.scoped("a flight refused by closed turns is over at once: its caller is not left in line", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const turns = yield* Turns.make(1, scope, Duration.seconds(30))
      yield* turns.close
      const flight = yield* flightOf
      yield* turns.enqueue({
        claim: flight.claim,
        run: Effect.void,
        cancel: Turns.settle(flight, Exit.interrupt(FiberId.none))
      })
      expect(flight.claim.phase).toBe("abandoned")
      const exit = yield* Effect.exit(turns.await(flight))
      expect(Exit.isInterrupted(exit)).toBe(true)
      // A caller in line when the turns stop is interrupted with them, not left to its deadline.
      const other = yield* flightOf
      const scope2 = yield* Scope.make()
      const turns2 = yield* Turns.make(1, scope2, Duration.seconds(30))
      const waiting = yield* Effect.fork(turns2.await(other))
      // Closed only once the caller is in line.
      for (let i = 0; i < 100 && other.claim.waiters === undefined; i++) yield* Effect.yieldNow()
      expect(other.claim.waiters).toHaveLength(1)
      yield* Scope.close(scope2, Exit.void)
      expect(Exit.isInterrupted(yield* Fiber.await(waiting))).toBe(true)
      yield* Scope.close(scope, Exit.void)
    }))

  it.scoped("a flight long in line with callers coming and giving up keeps only about those still waiting", () =>
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const turns = yield* Turns.make(1, scope, Duration.seconds(30))
      const flight = yield* flightOf
      // A caller a second, each giving up after 30 s: about 30 wait at any time.
      const callers = []
      for (let i = 0; i < 200; i++) {
        callers.push(yield* Effect.fork(Effect.either(turns.await(flight))))
        yield* TestClock.adjust(Duration.seconds(1))
        expect(flight.claim.waiters!.length).toBeLessThanOrEqual(2 * 31 + 1)
      }
      // Those whose 30 s have passed (called at 0 … 170 s, now 200 s) were told so; the rest get its answer.
      yield* Turns.settle(flight, Exit.void)
      const answers = yield* Effect.forEach(callers, Fiber.join)
      expect(answers.filter((answer) => answer._tag === "Left")).toHaveLength(171)
      expect(answers.slice(171).every((answer) => answer._tag === "Right")).toBe(true)
    }))

  it.scoped("a flight whose lock is held elsewhere waits aside with no turn: dropped once adopted, started once the lock is free", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const held = new Set(["a", "c", "d"])
      const turns = yield* Turns.make(1, scope, Duration.seconds(30), (key) => held.has(key))
      const log = { started: Array<string>(), cancelled: Array<string>() }
      const [a, b, c, d] = yield* Effect.forEach(
        ["a", "b", "c", "d"],
        (name) => Effect.map(entryOf(name, log), (made) => ({ ...made, entry: { ...made.entry, key: name } }))
      )
      for (const made of [a!, b!, c!]) yield* turns.enqueue(made.entry)
      yield* Effect.yieldNow()
      // a and c are refreshing elsewhere: b has the one turn.
      expect(log.started).toEqual(["b"])
      expect(yield* turns.size).toEqual({ running: 1, waiting: 2 })
      // A caller of c, set aside (when b's turn ends) for longer than its deadline, is told why.
      const cFlight: RefreshState.Flight = { ...(yield* flightOf), claim: c!.claim }
      const cCaller = yield* Effect.fork(Effect.either(turns.await(cFlight)))
      yield* b!.open
      yield* Effect.yieldNow()
      yield* TestClock.adjust(Turns.recheck)
      expect(log.started).toEqual(["b"])
      yield* TestClock.adjust(Duration.seconds(30))
      const told = yield* Fiber.join(cCaller)
      expect(told._tag === "Left" && told.left.message).toContain("another process has been refreshing this credential")
      // c's refresh elsewhere is adopted (its flight ends in line); a's lock is let go without a write.
      c!.claim.phase = "abandoned"
      held.delete("a")
      yield* TestClock.adjust(Turns.recheck)
      yield* Effect.yieldNow()
      expect(log.started).toEqual(["b", "a"])
      expect(yield* turns.size).toEqual({ running: 1, waiting: 0 })
      // Closing cancels a flight still aside (set aside when a's turn ended).
      yield* turns.enqueue(d!.entry)
      yield* a!.open
      yield* Effect.yieldNow()
      yield* Effect.yieldNow()
      expect(yield* turns.size).toEqual({ running: 0, waiting: 1 })
      yield* Scope.close(scope, Exit.void)
      expect(log.cancelled).toEqual(["d"])
      expect(log.started).toEqual(["b", "a"])
    }))
})
