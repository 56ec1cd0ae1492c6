/**
 * The statements of the PostgreSQL store on the credentials table. Each write
 * is one statement: the row changes, the health of the old snapshot goes, and
 * the notification is queued, atomically (`pg_notify` is sent when the
 * statement's transaction commits). A write made under the refresh lock is
 * fenced: it happens only while this replica's lease is still the one in the
 * table (the lease row is locked by the statement, so a takeover waits for it).
 */
import { type Duration, Effect, Option, Result, type Scope } from "effect"
import type { SqlClient } from "effect/sql"
import { AuthStoreError } from "../errors/Errors.js"
import type { Backend as CredentialBackend, Entry, Write } from "../stores/CredentialStore.js"
import { bounded } from "./bounded.js"
import { retryLostSession } from "./connection.js"
import * as Lease from "./lease.js"
import type { Tables } from "./migrations.js"

type Row = { readonly document: string; readonly version: string }

type Swapped = Result.Result<Option.Option<Entry>, Option.Option<Entry>>

export interface StatementsOptions {
  readonly connected: (
    key: string,
    operation: AuthStoreError["operation"]
  ) => Effect.Effect<SqlClient.SqlClient, AuthStoreError>
  /** Takes a key's lease if it is free (see `lease.ts`). */
  readonly tryHold: (key: string) => Effect.Effect<Option.Option<Lease.Lease>, AuthStoreError, Scope.Scope>
  readonly tables: Tables
  readonly location: (key: string) => string
  readonly problem: (cause: unknown) => string
  /** Reads one key's row, gathered with the reads made at the same time (see `readRowsOf`, `batch.ts`). */
  readonly readRow: (key: string) => Effect.Effect<Option.Option<StoredRow>, AuthStoreError>
  /** How long a statement is waited for (`bounded.ts`). */
  readonly timeout: Duration.Duration
}

/** A credential row as a read returns it: the document, its version and the shared health. */
export interface StoredRow extends Row {
  readonly credential_key: string
  readonly health: string | null
}

/**
 * The rows of many keys in one statement (`= ANY($1)`), in their order (none for a key with no
 * row); a failure is said as the problem, for each caller to name its own key.
 */
