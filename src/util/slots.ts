/**
 * At most `count` holders at once, the others waiting in order. A waiter that gives up leaves in
 * constant time: an Effect `Queue`'s taker that is interrupted is removed by copying the whole
 * queue of takers, and with thousands of waiters giving up at once (a fleet's flights that adopt
 * another replica's write while they wait) that copying was most of a replica's work. A freed slot
 * wakes one waiter (a semaphore wakes every waiter to race for it).
 */
import { Effect } from "effect"

interface Waiter {
  /** The slot was handed to it. */
  woken: boolean
  resume: ((effect: Effect.Effect<void>) => void) | undefined
}

export interface Slots {
  /**
   * Waits for a slot and holds it; interrupted while waiting, it holds none. Call it where
   * interruption is masked (the wait alone can be interrupted), then register the slot's return.
   */
  readonly take: Effect.Effect<void>
  /** Gives a slot back (to the first waiter, if any). */
  readonly free: Effect.Effect<void>
  /** The slots free now. */
  readonly available: () => number
}

export const make = (count: number): Slots => {
  let free = count
  const waiting = new Set<Waiter>()
  const hand = () => {
    for (const waiter of waiting) {
      waiting.delete(waiter)
      waiter.woken = true
      waiter.resume!(Effect.void)
      return
    }
    free++
  }
  // Uninterruptible but for the wait itself: a slot had is never lost to an interruption. One that
  // lands as the slot is handed over (the wait already woken) passes the slot on.
  const take = Effect.uninterruptible(Effect.suspend(() => {
    if (free > 0) {
      free--
      return Effect.void
    }
    const waiter: Waiter = { woken: false, resume: undefined }
    return Effect.interruptible(Effect.async<void>((resume) => {
      waiter.resume = resume
      waiting.add(waiter)
      return Effect.sync(() => waiting.delete(waiter))
    })).pipe(
      Effect.onInterrupt(() => Effect.sync(() => waiter.woken && hand()))
    )
  }))
  return { take, free: Effect.sync(hand), available: () => free }
}
