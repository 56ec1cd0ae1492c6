/**
 * Calls of one kind made at the same time, run as one statement: a replica that hears thousands of
 * its credentials change at once (another replica refreshed them) would otherwise send a read per
 * key, each costing it more CPU (the SQL client, the driver, the socket) than PostgreSQL spends on
 * it. A call waits in line; a worker takes what waits (up to `maxSize`), runs one statement for it
 * and answers each caller; meanwhile new calls gather for the next one. Up to `concurrency`
 * statements run at once, and a lone call runs at once: batching adds no wait of its own.
 */
import { Deferred, Effect, Exit, type Scope } from "effect"

export interface Options<I, A, E> {
  /** The most calls one statement serves. */
  readonly maxSize: number
  /** The most statements running at once. */
  readonly concurrency: number
  /** Runs one statement for `items`: what each of them gets, in the same order. */
  readonly run: (items: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<A>, E>
}

interface Pending<I, A, E> {
  readonly item: I
  readonly deferred: Deferred.Deferred<A, E>
}

/** What a batch of calls gets: each caller its own result, or every caller the batch's failure. */
const settle = <I, A, E>(batch: ReadonlyArray<Pending<I, A, E>>, exit: Exit.Exit<ReadonlyArray<A>, E>) => {
  if (Exit.isFailure(exit)) {
    const failed = Exit.failCause(exit.cause)
    for (const pending of batch) Deferred.doneUnsafe(pending.deferred, failed)
    return
  }
  if (exit.value.length !== batch.length) {
    const defect = Exit.die(new Error(`a batch of ${batch.length} calls got ${exit.value.length} results`))
    for (const pending of batch) Deferred.doneUnsafe(pending.deferred, defect)
    return
  }
  batch.forEach((pending, i) => Deferred.doneUnsafe(pending.deferred, Exit.succeed(exit.value[i]!)))
}

/**
 * A batcher whose workers live in the scope: returns the call, which waits for the statement that
 * serves it. Calls still waiting when the scope closes, and those of a statement cut by it, are
 * interrupted.
 */
export const make = <I, A, E>(
  options: Options<I, A, E>
): Effect.Effect<(item: I) => Effect.Effect<A, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const waiting: Array<Pending<I, A, E>> = []
    let workers = 0
    let closed = false
    const interruptAll = (batch: ReadonlyArray<Pending<I, A, E>>) =>
      Effect.forEach(batch, (pending) => Deferred.interrupt(pending.deferred), { discard: true })
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        return interruptAll(waiting.splice(0))
      })
    )
    // One worker: statements one after the other while calls wait, then it ends.
    const work: Effect.Effect<void> = Effect.suspend(() => {
      if (closed || waiting.length === 0) {
        workers--
        return Effect.void
      }
      const batch = waiting.splice(0, options.maxSize)
      return Effect.exit(options.run(batch.map((pending) => pending.item))).pipe(
        Effect.onInterrupt(() => interruptAll(batch)),
        Effect.flatMap((exit) => {
          settle(batch, exit)
          return work
        })
      )
    })
    const startWorker = Effect.suspend(() => {
      if (closed || workers >= options.concurrency) return Effect.void
      workers++
      return Effect.asVoid(Effect.forkIn(work, scope))
    })
    return (item: I) =>
      Effect.flatMap(Deferred.make<A, E>(), (deferred) =>
        Effect.suspend(() => {
          if (closed) return Effect.interrupt
          waiting.push({ item, deferred })
          return Effect.andThen(startWorker, Deferred.await(deferred))
        }))
  })
