/**
 * ChatGPT tokens that a host app manages itself (the Codex app server's
 * `chatgptAuthTokens`): held in memory only, never written to storage and
 * never refreshed with a refresh token. When the API refuses one (a 401
 * reported to `AuthManager.reportUnauthorized`, or seen by `AuthHttpClient`),
 * the host is asked for fresh ones: once per refused token, every concurrent
 * report joining that one request, within a time bound.
 *
 * @example
 * // An app server registers how to ask its client, for as long as the connection lasts.
 * yield* auth.hostTokens.refreshWith((request) => askTheClient(request))
 */
import { Cause, Deferred, Duration, Effect, Equivalence, Exit, Option, Redacted, Ref, type Scope } from "effect"
import { TransientRefreshError } from "../errors/Errors.js"
import { forkInOrElse } from "../util/forkIn.js"
import type { Credentials, UnauthorizedRecovery } from "./AuthState.js"

/** Tokens a host app supplied. */
export interface HostTokens {
  readonly accessToken: Redacted.Redacted<string>
  /** The ChatGPT account (workspace) the token acts for. */
  readonly accountId: string
  readonly planType: string | null
  readonly email: string | null
}

/** What the host is told when it is asked for fresh tokens. */
export interface HostRefreshRequest {
  /** The API refused the token (HTTP 401). */
  readonly reason: "unauthorized"
  /** The account of the refused token, so that a host with many accounts refreshes the right one. */
  readonly previousAccountId: string | null
}

/** Asks the host for fresh tokens; a failure says why it gave none (kind "client"). */
export type HostRefresher = (request: HostRefreshRequest) => Effect.Effect<HostTokens, TransientRefreshError>

/** How long the host has to answer, unless `refreshWith` says otherwise (as the Codex app server). */
export const defaultRefreshTimeout = Duration.seconds(10)

export interface HostTokensShape {
  /** The tokens the host supplied, if any: while there are, they are the credentials. */
  readonly current: Effect.Effect<Option.Option<HostTokens>>
  readonly set: (tokens: HostTokens) => Effect.Effect<void>
  /** Forgets the host's tokens; succeeds with whether there were any. */
  readonly clear: Effect.Effect<boolean>
  /**
   * Who is asked for fresh tokens when the API refuses one, until the scope closes (the host's
   * connection ends); then a refused token fails at once, saying that no host can refresh it.
   */
  readonly refreshWith: (
    refresher: HostRefresher,
    options?: { readonly timeout?: Duration.Input | undefined }
  ) => Effect.Effect<void, never, Scope.Scope>
}

const sameSecret = Redacted.makeEquivalence(Equivalence.String)

const hostError = (detail: string) => new TransientRefreshError({ kind: "client", detail })
const stoppedBeforeAnswer = () => hostError("the server stopped before the client answered the refresh request")

interface Registration {
  readonly refresher: HostRefresher
  readonly timeout: Duration.Duration
}

interface Flight {
  /** The refused token this request replaces. */
  readonly refused: Redacted.Redacted<string>
  readonly done: Deferred.Deferred<void, TransientRefreshError>
}

interface State {
  readonly tokens: Option.Option<HostTokens>
  readonly flight: Option.Option<Flight>
  readonly registrations: ReadonlyArray<Registration>
}

type Claim =
  | { readonly _tag: "NotHost" }
  | { readonly _tag: "Replaced" }
  | { readonly _tag: "Join"; readonly flight: Flight }
  | { readonly _tag: "Start"; readonly flight: Flight; readonly previousAccountId: string }

/**
 * The host's tokens and their recovery, for the manager: `credentials` and `recover` answer for
 * the host's tokens (none when there are none, and the manager's own apply). Requests to the host
 * run in `scope`, detached from the callers, so that an interrupted caller leaves the others an answer.
 */
