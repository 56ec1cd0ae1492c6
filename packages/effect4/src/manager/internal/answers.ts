/**
 * The answers to `getAuthStatus` and `readAccount`, from the manager's state in memory, each
 * refreshing first when asked to or when the token is stale.
 */
import { Clock, Effect, SubscriptionRef } from "effect"
import type { Settings } from "../../config/Settings.js"
import type * as AuthDocument from "../../document/AuthDocument.js"
import type { AccountInfo, AuthStatus, AuthStatusParams } from "../AuthState.js"
import * as RefreshState from "../RefreshState.js"
import { counted, poisonHits } from "./metrics.js"

/**
 * What a poll needs of one state, computed once per state: clients poll many times a second
 * and the state changes rarely, so a poll answered from memory allocates nothing.
 */
interface Answers {
  readonly state: RefreshState.State
  readonly chatgpt: boolean
  readonly poisoned: boolean
  /** From this instant a poll refreshes without being asked (`RefreshState.staleAt`). */
  readonly staleAt: number
  readonly withToken: Effect.Effect<AuthStatus>
  readonly withoutToken: Effect.Effect<AuthStatus>
  /** The answer to a refresh of a poisoned snapshot, counted as a poison hit. */
  readonly poisonHit: (includeToken: boolean) => Effect.Effect<AuthStatus>
}

const answersOf = (state: RefreshState.State, settings: Settings): Answers => {
  const withToken = Effect.succeed(RefreshState.statusOf(state, true))
  const withoutToken = Effect.succeed(RefreshState.statusOf(state, false))
  const poisonHitWithToken = counted(poisonHits, withToken)
  const poisonHitWithoutToken = counted(poisonHits, withoutToken)
  return {
    state,
    chatgpt: state.snapshot.method === "chatgpt",
    poisoned: state.health._tag === "Poisoned",
    staleAt: RefreshState.staleAt(state.snapshot, settings),
    withToken,
    withoutToken,
    poisonHit: (includeToken) => includeToken ? poisonHitWithToken : poisonHitWithoutToken
  }
}

const accountOf = (snapshot: AuthDocument.AuthSnapshot): AccountInfo["account"] =>
  snapshot.method === "apikey"
    ? { type: "apiKey" }
    : snapshot.method === "chatgpt"
    ? { type: "chatgpt", email: snapshot.claims.email, planType: snapshot.claims.planType }
    : null

/** What the answers need of the manager. */
export interface Dependencies {
  readonly settings: Settings
  readonly stateRef: SubscriptionRef.SubscriptionRef<RefreshState.State>
  /** A refresh whose failure is only recorded in the state, never the caller's. */
  readonly refreshQuietly: Effect.Effect<void>
}

/** Builds `getAuthStatus` and `readAccount` over `dependencies`. */
export const make = Effect.fnUntraced(function*({ refreshQuietly, settings, stateRef }: Dependencies) {
  // Polls are not spans: a span costs about four times a poll answered from memory, and clients
  // poll many times a second. Every poll that does work joins or starts a flight, which is one.
  // A poll answered from memory is one state read: the answers are cached per state, and the
  // clock the layer was built with is read directly (no Effect step) against the snapshot's
  // precomputed stale instant.
  const clock = yield* Clock.Clock
  let cached = answersOf(yield* SubscriptionRef.get(stateRef), settings)
  const answers = (state: RefreshState.State): Answers =>
    cached.state === state ? cached : (cached = answersOf(state, settings))
  const pick = (includeToken: boolean) => (answer: Answers) => includeToken ? answer.withToken : answer.withoutToken
  const poll = (includeToken: boolean, refreshToken: boolean, proactive = true): Effect.Effect<AuthStatus> => {
    const reply = pick(includeToken)
    const afterRefresh = Effect.andThen(
      refreshQuietly,
      Effect.flatMap(SubscriptionRef.get(stateRef), (state) => reply(answers(state)))
    )
    return Effect.flatMap(SubscriptionRef.get(stateRef), (state) => {
      const answer = answers(state)
      if (!answer.chatgpt) return reply(answer)
      const wantsRefresh = refreshToken || (proactive && clock.currentTimeMillisUnsafe() >= answer.staleAt)
      if (!wantsRefresh) return reply(answer)
      // A refresh of a poisoned snapshot is answered from the poison record, with no request.
      if (answer.poisoned) return answer.poisonHit(includeToken)
      return afterRefresh
    })
  }
  const notRequired = Effect.succeed<AuthStatus>({ authMethod: null, authToken: null, requiresOpenaiAuth: false })
  // Built once: a poll only picks one of these.
  const plain = poll(false, false)
  const refreshing = poll(false, true)
  const withToken = poll(true, false)
  const withTokenRefreshing = poll(true, true)
  const readOnly = poll(false, false, false)
  const readOnlyWithToken = poll(true, false, false)
  const getAuthStatus = (params?: AuthStatusParams): Effect.Effect<AuthStatus> =>
    !settings.requiresOpenaiAuth
      ? notRequired
      : params?.noRefresh === true
      ? params.includeToken === true ? readOnlyWithToken : readOnly
      : params?.includeToken === true
      ? params.refreshToken === true ? withTokenRefreshing : withToken
      : params?.refreshToken === true
      ? refreshing
      : plain

  const readAccount = Effect.fnUntraced(function*(
    params: { readonly refreshToken?: boolean | undefined } = {}
  ) {
    if (!settings.requiresOpenaiAuth) return { account: null, requiresOpenaiAuth: false }
    if (params.refreshToken === true) yield* refreshQuietly
    return { account: accountOf((yield* SubscriptionRef.get(stateRef)).snapshot), requiresOpenaiAuth: true }
  })
  return { getAuthStatus, readAccount }
})
