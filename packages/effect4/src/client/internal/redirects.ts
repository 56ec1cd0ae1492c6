/**
 * The redirects the authorized client follows itself, so that its
 * credentials stay on the origin they were sent to: fetch would follow a
 * redirect with `ChatGPT-Account-Id` to any host, and `HttpClient.followRedirects`
 * keeps that header too. Followed as fetch does (RFC 9110 §15.4): 301, 302, 303,
 * 307 and 308 with a `Location`; 303, and 301 or 302 after a POST, go on as
 * a GET without a body; at most `maxRedirects` (the rules are the core's,
 * `@effect-auth-manager/core/redirects`).
 */
import * as Redirects from "@effect-auth-manager/core/redirects"
import { Effect, Option, Result } from "effect"
import { FetchHttpClient, HttpBody, HttpClientRequest, type HttpClientResponse, Url } from "effect/http"

export const { credentialHeaders, maxRedirects, sameOrigin } = Redirects

/** The full URL of `request` (its parameters and fragment included). */
export const urlOf = (request: HttpClientRequest.HttpClientRequest): Option.Option<URL> =>
  Result.getSuccess(Url.make(request.url, request.urlParams, Option.getOrUndefined(request.hash)))

const removeHeaders = (request: HttpClientRequest.HttpClientRequest, names: ReadonlyArray<string>) =>
  names.reduce(HttpClientRequest.removeHeader, request)

/** Where `response` sends `request` next; none when it is not a redirect that can be followed. */
export const nextHop = (
  request: HttpClientRequest.HttpClientRequest,
  response: HttpClientResponse.HttpClientResponse
): Option.Option<HttpClientRequest.HttpClientRequest> => {
  const base = urlOf(request)
  if (Option.isNone(base)) return Option.none()
  const target = Redirects.redirectTarget(
    { method: request.method, url: base.value, streamedBody: request.body._tag === "Stream" },
    response.status,
    response.headers["location"]
  )
  if (target === undefined) return Option.none()
  const moved = HttpClientRequest.setUrl(request, target.url)
  if (!target.asGet) return Option.some(moved)
  return Option.some(
    removeHeaders(
      moved.pipe(HttpClientRequest.setMethod("GET"), HttpClientRequest.setBody(HttpBody.empty)),
      Redirects.bodyHeaders
    )
  )
}

/** `request` without any header that carries a credential. */
export const withoutCredentialHeaders = (request: HttpClientRequest.HttpClientRequest) =>
  removeHeaders(request, credentialHeaders)

/**
 * Runs `effect` (a request through the inner client) so that fetch returns a redirect instead of
 * following it, unless the caller set fetch's redirect mode themselves; tells whether the redirects
 * are then the authorized client's to follow.
 */
export const withoutFetchRedirects = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<readonly [A, boolean], E, R> =>
  Effect.flatMap(
    Effect.serviceOption(FetchHttpClient.RequestInit),
    (init): Effect.Effect<readonly [A, boolean], E, R> => {
      const chosen = Option.flatMap(init, (options) => Option.fromNullishOr(options.redirect))
      if (Option.exists(chosen, (mode) => mode !== "follow")) {
        return Effect.map(effect, (a): readonly [A, boolean] => [a, false])
      }
      const options = Option.getOrElse(init, (): globalThis.RequestInit => ({}))
      return Effect.map(
        Effect.provideService(effect, FetchHttpClient.RequestInit, { ...options, redirect: "manual" }),
        (a): readonly [A, boolean] => [a, true]
      )
    }
  )
