// The refresh lock on PostgreSQL: heard taken by the other replicas, released by an interrupted
// holder, renewed while its holder is alive, bounded when the database does not answer.
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Redacted, Stream } from "effect"
import pg from "pg"
import { TransientRefreshError } from "../../src/errors/Errors.js"
import { AuthManager } from "../../src/manager/AuthManager.js"
import { TokenRefresher } from "../../src/oauth/TokenRefresher.js"
import * as PgStore from "../../src/postgres/PgStore.js"
import { AuthStore, bind } from "../../src/stores/AuthStore.js"
import { CredentialStore } from "../../src/stores/CredentialStore.js"
import { RefreshCoordinator, type RefreshCoordinatorShape } from "../../src/stores/RefreshCoordinator.js"
import { freshDatabase } from "../support/database.js"
import { chatgptJson } from "../support/fixtures.js"
import { decode } from "../support/manager.js"

/** A replica's coordinator and store on the database at `url`, its leases lasting `lockTimeout`. */
const replica = (url: string, lockTimeout: Duration.DurationInput = "30 seconds") =>
  Effect.map(
    Layer.build(PgStore.layer({ url: Redacted.make(url), lockTimeout })),
    (context) => ({
      coordinator: Context.get(context, RefreshCoordinator),
      credentials: Context.get(context, CredentialStore)
    })
  )

/** Holds `key`'s lock on a fiber of its own until `until` ends; returns that fiber once it holds it. */
const holding = (coordinator: RefreshCoordinatorShape, key: string, until: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const held = yield* Deferred.make<void>()
    const fiber = yield* coordinator.withRefreshLock(key)(Effect.zipRight(Deferred.succeed(held, undefined), until))
      .pipe(Effect.forkScoped)
    yield* Deferred.await(held)
    return fiber
  })

/** A client of the database at `url` of the test's own, for the scope's life. */
const clientOf = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end())
  )

/** Runs `statement` in a transaction `client` keeps open (what it locks stays locked until ROLLBACK). */
const holdInTransaction = (client: InstanceType<typeof pg.Client>, statement: string) =>
  Effect.promise(async () => {
    await client.query("BEGIN")
    await client.query(statement)
  })

/** Another session (an administrator's, a stuck job) holding what `statement` locks, for the scope's life. */
const blockerOf = (url: string, statement: string) =>
  Effect.tap(clientOf(url), (client) => holdInTransaction(client, statement))

