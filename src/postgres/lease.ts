/**
 * The refresh lock of the PostgreSQL store: a lease row per credential key,
 * not a session's advisory lock. A session can die while its holder's token
 * request is still in flight (a restart, `pg_terminate_backend`, a network
 * cut); a lock that belonged to it would be gone, and another replica would
 * send the same refresh token. The lease lives until it is released or
 * expires (longer than the request timeout, renewed while held), whatever
 * happens to the connections. Its fence number is checked when the refreshed
 * tokens are written: a holder whose lease was taken over after it expired
 * does not write, and says so.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Clock, Duration, Effect, Exit, FiberRef, Option, Scope } from "effect"
import { AuthStoreError } from "../errors/Errors.js"
import type { Entry } from "../stores/CredentialStore.js"
import { logDebugAnnotated } from "../util/debugLog.js"
import * as Slots from "../util/slots.js"
import * as Batch from "./batch.js"
import { retryLostSession } from "./connection.js"
import { nothingTaken, statementsOf, type Tables, type Taken } from "./leaseStatements.js"
import type { Hub } from "./listener.js"
import * as Renewal from "./renewal.js"

/** The credential row as read in the statement that took a lease. */
export interface Prefetched {
  readonly entry: Option.Option<Entry>
  readonly health: Option.Option<string>
}

/**
 * A lease this process holds (or held): its state changes as it is renewed, lost, released, or
 * released by the write of the refreshed tokens ("committed", which also cleared the health).
 */
export interface Lease {
  readonly key: string
  readonly fence: string
  state: "held" | "lost" | "released" | "committed"
  /** What the holder reads first, read with the lease (one round trip); gone at its first write. */
  prefetched: Prefetched | undefined
  /**
   * A write under it was sent and has not answered yet: the write releases the lease as it
   * commits, so the renewal, finding no row meanwhile, does not take it for lost.
   */
  writing?: boolean
}

/** The lease the current refresh holds: what a write under the refresh lock is fenced by. */
export const currentLease: FiberRef.FiberRef<Option.Option<Lease>> = FiberRef.unsafeMake(Option.none<Lease>())

/** The lease of `key` still held (or lost) by the current fiber's refresh; none once released. */
export const leaseOf = (key: string) =>
  Effect.map(
    FiberRef.get(currentLease),
    Option.filter((lease) => lease.key === key && (lease.state === "held" || lease.state === "lost"))
  )

/** Whether the current fiber's refresh of `key` wrote its tokens (and so cleared the health). */
export const committed = (key: string) =>
  Effect.map(FiberRef.get(currentLease), Option.exists((lease) => lease.key === key && lease.state === "committed"))

export const lostLease = (location: string) =>
  new AuthStoreError({
    path: location,
    operation: "write",
    problem: "this replica lost the refresh lock before saving (its lease expired and another replica took it over), " +
      "so it does not write over what that replica saves; the refreshed tokens are kept in memory"
  })

export interface LeaseOptions {
  readonly connected: (
    key: string,
    operation: AuthStoreError["operation"]
  ) => Effect.Effect<SqlClient.SqlClient, AuthStoreError>
  /** One statement on a connection of its own (the listener's), which no queue delays. */
  readonly query: (
    text: string,
    values: ReadonlyArray<unknown>
  ) => Effect.Effect<{ readonly rows: ReadonlyArray<unknown> }, unknown>
  readonly hub: Hub
  readonly tables: Tables
  /** This store's name in the lease rows (who holds a lease, for a person looking). */
  readonly holder: string
  /** How long a lease lasts unless renewed; also the longest wait for one. */
  readonly ttl: Duration.Duration
  readonly location: (key: string) => string
  readonly problem: (cause: unknown) => string
  /** A slot is taken before a lease and given back after it (see `util/slots.ts`). */
  readonly slots: Slots.Slots
  /** How the takes and releases of many keys are gathered into statements (see `batch.ts`). */
  readonly batches: {
    readonly maxSize: number
    readonly concurrency: number
    readonly timeout?: Duration.Duration | undefined
  }
}

/** The slots of the leases one process may hold at once. */
export const makeSlots = (count: number) => Effect.sync(() => Slots.make(count))

const prefetchedOf = (taken: Taken): Prefetched => ({
  entry: taken.present === true && taken.document !== null && taken.version !== null
    ? Option.some({ text: taken.document, revision: taken.version })
    : Option.none(),
  health: Option.fromNullable(taken.health)
})

/** One try at a lease: the lease taken (with a slot), or none; the statement's row either way. */
interface Attempt {
  readonly lease: Lease | undefined
  readonly row: Taken
}

