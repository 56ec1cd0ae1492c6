/**
 * `LISTEN` on a connection of its own that is opened again whenever it is
 * lost. Notifications sent while it was down are lost, so every (re)connection
 * tells every key "changed": each manager reads its credential once.
 *
 * Subscribers are kept by key: a notification reaches the few subscribers of
 * its key, never every manager of the process (with ten thousand credentials,
 * filtering each notification through every subscriber was most of the work).
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import { Duration, Effect, Option, Queue, Redacted, Ref, Schedule, type Scope, Stream } from "effect"
import pg, { type Client, type ClientConfig, type Notification } from "pg"

type Subscriber = () => void

/** The subscribers of each key, and the notifications that reach them. */
export interface Hub {
  /** Emits when `key`'s credential may have changed (also after every (re)connection). */
  readonly changes: (key: string) => Stream.Stream<void>
  /**
   * Subscribes, for the scope's life, to what frees `key`'s lease (a release, a change of its
   * credential, a reconnection); returns the wait for the next one since the subscription. A
   * change of the credential (a write of refreshed tokens releases its lease) wakes the waiter a
   * moment later (`adoptionGrace`): a waiter that is a manager's refresh adopts the write meanwhile
   * and stops waiting; woken at once, every waiting replica would take the lease in turn only to
   * find the write.
   */
  readonly leaseSignals: (key: string) => Effect.Effect<Effect.Effect<void>, never, Scope.Scope>
  /** Every key's changes in one feed: a key that may have changed, none when any may have (a reconnection). */
  readonly changedKeys: Stream.Stream<Option.Option<string>>
  /**
   * Whether a replica (this one included) was last heard taking `key`'s lease, and neither its
   * release nor a write of the credential (which releases it; a write of its health counts too) has
   * been heard since, within the lease's life as this store sets it: a refresh of it is under way.
   * Heard, so a moment late; false when nothing was heard.
   */
  readonly heldElsewhere: (key: string) => boolean
}

/**
 * How long after a credential's change a waiter for its lease is woken: about a reload's round
 * trip, so that a manager's refresh waiting for the lease adopts the change first and stops.
 */
const adoptionGrace = 250

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

/** The hub of a store whose leases last `leaseMs` unless renewed. */
export const makeHub = (leaseMs: number) => {
  const credentials = registry()
  const leases = registry()
  // The leases heard taken, until when (monotonic ms); let go when heard released, or the
  // credential written (a write of refreshed tokens releases its lease), or once past: looked at
  // then, or swept when the map has doubled since the last sweep (keys never asked about again).
  const taken = new Map<string, number>()
  let sweepAt = 1024
  const leaseTaken = (key: string) => {
    const now = performance.now()
    taken.set(key, now + leaseMs)
    if (taken.size < sweepAt) return
    for (const [held, until] of taken) if (until <= now) taken.delete(held)
    sweepAt = Math.max(1024, 2 * taken.size)
  }
  const everyKey = new Set<(key: Option.Option<string>) => void>()
  const hub: Hub = {
    changedKeys: Stream.asyncPush<Option.Option<string>>(
      (emit) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            const subscriber = (key: Option.Option<string>) => void emit.single(key)
            everyKey.add(subscriber)
            return subscriber
          }),
          (subscriber) => Effect.sync(() => everyKey.delete(subscriber))
        ),
      // Every key is kept: a burst of notifications is a burst of distinct keys.
      { bufferSize: "unbounded" }
    ),
    changes: (key) =>
      Stream.asyncPush<void>(
        (emit) =>
          Effect.acquireRelease(
            Effect.sync(() => credentials.add(key, () => emit.single(undefined))),
            (remove) => Effect.sync(remove)
          ),
        { bufferSize: 1, strategy: "sliding" }
      ),
    leaseSignals: (key) =>
      Effect.gen(function*() {
        const signals = yield* Queue.sliding<void>(1)
        const wake = () => void Queue.unsafeOffer(signals, undefined)
        const removeLease = leases.add(key, wake)
        const removeCredential = credentials.add(key, () => void setTimeout(wake, adoptionGrace).unref())
        yield* Effect.addFinalizer(() => Effect.sync(() => (removeLease(), removeCredential())))
        return Queue.take(signals)
      }),
    heldElsewhere: (key) => {
      const until = taken.get(key)
      if (until === undefined) return false
      if (until > performance.now()) return true
      taken.delete(key)
      return false
    }
  }
  // The listening connection while it is up: it also renews leases (see `lease.ts`).
  let current: Client | undefined
  /**
   * Runs one statement on the listening connection, which never waits behind the pool's queue;
   * fails when it is down.
   */
  const query = (text: string, values: ReadonlyArray<unknown>) =>
    Effect.suspend(() => {
      const client = current
      return client === undefined
        ? Effect.fail(new Error("the listening connection is down"))
        : Effect.tryPromise({
          try: () => client.query(text, values) as Promise<{ readonly rows: ReadonlyArray<unknown> }>,
          catch: (cause) => cause
        })
    })
  return {
    hub,
    query,
    setClient: (client: Client | undefined) => (current = client),
    credentialChanged: (key: string) => {
      taken.delete(key)
      credentials.signal(key)
      if (everyKey.size > 0) everyKey.forEach((subscriber) => subscriber(Option.some(key)))
    },
    leaseChanged: (key: string) => {
      taken.delete(key)
      leases.signal(key)
    },
    leaseTaken,
    everything: () => {
      taken.clear()
      credentials.signalAll()
      leases.signalAll()
      everyKey.forEach((subscriber) => subscriber(Option.none()))
    }
  }
}

