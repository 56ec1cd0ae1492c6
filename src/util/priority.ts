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

// The steps scheduled since the last turn run together on the next one: one `setImmediate` per
// turn, not one per step (each is a turn of the event loop, with its poll for I/O). Steps
// scheduled meanwhile run on the turn after, so that I/O is still polled between.
let tasks: Array<Scheduler.Task> = []
let pending = false
const runTasks = () => {
  pending = false
  const now = tasks
  tasks = []
  let i = 0
  try {
    for (; i < now.length; i++) now[i]!()
  } finally {
    // A task that threw leaves the others to the next turn, not lost.
    if (i + 1 < now.length) {
      tasks = [...now.slice(i + 1), ...tasks]
      if (!pending) {
        pending = true
        setImmediate(runTasks)
      }
    }
  }
}

export const scheduler: Scheduler.Scheduler = Scheduler.make((task) => {
  tasks.push(task)
  if (!pending) {
    pending = true
    setImmediate(runTasks)
  }
})

/** Runs `effect` (and the fibers it forks) on the scheduler behind no queue. */
export const first = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withScheduler(effect, scheduler)
