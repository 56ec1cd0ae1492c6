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
import { Clock, Context, Duration, Effect, Exit, Option, Scope } from "effect"
import type { SqlClient } from "effect/sql"
import { AuthStoreError } from "../errors/Errors.js"
import type { Entry } from "../stores/CredentialStore.js"
import { bounded } from "./bounded.js"
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
export const CurrentLease = Context.Reference<Option.Option<Lease>>("effect-auth-manager/postgres/CurrentLease", {
  defaultValue: () => Option.none()
})

/** The lease of `key` still held (or lost) by the current fiber's refresh; none once released. */
export const leaseOf = (key: string) =>
  Effect.map(
    Effect.service(CurrentLease),
    Option.filter((lease: Lease) => lease.key === key && (lease.state === "held" || lease.state === "lost"))
  )

/** Whether the current fiber's refresh of `key` wrote its tokens (and so cleared the health). */
export const committed = (key: string) =>
  Effect.map(
    Effect.service(CurrentLease),
    Option.exists((lease: Lease) => lease.key === key && lease.state === "committed")
  )

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
  /** One statement on a session of its own (the listener's), which no queue delays. */
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
}

type Taken = {
  readonly fence: string | null
  readonly holder: string | null
  readonly remaining: number | null
  readonly present: boolean | null
  readonly document: string | null
  readonly version: string | null
  readonly health: string | null
}

const nothingTaken: Taken = {
  fence: null,
  holder: null,
  remaining: null,
  present: null,
  document: null,
  version: null,
  health: null
}

const prefetchedOf = (taken: Taken): Prefetched => ({
  entry: taken.present === true && taken.document !== null && taken.version !== null
    ? Option.some({ text: taken.document, revision: taken.version })
    : Option.none(),
  health: Option.fromNullishOr(taken.health)
})