const clientConfig = (config: PgClient.PgClientConfig, applicationName: string): ClientConfig => ({
  ...(config.url === undefined ? {} : { connectionString: Redacted.value(config.url) }),
  ...(config.host === undefined ? {} : { host: config.host }),
  ...(config.port === undefined ? {} : { port: config.port }),
  ...(config.database === undefined ? {} : { database: config.database }),
  ...(config.username === undefined ? {} : { user: config.username }),
  ...(config.password === undefined ? {} : { password: Redacted.value(config.password) }),
  keepAlive: true,
  connectionTimeoutMillis: 10_000,
  application_name: applicationName
})

/** `name` as an SQL identifier, for the statements whose text is fixed when a store starts. */
export const quoteIdentifier = (name: string) => `"${name.replaceAll("\"", "\"\"")}"`

/**
 * Listens on `channels` for the scope's life (one connection, reopened when lost), feeding `made`.
 * A failure is said once per outage; `problem` names it.
 */
export const listen = (
  config: PgClient.PgClientConfig,
  channels: { readonly changes: string; readonly leases: string; readonly taken: string },
  made: ReturnType<typeof makeHub>,
  options: { readonly applicationName: string; readonly problem: (cause: unknown) => string }
) =>
  Effect.gen(function*() {
    const failing = yield* Ref.make(false)

    // One connection's life: resolves when it is lost.
    const session = Effect.gen(function*() {
      const client = new pg.Client(clientConfig(config, options.applicationName))
      const lost = Effect.async<void>((resume) => {
        const done = () => resume(Effect.void)
        client.once("error", done)
        client.once("end", done)
      })
      client.on("error", () => undefined)
      client.on("notification", (message: Notification) => {
        if (message.payload === undefined) return
        if (message.channel === channels.changes) made.credentialChanged(message.payload)
        else if (message.channel === channels.leases) made.leaseChanged(message.payload)
        else if (message.channel === channels.taken) made.leaseTaken(message.payload)
      })
      yield* Effect.acquireRelease(
        Effect.tryPromise({ try: () => client.connect(), catch: (cause) => cause }),
        () => Effect.promise(() => client.end().catch(() => undefined)).pipe(Effect.timeoutOption("1 second"))
      )
      yield* Effect.tryPromise({
        try: () =>
          client.query(
            [channels.changes, channels.leases, channels.taken].map((channel) => `LISTEN ${quoteIdentifier(channel)}`)
              .join("; ")
          ),
        catch: (cause) => cause
      })
      if (yield* Ref.getAndSet(failing, false)) yield* Effect.logInfo("Listening for credential changes again")
      made.everything()
      made.setClient(client)
      yield* Effect.ensuring(lost, Effect.sync(() => made.setClient(undefined)))
      yield* Ref.set(failing, true)
      yield* Effect.logWarning("Lost the database connection that hears credential changes; reconnecting")
    }).pipe(Effect.scoped)

    yield* session.pipe(
      Effect.catchAll((cause) =>
        Effect.flatMap(Ref.getAndSet(failing, true), (already) =>
          (already ? Effect.logDebug : Effect.logWarning)("Could not listen for credential changes; retrying").pipe(
            Effect.annotateLogs({ problem: options.problem(cause) })
          ))
      ),
      // Reconnect quickly at first (a failover), then at most every 5 s.
      Effect.repeat(Schedule.exponential(Duration.millis(100)).pipe(Schedule.union(Schedule.spaced("5 seconds")))),
      Effect.forkScoped
    )
  })
