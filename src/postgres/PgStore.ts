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
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { ConfigError, Context, Duration, Effect, Layer, Option, Redacted, type Scope } from "effect"
import { randomUUID } from "node:crypto"
import { Configuration } from "../config/Configuration.js"
import { AuthStoreError, SharedHealthError } from "../errors/Errors.js"
import { CredentialStore, make as makeCredentialStore } from "../stores/CredentialStore.js"
import { make as makeCoordinator, RefreshCoordinator } from "../stores/RefreshCoordinator.js"
import * as Priority from "../util/priority.js"
import { type Connected, supervise } from "./connection.js"
import * as Lease from "./lease.js"
import { listen, makeHub } from "./listener.js"
import { migrate, tables } from "./migrations.js"
import { makeStatements } from "./statements.js"

export interface Options {
  /** Prefix of the tables and the notification channels (default `effect_auth`). */
  readonly prefix?: string | undefined
  /**
   * How long a refresh lock lasts unless renewed (default 35 s: the 30 s request timeout and a
   * margin). It is renewed while the refresh goes on, and outlives the connections of its holder;
   * a holder gone for longer loses it. A wait for the lock gives up after this long too.
   */
  readonly lockTimeout?: Duration.DurationInput | undefined
  /**
   * The most refresh locks this replica holds at once (default 64); more flights wait for a slot
   * holding none, so that a burst on one replica leaves the keys it has not started to the others.
   */
  readonly maxHeldLocks?: number | undefined
}

/** The refresh locks a replica holds at once unless told otherwise. */
const defaultMaxHeldLocks = 64

/** The most calls one statement serves (see `batch.ts`). */
const maxBatchSize = 500

/** The most connections a pool may be given. */
const maxPoolSize = 100

const sqlState = /^[0-9A-Z]{5}$/