/** An `AuthStoreError` for `key` from a failed statement, or from the connection's own error. */
const failWith =
  (options: Pick<LeaseOptions, "location" | "problem">) =>
  (key: string, operation: AuthStoreError["operation"]) =>
  (cause: unknown) =>
    new AuthStoreError({
      path: options.location(key),
      operation,
      problem: cause instanceof AuthStoreError ? cause.problem : options.problem(cause)
    })

/** The takes and the releases, each gathered into statements for many keys (see `batch.ts`). */
const batched = (options: LeaseOptions, text: ReturnType<typeof statementsOf>, ttlMs: number) =>
  Effect.gen(function*() {
    const fail = failWith(options)
    const releaseMany = yield* Batch.make({
      ...options.batches,
      // What other replicas wait for.
      first: true,
      run: (leases: ReadonlyArray<Lease>) =>
        Effect.flatMap(options.connected(leases[0]!.key, "lock"), (sql) =>
          Effect.as(
            sql.unsafe(text.release, [
              leases.map((lease) => lease.key),
              leases.map((lease) => lease.fence),
              options.tables.leaseChannel
            ]),
            leases.map(() => undefined)
          ))
    })

    // The takes of many keys in one statement, each key once (an INSERT … ON CONFLICT DO UPDATE
    // cannot change a row twice). A statement begun is finished: a lease it takes is handed to its
    // caller, who releases it — or, when its callers stopped waiting for it (the database slow to
    // answer), released as soon as it has ended.
    const takeMany = yield* Batch.make({
      ...options.batches,
      distinct: (key: string) => key,
      uninterruptible: true,
      unwanted: (_keys, exit) =>
        Exit.isFailure(exit) ? Effect.void : Effect.forEach(
          exit.value.filter((taken) => taken.fence !== null),
          (taken) =>
            Effect.ignore(
              releaseMany({ key: taken.credential_key, fence: taken.fence!, state: "held", prefetched: undefined })
            ),
          { discard: true }
        ),
      run: (keys: ReadonlyArray<string>) =>
        Effect.flatMap(
          options.connected(keys[0]!, "lock"),
          (sql) =>
            sql.unsafe<Taken>(text.take, [
              keys,
              options.tables.versions,
              options.holder,
              ttlMs,
              options.tables.takenChannel
            ]).pipe(
              // A session lost before the statement ran (a terminated backend still in the pool) is not
              // a reason to fail the refreshes: the statement runs again on a fresh connection.
              retryLostSession,
              Effect.map((rows) => {
                const byKey = new Map(rows.map((row) => [row.credential_key, row]))
                return keys.map((key) => byKey.get(key) ?? nothingTaken(key))
              })
            )
        )
    })
    const take = (key: string) => Effect.mapError(takeMany(key), fail(key, "lock"))

    return { take, releaseMany }
  })

