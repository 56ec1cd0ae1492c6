/**
 * Credentials and their refresh coordination in PostgreSQL, for a fleet of
 * replicas and many credentials: one row per credential key holds the exact
 * document text, its hash, a version and the shared health; a transaction
 * held across the token request takes the key's advisory lock; every write
 * is announced with `NOTIFY` and every replica `LISTEN`s.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import { ConfigError, Context, Duration, Effect, Either, Layer, Option, Redacted, Scope } from "effect"
import { Configuration } from "../config/Configuration.js"
import { CredentialStore, type Entry, make as makeCredentialStore } from "../stores/CredentialStore.js"
import type * as CredentialStoreModule from "../stores/CredentialStore.js"
import type { MigrationError } from "@effect/sql/Migrator"
import { AuthStoreError, SharedHealthError } from "../errors/Errors.js"
import { make as makeCoordinator, RefreshCoordinator } from "../stores/RefreshCoordinator.js"
import { listen } from "./listener.js"
import { migrate, tables } from "./migrations.js"

export interface Options {
  /** Prefix of the tables and the notification channel (default `effect_auth`). */
  readonly prefix?: string | undefined
  /**
   * How long a refresh may hold the lock (default 35 s: the 30 s request
   * timeout and a margin). A holder silent for longer loses its session,
   * and so the lock; a wait for the lock gives up after this long too.
   */
  readonly lockTimeout?: Duration.DurationInput | undefined
  /**
   * How many refresh locks this process holds at once (default 6). Each holds
   * a pooled connection for its transaction, and the refresh under it needs
   * another: keep this below the pool's size.
   */
  readonly concurrentLocks?: number | undefined
}

const sqlProblem = (error: SqlError): string => {
  const cause = error.cause as { readonly code?: unknown; readonly message?: unknown } | undefined
  // PostgreSQL's messages name objects and codes, never parameter values.
  const detail = typeof cause?.message === "string" ? cause.message : error.message
  return typeof cause?.code === "string" ? `${detail} (SQLSTATE ${cause.code})` : detail
}

/**
 * Both services over the `SqlClient` and `PgClient` in context, after migrating
 * the schema; listening for changes on a connection of its own for the scope's life.
 */
