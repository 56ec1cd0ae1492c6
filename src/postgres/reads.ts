/**
 * Reads of the credential rows of many keys: one statement (`= ANY($1)`) for them all. The store's
 * own reads are gathered into it by `batch.ts`; a caller holding many keys (the keys another
 * replica changed) asks for them at once.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Duration, Effect, Option } from "effect"
import type { AuthStoreError } from "../errors/Errors.js"
import type { Entry } from "../stores/CredentialStore.js"
import { retryLostSession } from "./connection.js"

/** A credential row as the read returns it. */
export interface StoredRow {
  readonly credential_key: string
  readonly document: string
  readonly version: string
  readonly health: string | null
}

/** The rows of `keys`, in their order (none for a key with no row); run again after a lost session. */
export const rowsOf = (sql: SqlClient.SqlClient, text: string, keys: ReadonlyArray<string>) =>
  sql.unsafe<StoredRow>(text, [keys]).pipe(
    retryLostSession,
    Effect.map((rows) => {
      const byKey = new Map(rows.map((row) => [row.credential_key, row]))
      return keys.map((key) => Option.fromNullable(byKey.get(key)))
    })
  )

export interface EntriesOptions {
  readonly connected: (key: string, operation: "read") => Effect.Effect<SqlClient.SqlClient, AuthStoreError>
  readonly text: string
  /** The most keys one statement reads. */
  readonly maxSize: number
  /** How long a statement is waited for (a stalled connection); unbounded when absent. */
  readonly timeout: Duration.Duration | undefined
  readonly fail: (key: string, operation: "read") => (cause: unknown) => AuthStoreError
}

/** The entries of many keys, in their order, in statements of at most `maxSize` keys, each bounded. */
export const entriesOf =
  (options: EntriesOptions) =>
  (keys: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Option.Option<Entry>>, AuthStoreError> =>
    Effect.map(
      Effect.forEach(chunksOf(keys, options.maxSize), (chunk) =>
        Effect.flatMap(options.connected(chunk[0]!, "read"), (sql) =>
          rowsOf(sql, options.text, chunk).pipe(
            bounded(options.timeout),
            Effect.map((rows) =>
              rows.map(Option.map((row): Entry => ({ text: row.document, revision: row.version })))
            ),
            Effect.mapError(options.fail(chunk[0]!, "read"))
          ))),
      (chunks) => chunks.flat()
    )

const chunksOf = <A>(items: ReadonlyArray<A>, size: number): ReadonlyArray<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

/**
 * A statement waited for at most `timeout`: then it fails saying so, and the statement is
 * interrupted in the background (`Effect.disconnect`: the database is asked to cancel it, and that is
 * not waited for). A stalled connection,
 * or a row another session holds locked, then fails its caller instead of holding it — and a
 * refresh, its callers and the store's shutdown — for as long as the database does not answer.
 */
export const bounded =
  (timeout: Duration.Duration | undefined) => <A, E, R>(statement: Effect.Effect<A, E | string, R>) =>
    timeout === undefined ? statement : Effect.timeoutFail(Effect.disconnect(statement), {
      duration: timeout,
      onTimeout: () => `the database did not answer within ${Duration.format(timeout)}`
    })
