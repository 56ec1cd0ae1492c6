/**
 * Work that must not wait behind the rest of a busy process: a scheduler that runs each step of
 * its fibers on the next turn of the event loop, behind no queue. A replica asked for thousands of
 * credentials at once has thousands of fibers queued on Effect's default scheduler; a fiber woken
 * there (by a timer, by a statement's answer) runs only after all of them. What other replicas wait
 * for — the renewal of a refresh lock, the refresh that holds one, the statements that save and
 * release it — runs here instead, so that it is done in milliseconds, whatever else is queued.
 * Little runs here (at most the refreshes holding a lock), or it would queue behind itself.
 */
import { Effect, Scheduler } from "effect"

export const scheduler: Scheduler.Scheduler = Scheduler.make((task) => void setImmediate(task))

/** Runs `effect` (and the fibers it forks) on the scheduler behind no queue. */
export const first = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withScheduler(effect, scheduler)
