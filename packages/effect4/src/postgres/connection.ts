/**
 * The store's connection to PostgreSQL, kept trying: a database that is down
 * when a replica starts (or a connection limit reached) does not stop the
 * program. Until it is connected, every operation fails at once with what is
 * wrong, which the manager reports like any storage trouble; the attempts go
 * on with backoff, and the trouble is said once, not at every attempt.
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import { Cause, Deferred, Duration, Effect, Exit, Ref, Schedule, Scope } from "effect"
import type * as SqlClient from "effect/sql/SqlClient"

export interface Connected {
  readonly sql: SqlClient.SqlClient
  readonly pg: PgClient.PgClient
}

type State =
  | { readonly _tag: "Starting"; readonly settled: Deferred.Deferred<void> }
  | { readonly _tag: "Down"; readonly problem: string }
  | { readonly _tag: "Up"; readonly connected: Connected }

export interface SuperviseOptions<E> {
  /** Connects and prepares the schema; what it opens lives in the scope it is given until the store stops. */
  readonly connect: Effect.Effect<Connected, E, Scope.Scope>
  /** Starts what needs the connection (the listener), in the connection's scope. */
  readonly started: (connected: Connected) => Effect.Effect<void, never, Scope.Scope>
  readonly problem: (cause: unknown) => string
  /** Where the database is, for the log line (no password). */
  readonly where: string
}

// Quickly at first (a restart), then at most every 5 s.
const reconnecting = Schedule.min([Schedule.exponential(Duration.millis(200)), Schedule.spaced("5 seconds")]).pipe(
  Schedule.jittered
)

/**
 * Connects, and if that fails keeps trying in the background for the scope's life; returns the
 * connection (an effect that fails at once with the problem while there is none).
 */
export const supervise = Effect.fnUntraced(function*<E>(options: SuperviseOptions<E>) {
  const outer = yield* Effect.scope
  const state = yield* Ref.make<State>({ _tag: "Starting", settled: yield* Deferred.make<void>() })
  const failures = yield* Ref.make(0)

  const attempt = Effect.gen(function*() {
    const scope = yield* Scope.fork(outer, "sequential")
    const exit = yield* Effect.exit(Scope.provide(options.connect, scope))
    if (Exit.isFailure(exit)) {
      yield* Scope.close(scope, exit)
      return yield* Effect.fail(options.problem(Cause.squash(exit.cause)))
    }
    yield* Scope.provide(options.started(exit.value), scope)
    return exit.value
  })

  const settle = (next: State) =>
    Effect.flatMap(
      Ref.getAndSet(state, next),
      (previous) => previous._tag === "Starting" ? Deferred.succeed(previous.settled, undefined) : Effect.void
    )

  const down = (problem: string) =>
    Effect.gen(function*() {
      yield* settle({ _tag: "Down", problem })
      const count = yield* Ref.updateAndGet(failures, (n) => n + 1)
      const log = count === 1 ? Effect.logError : Effect.logDebug
      yield* log(
        "Cannot use the credential database; retrying with backoff, and until then every refresh fails with this problem"
      ).pipe(Effect.annotateLogs({ database: options.where, problem }))
    })

  const up = (connected: Connected) =>
    Effect.gen(function*() {
      yield* settle({ _tag: "Up", connected })
      const count = yield* Ref.get(failures)
      if (count > 0) {
        yield* Effect.logInfo("Connected to the credential database").pipe(
          Effect.annotateLogs({ database: options.where, failedAttempts: count })
        )
      }
    })

  yield* attempt.pipe(
    Effect.tapError(down),
    Effect.retry(reconnecting),
    Effect.flatMap(up),
    Effect.forkIn(outer)
  )

  // The first attempt is waited for (it is bounded by the client's connect timeout): a store
  // that can connect starts connected, with its schema in place.
  const first = yield* Ref.get(state)
  if (first._tag === "Starting") yield* Deferred.await(first.settled)

  /** The connection; fails at once, with the problem, while there is none. */
  const connected: Effect.Effect<Connected, string> = Effect.flatMap(Ref.get(state), (current) => {
    switch (current._tag) {
      case "Up":
        return Effect.succeed(current.connected)
      case "Down":
        return Effect.fail(current.problem)
      case "Starting":
        // The first attempt is bounded by the client's connect timeout.
        return Effect.andThen(
          Deferred.await(current.settled),
          Effect.flatMap(Ref.get(state), (after) =>
            after._tag === "Up"
              ? Effect.succeed(after.connected)
              : Effect.fail(after._tag === "Down" ? after.problem : "not connected yet"))
        )
    }
  })
  return connected
})

type Described = { readonly code?: unknown; readonly message?: unknown }

/** The chain of causes of an error (a `SqlError`, its reason, the server's or the socket's error). */
const causes = (error: unknown): ReadonlyArray<Described> => {
  const chain: Array<object> = []
  let current: unknown = error
  while (typeof current === "object" && current !== null && chain.length < 5 && !chain.includes(current)) {
    chain.push(current)
    current = (current as { readonly cause?: unknown }).cause
  }
  return chain
}

const hasMessage = (cause: Described | undefined): cause is { readonly message: string } =>
  typeof cause?.message === "string" && cause.message !== ""

/**
 * What PostgreSQL (or the socket) said: the innermost error that carries a code, with its own
 * message (PostgreSQL's messages name objects and codes, never parameter values).
 */
export const diagnose = (error: unknown): { readonly code: string | undefined; readonly detail: string } => {
  if (typeof error === "string") return { code: undefined, detail: error }
  const chain = causes(error)
  const coded = [...chain].reverse().find((cause) => typeof cause.code === "string")
  const described = hasMessage(coded) ? coded : [...chain].reverse().find(hasMessage)
  return {
    code: coded === undefined ? undefined : String(coded.code),
    detail: described === undefined ? String(error) : described.message
  }
}

const lostSession = /Connection terminated|Connection closed|ECONNRESET|EPIPE|not queryable|terminating connection/i

/**
 * Whether `error` says the session was lost before the statement could run (its connection was
 * closed or its backend terminated): a read, or taking a lease, is then tried again on a fresh
 * pooled connection. (A write is not: whether it committed cannot be known.)
 */
export const isLostSession = (error: unknown): boolean => {
  const { code, detail } = diagnose(error)
  if (code !== undefined && (code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03")) {
    return true
  }
  return lostSession.test(detail)
}

/** Tries `effect` again (twice at most) when its session was lost before it ran. */
export const retryLostSession = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.retry(effect, { times: 2, while: isLostSession })
