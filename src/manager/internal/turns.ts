/**
 * The refreshes of a keyed manager take turns: at most `limit` flights run at once, the others
 * wait in a plain list, holding no fiber, no lock and no connection. A key whose newer credentials
 * arrive while it waits (another replica refreshed it) ends at once with nothing done (it is
 * skipped when its turn would have come).
 *
 * The keys asked for at the same time are started in a random order, each process its own: when
 * several replicas are asked for the same thousands of keys at once, each starts with different
 * keys, and by the time it reaches the others' keys it has mostly adopted their answers, instead
 * of every replica queueing for the same lock of the same key in the same order. Order is kept
 * between batches: a key waits for the batch it arrived in and the batch before it, no longer.
 */
import { Effect, Fiber, Random, Scope } from "effect"
import type * as RefreshState from "../RefreshState.js"

/** A flight waiting for its turn. */
export interface Entry {
  /** Until the flight starts; set to "abandoned" (by `abandon`) it never starts. */
  readonly claim: RefreshState.Flight["claim"]
  /** The flight, run on a fiber of its own when its turn comes. */
  readonly run: Effect.Effect<void>
  /** Ends the flight without running it: its callers are told, its state says it is over. */
  readonly cancel: Effect.Effect<void>
}

export interface Turns {
  /** Starts the flight now if a turn is free, else when one is. */
  readonly enqueue: (entry: Entry) => Effect.Effect<void>
  /** Cancels the flights still waiting; none starts any more (a stopping manager sends no new request). */
  readonly close: Effect.Effect<void>
  /** How many flights run and wait now. */
  readonly size: Effect.Effect<{ readonly running: number; readonly waiting: number }>
}

/**
 * Turns for at most `limit` flights at once, run in `scope`. When the scope closes (or `close`),
 * the flights still waiting are cancelled (their callers are interrupted), and none starts any more.
 */
export const make = (limit: number, scope: Scope.Scope): Effect.Effect<Turns> =>
  Effect.gen(function*() {
    let running = 0
    let closed = false
    // The batch being started (in random order) and the one gathering meanwhile.
    let current: Array<Entry> = []
    let next: Array<Entry> = []

    const take = (random: number): Entry | undefined => {
      while (true) {
        if (current.length === 0) {
          if (next.length === 0) return undefined
          current = next
          next = []
        }
        const i = Math.floor(random * current.length)
        const entry = current[i]!
        current[i] = current[current.length - 1]!
        current.pop()
        // A flight abandoned while it waited is over already.
        if (entry.claim.phase === "queued") return entry
      }
    }

    const startNext: Effect.Effect<void> = Effect.suspend(() => {
      if (closed || running >= limit || (current.length === 0 && next.length === 0)) return Effect.void
      return Effect.flatMap(Random.next, (random) => {
        const entry = take(random)
        return entry === undefined ? Effect.void : Effect.zipRight(start(entry), startNext)
      })
    })

    const start = (entry: Entry): Effect.Effect<void> =>
      Effect.suspend(() => {
        running++
        entry.claim.phase = "waiting"
        return entry.run.pipe(
          Effect.ensuring(Effect.suspend(() => {
            running--
            return startNext
          })),
          Effect.forkIn(scope),
          Effect.flatMap((fiber) => {
            entry.claim.fiber = fiber
            // Abandoned before its fiber was known (its newer credentials adopted meanwhile): stopped.
            return entry.claim.phase === "abandoned" ? Fiber.interruptFork(fiber) : Effect.void
          })
        )
      })

    const close = Effect.suspend(() => {
      closed = true
      const left = [...current, ...next].filter((entry) => entry.claim.phase === "queued")
      current = []
      next = []
      for (const entry of left) entry.claim.phase = "abandoned"
      return Effect.forEach(left, (entry) => entry.cancel, { discard: true })
    })
    yield* Scope.addFinalizer(scope, close)

    return {
      // Uninterruptible: a turn taken is always given back, by the flight's end.
      enqueue: (entry) =>
        Effect.uninterruptible(Effect.suspend(() => {
          if (closed) return entry.cancel
          next.push(entry)
          return startNext
        })),
      close,
      size: Effect.sync(() => ({
        running,
        waiting: [...current, ...next].filter((entry) => entry.claim.phase === "queued").length
      }))
    }
  })