describe("PgStore refresh lock", () => {
  it.live(
    "a lease taken is heard by the other replicas: held elsewhere until it is released",
    () =>
      Effect.gen(function*() {
        const url = yield* Effect.promise(() => freshDatabase("taken"))
        const holder = yield* replica(url)
        const other = yield* replica(url)
        const notifier = yield* clientOf(url)
        // Whatever the listening connection heard before a change of `marker` was notified, it has
        // handled once that change reaches the stream (notifications arrive in commit order).
        const heardUpTo = (marker: string, notify: Effect.Effect<unknown>) =>
          Effect.gen(function*() {
            const heard = yield* Effect.fork(Stream.runHead(other.credentials.changes(marker)))
            // Subscribed once it waits.
            while ((yield* Fiber.status(heard))._tag !== "Suspended") yield* Effect.yieldNow()
            yield* notify
            yield* Fiber.join(heard)
          })
        const notifyChange = (marker: string) =>
          Effect.promise(() => notifier.query("SELECT pg_notify('effect_auth_changes', $1)", [marker]))
        // The other replica listens (a reconnection says every key changed: the stream hears it too).
        yield* heardUpTo("ready", notifyChange("ready"))
        const letGo = yield* Deferred.make<void>()
        const held = yield* holding(holder.coordinator, "said", Deferred.await(letGo))
        yield* heardUpTo("after-take", notifyChange("after-take"))
        expect(other.coordinator.heldElsewhere?.("said")).toBe(true)
        expect(other.coordinator.heldElsewhere?.("unrelated")).toBe(false)
        yield* Deferred.succeed(letGo, undefined)
        yield* Fiber.join(held)
        yield* heardUpTo("after-release", notifyChange("after-release"))
        expect(other.coordinator.heldElsewhere?.("said")).toBe(false)
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a refresh interrupted while it holds the lock still releases its lease: another replica takes it at once",
    () =>
      Effect.gen(function*() {
        const url = yield* Effect.promise(() => freshDatabase("interrupted"))
        const holder = yield* replica(url)
        const other = yield* replica(url)
        yield* Fiber.interrupt(yield* holding(holder.coordinator, "cut", Effect.never))
        const admin = yield* clientOf(url)
        const left = yield* Effect.promise(() => admin.query("SELECT count(*)::int AS n FROM effect_auth_leases"))
        expect((left as { readonly rows: ReadonlyArray<{ readonly n: number }> }).rows[0]!.n).toBe(0)
        // Free: taken at once (a lease left behind would hold it for the lease's life, 30 s here).
        expect(yield* other.coordinator.withRefreshLock("cut")(Effect.succeed("taken"))).toBe("taken")
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a holder that lives keeps its lease past the lease's life: another replica's wait ends without it",
    () =>
      Effect.gen(function*() {
        const url = yield* Effect.promise(() => freshDatabase("lease"))
        const holder = yield* replica(url, "2 seconds")
        const other = yield* replica(url, "2 seconds")
        const letGo = yield* Deferred.make<void>()
        yield* holding(holder.coordinator, "renewed", Deferred.await(letGo))
        // The other replica waits for the lease; unless it is renewed, it expires after 2 s and
        // is taken. Renewed, the wait ends on its own bound (2 s after the lease was first seen held).
        const waited = yield* Effect.exit(other.coordinator.withRefreshLock("renewed")(Effect.void))
        expect(Exit.isFailure(waited) && String(waited.cause)).toContain("has held the refresh lock for over")
        yield* Deferred.succeed(letGo, undefined)
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a lease row another session has locked does not stop the renewal of the replica's other leases",
    () =>
      Effect.gen(function*() {
        const url = yield* Effect.promise(() => freshDatabase("renewlocked"))
        const holder = yield* replica(url, "2 seconds")
        const other = yield* replica(url, "2 seconds")
        const letGo = yield* Deferred.make<void>()
        yield* holding(holder.coordinator, "locked", Deferred.await(letGo))
        yield* holding(holder.coordinator, "renewed", Deferred.await(letGo))
        // Another session holds the first lease's row, as the holder's own fenced write does while it
        // waits for a credential row someone else holds. The renewal of both is one statement.
        yield* blockerOf(url, "SELECT 1 FROM effect_auth_leases WHERE credential_key = 'locked' FOR UPDATE")
        // The other lease is still renewed: another replica's wait for it ends on its own bound
        // (2 s after the lease was first seen held), without it.
        const waited = yield* Effect.exit(other.coordinator.withRefreshLock("renewed")(Effect.void))
        expect(Exit.isFailure(waited) && String(waited.cause)).toContain("has held the refresh lock for over")
        yield* Deferred.succeed(letGo, undefined)
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a refresh whose statements meet a credential row another session holds is answered within the lock's life",
    () =>
      Effect.gen(function*() {
        const url = yield* Effect.promise(() => freshDatabase("rowlocked"))
        const { coordinator, credentials } = yield* replica(url, "2 seconds")
        const store = bind("k", credentials, coordinator)
        yield* store.save(decode(chatgptJson({ now: Date.now(), expiresIn: 1000 })))
        // While the token request is out, another session (an administrator, a job) takes the row and
        // keeps it: the refresh's failure is then written to the row's shared health, and waits.
        const blocker = yield* clientOf(url)
        const refresher = TokenRefresher.of({
          refresh: () =>
            Effect.zipRight(
              holdInTransaction(blocker, "SELECT 1 FROM effect_auth_credentials WHERE credential_key = 'k' FOR UPDATE"),
              Effect.fail(new TransientRefreshError({ kind: "status", detail: "HTTP 503", status: 503 }))
            )
        })
        const manager = yield* AuthManager.make({ refreshTimeout: Duration.seconds(1) }).pipe(
          Effect.provideService(AuthStore, store),
          Effect.provideService(TokenRefresher, refresher)
        )
        const failure = yield* Effect.flip(manager.refresh)
        expect(failure).toMatchObject({ _tag: "TransientRefreshError", status: 503 })
        yield* Effect.promise(() => blocker.query("ROLLBACK"))
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a lock statement that the database does not answer fails its callers within the lock's life",
    () =>
      Effect.gen(function*() {
        const url = yield* Effect.promise(() => freshDatabase("stalled"))
        const { coordinator } = yield* replica(url, "2 seconds")
        // Another session holds the lease table: every lock statement waits behind it.
        const blocker = yield* blockerOf(url, "LOCK TABLE effect_auth_leases IN ACCESS EXCLUSIVE MODE")
        const waited = yield* Effect.exit(coordinator.withRefreshLock("stalled")(Effect.void))
        expect(Exit.isFailure(waited) && String(waited.cause)).toContain("the database did not answer within")
        // The statement, left to end by itself, takes the lease once the table is free: nobody waits
        // for it any more, so it is released then (the release is said on the lease channel).
        const listener = yield* clientOf(url)
        const released = yield* Deferred.make<string>()
        listener.on("notification", (message) => {
          if (message.channel === "effect_auth_leases") {
            Deferred.unsafeDone(released, Exit.succeed(message.payload ?? ""))
          }
        })
        yield* Effect.promise(() => listener.query("LISTEN effect_auth_leases"))
        yield* Effect.promise(() => blocker.query("ROLLBACK"))
        expect(yield* Deferred.await(released)).toBe("stalled")
        const left = (yield* Effect.promise(() => listener.query("SELECT credential_key FROM effect_auth_leases"))) as {
          readonly rows: ReadonlyArray<unknown>
        }
        expect(left.rows).toEqual([])
      }).pipe(Effect.scoped),
    30_000
  )
})
