/**
 * The changes of storage a client asks for: signing in with an API key or tokens, signing out,
 * and reading storage again, each adopted as the manager's state.
 */
import { Clock, Effect, Option, type Redacted, type Semaphore, SubscriptionRef } from "effect"
import * as AuthDocument from "../../document/AuthDocument.js"
import type { AuthStoreError } from "../../errors/Errors.js"
import type { AuthStoreShape } from "../../stores/AuthStore.js"
import type { AuthState, ChatgptTokens } from "../AuthState.js"
import * as RefreshState from "../RefreshState.js"
import { abandonIfAdopted } from "./flight.js"

/** What the changes need of the manager. */
export interface Dependencies {
  readonly store: AuthStoreShape
  readonly stateRef: SubscriptionRef.SubscriptionRef<RefreshState.State>
  /** Serialises every change of storage made by this process with the adoption that follows it. */
  readonly writes: Semaphore.Semaphore
  /** Removes the pending refresh kept beside the credentials (`always`: whoever wrote it). */
  readonly removeAside: (always: boolean) => Effect.Effect<void>
}

/** Builds `loginWithApiKey`, `loginWithTokens`, `logout` and `reload` over `dependencies`. */
export const make = ({ removeAside, stateRef, store, writes }: Dependencies) => {
  // A flight still waiting for the refresh lock stops once newer credentials are adopted.
  const update = (f: (state: RefreshState.State) => RefreshState.State) =>
    Effect.uninterruptible(Effect.flatMap(SubscriptionRef.updateAndGet(stateRef, f), abandonIfAdopted(stateRef)))
  const currentView: Effect.Effect<AuthState> = Effect.map(SubscriptionRef.get(stateRef), RefreshState.view)

  // Writes storage through `write`, given what it holds now, and adopts the result. A refresh in
  // flight anywhere cannot write over it: its compare-and-swap finds the file changed.
  const replace = (
    write: (
      stored: Option.Option<AuthDocument.AuthDocument>
    ) => Effect.Effect<AuthDocument.AuthSnapshot, AuthStoreError>
  ) =>
    writes.withPermits(1)(Effect.gen(function*() {
      const stored = yield* store.load.pipe(
        Effect.map((snapshot) => snapshot.document),
        Effect.orElseSucceed(() => Option.none<AuthDocument.AuthDocument>())
      )
      yield* update(RefreshState.adoptSaved(yield* write(stored)))
      // A kept refresh of the credentials just replaced is of no use now, and holds tokens.
      yield* removeAside(true)
      return yield* currentView
    }))

  const loginWithApiKey = Effect.fn("AuthManager.loginWithApiKey")((apiKey: Redacted.Redacted<string>) =>
    replace((stored) => store.save(AuthDocument.withApiKey(stored, apiKey)))
  )

  const loginWithTokens = Effect.fn("AuthManager.loginWithTokens")(function*(tokens: ChatgptTokens) {
    const now = new Date(yield* Clock.currentTimeMillis)
    return yield* replace((stored) =>
      store.save(AuthDocument.withTokens(
        stored,
        {
          id_token: tokens.idToken,
          access_token: tokens.accessToken,
          refresh_token: tokens.refreshToken,
          ...(tokens.accountId === undefined ? {} : { account_id: tokens.accountId })
        },
        now,
        tokens.expiresIn
      ))
    )
  })

  const logout = replace(() => Effect.as(store.remove, AuthDocument.absent)).pipe(
    Effect.withSpan("AuthManager.logout")
  )

  const reload = writes.withPermits(1)(Effect.gen(function*() {
    yield* update(RefreshState.adopt(yield* store.load))
    return yield* currentView
  })).pipe(Effect.withSpan("AuthManager.reload"))

  return { currentView, loginWithApiKey, loginWithTokens, logout, reload }
}
