/**
 * Micro-batching of the store's statements: calls of one kind made at the
 * same time become one statement. A replica asked for thousands of stale
 * credentials at once would otherwise send as many statements, each costing
 * it more CPU (the SQL client, the driver, the socket) than PostgreSQL spends
 * on it. A call waits in a queue; a worker takes everything waiting (up to
 * `maxSize`), runs one statement for it and answers each caller; while it
 * runs, new calls gather for the next one. Up to `concurrency` statements of
 * a kind run at once (the pool's size, so the pool is used), and a lone call
 * runs at once: batching adds no wait of its own.
 */
import { Chunk, Deferred, Duration, Effect, Exit, Fiber, Queue, type Scope } from "effect"
import * as Priority from "../util/priority.js"

export interface Options<I, A, E> {
  /** The most calls one statement serves. */
  readonly maxSize: number
  /** The most statements of this kind running at once. */
  readonly concurrency: number
  /**
   * Calls with the same key here never share a statement (one that writes each key once): the
   * later one waits for the next.
   */
  readonly distinct?: ((item: I) => string) | undefined
  /** A statement begun is finished even if the store stops meanwhile (one that takes leases). */
  readonly uninterruptible?: boolean | undefined
  /** Run ahead of everything else in the process (`util/priority.ts`): what other replicas wait for. */
  readonly first?: boolean | undefined
  /**
   * How long its callers wait for a statement (a stalled connection, a lock never granted); then
   * they fail with a sentence saying so, and the statement is interrupted in the background (an
   * uninterruptible one is left to end by itself). Unbounded when absent.
   */
  readonly timeout?: Duration.Duration | undefined
  /**
   * Given what an uninterruptible statement left to end by itself (its callers no longer waiting)
   * ended with: undoes
   * what it did that nobody will use (the leases it took).
   */
  readonly unwanted?:
    | ((items: ReadonlyArray<I>, exit: Exit.Exit<ReadonlyArray<A>, E>) => Effect.Effect<void>)
    | undefined
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
    for (const pending of batch) Deferred.unsafeDone(pending.deferred, failed)
    return
  }
  if (exit.value.length !== batch.length) {
    const defect = Exit.die(new Error(`a batch of ${batch.length} calls got ${exit.value.length} results`))
    for (const pending of batch) Deferred.unsafeDone(pending.deferred, defect)
    return
  }
  batch.forEach((pending, i) => Deferred.unsafeDone(pending.deferred, Exit.succeed(exit.value[i]!)))
}

/** Splits off the calls whose key is already in the batch: they wait for the next one. */
const distinctOf = <I, A, E>(batch: ReadonlyArray<Pending<I, A, E>>, key: (item: I) => string) => {
  const seen = new Set<string>()
  const now: Array<Pending<I, A, E>> = []
  const later: Array<Pending<I, A, E>> = []
  for (const pending of batch) {
    const k = key(pending.item)
    if (seen.has(k)) later.push(pending)
    else {
      seen.add(k)
      now.push(pending)
    }
  }
  return { now, later }
}

/**
 * A batcher whose workers live for the scope's life: returns the call, which waits for the
 * statement that serves it. Calls still waiting when the scope closes are interrupted.
 */
export const make = <I, A, E>(
  options: Options<I, A, E>
): Effect.Effect<(item: I) => Effect.Effect<A, E | string>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Effect.acquireRelease(
      Queue.unbounded<Pending<I, A, E | string>>(),
      (queue) =>
        Effect.flatMap(Queue.takeAll(queue), (left) =>
          Effect.zipRight(
            Effect.forEach(left, (pending) => Deferred.interrupt(pending.deferred), { discard: true }),
            Queue.shutdown(queue)
          ))
    )
    const next = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        let batch = Chunk.toReadonlyArray(yield* restore(Queue.takeBetween(queue, 1, options.maxSize)))
        if (options.distinct !== undefined) {
          const { later, now } = distinctOf(batch, options.distinct)
          if (later.length > 0) yield* Queue.offerAll(queue, later)
          batch = now
        }
        const run = options.run(batch.map((pending) => pending.item))
        if (options.timeout === undefined) {
          settle(batch, yield* Effect.exit(options.uninterruptible === true ? run : restore(run)))
          return
        }
        // Bounded: the wait for the statement can be cut. The statement is then interrupted in the
        // background (the database is asked to cancel it, its connection is freed: a write its callers
        // were told failed usually does not land later); an uninterruptible one is finished, and what
        // it did is undone.
        const statement = options.uninterruptible === true ? Effect.uninterruptible(run) : run
        const timeout = options.timeout
        const fiber = yield* Effect.forkDaemon(statement)
        const waited = yield* Effect.exit(restore(
          Effect.timeoutFail(Fiber.join(fiber), {
            duration: timeout,
            onTimeout: () => `the database did not answer within ${Duration.format(timeout)}`
          })
        ))
        settle(batch, waited)
        if (Exit.isFailure(waited)) {
          const unwanted = options.unwanted
          const items = batch.map((pending) => pending.item)
          yield* Effect.forkDaemon(
            options.uninterruptible === true
              ? unwanted === undefined
                ? Effect.void
                : Effect.flatMap(Fiber.await(fiber), (exit) => unwanted(items, exit))
              : Fiber.interrupt(fiber)
          )
        }
      })
    )
    const worker = options.first === true ? Priority.first(Effect.forever(next)) : Effect.forever(next)
    for (let i = 0; i < Math.max(1, options.concurrency); i++) yield* Effect.forkScoped(worker)
    return (item: I) =>
      Effect.flatMap(
        Deferred.make<A, E | string>(),
        (deferred) => Effect.zipRight(Queue.offer(queue, { item, deferred }), Deferred.await(deferred))
      )
  })
