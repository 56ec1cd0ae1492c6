/**
 * What the processes (or replicas) sharing a credential coordinate about,
 * apart from the credential itself: a lock held across a refresh, so that
 * one of them at a time asks the token endpoint, and the health they learned
 * of a snapshot (dead refresh token, backoff), so that the others do not ask
 * again. Keyed by credential key; the health also by snapshot hash, so that
 * new credentials start healthy everywhere. It holds no secret.
 */
import { decodeSharedHealth } from "@effect-auth-manager/core/sharedHealth"
import { Context, Effect, Either, Layer, Option, Schema, type Scope } from "effect"
import { AuthStoreError, PermanentReason, SharedHealthError, TransientKind } from "../errors/Errors.js"

/**
 * The health of snapshot `hash` that one process shares with the others:
 * reason codes, statuses and times only (no server text). Read by the core's
 * `decodeSharedHealth`; this Schema is its typed form for users and writers.
 */
export const SharedHealth = Schema.Union(
  Schema.Struct({
    hash: Schema.String,
    state: Schema.Literal("poisoned"),
    reason: PermanentReason,
    status: Schema.optional(Schema.Number),
    at: Schema.Number
  }),
  Schema.Struct({
    hash: Schema.String,
    state: Schema.Literal("cooling-down"),
    until: Schema.Number,
    attempts: Schema.Number,
    kind: TransientKind,
    // Written by earlier versions; never written now: the record holds codes only, no text.
    detail: Schema.optional(Schema.String),
    status: Schema.optional(Schema.Number),
    at: Schema.Number
  })
)
export type SharedHealth = typeof SharedHealth.Type

/** The JSON text a backend stores a health record as. */
export const SharedHealthJson = Schema.parseJson(SharedHealth)

/**
 * The primitives of a backend; `make` builds the service from them. Its refresh lock is given as
 * `lock`, `withLock`, or both (`withLock` is used when there is one).
 */
export type Backend =
  & BackendPrimitives
  & (
    | {
      /** Holds the refresh lock of `key` until the scope closes; fails after a bounded wait. */
      readonly lock: (key: string) => Effect.Effect<void, AuthStoreError, Scope.Scope>
      readonly withLock?: WithLock | undefined
    }
    | { readonly lock?: undefined; readonly withLock: WithLock }
  )

/**
 * Runs an effect holding the refresh lock of `key`, as `lock` does for a scope, without one (a
 * refresh takes the lock once: a scope and its finalizers cost it more than the rest of the lock on
 * PostgreSQL); fails after a bounded wait.
 */
export type WithLock = (
  key: string
) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | AuthStoreError, R>

/** What a backend gives besides its lock. */
export interface BackendPrimitives {
  readonly location: (key: string) => string
  /**
   * How the work done while holding the lock runs, when the backend says (PostgreSQL: ahead of
   * everything else in the process, since other replicas wait for it).
   */
  readonly whileHeld?: (<A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>) | undefined
  /**
   * Whether `key`'s refresh lock was last heard taken and not let go since (a refresh of it is
   * under way): a keyed manager starts no refresh of that key meanwhile. This process's own takes
   * may count too (its flight of that key is the one running). Absent, or false, when nothing is
   * known; heard a moment late, so never a reason to skip the lock itself.
   */
  readonly heldElsewhere?: ((key: string) => boolean) | undefined
  /** The health text stored for `key`; none when there is none. */
  readonly readHealth: (key: string) => Effect.Effect<Option.Option<string>, SharedHealthError>
  /**
   * Stores the health of snapshot `hash` under `key` (none clears whatever
   * is there). A backend that also holds the credential writes a record only
   * while the credential still has that hash.
   */
  readonly writeHealth: (
    key: string,
    text: Option.Option<{ readonly hash: string; readonly text: string }>
  ) => Effect.Effect<void, SharedHealthError>
}

