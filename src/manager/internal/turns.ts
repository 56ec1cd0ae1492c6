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
 *
 * A flight whose key's refresh lock another process is known to hold (`heldElsewhere`: a refresh
 * of it is under way there) is not started: it waits aside, holding no turn, for that refresh's
 * write (adopted, it ends the flight in line) or, looked at again every `recheck`, for the lock to
 * be free. Started, it would take a turn to wait for the lock, and end when the write is adopted.
 *
 * A caller of a flight in line waits no longer than `deadline` from its call: then it gets a
 * passing error (a poll answers with the credentials it holds) while the flight stays in line. The
 * deadlines are kept by one fiber for all the callers, not a timer and two fibers each: every
 * caller's is its call's instant plus the same duration, so the callers are in deadline order as
 * they arrive, and that fiber sleeps until the first one's.
 */
import { Deferred, Duration, Effect, Exit, Fiber, FiberId, Random, Scope } from "effect"
import { type RefreshError, TransientRefreshError } from "../../errors/Errors.js"
import type * as RefreshState from "../RefreshState.js"

/** A flight waiting for its turn. */
export interface Entry {
  /** Until the flight starts; set to "abandoned" (by `abandon`) it never starts. */
  readonly claim: RefreshState.Flight["claim"]
  /** The flight, run on a fiber of its own when its turn comes. */
  readonly run: Effect.Effect<void>
  /** Ends the flight without running it: its callers are told, its state says it is over. */
  readonly cancel: Effect.Effect<void>
  /** Its credential key, when its lock may be known held elsewhere (see `make`). */
  readonly key?: string | undefined
}

export interface Turns {
  /** Starts the flight now if a turn is free, else when one is. */
  readonly enqueue: (entry: Entry) => Effect.Effect<void>
  /** Cancels the flights still waiting; none starts any more (a stopping manager sends no new request). */
  readonly close: Effect.Effect<void>
  /** How many flights run and wait now. */
  readonly size: Effect.Effect<{ readonly running: number; readonly waiting: number }>
  /**
   * The wait of a flight's caller: until its answer; for a flight still in line, no longer than the
   * deadline from now (a passing error then, the flight staying in line).
   */
  readonly await: (flight: RefreshState.Flight) => Effect.Effect<void, RefreshError>
}

/**
 * Gives a flight's answer to its callers: those waiting on `done`, and those that joined it in
 * line (see `Turns.await`). Every end of a keyed manager's flight goes through here.
 */
export const settle = (flight: RefreshState.Flight, exit: Exit.Exit<void, RefreshError>): Effect.Effect<void> =>
  Effect.zipRight(
    Deferred.done(flight.done, exit),
    Effect.sync(() => {
      const waiters = flight.claim.waiters
      if (waiters === undefined) return
      flight.claim.waiters = undefined
      for (const waiter of waiters) answer(waiter, exit)
    })
  )

const answer = (waiter: RefreshState.Waiter, exit: Exit.Exit<void, RefreshError>) => {
  if (waiter.answered) return
  waiter.answered = true
  Deferred.unsafeDone(waiter.answer, exit)
}

/** How often the flights set aside (their lock held elsewhere) are looked at again. */
export const recheck = Duration.millis(100)

/**
 * Turns for at most `limit` flights at once, run in `scope`, whose callers wait in line no longer
 * than `deadline`; a flight whose key's lock is held elsewhere (`heldElsewhere`) waits aside. When
 * the scope closes (or `close`), the flights still waiting are cancelled (their callers are
 * interrupted), and none starts any more.
 */
