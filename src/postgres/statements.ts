/**
 * The statements of the PostgreSQL store on the credentials table. Each write
 * is one statement: the row changes, the health of the old snapshot goes, and
 * the notification is queued, atomically (`pg_notify` is sent when the
 * statement's transaction commits). A write made under the refresh lock is
 * fenced: it happens only while this replica's lease is still the one in the
 * table (the lease row is locked by the statement, so a takeover waits for it).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { type Duration, Effect, Either, Option, type Scope } from "effect"
import { AuthStoreError } from "../errors/Errors.js"
import type { Backend as CredentialBackend, Entry, Write } from "../stores/CredentialStore.js"
import * as Batch from "./batch.js"
import * as Lease from "./lease.js"
import { quoteIdentifier } from "./listener.js"
import type { tables } from "./migrations.js"
import * as Reads from "./reads.js"

type Row = { readonly document: string; readonly version: string }

export interface StatementsOptions {
  readonly connected: (
    key: string,
    operation: AuthStoreError["operation"]
  ) => Effect.Effect<SqlClient.SqlClient, AuthStoreError>
  /** Takes a key's lease if it is free (see `lease.ts`). */
  readonly tryHold: (key: string) => Effect.Effect<Option.Option<Lease.Lease>, AuthStoreError, Scope.Scope>
  readonly tables: ReturnType<typeof tables>
  readonly location: (key: string) => string
  readonly problem: (cause: unknown) => string
  /** How the reads and writes of many keys are gathered into statements (see `batch.ts`). */
  readonly batches: {
    readonly maxSize: number
    readonly concurrency: number
    readonly timeout?: Duration.Duration | undefined
  }
}

const entryOf = (rows: ReadonlyArray<Row>): Option.Option<Entry> =>
  Option.map(Option.fromNullable(rows[0]), (row) => ({ text: row.document, revision: String(row.version) }))

const versionOf = (revision: string): Option.Option<string> =>
  revision === "absent" || !/^\d+$/.test(revision) ? Option.none() : Option.some(revision)

/** A write of refreshed tokens under a lease: the common write, gathered with others (see `batch.ts`). */
interface FencedWrite {
  readonly lease: Lease.Lease
  readonly version: string
  readonly write: Write
}

/** The parameters of the batched write: a column (an array) each. */
const columnsOf = (writes: ReadonlyArray<FencedWrite>) => [
  writes.map((w) => w.lease.key),
  writes.map((w) => w.version),
  writes.map((w) => w.write.text),
  writes.map((w) => w.write.hash),
  writes.map((w) => w.lease.fence)
]

/** The statements on many keys at once, their text fixed when the store starts. */
const batchedOf = (tables: StatementsOptions["tables"]) => {
  const credentials = quoteIdentifier(tables.credentials)
  const leases = quoteIdentifier(tables.leases)
  return {
    read: `SELECT credential_key, document, version::text AS version, health FROM ${credentials}
      WHERE credential_key = ANY ($1::text[])`,
    // Each write happens only while its lease is still this replica's (the lease rows are locked
    // first, in the order of their keys, as by every statement on several keys); a write made
    // releases its lease and is announced, in the same statement.
    fencedWrite: `WITH input AS (
        SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[])
          AS i(credential_key, version, document, hash, fence)
      ), lease AS (
        SELECT l.credential_key FROM ${leases} AS l
        JOIN input AS i ON l.credential_key = i.credential_key AND l.fence = i.fence
        ORDER BY l.credential_key FOR UPDATE OF l
      ), written AS (
        UPDATE ${credentials} AS c SET document = i.document, hash = i.hash, version = nextval($6),
          health = NULL, health_hash = NULL, updated_at = now()
        FROM input AS i
        WHERE c.credential_key = i.credential_key AND c.version = i.version
          AND c.credential_key = ANY (ARRAY(SELECT credential_key FROM lease))
        RETURNING c.credential_key, c.document, c.version
      ), released AS (
        DELETE FROM ${leases} AS l USING written AS w, input AS i
        WHERE l.credential_key = w.credential_key AND i.credential_key = w.credential_key AND l.fence = i.fence
      ) SELECT credential_key, document, version::text AS version, pg_notify($7, credential_key) FROM written`
  }
}