export const readRowsOf = (
  options: Pick<StatementsOptions, "connected" | "tables" | "problem">
) => {
  const text = `SELECT credential_key, document, version::text AS version, health FROM "${
    options.tables.credentials.replaceAll("\"", "\"\"")
  }" WHERE credential_key = ANY($1)`
  return (keys: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Option.Option<StoredRow>>, string> =>
    Effect.flatMap(
      Effect.mapError(options.connected(keys[0]!, "read"), (error) => error.problem),
      (sql) =>
        retryLostSession(sql.unsafe<StoredRow>(text, [keys])).pipe(
          Effect.map((rows) => {
            const byKey = new Map(rows.map((row) => [row.credential_key, row]))
            return keys.map((key) => Option.fromNullishOr(byKey.get(key)))
          }),
          Effect.mapError(options.problem)
        )
    )
}

const entryOf = (rows: ReadonlyArray<Row>): Option.Option<Entry> =>
  Option.map(Option.fromNullishOr(rows[0]), (row) => ({ text: row.document, revision: String(row.version) }))

const versionOf = (revision: string): Option.Option<string> =>
  revision === "absent" || !/^\d+$/.test(revision) ? Option.none() : Option.some(revision)

// The compare-and-set statements of one key; fenced by the lease when there is one.
const swapWith = (sql: SqlClient.SqlClient, t: Tables, key: string, fence: Option.Option<string>) => {
  const table = sql(t.credentials)
  const notify = sql`pg_notify(${t.channel}, credential_key)`
  // Under the refresh lock: the lease row is locked and must still be this replica's; a write
  // made releases it in the same statement (the write is what the lock was held for).
  const lease = Option.match(fence, {
    onNone: () => sql``,
    onSome: (f) =>
      sql`lease AS (SELECT 1 FROM ${sql(t.leases)} WHERE credential_key = ${key} AND fence = ${f} FOR UPDATE),`
  })
  const leased = Option.match(fence, { onNone: () => sql``, onSome: () => sql`AND EXISTS (SELECT 1 FROM lease)` })
  const release = (changed: string) =>
    Option.match(fence, {
      onNone: () => sql``,
      onSome: (f) =>
        sql`, released AS (DELETE FROM ${sql(t.leases)} WHERE credential_key = ${key} AND fence = ${f}
          AND EXISTS (SELECT 1 FROM ${sql(changed)}))`
    })
  return {
    upsert: (write: Write) =>
      sql<Row>`WITH written AS (
        INSERT INTO ${table} (credential_key, document, hash, version)
        VALUES (${key}, ${write.text}, ${write.hash}, nextval(${t.versions}))
        ON CONFLICT (credential_key) DO UPDATE SET document = excluded.document, hash = excluded.hash,
          version = excluded.version, health = NULL, health_hash = NULL, updated_at = now()
        RETURNING credential_key, document, version
      ) SELECT document, version, ${notify} FROM written`,
    insertIfAbsent: (write: Write) =>
      sql<Row>`WITH ${lease} written AS (
        INSERT INTO ${table} (credential_key, document, hash, version)
        SELECT ${key}, ${write.text}, ${write.hash}, nextval(${t.versions}) WHERE true ${leased}
        ON CONFLICT (credential_key) DO NOTHING
        RETURNING credential_key, document, version
      ) ${release("written")} SELECT document, version, ${notify} FROM written`,
    updateIf: (version: string, write: Write) =>
      sql<Row>`WITH ${lease} written AS (
        UPDATE ${table} SET document = ${write.text}, hash = ${write.hash}, version = nextval(${t.versions}),
          health = NULL, health_hash = NULL, updated_at = now()
        WHERE credential_key = ${key} AND version = ${version} ${leased}
        RETURNING credential_key, document, version
      ) ${release("written")} SELECT document, version, ${notify} FROM written`,
    deleteWhere: (version: Option.Option<string>) =>
      sql<Row>`WITH ${lease} removed AS (
        DELETE FROM ${table} WHERE credential_key = ${key}
        ${Option.match(version, { onNone: () => sql``, onSome: (v) => sql`AND version = ${v}` })} ${leased}
        RETURNING credential_key, document, version
      ) ${release("removed")} SELECT document, version, ${notify} FROM removed`
  }
}

export const makeStatements = (options: StatementsOptions) => {
  const t = options.tables
  const fail = (key: string, operation: AuthStoreError["operation"]) => (cause: unknown) =>
    new AuthStoreError({ path: options.location(key), operation, problem: options.problem(cause) })
  // A statement (or a write's few) waited for at most `timeout`.
  const bound = (key: string, operation: AuthStoreError["operation"]) => <A, E>(statement: Effect.Effect<A, E>) =>
    bounded(statement, {
      timeout: options.timeout,
      onTimeout: (problem) => new AuthStoreError({ path: options.location(key), operation, problem })
    })
  const using = <A>(
    key: string,
    operation: AuthStoreError["operation"],
    f: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>
  ) =>
    Effect.flatMap(
      options.connected(key, operation),
      (sql) => Effect.mapError(f(sql), fail(key, operation)).pipe(bound(key, operation))
    )

  // Under a lease just taken, the row read with it (until the first write): no second round trip.
  const prefetched = (key: string) =>
    Effect.map(
      Lease.leaseOf(key),
      (lease) => Option.flatMap(lease, (l) => l.state === "held" ? Option.fromNullishOr(l.prefetched) : Option.none())
    )

  const read: CredentialBackend["read"] = (key) =>
    Effect.flatMap(
      prefetched(key),
      (cached) =>
        Option.isSome(cached)
          ? Effect.succeed(cached.value.entry)
          : Effect.map(options.readRow(key), (row) => entryOf(Option.toArray(row)))
    )

  // What the key holds after a write that did not happen, and whether the fence still holds.
  const readFenced = (key: string, fence: string) =>
    using(key, "write", (sql) =>
      sql<Row & { readonly leased: boolean }>`SELECT c.document, c.version::text AS version,
          EXISTS (SELECT 1 FROM ${sql(t.leases)} WHERE credential_key = ${key} AND fence = ${fence}) AS leased
        FROM (SELECT 1) AS one LEFT JOIN ${sql(t.credentials)} AS c ON c.credential_key = ${key}`)

  // A compare-and-set by a refresh whose lease was lost (its save retried later): under a lease
  // of its own, taken only if no other replica holds one.
  const swapAfterLoss = (key: string, expected: Option.Option<string>, next: Option.Option<Write>) =>
    Effect.scoped(Effect.flatMap(options.tryHold(key), (lease) =>
      Option.match(lease, {
        onNone: () =>
          Effect.fail(
            new AuthStoreError({
              path: options.location(key),
              operation: "write",
              problem: "another replica holds the refresh lock; the refreshed tokens are saved once it lets go"
            })
          ),
        onSome: (lease) => swapFenced(key, expected, next, Option.some(lease))
      })))

  const swap: CredentialBackend["swap"] = Effect.fnUntraced(function*(key, expected, next) {
    // A plain write (a sign-in, a sign-out) is never fenced: it wins over a refresh in flight,
    // whose compare-and-set then finds the row changed.
    const lease = Option.isSome(expected) ? yield* Lease.leaseOf(key) : Option.none<Lease.Lease>()
    if (Option.isSome(lease) && lease.value.state === "lost") return yield* swapAfterLoss(key, expected, next)
    return yield* swapFenced(key, expected, next, lease)
  })

  // The write itself: the statement that fits what was expected, fenced by `lease` when there is one.
  const attempt = (
    key: string,
    expected: Option.Option<string>,
    next: Option.Option<Write>,
    lease: Option.Option<Lease.Lease>
  ) =>
    Effect.gen(function*() {
      const sql = yield* options.connected(key, "write")
      const s = swapWith(sql, t, key, Option.map(lease, (l) => l.fence))
      const written = (rows: ReadonlyArray<Row>): Swapped | undefined =>
        rows.length > 0 ? Result.succeed(Option.isSome(next) ? entryOf(rows) : Option.none()) : undefined
      if (Option.isNone(expected)) {
        if (Option.isSome(next)) return Result.succeed(entryOf(yield* s.upsert(next.value))) as Swapped
        yield* s.deleteWhere(Option.none())
        return Result.succeed(Option.none()) as Swapped
      }
      const version = versionOf(expected.value)
      const rows = Option.isNone(version)
        ? Option.isSome(next) ? yield* s.insertIfAbsent(next.value) : []
        : Option.isSome(next)
        ? yield* s.updateIf(version.value, next.value)
        : yield* s.deleteWhere(version)
      return written(rows)
    }).pipe(
      Effect.mapError((error) => error instanceof AuthStoreError ? error : fail(key, "write")(error)),
      bound(key, "write")
    )

  const swapFenced = Effect.fnUntraced(function*(
    key: string,
    expected: Option.Option<string>,
    next: Option.Option<Write>,
    lease: Option.Option<Lease.Lease>
  ): Effect.fn.Return<Swapped, AuthStoreError> {
    if (Option.isSome(lease)) lease.value.prefetched = undefined
    const result = yield* attempt(key, expected, next, lease)
    if (result !== undefined) {
      if (Option.isSome(lease)) lease.value.state = "committed"
      return result
    }
    // Nothing was written: someone else was first (or, expecting nothing, there is still nothing),
    // or the lease was lost.
    if (Option.isSome(lease)) {
      const [row] = yield* readFenced(key, lease.value.fence)
      if (row !== undefined && !row.leased) {
        lease.value.state = "lost"
        yield* Effect.logError(
          "This replica lost the refresh lock before saving: its lease expired and another replica took it over. " +
            "It does not write over that replica's result; the refreshed tokens are kept in memory"
        ).pipe(Effect.annotateLogs({ credential: key, location: options.location(key) }))
        return yield* Lease.lostLease(options.location(key))
      }
      const current: Option.Option<Entry> = row === undefined || row.document === null
        ? Option.none()
        : Option.some({ text: row.document, revision: String(row.version) })
      return Result.fail(current)
    }
    const current = yield* read(key)
    const expectedNothing = Option.isNone(versionOf(Option.getOrElse(expected, () => "")))
    return Option.isNone(current) && Option.isNone(next) && expectedNothing
      ? Result.succeed(Option.none())
      : Result.fail(current)
  })

  const readHealth = (key: string) =>
    Effect.flatMap(prefetched(key), (cached) =>
      Option.isSome(cached)
        ? Effect.succeed(cached.value.health)
        : Effect.map(options.readRow(key), Option.flatMap((row) => Option.fromNullishOr(row.health))))

  // A health record is written only while the row still holds its snapshot: what was learned
  // of an old one never lands on new credentials.
  const writeHealthNow = (key: string, record: Option.Option<{ readonly hash: string; readonly text: string }>) =>
    using(key, "write", (sql) => {
      const table = sql(t.credentials)
      const notify = sql`pg_notify(${t.channel}, credential_key)`
      return Option.match(record, {
        onNone: () =>
          sql`WITH changed AS (
            UPDATE ${table} SET health = NULL, health_hash = NULL
            WHERE credential_key = ${key} AND health IS NOT NULL
            RETURNING credential_key
          ) SELECT ${notify} FROM changed`,
        onSome: ({ hash, text }) =>
          sql`WITH changed AS (
            UPDATE ${table} SET health = ${text}, health_hash = ${hash}
            WHERE credential_key = ${key} AND hash = ${hash}
            RETURNING credential_key
          ) SELECT ${notify} FROM changed`
      })
    }).pipe(Effect.asVoid)

  const writeHealth = (key: string, record: Option.Option<{ readonly hash: string; readonly text: string }>) =>
    Effect.flatMap(
      // The write of the refreshed tokens cleared the health already.
      Option.isNone(record) ? Lease.committed(key) : Effect.succeed(false),
      (cleared) => cleared ? Effect.void : writeHealthNow(key, record)
    )

  return { read, swap, readHealth, writeHealth }
}
