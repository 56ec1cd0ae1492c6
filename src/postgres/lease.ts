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
import { Clock, Duration, Effect, FiberRef, Option, Queue, Schedule, Scope } from "effect"
import { AuthStoreError } from "../errors/Errors.js"
import type { Entry } from "../stores/CredentialStore.js"
import { retryLostSession } from "./connection.js"
import type { Hub } from "./listener.js"

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
  readonly tables: {
    readonly leases: string
    readonly credentials: string
    readonly versions: string
    readonly leaseChannel: string
  }
  /** This store's name in the lease rows (who holds a lease, for a person looking). */
  readonly holder: string
  /** How long a lease lasts unless renewed; also the longest wait for one. */
  readonly ttl: Duration.Duration
  readonly location: (key: string) => string
  readonly problem: (cause: unknown) => string
  /** A slot is taken before a lease and given back after it (see `makeSlots`). */
  readonly slots: Queue.Queue<void>
}

/**
 * The slots of the leases one process may hold at once: a queue of `count` tokens. (Not a
 * semaphore: a freed slot wakes one waiter, where a semaphore wakes every waiter to race for it,
 * which with a thousand flights waiting was most of a replica's work.)
 */
export const makeSlots = (count: number) =>
  Effect.tap(
    Queue.bounded<void>(count),
    (slots) => Queue.offerAll(slots, Array.from({ length: count }, () => undefined))
  )

type Taken = {
  readonly fence: string | null
  readonly holder: string | null
  readonly remaining: number | null
  readonly present: boolean | null
  readonly document: string | null
  readonly version: string | null
  readonly health: string | null
}

const prefetchedOf = (taken: Taken): Prefetched => ({
  entry: taken.present === true && taken.document !== null && taken.version !== null
    ? Option.some({ text: taken.document, revision: taken.version })
    : Option.none(),
  health: Option.fromNullable(taken.health)
})