export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const prefix = options.prefix ?? "effect_auth"
    const lockTimeout = Duration.decode(options.lockTimeout ?? Duration.seconds(35))
    const sql = yield* SqlClient.SqlClient
    const pg = yield* PgClient.PgClient
    const t = tables(prefix)
    const table = sql(t.credentials)
    const location = (key: string) => `postgres:${t.credentials}/${key}`
    const fail = (key: string, operation: AuthStoreError["operation"]) => (error: SqlError) =>
      new AuthStoreError({ path: location(key), operation, problem: sqlProblem(error) })

    yield* migrate(prefix).pipe(Effect.withSpan("PgStore.migrate"))

    const changes = yield* listen(pg.config, t.channel)

    type Row = { readonly document: string; readonly version: string }
    const entryOf = (rows: ReadonlyArray<Row>): Option.Option<Entry> =>
      Option.map(Option.fromNullable(rows[0]), (row) => ({ text: row.document, revision: String(row.version) }))

    const read = (key: string) =>
      sql<Row>`SELECT document, version FROM ${table} WHERE credential_key = ${key}`.pipe(
        Effect.map(entryOf),
        Effect.mapError(fail(key, "read"))
      )

    // Each write is one statement: the row changes, the health of the old snapshot goes, and the
    // notification is queued, atomically (pg_notify is sent when the statement's transaction commits).
    const notify = sql`pg_notify(${t.channel}, credential_key)`
    const upsert = (key: string, write: CredentialStoreModule.Write) =>
      sql<Row>`WITH written AS (
        INSERT INTO ${table} (credential_key, document, hash, version)
        VALUES (${key}, ${write.text}, ${write.hash}, nextval(${t.versions}))
        ON CONFLICT (credential_key) DO UPDATE SET document = excluded.document, hash = excluded.hash,
          version = excluded.version, health = NULL, health_hash = NULL, updated_at = now()
        RETURNING credential_key, document, version
      ) SELECT document, version, ${notify} FROM written`
    const insertIfAbsent = (key: string, write: CredentialStoreModule.Write) =>
      sql<Row>`WITH written AS (
        INSERT INTO ${table} (credential_key, document, hash, version)
        VALUES (${key}, ${write.text}, ${write.hash}, nextval(${t.versions}))
        ON CONFLICT (credential_key) DO NOTHING
        RETURNING credential_key, document, version
      ) SELECT document, version, ${notify} FROM written`
    const updateIf = (key: string, version: string, write: CredentialStoreModule.Write) =>
      sql<Row>`WITH written AS (
        UPDATE ${table} SET document = ${write.text}, hash = ${write.hash}, version = nextval(${t.versions}),
          health = NULL, health_hash = NULL, updated_at = now()
        WHERE credential_key = ${key} AND version = ${version}
        RETURNING credential_key, document, version
      ) SELECT document, version, ${notify} FROM written`
    const deleteWhere = (key: string, version: Option.Option<string>) =>
      sql<Row>`WITH removed AS (
        DELETE FROM ${table} WHERE credential_key = ${key}
        ${Option.match(version, { onNone: () => sql``, onSome: (v) => sql`AND version = ${v}` })}
        RETURNING credential_key, document, version
      ) SELECT document, version, ${notify} FROM removed`

    const versionOf = (revision: string): Option.Option<string> =>
      revision === "absent" || !/^\d+$/.test(revision) ? Option.none() : Option.some(revision)

    const written = (rows: ReadonlyArray<Row>) => rows.length > 0
    const swap: CredentialStoreModule.Backend["swap"] = (key, expected, next) =>
      Effect.gen(function*() {
        if (Option.isNone(expected)) {
          if (Option.isSome(next)) return Either.right(entryOf(yield* upsert(key, next.value)))
          yield* deleteWhere(key, Option.none())
          return Either.right(Option.none<Entry>())
        }
        const version = versionOf(expected.value)
        const rows = Option.isNone(version)
          ? Option.isSome(next) ? yield* insertIfAbsent(key, next.value) : []
          : Option.isSome(next)
          ? yield* updateIf(key, version.value, next.value)
          : yield* deleteWhere(key, version)
        if (written(rows)) return Either.right(Option.isSome(next) ? entryOf(rows) : Option.none())
        return Either.left(Option.none<Entry>())
      }).pipe(
        Effect.mapError(fail(key, "write")),
        // Nothing was written: someone else was first (or, expecting nothing, there is still nothing).
        Effect.flatMap((result) =>
          Either.isRight(result) ? Effect.succeed(result) : Effect.map(read(key), (current) =>
            Option.isNone(current) && Option.isNone(next) && Option.isNone(versionOf(Option.getOrElse(expected, () => "")))
              ? Either.right(Option.none<Entry>())
              : Either.left(current))
        )
      )

    const credentials = makeCredentialStore({
      location,
      read,
      swap,
      changes: (key) => changes(key)
    })

    const lockTimeoutMs = Math.max(1, Math.round(Duration.toMillis(lockTimeout)))
    // A transaction on a connection of its own, holding a transaction-scoped advisory lock until
    // it ends. A holder that dies loses its connection, and PostgreSQL ends the transaction and
    // frees the lock at once; a holder that goes silent (a frozen or cut-off machine) is cut by
    // idle_in_transaction_session_timeout. Waiting is bounded by lock_timeout and interruptible
    // (an interrupted query is cancelled on the server).
    const lockSlots = yield* Effect.makeSemaphore(Math.max(1, options.concurrentLocks ?? 6))
    const slot = (key: string) =>
      Effect.acquireRelease(lockSlots.take(1), () => lockSlots.release(1)).pipe(
        Effect.timeoutFail({
          duration: lockTimeout,
          onTimeout: () =>
            new AuthStoreError({ path: location(key), operation: "lock", problem: "this process is busy with other refreshes" })
        })
      )
    const lock = (key: string) =>
      Effect.zipRight(slot(key), lockInTransaction(key))
    const lockInTransaction = (key: string) =>
      Effect.gen(function*() {
        const connection = yield* sql.reserve
        const scope = yield* Effect.scope
        // One round trip (the simple protocol runs several statements): the lock is on the hot path.
        const literal = `'${`${prefix}:${key}`.replaceAll("'", "''")}'`
        yield* connection.executeRaw(
          `BEGIN; SET LOCAL lock_timeout = ${lockTimeoutMs}; ` +
            `SET LOCAL idle_in_transaction_session_timeout = ${lockTimeoutMs}; ` +
            `SELECT pg_advisory_xact_lock(hashtextextended(${literal}, 0))`,
          []
        ).pipe(
          Effect.onExit(() =>
            Scope.addFinalizer(
              scope,
              connection.executeRaw("COMMIT", []).pipe(
                Effect.timeout(lockTimeout),
                Effect.catchAllCause((cause) => Effect.logDebug("The refresh lock's transaction ended badly", cause))
              )
            )
          )
        )
      }).pipe(
        Effect.mapError((error) =>
          new AuthStoreError({
            path: location(key),
            operation: "lock",
            problem: (error.cause as { code?: unknown } | undefined)?.code === "55P03"
              ? `another replica has held the refresh lock for over ${Duration.format(lockTimeout)}`
              : sqlProblem(error)
          })
        )
      )

    // A health record is written only while the row still holds its snapshot: what was learned
    // of an old one never lands on new credentials.
    const coordinator = makeCoordinator({
      location,
      lock,
      readHealth: (key) =>
        sql<{ readonly health: string | null }>`SELECT health FROM ${table} WHERE credential_key = ${key}`.pipe(
          Effect.map((rows) => Option.flatMap(Option.fromNullable(rows[0]), (row) => Option.fromNullable(row.health))),
          Effect.mapError((error) => new SharedHealthError({ location: location(key), operation: "read", problem: sqlProblem(error) }))
        ),
      writeHealth: (key, record) =>
        Option.match(record, {
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
        }).pipe(
          Effect.asVoid,
          Effect.mapError((error) => new SharedHealthError({ location: location(key), operation: "write", problem: sqlProblem(error) }))
        )
    })

    return { credentials, coordinator } as const
  })