export const make = (options: LeaseOptions) => {
  const ttlMs = Math.max(1, Math.round(Duration.toMillis(options.ttl)))
  const third = Duration.millis(Math.max(1, Math.floor(ttlMs / 3)))
  const t = options.tables
  const fail = (key: string, operation: AuthStoreError["operation"]) => (cause: unknown) =>
    new AuthStoreError({ path: options.location(key), operation, problem: options.problem(cause) })

  // One round trip: take the lease if it is free or expired, and then read the credential row;
  // else say who holds the lease and for how long. (The outer SELECT sees the lease as it was
  // before the INSERT: only read when it was not taken.) The row is read with a lock: if the
  // previous holder's write committed while this statement waited for its lease, the locking read
  // returns that write, not the row as it was when the statement began.
  const take = (sql: SqlClient.SqlClient, key: string) =>
    sql<Taken>`WITH taken AS (
      INSERT INTO ${sql(t.leases)} (credential_key, fence, holder, expires_at)
      VALUES (${key}, nextval(${t.versions}), ${options.holder}, clock_timestamp() + ${ttlMs} * interval '1 millisecond')
      ON CONFLICT (credential_key) DO UPDATE SET fence = excluded.fence, holder = excluded.holder, expires_at = excluded.expires_at
      WHERE ${sql(t.leases)}.expires_at <= clock_timestamp()
      RETURNING fence
    ), credential AS (
      SELECT document, version::text AS version, health FROM ${sql(t.credentials)}
      WHERE credential_key = ${key} AND EXISTS (SELECT 1 FROM taken) FOR SHARE
    ) SELECT (SELECT fence::text FROM taken) AS fence, l.holder,
        greatest(0, extract(epoch FROM l.expires_at - clock_timestamp()) * 1000)::float8 AS remaining,
        EXISTS (SELECT 1 FROM credential) AS present, (SELECT document FROM credential) AS document,
        (SELECT version FROM credential) AS version, (SELECT health FROM credential) AS health
      FROM (SELECT 1) AS one LEFT JOIN ${sql(t.leases)} AS l ON l.credential_key = ${key}`.pipe(
      // A session lost before the statement ran (a terminated backend still in the pool) is not a
      // reason to fail the refresh: the statement runs again on a fresh connection.
      retryLostSession,
      Effect.map((rows): Taken => rows[0] ?? nothingTaken),
      Effect.mapError(fail(key, "lock"))
    )

  const release = (lease: Lease) =>
    Effect.gen(function*() {
      // A lost lease stays lost: what its holder saves later is fenced by a lease of its own. A
      // lease released by the write of the refreshed tokens is gone already.
      if (lease.state === "committed") return
      if (lease.state === "held") lease.state = "released"
      const sql = yield* options.connected(lease.key, "lock")
      yield* sql`WITH released AS (
        DELETE FROM ${sql(t.leases)} WHERE credential_key = ${lease.key} AND fence = ${lease.fence}
        RETURNING credential_key
      ) SELECT pg_notify(${t.leaseChannel}, credential_key) FROM released`.pipe(
        Effect.mapError(fail(lease.key, "lock"))
      )
    }).pipe(
      // Run as a scope's finalizer, which is uninterruptible: marked interruptible so that the bound
      // can cut a release stuck on a stalled connection (the lease then expires by itself).
      Effect.interruptible,
      Effect.timeout(options.ttl),
      Effect.catch((error) =>
        Effect.logWarning("Could not release the refresh lock: it expires by itself").pipe(
          Effect.annotateLogs({ credential: lease.key, problem: "problem" in error ? error.problem : "timed out" })
        )
      )
    )

  const leaseOf = (key: string, taken: Taken): Lease | undefined =>
    taken.fence === null ? undefined : { key, fence: taken.fence, state: "held", prefetched: prefetchedOf(taken) }

  // Takes the lease if it is free; its release is registered in `scope` as soon as it is taken. The
  // statement is waited for at most a lease's life, and the wait can be interrupted: a lease that
  // its statement takes once no one waits for it is released then, never left behind.
  const takeInto = (sql: SqlClient.SqlClient, key: string, scope: Scope.Scope) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(
        restore(bounded(take(sql, key), {
          timeout: options.ttl,
          onTimeout: (problem) => new AuthStoreError({ path: options.location(key), operation: "lock", problem }),
          unwanted: (exit) => {
            const lease = Exit.isSuccess(exit) ? leaseOf(key, exit.value) : undefined
            return lease === undefined ? Effect.void : release(lease)
          }
        })),
        (taken) => {
          const lease = leaseOf(key, taken)
          if (lease === undefined) return Effect.succeed({ lease: Option.none<Lease>(), taken })
          return Effect.as(Scope.addFinalizer(scope, release(lease)), { lease: Option.some(lease), taken })
        }
      )
    )

  // Renewed at a third of its life while the refresh goes on: a holder that is alive keeps it, a
  // holder that is gone (its process dead or cut off) loses it when it expires. The renewal runs on
  // the listening session: on the pool it would wait behind every statement queued there, and a
  // busy replica would lose leases it is still using (another replica would then send their refresh
  // tokens again). The pool is the fallback while that session is down.
  // A lease row locked meanwhile (this replica's own fenced write waiting for its credential row,
  // another replica's take of the lease while it is unexpired) is skipped rather than waited for —
  // a renewal waiting on the listening session would hold up everything heard there — and answered
  // as still held when it is (read without a lock): it is tried again soon, not a third of its life
  // later (two skips in a row would leave it to expire under its live holder).
  const leasesTable = `"${t.leases.replaceAll("\"", "\"\"")}"`
  const renewal = `WITH locked AS (
      SELECT credential_key FROM ${leasesTable} WHERE credential_key = $2 AND fence = $3 FOR UPDATE SKIP LOCKED
    ), renewed AS (
      UPDATE ${leasesTable} AS l SET expires_at = clock_timestamp() + $1 * interval '1 millisecond'
      FROM locked WHERE l.credential_key = locked.credential_key RETURNING l.fence
    ) SELECT fence, true AS renewed FROM renewed
    UNION ALL
    SELECT fence, false AS renewed FROM ${leasesTable}
    WHERE credential_key = $2 AND fence = $3 AND NOT EXISTS (SELECT 1 FROM renewed)`
  const renewOnce = (lease: Lease) =>
    Effect.gen(function*() {
      const values = [ttlMs, lease.key, lease.fence]
      // Each way is bounded by the renewal's period: a stalled connection does not stop the renewals.
      const rows = yield* options.query(renewal, values).pipe(
        Effect.timeout(third),
        Effect.map((result) => result.rows),
        Effect.catch(() =>
          Effect.flatMap(options.connected(lease.key, "lock"), (sql) => sql.unsafe(renewal, values)).pipe(
            Effect.timeout(third)
          )
        ),
        Effect.mapError(fail(lease.key, "lock"))
      )
      if (rows.length > 0 || lease.state !== "held") {
        return rows.some((row) => (row as { readonly renewed?: boolean }).renewed === false)
      }
      lease.state = "lost"
      yield* Effect.logError(
        "This replica lost the refresh lock during its refresh: its lease expired and another replica took it over. " +
          "It will not write over that replica's result; refreshed tokens, if any, are kept in memory"
      ).pipe(Effect.annotateLogs({ credential: lease.key, location: options.location(lease.key) }))
      return false
    }).pipe(
      Effect.catch((error) =>
        Effect.as(
          Effect.logDebug("Could not renew the refresh lock; trying again").pipe(
            Effect.annotateLogs({ problem: error.problem })
          ),
          false
        )
      )
    )
  const soon = Duration.millis(Math.max(10, Math.floor(ttlMs / 30)))
  const renew = (lease: Lease) =>
    Effect.gen(function*() {
      yield* Effect.sleep(third)
      while (lease.state === "held") {
        const skipped = yield* renewOnce(lease)
        yield* Effect.sleep(skipped ? soon : third)
      }
    })

  // Waits for the lease: woken when it is released or the credential changes, else when it would
  // expire; bounded by the lease's life (a holder alive for longer renews it: the wait gives up).
  // The waits between tries are interruptible.
  const acquire = (key: string, scope: Scope.Scope) =>
    Effect.scoped(Effect.gen(function*() {
      const sql = yield* options.connected(key, "lock")
      const next = yield* options.hub.leaseSignals(key)
      const deadline = (yield* Clock.currentTimeMillis) + ttlMs
      let said = false
      while (true) {
        const { lease, taken } = yield* takeInto(sql, key, scope)
        if (Option.isSome(lease)) return lease.value
        const now = yield* Clock.currentTimeMillis
        if (now >= deadline) {
          return yield* new AuthStoreError({
            path: options.location(key),
            operation: "lock",
            problem: `another replica (${taken.holder ?? "unknown"}) has held the refresh lock for over ${
              Duration.format(options.ttl)
            }`
          })
        }
        if (!said) {
          said = true
          yield* Effect.logDebug("Waiting for the refresh lock, held by another replica").pipe(
            Effect.annotateLogs({ credential: key, holder: taken.holder ?? "unknown" })
          )
        }
        const expiresIn = Math.ceil((taken.remaining ?? 0) + 1)
        yield* Effect.raceFirst(next, Effect.sleep(Duration.millis(Math.min(expiresIn, deadline - now))))
      }
    }))

  /** Holds `key`'s lease until the scope closes; the current fiber's writes are fenced by it meanwhile. */
  const lock = Effect.fnUntraced(function*(key: string) {
    const lease = yield* acquire(key, yield* Effect.scope)
    yield* Effect.forkScoped(renew(lease))
    yield* Effect.updateServiceScoped(CurrentLease, () => Option.some(lease))
  })

  /**
   * Takes `key`'s lease if it is free, without waiting, until the scope closes: how a holder that
   * lost its lease saves its refreshed tokens later, never while another replica refreshes.
   */
  const tryHold = Effect.fnUntraced(function*(key: string) {
    const sql = yield* options.connected(key, "write")
    const { lease } = yield* takeInto(sql, key, yield* Effect.scope)
    return lease
  })

  return { lock, tryHold }
}