const byKeyOf = <R extends { readonly credential_key: string }>(rows: ReadonlyArray<R>) =>
  new Map(rows.map((row) => [row.credential_key, row]))

export const makeStatements = (options: StatementsOptions) =>
  Effect.gen(function*() {
    const text = batchedOf(options.tables)
    // The rows of many keys read at once: a plain read and a read of the health share the statement.
    const readMany = yield* Batch.make({
      ...options.batches,
      run: (keys: ReadonlyArray<string>) =>
        Effect.flatMap(options.connected(keys[0]!, "read"), (sql) => Reads.rowsOf(sql, text.read, keys))
    })
    // The refreshed tokens of many keys written at once, each key once (an UPDATE … FROM changes a
    // row once). Not tried again after a lost session: whether a write committed cannot be known.
    const writeMany = yield* Batch.make({
      ...options.batches,
      // What other replicas wait for: the write releases the lease.
      first: true,
      distinct: (write: FencedWrite) => write.lease.key,
      run: (writes: ReadonlyArray<FencedWrite>) =>
        Effect.flatMap(options.connected(writes[0]!.lease.key, "write"), (sql) =>
          Effect.map(
            sql.unsafe<Row & { readonly credential_key: string }>(text.fencedWrite, [
              ...columnsOf(writes),
              options.tables.versions,
              options.tables.channel
            ]),
            (rows) => {
              const byKey = byKeyOf(rows)
              return writes.map((w): ReadonlyArray<Row> => {
                const row = byKey.get(w.lease.key)
                if (row === undefined) return []
                // Released by the write, as soon as that is known: the renewal no longer looks for it.
                w.lease.state = "committed"
                return [row]
              })
            }
          ))
    })
    // Many keys read at once by their caller (the keys changed elsewhere).
    const readKeys = Reads.entriesOf({
      connected: options.connected,
      text: text.read,
      maxSize: options.batches.maxSize,
      timeout: options.batches.timeout,
      fail: failOf(options)
    })
    return { ...makeWith(options, readMany, writeMany), readMany: readKeys }
  })

/** An `AuthStoreError` for `key` from a failed statement, or from the connection's own error. */
const failOf =
  (options: StatementsOptions) => (key: string, operation: AuthStoreError["operation"]) => (cause: unknown) =>
    new AuthStoreError({
      path: options.location(key),
      operation,
      problem: cause instanceof AuthStoreError ? cause.problem : options.problem(cause)
    })

