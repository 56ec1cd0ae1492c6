/**
 * The renewal of a replica's refresh locks (see `lease.ts`): every lease it holds, renewed together
 * at a third of their life, ahead of everything else the replica does.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Duration, Effect } from "effect"
import type { AuthStoreError } from "../errors/Errors.js"
import * as Priority from "../util/priority.js"

/** What the renewal reads and marks of a lease (`lease.ts`'s `Lease`). */
export interface Renewable {
  readonly key: string
  readonly fence: string
  state: "held" | "lost" | "released" | "committed"
  readonly writing?: boolean | undefined
}

export interface Options {
  readonly connected: (
    key: string,
    operation: AuthStoreError["operation"]
  ) => Effect.Effect<SqlClient.SqlClient, AuthStoreError>
  /** One statement on the listening connection, which no queue delays. */
  readonly query: (
    text: string,
    values: ReadonlyArray<unknown>
  ) => Effect.Effect<{ readonly rows: ReadonlyArray<unknown> }, unknown>
  readonly location: (key: string) => string
  readonly fail: (key: string, operation: AuthStoreError["operation"]) => (cause: unknown) => AuthStoreError
  /** The renewal statement: $1 the lease's life in ms, $2 the keys, $3 their fences. */
  readonly statement: string
  readonly ttlMs: number
}

/**
 * The renewal of the leases in `held` (their holders add and remove them), for as long as
 * `renewing` runs: at a third of their life while their refreshes go on, so that a holder that is
 * alive keeps them and a holder that is gone (its process dead or cut off) loses them when they
 * expire. All of them in one statement, by one fiber, on the listening connection: on the pool it
 * would wait behind every statement queued there, and a busy replica would lose leases it is still
 * using (another replica would then send their refresh tokens again). The pool is the fallback
 * while that connection is down.
 */
export const make = (options: Options) => {
  const { fail, statement, ttlMs } = options
  const held = new Set<Renewable>()
  const period = Duration.millis(Math.max(1, Math.floor(ttlMs / 3)))
  const renewAll = Effect.gen(function*() {
    for (const lease of held) if (lease.state !== "held") held.delete(lease)
    if (held.size === 0) return false
    const leases = Array.from(held)
    const values = [ttlMs, leases.map((lease) => lease.key), leases.map((lease) => lease.fence)]
    // Each way is bounded by the renewal's period: a stalled connection does not stop the renewals.
    const rows = (yield* options.query(statement, values).pipe(
      Effect.timeoutFail({ duration: period, onTimeout: () => "the listening connection did not answer" }),
      Effect.map((result) => result.rows),
      Effect.orElse(() =>
        Effect.flatMap(options.connected(leases[0]!.key, "lock"), (sql) => sql.unsafe(statement, values)).pipe(
          Effect.timeoutFail({ duration: period, onTimeout: () => "the pool did not answer in time" })
        )
      ),
      Effect.mapError(fail(leases[0]!.key, "lock"))
    )) as ReadonlyArray<{ readonly credential_key: string; readonly fence: string; readonly renewed: boolean }>
    const renewed = new Set(rows.map((row) => `${row.fence} ${row.credential_key}`))
    for (const lease of leases) {
      if (renewed.has(`${lease.fence} ${lease.key}`) || lease.state !== "held" || lease.writing === true) continue
      lease.state = "lost"
      held.delete(lease)
      yield* Effect.logError(
        "This replica lost the refresh lock during its refresh: its lease expired and another replica took it over. " +
          "It will not write over that replica's result; refreshed tokens, if any, are kept in memory"
      ).pipe(Effect.annotateLogs({ credential: lease.key, location: options.location(lease.key) }))
    }
    // A row locked meanwhile was skipped, still held: it must be renewed before it expires — unless
    // the lock is this replica's own write, which releases the lease as it commits.
    const writing = new Set(leases.filter((lease) => lease.writing === true).map((lease) => lease.key))
    return rows.some((row) => !row.renewed && !writing.has(row.credential_key))
  })
  /**
   * Renews the held leases every third of their life, for as long as it runs. On a scheduler of
   * its own: a replica busy with thousands of flights runs a fiber woken by a timer only after
   * the fibers queued before it, which took longer than a lease's life; a lease not renewed in
   * time is taken over by another replica, which then sends the same refresh token again.
   */
  // A lease skipped (its row locked) is tried again soon rather than a period later: two skips in a
  // row would otherwise leave it to expire under its live holder.
  const soon = Duration.millis(Math.max(10, Math.floor(ttlMs / 30)))
  const renewing: Effect.Effect<void> = renewAll.pipe(
    Effect.catchAll((error) =>
      Effect.as(
        Effect.logDebug("Could not renew the refresh locks; trying again").pipe(
          Effect.annotateLogs({ problem: error.problem })
        ),
        false
      )
    ),
    Effect.flatMap((skipped) => Effect.sleep(skipped ? soon : period)),
    Effect.forever,
    Priority.first
  )
  return { held, renewing }
}
