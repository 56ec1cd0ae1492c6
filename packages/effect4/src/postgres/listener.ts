/**
 * `LISTEN` on a session of its own that is opened again whenever it is lost.
 * Notifications sent while it was down are lost, so every (re)connection
 * tells every key "changed": each manager reads its credential once.
 *
 * Subscribers are kept by key: a notification reaches the few subscribers of
 * its key, never every manager of the process (with ten thousand credentials,
 * filtering each notification through every subscriber was most of the work).
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as PgConnection from "@effect/sql-pg/PgConnection"
import { Deferred, Duration, Effect, Queue, Ref, Schedule, type Scope, Stream } from "effect"

type Subscriber = () => void

/** The subscribers of each key, and the notifications that reach them. */
export interface Hub {
  /** Emits when `key`'s credential may have changed (also after every (re)connection). */
  readonly changes: (key: string) => Stream.Stream<void>
  /**
   * Subscribes, for the scope's life, to what may free `key`'s lease (a release, a change of
   * its credential, a reconnection); returns the wait for the next one since the subscription.
   */
  readonly leaseSignals: (key: string) => Effect.Effect<Effect.Effect<void>, never, Scope.Scope>
}

const registry = () => {
  const byKey = new Map<string, Set<Subscriber>>()
  const add = (key: string, subscriber: Subscriber) => {
    let set = byKey.get(key)
    if (set === undefined) byKey.set(key, set = new Set())
    set.add(subscriber)
    return () => {
      set.delete(subscriber)
      if (set.size === 0 && byKey.get(key) === set) byKey.delete(key)
    }
  }
  const signal = (key: string) => byKey.get(key)?.forEach((subscriber) => subscriber())
  const signalAll = () => byKey.forEach((set) => set.forEach((subscriber) => subscriber()))
  return { add, signal, signalAll }
}

export const makeHub = () => {
  const credentials = registry()
  const leases = registry()
  const hub: Hub = {
    changes: (key) =>
      Stream.callback<void>(
        (queue) =>
          Effect.acquireRelease(
            Effect.sync(() => credentials.add(key, () => void Queue.offerUnsafe(queue, undefined))),
            (remove) => Effect.sync(remove)
          ),
        { bufferSize: 1, strategy: "sliding" }
      ),
    leaseSignals: Effect.fnUntraced(function*(key: string) {
      const signals = yield* Queue.sliding<void>(1)
      const wake = () => void Queue.offerUnsafe(signals, undefined)
      const removeLease = leases.add(key, wake)
      const removeCredential = credentials.add(key, wake)
      yield* Effect.addFinalizer(() => Effect.sync(() => (removeLease(), removeCredential())))
      return Queue.take(signals)
    })
  }
  // The listening session while it is up: it also renews leases (see `lease.ts`).
  let current: PgConnection.PgConnection | undefined
  /**
   * Runs one statement on the listening session, which never waits behind the pool's queue;
   * fails when it is down.
   */
  const query = (text: string, values: ReadonlyArray<unknown>) =>
    Effect.suspend(() =>
      current === undefined
        ? Effect.fail(new Error("the listening connection is down"))
        : current.query(text, values)
    )
  return {
    hub,
    query,
    setConnection: (connection: PgConnection.PgConnection | undefined) => (current = connection),
    credentialChanged: credentials.signal,
    leaseChanged: leases.signal,
    everything: () => (credentials.signalAll(), leases.signalAll())
  }
}

export type Made = ReturnType<typeof makeHub>

/** The listening session's settings: the client's database and credentials, kept alive. */
const sessionConfig = (config: PgClient.PgClientConfig, applicationName: string): PgConnection.Config => ({
  ...config,
  keepAlive: Duration.seconds(30),
  connectTimeout: Duration.seconds(10),
  applicationName
})

// Hands each batch of notifications to its subscribers; fails when the session is lost.
const deliver = (
  notifications: Queue.Dequeue<PgConnection.Notification, unknown>,
  signal: (key: string) => void
) => Effect.forever(Effect.map(Queue.takeAll(notifications), (batch) => batch.forEach((n) => signal(n.payload))))

/**
 * Listens on `channels` for the scope's life (one session, reopened when lost), feeding `made`.
 * Returns once the first session listens, or could not (it is then tried again in the
 * background): a replica that can connect starts hearing changes. A failure is said once per
 * outage; `problem` names it.
 */
export const listen = Effect.fnUntraced(function*(
  config: PgClient.PgClientConfig,
  channels: { readonly changes: string; readonly leases: string },
  made: Made,
  options: { readonly applicationName: string; readonly problem: (cause: unknown) => string }
) {
  const failing = yield* Ref.make(false)
  const started = yield* Deferred.make<void>()

  // One session's life: ends when it is lost.
  const session = Effect.gen(function*() {
    const connection = yield* PgConnection.make(sessionConfig(config, options.applicationName))
    // Pinned: the renewals run on this session too, beside its two listeners.
    const pinned = yield* connection.pin
    const changes = yield* pinned.listen(channels.changes)
    const leases = yield* pinned.listen(channels.leases)
    if (yield* Ref.getAndSet(failing, false)) yield* Effect.logInfo("Listening for credential changes again")
    made.everything()
    made.setConnection(pinned)
    yield* Deferred.succeed(started, undefined)
    yield* Effect.raceFirst(deliver(changes, made.credentialChanged), deliver(leases, made.leaseChanged)).pipe(
      Effect.ensuring(Effect.sync(() => made.setConnection(undefined))),
      Effect.ignore
    )
    yield* Ref.set(failing, true)
    yield* Effect.logWarning("Lost the database connection that hears credential changes; reconnecting")
  }).pipe(Effect.scoped)

  yield* session.pipe(
    Effect.catch((cause) =>
      Effect.flatMap(
        Ref.getAndSet(failing, true),
        (already) =>
          (already ? Effect.logDebug : Effect.logWarning)("Could not listen for credential changes; retrying").pipe(
            Effect.annotateLogs({ problem: options.problem(cause) })
          )
      ).pipe(Effect.andThen(Deferred.succeed(started, undefined)))
    ),
    // Reconnect quickly at first (a failover), then at most every 5 s.
    Effect.repeat(Schedule.min([Schedule.exponential(Duration.millis(100)), Schedule.spaced("5 seconds")])),
    Effect.forkScoped
  )
  // Bounded by the session's connect timeout.
  yield* Deferred.await(started)
})
