/**
 * Credentials and their refresh coordination in PostgreSQL, for a fleet of
 * replicas and many credentials: one row per credential key holds the exact
 * document text, its hash, a version and the shared health; a lease row per
 * key is the refresh lock (see `lease.ts`); every write is announced with
 * `NOTIFY` and every replica `LISTEN`s.
 *
 * Connections: a replica uses at most its pool (`maxConnections`, default 4)
 * and one more that listens. No connection is held during a token request.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { type Config, Context, Duration, Effect, Layer, Option, Redacted, type Scope } from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient } from "effect/sql"
import { randomUUID } from "node:crypto"
import { Configuration, refusal } from "../config/Configuration.js"
import { AuthStoreError, SharedHealthError } from "../errors/Errors.js"
import { CredentialStore, make as makeCredentialStore } from "../stores/CredentialStore.js"
import { make as makeCoordinator, RefreshCoordinator } from "../stores/RefreshCoordinator.js"
import * as Batch from "./batch.js"
import { bounded } from "./bounded.js"
import { type Connected, diagnose, supervise } from "./connection.js"
import * as Lease from "./lease.js"
import { listen, makeHub } from "./listener.js"
import { migrate, tables } from "./migrations.js"
import { makeStatements, readRowsOf } from "./statements.js"

export interface Options {
  /** Prefix of the tables and the notification channels (default `effect_auth`). */
  readonly prefix?: string | undefined
  /**
   * How long a refresh lock lasts unless renewed (default 35 s: the 30 s request timeout and a
   * margin). It is renewed while the refresh goes on, and outlives the connections of its holder;
   * a holder gone for longer loses it. A wait for the lock gives up after this long too.
   */
  readonly lockTimeout?: Duration.Input | undefined
}

/** The most connections a pool may be given. */
const maxPoolSize = 100

const sqlState = /^[0-9A-Z]{5}$/

/** What went wrong, from PostgreSQL's own message (they name objects and codes, never parameter values). */
const problemOf = (budget: string) => (error: unknown): string => {
  const { code, detail } = diagnose(error)
  if (code === undefined) return detail
  if (code === "53300") {
    return `${detail} (SQLSTATE 53300): the database's connection limit is reached. ${budget}; ` +
      "raise the role's or the server's limit, or lower the pool size"
  }
  return sqlState.test(code) ? `${detail} (SQLSTATE ${code})` : `${detail} (${code})`
}

const budgetOf = (poolSize: number | undefined) =>
  poolSize === undefined
    ? "This replica needs its pool's connections and 1 more that listens"
    : `This replica needs up to ${poolSize + 1} connections (a pool of ${poolSize} and 1 that listens)`

const make = Effect.fnUntraced(function*<E>(
  options: Options & { readonly poolSize?: number | undefined; readonly where: string },
  connect: Effect.Effect<Connected, E, Scope.Scope>
) {
  const prefix = options.prefix ?? "effect_auth"
  const t = tables(prefix)
  const location = (key: string) => `postgres:${t.credentials}/${key}`
  const problem = problemOf(budgetOf(options.poolSize))
  const made = makeHub()
  const holder = `${options.where} ${randomUUID().slice(0, 8)}`

  const connection = yield* supervise({
    connect,
    started: ({ pg }) =>
      listen(pg.config, { changes: t.channel, leases: t.leaseChannel }, made, {
        applicationName: "effect-auth-manager listener",
        problem
      }),
    problem,
    where: options.where
  })
  const connected = (key: string, operation: AuthStoreError["operation"]) =>
    Effect.map(
      Effect.mapError(connection, (problem) => new AuthStoreError({ path: location(key), operation, problem })),
      ({ sql }) => sql
    )

  // A lease's life; also how long any statement is waited for (a stalled connection, a row lock
  // never let go): its callers then fail saying so.
  const ttl = Duration.fromInputUnsafe(options.lockTimeout ?? Duration.seconds(35))
  const leases = Lease.make({
    connected,
    query: made.query,
    hub: made.hub,
    tables: t,
    holder,
    ttl,
    location,
    problem
  })
  // Reads made at once (the keys another replica changed, heard together) share statements; a
  // connection of the pool is left for everything else.
  const readRows = readRowsOf({ connected, tables: t, problem })
  const readMany = yield* Batch.make({
    maxSize: 500,
    concurrency: Math.max(1, (options.poolSize ?? 4) - 1),
    run: (keys: ReadonlyArray<string>) => bounded(readRows(keys), { timeout: ttl, onTimeout: (problem) => problem })
  })
  const statements = makeStatements({
    connected,
    tryHold: leases.tryHold,
    tables: t,
    location,
    problem,
    timeout: ttl,
    readRow: (key) =>
      Effect.mapError(
        readMany(key),
        (problem) => new AuthStoreError({ path: location(key), operation: "read", problem })
      )
  })

  const credentials = makeCredentialStore({
    location,
    read: statements.read,
    swap: statements.swap,
    changes: made.hub.changes
  })
  const coordinator = makeCoordinator({
    location,
    lock: leases.lock,
    readHealth: (key) =>
      Effect.mapError(
        statements.readHealth(key),
        (error) => new SharedHealthError({ location: location(key), operation: "read", problem: error.problem })
      ),
    writeHealth: (key, record) =>
      Effect.mapError(
        statements.writeHealth(key, record),
        (error) => new SharedHealthError({ location: location(key), operation: "write", problem: error.problem })
      )
  })
  return Context.make(CredentialStore, credentials).pipe(Context.add(RefreshCoordinator, coordinator))
})