export const make = Effect.fnUntraced(function*(scope: Scope.Scope) {
  const state = yield* Ref.make<State>({ tokens: Option.none(), flight: Option.none(), registrations: [] })

  const shape: HostTokensShape = {
    current: Effect.map(Ref.get(state), (s) => s.tokens),
    set: (tokens) => Ref.update(state, (s) => ({ ...s, tokens: Option.some(tokens) })),
    clear: Ref.modify(state, (s) => [Option.isSome(s.tokens), { ...s, tokens: Option.none() }]),
    refreshWith: (refresher, options = {}) => {
      const registration: Registration = {
        refresher,
        timeout: Duration.fromInputUnsafe(options.timeout ?? defaultRefreshTimeout)
      }
      return Effect.acquireRelease(
        Ref.update(state, (s) => ({ ...s, registrations: [...s.registrations, registration] })),
        () => Ref.update(state, (s) => ({ ...s, registrations: s.registrations.filter((r) => r !== registration) }))
      )
    }
  }

  const credentials: Effect.Effect<Option.Option<Credentials>> = Effect.map(
    Ref.get(state),
    (s) =>
      Option.map(s.tokens, (tokens) => ({ method: "chatgpt", token: tokens.accessToken, accountId: tokens.accountId }))
  )

  // The newest registration asks (the connection that arrived last); none: the error says so.
  const askHost = Effect.fnUntraced(function*(flight: Flight, previousAccountId: string) {
    const registrations = (yield* Ref.get(state)).registrations
    const registration = registrations[registrations.length - 1]
    if (registration === undefined) {
      return yield* hostError("no client that supplied these tokens is connected to refresh them")
    }
    const fresh = yield* registration.refresher({ reason: "unauthorized", previousAccountId }).pipe(
      Effect.timeoutOrElse({
        duration: registration.timeout,
        orElse: () =>
          Effect.fail(
            hostError(`the client did not answer the refresh request within ${Duration.format(registration.timeout)}`)
          )
      })
    )
    // Adopted only while the refused tokens are still the host's: a sign-out or other tokens
    // supplied meanwhile are newer than this answer.
    yield* Ref.update(state, (s) =>
      Option.exists(s.tokens, (tokens) => sameSecret(tokens.accessToken, flight.refused))
        ? { ...s, tokens: Option.some(fresh) }
        : s)
  })

  const endFlight = (flight: Flight) =>
    Ref.update(
      state,
      (s) => Option.exists(s.flight, (current) => current === flight) ? { ...s, flight: Option.none() } : s
    )

  const ask = (flight: Flight, previousAccountId: string) =>
    askHost(flight, previousAccountId).pipe(
      // Its callers are told in every case, in a finalizer: an interrupted fiber (the scope
      // closing) runs nothing else in Effect 4. Only the asking may be interrupted.
      Effect.onExit((exit) => {
        const answer = Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
          ? Exit.fail(stoppedBeforeAnswer())
          : exit
        // Said once per request here: the callers (an `AuthHttpClient`) only pass the API's 401 on.
        const said = Exit.isSuccess(answer)
          ? Effect.logDebug("The client supplied fresh tokens")
          : Effect.logWarning("The client did not refresh the tokens it supplied").pipe(
            Effect.annotateLogs({
              detail: Option.match(Cause.findErrorOption(answer.cause), {
                onNone: () => "unexpected",
                onSome: (error) => error.detail
              })
            })
          )
        // The flight ends before its callers are answered: a report that follows an answer is not
        // joined to the request that gave it.
        return Effect.andThen(said, Effect.andThen(endFlight(flight), Deferred.done(flight.done, answer)))
      })
    )

  /**
   * The API refused `rejected`. None when the host supplied no tokens (the manager's own recovery
   * applies); otherwise "replaced" for a token the host already replaced, else "refreshed" once
   * the host has answered with fresh tokens, or its failure.
   */
  const recover = (
    rejected: Redacted.Redacted<string>
  ): Effect.Effect<Option.Option<UnauthorizedRecovery>, TransientRefreshError> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const done = yield* Deferred.make<void, TransientRefreshError>()
        const claim = yield* Ref.modify(state, (s): readonly [Claim, State] => {
          if (Option.isNone(s.tokens)) return [{ _tag: "NotHost" }, s]
          if (Option.isSome(s.flight) && sameSecret(s.flight.value.refused, rejected)) {
            return [{ _tag: "Join", flight: s.flight.value }, s]
          }
          if (!sameSecret(s.tokens.value.accessToken, rejected)) return [{ _tag: "Replaced" }, s]
          const flight: Flight = { refused: rejected, done }
          return [
            { _tag: "Start", flight, previousAccountId: s.tokens.value.accountId },
            { ...s, flight: Option.some(flight) }
          ]
        })
        switch (claim._tag) {
          case "NotHost":
            return Option.none()
          case "Replaced":
            return Option.some("replaced" as const)
          case "Start":
            // Forked fibers start interruptible in Effect 4: the scope closing can stop the asking.
            // The server stopped already: its callers are told so here.
            yield* forkInOrElse(
              ask(claim.flight, claim.previousAccountId),
              scope,
              Effect.andThen(
                endFlight(claim.flight),
                Deferred.fail(
                  claim.flight.done,
                  stoppedBeforeAnswer()
                )
              )
            )
            break
        }
        yield* restore(Deferred.await(claim.flight.done))
        return Option.some("refreshed" as const)
      })
    )

  return { shape, credentials, recover }
})

/** The host's tokens as the manager holds them (see `make`). */
export type HostTokensHandle = Effect.Success<ReturnType<typeof make>>