export interface RefreshCoordinatorShape {
  readonly location: (key: string) => string
  /** Runs `effect` holding `key`'s refresh lock: among all sharers, one at a time. */
  readonly withRefreshLock: (
    key: string
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | AuthStoreError, R>
  /** See `Backend.heldElsewhere`: absent when the backend cannot tell. */
  readonly heldElsewhere?: ((key: string) => boolean) | undefined
  /**
   * The health shared for `key`; none when there is none, or it cannot be
   * read. It applies only while the credential still has the record's hash.
   */
  readonly getHealth: (key: string) => Effect.Effect<Option.Option<SharedHealth>>
  /** Shares the health of the record's snapshot (none clears it). Best effort: never fails. */
  readonly setHealth: (key: string, health: Option.Option<SharedHealth>) => Effect.Effect<void>
}

/**
 * Refresh coordination, keyed by credential key.
 *
 * @example
 * const once = Effect.flatMap(RefreshCoordinator, (c) => c.withRefreshLock("default")(Effect.log("alone")))
 */
export class RefreshCoordinator extends Context.Tag("effect-auth-manager/RefreshCoordinator")<
  RefreshCoordinator,
  RefreshCoordinatorShape
>() {
  /** The coordinator over a backend's few primitives: see `make`. */
  static readonly make = (backend: Backend): RefreshCoordinatorShape => make(backend)
  /** A backend in memory, to build a coordinator from or to test a backend's contract against. */
  static readonly makeMemoryBackend: Effect.Effect<Backend> = Effect.suspend(() => makeMemoryBackend)
  /** Coordination among the managers of this process only. */
  static readonly layerMemory: Layer.Layer<RefreshCoordinator> = Layer.effect(
    RefreshCoordinator,
    Effect.suspend(() => Effect.map(makeMemoryBackend, make))
  )
}

/** The health record stored at `location` as `text`; the error when it is not one. */
export const decodeHealth = (location: string, text: string): Either.Either<SharedHealth, SharedHealthError> =>
  Either.fromNullable(
    decodeSharedHealth(text),
    () => new SharedHealthError({ location, operation: "read", problem: "unexpected content" })
  )

/** Builds the service from a backend's primitives: decoding, and the best-effort rules. */
export const make = (backend: Backend): RefreshCoordinatorShape => {
  // Health is an optimisation, never a reason to fail: a record that cannot be read is ignored (and said).
  const ignore = (key: string, error: SharedHealthError) =>
    Effect.logWarning("Ignoring the shared refresh state").pipe(
      Effect.annotateLogs({ credential: key, location: error.location, problem: error.problem })
    )
  return {
    location: backend.location,
    heldElsewhere: backend.heldElsewhere,
    withRefreshLock: (key) => (effect) => {
      const held = backend.whileHeld?.(effect) ?? effect
      return (backend.withLock !== undefined
        ? backend.withLock(key)(held)
        // (A backend without `withLock` has `lock`: see `Backend`.)
        : Effect.scoped(Effect.zipRight(backend.lock!(key), held))).pipe(
          Effect.withSpan("RefreshCoordinator.withRefreshLock", {
            attributes: { credential: key },
            captureStackTrace: false
          })
        )
    },
    getHealth: (key) =>
      backend.readHealth(key).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.succeed(Option.none<SharedHealth>()),
          onSome: (text) =>
            Either.match(decodeHealth(backend.location(key), text), {
              onLeft: (problem) => Effect.as(ignore(key, problem), Option.none<SharedHealth>()),
              onRight: (health) => Effect.succeed(Option.some(health))
            })
        })),
        Effect.catchAll((problem) => Effect.as(ignore(key, problem), Option.none<SharedHealth>()))
      ),
    setHealth: (key, health) =>
      backend.writeHealth(
        key,
        Option.map(health, (h) => ({ hash: h.hash, text: Schema.encodeSync(SharedHealthJson)(h) }))
      ).pipe(
        Effect.catchAll((error) =>
          Effect.logWarning("Could not share the refresh state").pipe(
            Effect.annotateLogs({ credential: key, location: error.location, problem: error.problem })
          )
        )
      )
  }
}

/** The memory backend: a semaphore and a health record per key, for the managers of one process. */
export const makeMemoryBackend: Effect.Effect<Backend> = Effect.gen(function*() {
  const locks = new Map<string, Effect.Semaphore>()
  // Changed in place: a copy per write would cost a write the whole map.
  const health = new Map<string, string>()
  const semaphore = (key: string) => {
    let existing = locks.get(key)
    if (existing === undefined) {
      existing = Effect.unsafeMakeSemaphore(1)
      locks.set(key, existing)
    }
    return existing
  }
  return {
    location: (key) => `memory:${key}`,
    // The wait for the lock can be given up (an acquisition in `acquireRelease` could not be).
    lock: (key) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.zipRight(restore(semaphore(key).take(1)), Effect.addFinalizer(() => semaphore(key).release(1)))
      ),
    withLock: (key) => semaphore(key).withPermits(1),
    readHealth: (key) => Effect.sync(() => Option.fromNullable(health.get(key))),
    writeHealth: (key, record) =>
      Effect.sync(() => {
        Option.match(record, { onNone: () => health.delete(key), onSome: ({ text }) => health.set(key, text) })
      })
  }
})

/** A coordinator for the managers of this process. */
export const makeMemory: Effect.Effect<RefreshCoordinatorShape> = Effect.map(makeMemoryBackend, make)

/** A lock that could not be had in time, as the typed error a refresh reports. */
export const lockTimeout = (location: string, problem: string) =>
  new AuthStoreError({ path: location, operation: "lock", problem })