/** Both services over the `PgClient` in context (for instance your application's own pool). */
export const layerWithClient = (
  options: Options = {}
): Layer.Layer<CredentialStore | RefreshCoordinator, SqlError | MigrationError, PgClient.PgClient | SqlClient.SqlClient> =>
  Layer.scopedContext(
    Effect.map(make(options), ({ coordinator, credentials }) =>
      Context.make(CredentialStore, credentials).pipe(Context.add(RefreshCoordinator, coordinator)))
  )

export interface ConnectionOptions extends Options {
  /** A `postgres://` URL. */
  readonly url: Redacted.Redacted<string>
  /** Connections in the pool (default 16); each refresh in flight holds one for its lock. */
  readonly maxConnections?: number | undefined
}

/** Both services, on a pool of their own to the database at `url`. */
export const layer = (options: ConnectionOptions): Layer.Layer<CredentialStore | RefreshCoordinator, SqlError | MigrationError> =>
  layerWithClient(options).pipe(
    Layer.provide(PgClient.layer({
      url: options.url,
      maxConnections: options.maxConnections ?? 16,
      applicationName: "effect-auth-manager"
    }))
  )

/**
 * `layer` for the database of the `Configuration` in context (`EFFECT_AUTH_DATABASE_URL`,
 * a secret: it may hold a password; `EFFECT_AUTH_DATABASE_TABLE_PREFIX`); the lock's limit
 * is the refresh timeout plus 5 s. A configuration without a database is a `ConfigError`.
 */
export const layerConfig: Layer.Layer<
  CredentialStore | RefreshCoordinator,
  SqlError | MigrationError | ConfigError.ConfigError,
  Configuration
> = Layer.unwrapEffect(
  Effect.flatMap(Configuration, ({ database, refreshTimeout }) =>
    Option.match(database, {
      onNone: () =>
        Effect.fail(ConfigError.MissingData(["EFFECT_AUTH_DATABASE_URL"], "PostgreSQL needs a database URL (postgres://…)")),
      onSome: ({ tablePrefix, url }) =>
        Effect.succeed(layer({ url, prefix: tablePrefix, lockTimeout: Duration.sum(refreshTimeout, Duration.seconds(5)) }))
    }))
)