const makeWith = (
  options: StatementsOptions,
  readMany: (key: string) => Effect.Effect<Option.Option<Reads.StoredRow>, unknown>,
  writeMany: (write: FencedWrite) => Effect.Effect<ReadonlyArray<Row>, unknown>
) => {
  const t = options.tables
  const fail = failOf(options)
  const readRow = (key: string) => Effect.mapError(readMany(key), fail(key, "read"))
  // Each statement of one key waited for at most a lock's life (`Reads.bounded`), as the gathered ones are.
  const bound = Reads.bounded(options.batches.timeout)
  const using = <A>(
    key: string,
    operation: AuthStoreError["operation"],
    f: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>
  ) => Effect.flatMap(options.connected(key, operation), (sql) => Effect.mapError(bound(f(sql)), fail(key, operation)))

  // Under a lease just taken, the row read with it (until the first write): no second round trip.
  const prefetched = (key: string) =>
    Effect.map(
      Lease.leaseOf(key),
      (lease) => Option.flatMap(lease, (l) => l.state === "held" ? Option.fromNullable(l.prefetched) : Option.none())
    )

  const read: CredentialBackend["read"] = (key) =>
    Effect.flatMap(prefetched(key), (cached) =>
      Option.isSome(cached)
        ? Effect.succeed(cached.value.entry)
        : Effect.map(readRow(key), Option.map((row) => ({ text: row.document, revision: row.version }))))

  // What the key holds after a write that did not happen, and whether the fence still holds.
  const readFenced = (key: string, fence: string) =>
    using(key, "write", (sql) =>
      sql<Row & { readonly leased: boolean }>`SELECT c.document, c.version::text AS version,
          EXISTS (SELECT 1 FROM ${sql(t.leases)} WHERE credential_key = ${key} AND fence = ${fence}) AS leased
        FROM (SELECT 1) AS one LEFT JOIN ${sql(t.credentials)} AS c ON c.credential_key = ${key}`)

  const swapWith = (sql: SqlClient.SqlClient, key: string, fence: Option.Option<string>) => {
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

  type Swapped = Either.Either<Option.Option<Entry>, Option.Option<Entry>>

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

  const swap: CredentialBackend["swap"] = (key, expected, next) =>
    Effect.gen(function*() {
      // A plain write (a sign-in, a sign-out) is never fenced: it wins over a refresh in flight,
      // whose compare-and-set then finds the row changed.
      const lease = Option.isSome(expected) ? yield* Lease.leaseOf(key) : Option.none<Lease.Lease>()
      if (Option.isSome(lease) && lease.value.state === "lost") return yield* swapAfterLoss(key, expected, next)
      return yield* swapFenced(key, expected, next, lease)
    })

  const swapFenced = (
    key: string,
    expected: Option.Option<string>,
    next: Option.Option<Write>,
    lease: Option.Option<Lease.Lease>
  ): Effect.Effect<Swapped, AuthStoreError> =>
    Effect.gen(function*() {
      if (Option.isSome(lease)) lease.value.prefetched = undefined
      const fence = Option.map(lease, (l) => l.fence)
      const sql = yield* options.connected(key, "write")
      const s = swapWith(sql, key, fence)
      const written = (rows: ReadonlyArray<Row>): Swapped | undefined =>
        rows.length > 0 ? Either.right(Option.isSome(next) ? entryOf(rows) : Option.none()) : undefined
      const attempt = Effect.gen(function*() {
        if (Option.isNone(expected)) {
          if (Option.isSome(next)) return Either.right(entryOf(yield* s.upsert(next.value))) as Swapped
          yield* s.deleteWhere(Option.none())
          return Either.right(Option.none()) as Swapped
        }
        const version = versionOf(expected.value)
        const rows = Option.isNone(version)
          ? Option.isSome(next) ? yield* s.insertIfAbsent(next.value) : []
          : Option.isSome(next)
          ? Option.isSome(lease)
            ? yield* Effect.ensuring(
              Effect.suspend(() => {
                lease.value.writing = true
                return writeMany({ lease: lease.value, version: version.value, write: next.value })
              }),
              Effect.sync(() => (lease.value.writing = false))
            )
            : yield* s.updateIf(version.value, next.value)
          : yield* s.deleteWhere(version)
        return written(rows)
      }).pipe(bound, Effect.mapError(fail(key, "write")))
      const result = yield* attempt
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
        return Either.left(current) as Swapped
      }
      const current = yield* read(key)
      const expectedNothing = Option.isNone(versionOf(Option.getOrElse(expected, () => "")))
      return (Option.isNone(current) && Option.isNone(next) && expectedNothing
        ? Either.right(Option.none())
        : Either.left(current)) as Swapped
    })

  const readHealth = (key: string) =>
    Effect.flatMap(prefetched(key), (cached) =>
      Option.isSome(cached)
        ? Effect.succeed(cached.value.health)
        : Effect.map(readRow(key), Option.flatMap((row) => Option.fromNullable(row.health))))

  // A health record is written only while the row still holds its snapshot: what was learned
  // of an old one never lands on new credentials.
  const writeHealth = (key: string, record: Option.Option<{ readonly hash: string; readonly text: string }>) =>
    Effect.flatMap(
      // The write of the refreshed tokens cleared the health already.
      Option.isNone(record) ? Lease.committed(key) : Effect.succeed(false),
      (cleared) => cleared ? Effect.void : writeHealthNow(key, record)
    )

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

  return { read, swap, readHealth, writeHealth }
}
