/**
 * `LISTEN` on a connection of its own that is opened again whenever it is
 * lost. Notifications sent while it was down are lost, so every (re)connection
 * tells every key "changed": each manager reads its credential once.
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import { Duration, Effect, PubSub, Redacted, Runtime, Schedule, Stream } from "effect"
import pg, { type ClientConfig, type Notification } from "pg"

/** Sent to every key after a (re)connection. */
const everyKey = Symbol("everyKey")

const clientConfig = (config: PgClient.PgClientConfig): ClientConfig => ({
  ...(config.url === undefined ? {} : { connectionString: Redacted.value(config.url) }),
  ...(config.host === undefined ? {} : { host: config.host }),
  ...(config.port === undefined ? {} : { port: config.port }),
  ...(config.database === undefined ? {} : { database: config.database }),
  ...(config.username === undefined ? {} : { user: config.username }),
  ...(config.password === undefined ? {} : { password: Redacted.value(config.password) }),
  keepAlive: true,
  connectionTimeoutMillis: 10_000,
  application_name: "effect-auth-manager listener"
})

/** Starts listening for the scope's life; returns the change stream of a key. */
export const listen = (config: PgClient.PgClientConfig, channel: string) =>
  Effect.gen(function*() {
    const hub = yield* PubSub.unbounded<string | typeof everyKey>()
    const publish = Runtime.runSync(yield* Effect.runtime<never>())

    // One connection's life: resolves when it is lost.
    const session = Effect.gen(function*() {
      const client = new pg.Client(clientConfig(config))
      const lost = Effect.async<void>((resume) => {
        const done = () => resume(Effect.void)
        client.once("error", done)
        client.once("end", done)
      })
      client.on("error", () => undefined)
      client.on("notification", (message: Notification) => {
        if (message.channel === channel && message.payload !== undefined) publish(PubSub.publish(hub, message.payload))
      })
      yield* Effect.acquireRelease(
        Effect.tryPromise({ try: () => client.connect(), catch: (cause) => cause }),
        () => Effect.promise(() => client.end().catch(() => undefined)).pipe(Effect.timeoutOption("1 second"))
      )
      yield* Effect.tryPromise({ try: () => client.query(`LISTEN "${channel.replaceAll("\"", "\"\"")}"`), catch: (cause) => cause })
      yield* PubSub.publish(hub, everyKey)
      yield* lost
      yield* Effect.logWarning("Lost the database connection that hears credential changes; reconnecting")
    }).pipe(Effect.scoped)

    yield* session.pipe(
      Effect.catchAll((cause) =>
        Effect.logWarning("Could not listen for credential changes; retrying").pipe(
          Effect.annotateLogs({ problem: cause instanceof Error ? cause.message : String(cause) })
        )
      ),
      // Reconnect quickly at first (a failover), then at most every 5 s.
      Effect.repeat(Schedule.exponential(Duration.millis(100)).pipe(Schedule.union(Schedule.spaced("5 seconds")))),
      Effect.forkScoped
    )

    return (key: string): Stream.Stream<void> =>
      Stream.fromPubSub(hub).pipe(
        Stream.filter((changed) => changed === key || changed === everyKey),
        Stream.as(undefined)
      )
  })