/** What went wrong, from PostgreSQL's own message (they name objects and codes, never parameter values). */
const problemOf = (budget: string) => (error: unknown): string => {
  if (typeof error === "string") return error
  const outer = error as { readonly cause?: unknown; readonly message?: unknown } | undefined
  const cause = (outer?.cause ?? outer) as { readonly code?: unknown; readonly message?: unknown } | undefined
  const detail = typeof cause?.message === "string" && cause.message !== ""
    ? cause.message
    : typeof outer?.message === "string"
    ? outer.message
    : String(error)
  const code = typeof cause?.code === "string" ? cause.code : undefined
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

const make = <E>(
  options: Options & {
    readonly poolSize?: number | undefined
    /** The statements of one kind run at once when the pool's size is not known (a pool given). */
    readonly statementsAtOnce?: number | undefined
    readonly where: string
  },
  connect: Effect.Effect<Connected, E, Scope.Scope>
) =>
  Effect.gen(function*() {
    const prefix = options.prefix ?? "effect_auth"
    const t = tables(prefix)
    const location = (key: string) => `postgres:${t.credentials}/${key}`
    const problem = problemOf(budgetOf(options.poolSize))
    // A lease's life unless renewed, and the longest wait for a lease or a statement.
    const lockTimeout = Duration.decode(options.lockTimeout ?? Duration.seconds(35))
    const made = makeHub(Duration.toMillis(lockTimeout))
    const holder = `${options.where} ${randomUUID().slice(0, 8)}`

    const connection = yield* supervise({
      connect,
      started: ({ pg }) =>
        listen(pg.config, { changes: t.channel, leases: t.leaseChannel, taken: t.takenChannel }, made, {
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

    // Calls of one kind made at once (thousands of stale credentials asked at once) are served by
    // one statement each batch, up to the pool's size of statements at once (see `batch.ts`); a
    // statement is waited for at most a lock's life (a stalled connection fails its callers).
    const batches = {
      maxSize: maxBatchSize,
      concurrency: options.poolSize ?? options.statementsAtOnce ?? 4,
      timeout: lockTimeout
    }
    const leases = yield* Lease.make({
      connected,
      query: made.query,
      hub: made.hub,
      tables: t,
      holder,
      ttl: lockTimeout,
      location,
      problem,
      slots: yield* Lease.makeSlots(options.maxHeldLocks ?? defaultMaxHeldLocks),
      batches
    })
    yield* Effect.forkScoped(leases.renewing)
    const statements = yield* makeStatements({
      connected,
      tryHold: leases.tryHold,
      tables: t,
      location,
      problem,
      batches
    })

    const credentials = makeCredentialStore({
      location,
      read: statements.read,
      readMany: statements.readMany,
      swap: statements.swap,
      changes: made.hub.changes,
      // One notification per write, sent as it commits.
      exactChanges: true,
      changedKeys: made.hub.changedKeys
    })
    const coordinator = makeCoordinator({
      location,
      withLock: leases.withLock,
      heldElsewhere: made.hub.heldElsewhere,
      // A refresh holding a lease runs ahead of everything else in this replica: other replicas
      // wait for it, and a busy replica would otherwise hold its leases for as long as its queue.
      whileHeld: Priority.first,
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
    return { credentials, coordinator } as const
  })

const servicesOf = ({ coordinator, credentials }: Effect.Effect.Success<ReturnType<typeof make>>) =>
  Context.make(CredentialStore, credentials).pipe(Context.add(RefreshCoordinator, coordinator))

/** Where a client's database is, for messages: host, port and database, never a password. */
const whereOf = (config: PgClient.PgClientConfig): string => {
  if (config.url !== undefined && URL.canParse(Redacted.value(config.url))) {
    const url = new URL(Redacted.value(config.url))
    return `${url.protocol}//${url.host}${url.pathname}`
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
  Layer.scopedContext(Effect.gen(function*() {
    const held = options.maxHeldLocks ?? defaultMaxHeldLocks
    if (!Number.isInteger(held) || held < 1) {
      return yield* Effect.dieMessage(
        `${held} refresh locks held at once cannot be used: it must be a whole number from 1`
      )
    }
    const pg = yield* PgClient.PgClient
    const sql = yield* SqlClient.SqlClient
    const connect = Effect.as(
      Effect.provideService(migrate(options.prefix ?? "effect_auth"), SqlClient.SqlClient, sql),
      { sql, pg }
    )
    return servicesOf(
      yield* make({ ...options, statementsAtOnce: pg.config.maxConnections, where: whereOf(pg.config) }, connect)
    )
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
 */
export const layer = (
  options: ConnectionOptions
): Layer.Layer<CredentialStore | RefreshCoordinator, ConfigError.ConfigError> => {
  const poolSize = options.maxConnections ?? 4
  const invalid = poolSizeProblem(poolSize)
  if (invalid !== undefined) {
    return Layer.fail(
      ConfigError.InvalidData(["maxConnections"], `The pool size ${poolSize} cannot be used: ${invalid}`)
    )
  }
  const held = options.maxHeldLocks ?? defaultMaxHeldLocks
  if (!Number.isInteger(held) || held < 1) {
    return Layer.fail(
      ConfigError.InvalidData(
        ["maxHeldLocks"],
        `${held} refresh locks held at once cannot be used: it must be a whole number from 1`
      )
    )
  }
  // One connection is kept open: a replica keeps its place under a connection limit.
  const config: PgClient.PgClientConfig = {
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
  return Layer.scopedContext(Effect.map(make({ ...options, poolSize, where: whereOf(config) }, connect), servicesOf))
}

/**
 * `layer` for the database of the `Configuration` in context
 * (`EFFECT_AUTH_DATABASE_URL`, a secret: it may hold a password; `EFFECT_AUTH_DATABASE_TABLE_PREFIX`,
 * `EFFECT_AUTH_DATABASE_POOL_SIZE`); the lock lasts the refresh timeout plus 5 s. A configuration
 * without a database is a `ConfigError`.
 */
export const layerConfig: Layer.Layer<
  CredentialStore | RefreshCoordinator,
  ConfigError.ConfigError,
  Configuration
> = Layer.unwrapEffect(
  Effect.flatMap(Configuration, ({ database, refreshTimeout }) =>
    Option.match(database, {
      onNone: () =>
        Effect.fail(
          ConfigError.MissingData(["EFFECT_AUTH_DATABASE_URL"], "PostgreSQL needs a database URL (postgres://…)")
        ),
      onSome: ({ poolSize, tablePrefix, url }) =>
        Effect.succeed(layer({
          url,
          prefix: tablePrefix,
          maxConnections: poolSize,
          lockTimeout: Duration.sum(refreshTimeout, Duration.seconds(5))
        }))
    }))
)