/** Where a client's database is, for messages: host, port and database, never a password. */
const whereOf = (config: PgClient.PgClientConfig): string => {
  const url = config.url === undefined ? undefined : String(Redacted.value(config.url))
  if (url !== undefined && URL.canParse(url)) {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  }
  return `postgres://${config.host ?? "localhost"}:${config.port ?? 5432}/${config.database ?? ""}`
}

/**
 * Both services over the `PgClient` in context (for instance your application's own pool), after
 * migrating the schema; listening for changes on a connection of its own. A database that cannot
 * be used yet is tried again in the background (see `layer`).
 */
export const layerWithClient = (
  options: Options = {}
): Layer.Layer<CredentialStore | RefreshCoordinator, never, PgClient.PgClient | SqlClient.SqlClient> =>
  Layer.effectContext(Effect.gen(function*() {
    const pg = yield* PgClient.PgClient
    const sql = yield* SqlClient.SqlClient
    const connect = Effect.as(
      Effect.provideService(migrate(options.prefix ?? "effect_auth"), SqlClient.SqlClient, sql),
      { sql, pg }
    )
    return yield* make({ ...options, where: whereOf(pg.config) }, connect)
  }))

export interface ConnectionOptions extends Options {
  /** A `postgres://` URL. */
  readonly url: Redacted.Redacted<string>
  /**
   * Connections in the pool (default 4, at most 100). A replica uses at most this many and one
   * more that listens; a refresh holds none while its token request is in flight.
   */
  readonly maxConnections?: number | undefined
}

/** Why `size` cannot be a pool size, or undefined when it can. */
const poolSizeProblem = (size: number): string | undefined =>
  Number.isInteger(size) && size >= 1 && size <= maxPoolSize
    ? undefined
    : `it must be a whole number from 1 to ${maxPoolSize}`

/**
 * Both services, on a pool of their own to the database at `url`. The layer is built at once: a
 * database that is down (or refuses more connections) is said in one log line and tried again
 * with backoff, every operation failing with that problem meanwhile. A pool size that cannot work
 * is a `ConfigError`.
 *
 * @example
 * const stores = PgStore.layer({ url: Redacted.make("postgres://app@db/app"), maxConnections: 8 })
 */
export const layer = (
  options: ConnectionOptions
): Layer.Layer<CredentialStore | RefreshCoordinator, Config.ConfigError> => {
  const poolSize = options.maxConnections ?? 4
  const invalid = poolSizeProblem(poolSize)
  if (invalid !== undefined) {
    return Layer.effectContext(
      Effect.fail(refusal(["maxConnections"], `The pool size ${poolSize} cannot be used: ${invalid}`))
    )
  }
  // One connection is kept open: a replica keeps its place under a connection limit.
  const config: PgClient.PgPoolConfig = {
    url: options.url,
    maxConnections: poolSize,
    minConnections: 1,
    applicationName: "effect-auth-manager"
  }
  const connect = Effect.gen(function*() {
    const pg = yield* PgClient.make(config).pipe(Effect.provide(Reactivity.layer))
    yield* Effect.provideService(migrate(options.prefix ?? "effect_auth"), SqlClient.SqlClient, pg)
    return { sql: pg, pg }
  })
  return Layer.effectContext(make({ ...options, poolSize, where: whereOf(config) }, connect))
}

/**
 * `layer` for the database of the `Configuration` in context
 * (`EFFECT_AUTH_DATABASE_URL`, a secret: it may hold a password; `EFFECT_AUTH_DATABASE_TABLE_PREFIX`,
 * `EFFECT_AUTH_DATABASE_POOL_SIZE`); the lock lasts the refresh timeout plus 5 s. A configuration
 * without a database is a `ConfigError`.
 */
export const layerConfig: Layer.Layer<
  CredentialStore | RefreshCoordinator,
  Config.ConfigError,
  Configuration
> = Layer.unwrap(Effect.gen(function*() {
  const { database, refreshTimeout } = yield* Configuration
  if (Option.isNone(database)) {
    return yield* Effect.fail(refusal(["EFFECT_AUTH_DATABASE_URL"], "PostgreSQL needs a database URL (postgres://…)"))
  }
  const { poolSize, tablePrefix, url } = database.value
  return layer({
    url,
    prefix: tablePrefix,
    maxConnections: poolSize,
    lockTimeout: Duration.sum(refreshTimeout, Duration.seconds(5))
  })
}))