export const make = (
  limit: number,
  scope: Scope.Scope,
  deadline: Duration.Duration,
  heldElsewhere?: ((key: string) => boolean) | undefined
): Effect.Effect<Turns> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const deadlineMs = Duration.toMillis(deadline)
    // Monotonic (a step of the system's clock moves no deadline), in milliseconds.
    const now = () => Number(clock.unsafeCurrentTimeNanos() / 1_000_000n)
    const inLine = Exit.fail(
      new TransientRefreshError({
        kind: "timeout",
        detail: `the refresh waited over ${
          Duration.format(deadline)
        } for its turn among the credentials refreshing at once; it stays in line, and a later call gets its result`
      })
    )
    // Set aside while another process refreshes its credential, for longer than the deadline.
    const refreshedElsewhere = Exit.fail(
      new TransientRefreshError({
        kind: "timeout",
        detail: `another process has been refreshing this credential for over ${
          Duration.format(deadline)
        } (it holds its refresh lock); this refresh waits for its result, and a later call gets it`
      })
    )
    // Its turn came while the caller waited, and the refresh has not ended since.
    const started = Exit.fail(
      new TransientRefreshError({
        kind: "timeout",
        detail: `the refresh did not end within ${
          Duration.format(deadline)
        } of the call (it waited for its turn first); it goes on, and a later call gets its result`
      })
    )
    // The callers in line, in the order of their deadlines (from `first` on), and how the one fiber
    // that keeps them is woken when it sleeps for want of any.
    let line: Array<RefreshState.Waiter> = []
    let first = 0
    let idle: Deferred.Deferred<void> | undefined
    const keepDeadlines: Effect.Effect<never> = Effect.suspend(() => {
      while (first < line.length && line[first]!.answered) first++
      // Those answered are dropped from the front, now and then rather than one by one.
      if (first > 1024 && first * 2 > line.length) {
        line = line.slice(first)
        first = 0
      }
      if (first === line.length) {
        line = []
        first = 0
        const wake = idle = Deferred.unsafeMake<void>(FiberId.none)
        return Deferred.await(wake)
      }
      const at = now()
      const next = line[first]!
      if (next.deadline > at) return Effect.sleep(Duration.millis(next.deadline - at))
      while (first < line.length && line[first]!.deadline <= at) {
        const waiter = line[first++]!
        const { claim } = waiter.flight
        answer(waiter, claim.phase !== "queued" ? started : claim.aside === true ? refreshedElsewhere : inLine)
      }
      return Effect.void
    }).pipe(
      Effect.forever,
      // Stopped with the turns: a caller still in line is interrupted, as its flight is (no caller is
      // left waiting for a deadline no one keeps; none is added once the turns are closed).
      Effect.onInterrupt((ids) =>
        Effect.sync(() => {
          const stopped = Exit.interrupt(FiberId.combineAll(ids))
          for (let i = first; i < line.length; i++) answer(line[i]!, stopped)
          line = []
          first = 0
        })
      )
    )
    yield* Effect.forkIn(keepDeadlines, scope)

    // When a flight's list of callers is next looked through for those answered (see `await`).
    const pruneAt = new WeakMap<RefreshState.Flight["claim"], number>()
    let running = 0
    let closed = false
    // The batch being started (in random order) and the one gathering meanwhile; the flights set
    // aside, their lock held elsewhere, and whether they are to be looked at again.
    let current: Array<Entry> = []
    let next: Array<Entry> = []
    let aside: Array<Entry> = []
    let looking = false

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
        // A flight abandoned while it waited is over already. One taken leaves the line in this very
        // step: abandoned from now on, it is stopped as one waiting for the lock is (see `start`).
        if (entry.claim.phase !== "queued") continue
        if (entry.key !== undefined && heldElsewhere?.(entry.key) === true) {
          entry.claim.aside = true
          aside.push(entry)
          continue
        }
        entry.claim.phase = "waiting"
        return entry
      }
    }

    const startNext: Effect.Effect<void> = Effect.suspend(() => {
      if (closed || running >= limit || (current.length === 0 && next.length === 0)) return lookAgain
      return Effect.flatMap(Random.next, (random) => {
        const entry = take(random)
        return entry === undefined ? lookAgain : Effect.zipRight(start(entry), startNext)
      })
    })

    // The flights set aside are looked at again after `recheck` (one fiber, while there are any):
    // those over (their refresh adopted) are dropped, those whose lock is no longer held go back
    // in line. Only the wait can be interrupted (the turns closing): the rest is a turn's start.
    const lookAgain: Effect.Effect<void> = Effect.suspend(() => {
      if (looking || closed || aside.length === 0) return Effect.void
      looking = true
      return Effect.forkIn(
        Effect.zipRight(
          Effect.interruptible(Effect.sleep(recheck)),
          Effect.suspend(() => {
            looking = false
            const still: Array<Entry> = []
            for (const entry of aside) {
              if (entry.claim.phase !== "queued") continue
              if (heldElsewhere?.(entry.key!) === true) still.push(entry)
              else {
                entry.claim.aside = false
                next.push(entry)
              }
            }
            aside = still
            return startNext
          })
        ).pipe(Effect.uninterruptible),
        scope
      )
    })

    const start = (entry: Entry): Effect.Effect<void> =>
      Effect.suspend(() => {
        running++
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
      const left = [...current, ...next, ...aside].filter((entry) => entry.claim.phase === "queued")
      current = []
      next = []
      aside = []
      for (const entry of left) entry.claim.phase = "abandoned"
      return Effect.forEach(left, (entry) => entry.cancel, { discard: true })
    })
    yield* Scope.addFinalizer(scope, close)

    return {
      // Uninterruptible: a turn taken is always given back, by the flight's end.
      enqueue: (entry) =>
        Effect.uninterruptible(Effect.suspend(() => {
          if (closed) {
            // Over at once, as the flights cancelled by `close` (and so never waited for in line).
            if (entry.claim.phase !== "queued") return Effect.void
            entry.claim.phase = "abandoned"
            return entry.cancel
          }
          next.push(entry)
          return startNext
        })),
      close,
      size: Effect.sync(() => ({
        running,
        waiting: [...current, ...next, ...aside].filter((entry) => entry.claim.phase === "queued").length
      })),
      await: (flight) =>
        Effect.suspend(() => {
          // Started already (or over), or the turns closed: waited for as a manager's flight is.
          if (flight.claim.phase !== "queued" || closed) return Deferred.await(flight.done)
          const waiter: RefreshState.Waiter = {
            answer: Deferred.unsafeMake(FiberId.none),
            flight,
            deadline: now() + deadlineMs,
            answered: false
          }
          let waiters = flight.claim.waiters ??= []
          // A flight long in line with many callers: those answered by their deadline are let go
          // now and then (once the list has doubled since the last time), not kept until it ends.
          if (waiters.length >= (pruneAt.get(flight.claim) ?? 32)) {
            waiters = flight.claim.waiters = waiters.filter((kept) => !kept.answered)
            pruneAt.set(flight.claim, Math.max(32, 2 * waiters.length))
          }
          waiters.push(waiter)
          line.push(waiter)
          if (idle !== undefined) {
            Deferred.unsafeDone(idle, Exit.void)
            idle = undefined
          }
          return Deferred.await(waiter.answer)
        })
    }
  })