export const make = (options: LeaseOptions) =>
  Effect.gen(function*() {
    const ttlMs = Math.max(1, Math.round(Duration.toMillis(options.ttl)))
    const text = statementsOf(options.tables)
    // The leases this process may hold at once. A replica asked for thousands of stale keys at once
    // would otherwise take every lease it can and then hold them while its flights queue for its CPU,
    // its pool and the token endpoint: the other replicas would wait, and give up after `ttl`.
    const takeSlot = options.slots.take
    const freeSlot = options.slots.free
    const fail = failWith(options)
    const { releaseMany, take } = yield* batched(options, text, ttlMs)

    // Decided when it runs: a lease released by the write of the refreshed tokens needs no statement
    // (nor the bound's timer).
    const release = (lease: Lease) =>
      Effect.suspend(() => lease.state === "committed" ? Effect.void : releaseNow(lease))

    const releaseNow = (lease: Lease) =>
      Effect.suspend(() => {
        // A lost lease stays lost: what its holder saves later is fenced by a lease of its own. A
        // lease released by the write of the refreshed tokens is gone already.
        if (lease.state === "committed") return Effect.void
        if (lease.state === "held") lease.state = "released"
        return Effect.mapError(releaseMany(lease), fail(lease.key, "lock"))
      }).pipe(
        // Run as a finalizer (`withLock`'s, or a scope's), which is uninterruptible: marked
        // interruptible so that the bound can cut a release stuck on a stalled connection (the lease
        // then expires by itself).
        Effect.interruptible,
        Effect.timeout(options.ttl),
        Effect.catchAll((error) =>
          Effect.logWarning("Could not release the refresh lock: it expires by itself").pipe(
            Effect.annotateLogs({ credential: lease.key, problem: "problem" in error ? error.problem : "timed out" })
          )
        )
      )

    const { held, renewing } = Renewal.make({
      ...options,
      fail: failWith(options),
      statement: text.renewal,
      ttlMs
    })

    // One try: a slot first, holding no lease while it waits (a lease is held only by a flight that
    // can go on at once, so the keys this process has not started yet stay free for the others),
    // then the take. Run with interruption masked (the wait for a slot is the only interruptible
    // part: see `util/slots.ts`): a lease taken, and its slot, are handed to the caller, who
    // releases them.
    const tryOnce = (key: string): Effect.Effect<Attempt, AuthStoreError> =>
      Effect.zipRight(
        takeSlot,
        Effect.flatMap(Effect.onError(take(key), () => freeSlot), (row): Effect.Effect<Attempt> => {
          if (row.fence === null) return Effect.as(freeSlot, { lease: undefined, row })
          return Effect.succeed({ lease: { key, fence: row.fence, state: "held", prefetched: prefetchedOf(row) }, row })
        })
      )

    // Gives back what `acquire` gave.
    const giveBack = (lease: Lease) => Effect.ensuring(release(lease), freeSlot)

    // Waits for the lease, interruptible only while it waits (for a slot, for the lease); once it
    // returns, the lease and a slot are held, and the caller gives them back (`giveBack`), which it
    // must register with interruption masked. Most takes find the lease free.
    const acquire = (key: string): Effect.Effect<Lease, AuthStoreError> =>
      Effect.uninterruptible(Effect.zipRight(
        options.connected(key, "lock"),
        Effect.flatMap(tryOnce(key), (first) => first.lease !== undefined ? Effect.succeed(first.lease) : waitFor(key))
      ))

    // Held by another replica: woken when it is released, a moment after its credential changes (a
    // write that releases it: a manager's refresh adopts the write meanwhile, which stops the wait),
    // else when it would expire; bounded by the lease's life from when another replica was first
    // found holding it (a holder alive for longer renews it: the wait gives up). The wait for a slot
    // of this process does not count: it lasts as long as the flights ahead of it, each bounded by
    // its own. Only now subscribed to what frees the lease, then tried once more at once, so that a
    // release in between is not missed. The waits between tries are interruptible.
    const waitFor = (key: string): Effect.Effect<Lease, AuthStoreError> =>
      Effect.scoped(Effect.gen(function*() {
        const next = yield* options.hub.leaseSignals(key)
        let deadline: number | undefined
        let said = false
        while (true) {
          const attempt = yield* tryOnce(key)
          if (attempt.lease !== undefined) return attempt.lease
          const now = yield* Clock.currentTimeMillis
          deadline ??= now + ttlMs
          if (now >= deadline) {
            return yield* new AuthStoreError({
              path: options.location(key),
              operation: "lock",
              problem: `another replica (${attempt.row.holder ?? "unknown"}) has held the refresh lock for over ${
                Duration.format(options.ttl)
              }`
            })
          }
          if (!said) {
            said = true
            yield* logDebugAnnotated("Waiting for the refresh lock, held by another replica", {
              credential: key,
              holder: attempt.row.holder ?? "unknown"
            })
          }
          const expiresIn = Math.ceil((attempt.row.remaining ?? 0) + 1)
          yield* Effect.interruptible(
            Effect.raceFirst(next, Effect.sleep(Duration.millis(Math.min(expiresIn, deadline - now))))
          )
        }
      }))

    /**
     * Runs `effect` holding `key`'s lease, its writes fenced by it. Not a lock for a scope: a scope,
     * its finalizers and a scoped fiber ref cost a refresh more than the rest of taking its lease.
     */
    const withLock =
      (key: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | AuthStoreError, R> =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(acquire(key), (lease) => {
            held.add(lease)
            return Effect.ensuring(
              restore(Effect.locally(effect, currentLease, Option.some(lease))),
              Effect.suspend(() => {
                held.delete(lease)
                return giveBack(lease)
              })
            )
          })
        )

    /**
     * Takes `key`'s lease if it is free, without waiting, until the scope closes: how a holder that
     * lost its lease saves its refreshed tokens later, never while another replica refreshes.
     */
    const tryHold = (key: string): Effect.Effect<Option.Option<Lease>, AuthStoreError, Scope.Scope> =>
      Effect.gen(function*() {
        yield* options.connected(key, "write")
        const scope = yield* Effect.scope
        return yield* Effect.uninterruptible(Effect.flatMap(take(key), (taken) => {
          if (taken.fence === null) return Effect.succeed(Option.none<Lease>())
          const lease: Lease = { key, fence: taken.fence, state: "held", prefetched: prefetchedOf(taken) }
          return Effect.as(Scope.addFinalizer(scope, release(lease)), Option.some(lease))
        }))
      })

    return { withLock, tryHold, renewing }
  })