export const make = (options: LeaseOptions) => {
  const ttlMs = Math.max(1, Math.round(Duration.toMillis(options.ttl)))
  // The leases this process may hold at once. A replica asked for thousands of stale keys at once
  // would otherwise take every lease it can and then hold them while its flights queue for its CPU,
  // its pool and the token endpoint: the other replicas would wait, and give up after `ttl`.
  const takeSlot = Queue.take(options.slots)
  const freeSlot = Queue.offer(options.slots, undefined)
  const fail = (key: string, operation: AuthStoreError["operation"]) => (cause: unknown) =>
    new AuthStoreError({ path: options.location(key), operation, problem: options.problem(cause) })

  // One round trip: take the lease if it is free or expired, and then read the credential row;
  // else say who holds the lease and for how long. (The outer SELECT sees the lease as it was
  // before the INSERT: only read when it was not taken.) The row is read with a lock: if the
  // previous holder's write committed while this statement waited for its lease, the locking read
  // returns that write, not the row as it was when the statement began.
  const take = (sql: SqlClient.SqlClient, key: string) =>
    sql<Taken>`WITH taken AS (
      INSERT INTO ${sql(options.tables.leases)} (credential_key, fence, holder, expires_at)
      VALUES (${key}, nextval(${options.tables.versions}), ${options.holder}, clock_timestamp() + ${ttlMs} * interval '1 millisecond')
      ON CONFLICT (credential_key) DO UPDATE SET fence = excluded.fence, holder = excluded.holder, expires_at = excluded.expires_at
      WHERE ${sql(options.tables.leases)}.expires_at <= clock_timestamp()
      RETURNING fence
    ), credential AS (
      SELECT document, version::text AS version, health FROM ${sql(options.tables.credentials)}
      WHERE credential_key = ${key} AND EXISTS (SELECT 1 FROM taken) FOR SHARE
    ) SELECT (SELECT fence::text FROM taken) AS fence, l.holder,
        greatest(0, extract(epoch FROM l.expires_at - clock_timestamp()) * 1000)::float8 AS remaining,
        EXISTS (SELECT 1 FROM credential) AS present, (SELECT document FROM credential) AS document,
        (SELECT version FROM credential) AS version, (SELECT health FROM credential) AS health
      FROM (SELECT 1) AS one LEFT JOIN ${sql(options.tables.leases)} AS l ON l.credential_key = ${key}`.pipe(
      // A session lost before the statement ran (a terminated backend still in the pool) is not a
      // reason to fail the refresh: the statement runs again on a fresh connection.
      retryLostSession,
      Effect.map((rows): Taken =>
        rows[0] ??
          { fence: null, holder: null, remaining: null, present: null, document: null, version: null, health: null }
      ),
      Effect.mapError(fail(key, "lock"))
    )

  // Decided when it runs: a lease released by the write of the refreshed tokens needs no statement
  // (nor the bound's timer).
  const release = (lease: Lease) => Effect.suspend(() => lease.state === "committed" ? Effect.void : releaseNow(lease))

  const releaseNow = (lease: Lease) =>
    Effect.gen(function*() {
      // A lost lease stays lost: what its holder saves later is fenced by a lease of its own. A
      // lease released by the write of the refreshed tokens is gone already.
      if (lease.state === "committed") return
      if (lease.state === "held") lease.state = "released"
      const sql = yield* options.connected(lease.key, "lock")
      yield* sql`WITH released AS (
        DELETE FROM ${sql(options.tables.leases)} WHERE credential_key = ${lease.key} AND fence = ${lease.fence}
        RETURNING credential_key
      ) SELECT pg_notify(${options.tables.leaseChannel}, credential_key) FROM released`.pipe(
        Effect.mapError(fail(lease.key, "lock"))
      )
    }).pipe(
      // Run as a scope's finalizer, which is uninterruptible: marked interruptible so that the bound
      // can cut a release stuck on a stalled connection (the lease then expires by itself).
      Effect.interruptible,
      Effect.timeout(options.ttl),
      Effect.catchAll((error) =>
        Effect.logWarning("Could not release the refresh lock: it expires by itself").pipe(
          Effect.annotateLogs({ credential: lease.key, problem: "problem" in error ? error.problem : "timed out" })
        )
      )
    )

  // Renewed at a third of their life while their refreshes go on: a holder that is alive keeps
  // them, a holder that is gone (its process dead or cut off) loses them when they expire. All the
  // leases this process holds are renewed in one statement, by one fiber. The renewal runs on the
  // listening connection: on the pool it would wait behind every statement queued there, and a
  // busy replica would lose leases it is still using (another replica would then send their refresh
  // tokens again). The pool is the fallback while that connection is down.
  const held = new Set<Lease>()
  const period = Duration.millis(Math.max(1, Math.floor(ttlMs / 3)))
  const renewal = `UPDATE "${options.tables.leases.replaceAll("\"", "\"\"")}" AS l ` +
    "SET expires_at = clock_timestamp() + $1 * interval '1 millisecond' " +
    "FROM unnest($2::text[], $3::bigint[]) AS h(credential_key, fence) " +
    "WHERE l.credential_key = h.credential_key AND l.fence = h.fence RETURNING l.credential_key, l.fence::text AS fence"
  const renewAll = Effect.gen(function*() {
    for (const lease of held) if (lease.state !== "held") held.delete(lease)
    if (held.size === 0) return
    const leases = Array.from(held)
    const values = [ttlMs, leases.map((lease) => lease.key), leases.map((lease) => lease.fence)]
    const rows = (yield* options.query(renewal, values).pipe(
      Effect.map((result) => result.rows),
      Effect.orElse(() =>
        Effect.flatMap(options.connected(leases[0]!.key, "lock"), (sql) => sql.unsafe(renewal, values))
      ),
      Effect.mapError(fail(leases[0]!.key, "lock"))
    )) as ReadonlyArray<{ readonly credential_key: string; readonly fence: string }>
    const renewed = new Set(rows.map((row) => `${row.fence} ${row.credential_key}`))
    for (const lease of leases) {
      if (renewed.has(`${lease.fence} ${lease.key}`) || lease.state !== "held") continue
      lease.state = "lost"
      held.delete(lease)
      yield* Effect.logError(
        "This replica lost the refresh lock during its refresh: its lease expired and another replica took it over. " +
          "It will not write over that replica's result; refreshed tokens, if any, are kept in memory"
      ).pipe(Effect.annotateLogs({ credential: lease.key, location: options.location(lease.key) }))
    }
  })
  /** Renews the held leases every third of their life, for as long as it runs. */
  const renewing: Effect.Effect<void> = renewAll.pipe(
    Effect.catchAll((error) =>
      Effect.logDebug("Could not renew the refresh locks; trying again").pipe(
        Effect.annotateLogs({ problem: error.problem })
      )
    ),
    Effect.repeat(Schedule.spaced(period)),
    Effect.asVoid
  )

  // Waits for the lease: woken when it is released or the credential changes, else when it would
  // expire; bounded by the lease's life from when another replica was first found holding it (a
  // holder alive for longer renews it: the wait gives up). The wait for a slot of this process
  // does not count: it lasts as long as the flights ahead of it, each bounded by its own.
  // Each try is uninterruptible up to the release being registered, so a lease taken is never left
  // behind by an interruption; the waits between tries are interruptible.
  const acquire = (key: string, scope: Scope.Scope) =>
    Effect.scoped(Effect.gen(function*() {
      const sql = yield* options.connected(key, "lock")
      const next = yield* options.hub.leaseSignals(key)
      let deadline: number | undefined
      let said = false
      while (true) {
        // A slot first, holding no lease while it waits: a lease is held only by a flight that can
        // go on at once, so the keys this process has not started yet stay free for the others.
        const taken = yield* Effect.uninterruptibleMask((restore) =>
          Effect.zipRight(
            restore(takeSlot),
            Effect.flatMap(Effect.onError(take(sql, key), () => freeSlot), (taken) => {
              if (taken.fence === null) return Effect.as(freeSlot, { lease: Option.none<Lease>(), taken })
              const lease: Lease = { key, fence: taken.fence, state: "held", prefetched: prefetchedOf(taken) }
              return Effect.as(
                Scope.addFinalizer(scope, Effect.ensuring(release(lease), freeSlot)),
                { lease: Option.some(lease), taken }
              )
            })
          )
        )
        if (Option.isSome(taken.lease)) return taken.lease.value
        const now = yield* Clock.currentTimeMillis
        deadline ??= now + ttlMs
        if (now >= deadline) {
          return yield* new AuthStoreError({
            path: options.location(key),
            operation: "lock",
            problem: `another replica (${taken.taken.holder ?? "unknown"}) has held the refresh lock for over ${
              Duration.format(options.ttl)
            }`
          })
        }
        if (!said) {
          said = true
          yield* Effect.logDebug("Waiting for the refresh lock, held by another replica").pipe(
            Effect.annotateLogs({ credential: key, holder: taken.taken.holder ?? "unknown" })
          )
        }
        const expiresIn = Math.ceil((taken.taken.remaining ?? 0) + 1)
        yield* Effect.raceFirst(next, Effect.sleep(Duration.millis(Math.min(expiresIn, deadline - now))))
      }
    }))

  /** Holds `key`'s lease until the scope closes; the current fiber's writes are fenced by it meanwhile. */
  const lock = (key: string): Effect.Effect<void, AuthStoreError, Scope.Scope> =>
    Effect.gen(function*() {
      const lease = yield* acquire(key, yield* Effect.scope)
      held.add(lease)
      yield* Effect.addFinalizer(() => Effect.sync(() => held.delete(lease)))
      yield* Effect.locallyScoped(currentLease, Option.some(lease))
    })

  /**
   * Takes `key`'s lease if it is free, without waiting, until the scope closes: how a holder that
   * lost its lease saves its refreshed tokens later, never while another replica refreshes.
   */
  const tryHold = (key: string): Effect.Effect<Option.Option<Lease>, AuthStoreError, Scope.Scope> =>
    Effect.gen(function*() {
      const sql = yield* options.connected(key, "write")
      const scope = yield* Effect.scope
      return yield* Effect.uninterruptible(Effect.flatMap(take(sql, key), (taken) => {
        if (taken.fence === null) return Effect.succeed(Option.none<Lease>())
        const lease: Lease = { key, fence: taken.fence, state: "held", prefetched: prefetchedOf(taken) }
        return Effect.as(Scope.addFinalizer(scope, release(lease)), Option.some(lease))
      }))
    })

  return { lock, tryHold, renewing }
}
