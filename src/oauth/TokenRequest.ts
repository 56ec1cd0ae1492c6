/**
 * The one place that speaks OAuth 2 to a token endpoint, for the refresher
 * and for sign-in alike: it builds token requests (grant fields, client
 * authentication, JSON or form body), reads answers within a size limit, and
 * reads error codes and `Retry-After`.
 */
import * as Classify from "@effect-auth-manager/core/classify"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import { Chunk, Data, Duration, Effect, Option, Redacted, Stream } from "effect"

import type { ClientAuth } from "../config/Configuration.js"

/** Who the client is, and how its requests to the token endpoint are written. */
export interface ClientSettings {
  readonly clientId: string
  readonly clientSecret: Option.Option<Redacted.Redacted<string>>
  /** `client_secret_post` when a secret is given and nothing else is said. */
  readonly clientAuth?: ClientAuth | undefined
  /** `json` (what the Codex CLI sends to refresh) or `form` (RFC 6749). */
  readonly bodyFormat: "json" | "form"
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/** A field of a token request; secrets stay `Redacted` until the body is written. */
export type Field = string | Redacted.Redacted<string>

/** `application/x-www-form-urlencoded` exactly as the Codex CLI writes it (the core's). */
export const formEncode: (entries: ReadonlyArray<readonly [string, string]>) => string = Classify.formEncode

/**
 * A POST to `url` with the given grant fields, in order, written by the core's `tokenRequestParts`:
 * `client_id` is placed where the caller put it; with `client_secret_basic` it moves to the
 * `Authorization` header with the secret.
 */
export const tokenRequest = (
  url: string,
  client: ClientSettings,
  fields: ReadonlyArray<readonly [string, Field]>
): HttpClientRequest.HttpClientRequest => {
  const parts = Classify.tokenRequestParts(
    {
      clientId: client.clientId,
      clientSecret: Option.getOrUndefined(Option.map(client.clientSecret, Redacted.value)),
      clientAuth: client.clientAuth,
      bodyFormat: client.bodyFormat
    },
    fields.map(([key, value]) => [key, typeof value === "string" ? value : Redacted.value(value)])
  )
  const request = HttpClientRequest.post(url).pipe(
    HttpClientRequest.acceptJson,
    HttpClientRequest.setHeaders(client.headers ?? {})
  )
  return HttpClientRequest.bodyText(
    parts.authorization === undefined
      ? request
      : HttpClientRequest.setHeader(request, "authorization", parts.authorization),
    parts.body,
    parts.contentType
  )
}

/** Why an answer could not be had at all (no status to classify). */
export class ExchangeFailure extends Data.TaggedError("ExchangeFailure")<{
  readonly kind: "connection" | "timeout" | "body"
  readonly detail: string
  readonly status?: number
}> {}

/** An answer of the endpoint: its status, headers and body text (bounded). */
export interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly text: string
  /** The body as JSON, or undefined when it is not JSON. */
  readonly json: unknown
}

export interface SendOptions {
  readonly timeout: Duration.Duration
  /** A body larger than this is not read further. */
  readonly maxBodyBytes: number
  /** What the endpoint is called in messages; by default its origin. */
  readonly what?: string | undefined
}

export const defaultSendOptions: SendOptions = { timeout: Duration.seconds(30), maxBodyBytes: 1024 * 1024 }

// A body whose length is declared within the limit, neither chunked nor compressed, is read whole:
// no more than the declared length arrives (a client that reads a message itself is also told the
// limit). Otherwise (a compressed body may be decompressed by the client, `fetch` does; one declared
// over the limit) it is read piece by piece, and reading stops (and so the connection closes) once
// the body passes the limit: a body left unread would keep its connection. (Read whole, a body that
// stalls midway is left to its connection when the send's timeout ends the wait: undici's whole
// read cannot be cut, and reading every body piece by piece costs twice the CPU of a token request.)
export const readBody = (response: HttpClientResponse.HttpClientResponse, maxBytes: number) => {
  const declared = response.headers["content-length"]
  const encoding = response.headers["content-encoding"]
  const length = declared === undefined || response.headers["transfer-encoding"] !== undefined ||
      (encoding !== undefined && encoding.trim().toLowerCase() !== "identity")
    ? undefined
    : Number(declared)
  if (length === undefined || !Number.isSafeInteger(length) || length < 0) return readPieces(response, maxBytes)
  if (length > maxBytes) return readPieces(response, maxBytes)
  return Effect.mapError(
    HttpIncomingMessage.withMaxBodySize(response.text, Option.some(maxBytes)),
    () => brokenWhileReading(response.status)
  )
}

const tooLarge = (status: number, maxBytes: number) =>
  new ExchangeFailure({ kind: "body", detail: `the answer was larger than ${maxBytes} bytes`, status })

const brokenWhileReading = (status: number) =>
  new ExchangeFailure({ kind: "connection", detail: "the connection broke while reading the answer", status })

const readPieces = (response: HttpClientResponse.HttpClientResponse, maxBytes: number) =>
  response.stream.pipe(
    Stream.runFoldWhile(
      { size: 0, chunks: Chunk.empty<Uint8Array>() },
      (acc) => acc.size <= maxBytes,
      (acc, bytes) => ({ size: acc.size + bytes.length, chunks: Chunk.append(acc.chunks, bytes) })
    ),
    Effect.mapError(() => brokenWhileReading(response.status)),
    Effect.filterOrFail((acc) => acc.size <= maxBytes, () => tooLarge(response.status, maxBytes)),
    Effect.map((acc) => Buffer.concat(Chunk.toArray(acc.chunks)).toString("utf8"))
  )

export const parseJsonLoosely: (text: string) => unknown = Classify.parseJsonLoosely

/**
 * Node's HTTP clients never follow a redirect; `fetch` does unless told not to, and a 307 would
 * carry the body (a refresh token, a code) to wherever it points. Whatever client is provided,
 * the request goes to its own URL only.
 */
const withoutRedirects = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(
    Effect.serviceOption(FetchHttpClient.RequestInit),
    (init) =>
      Effect.provideService(effect, FetchHttpClient.RequestInit, {
        ...Option.getOrElse(init, () => ({})),
        redirect: "manual"
      })
  )

/**
 * Sends a request and reads the answer, whatever its status. Redirects are
 * not followed: what the request carries must reach the configured endpoint only.
 */
export const send = (request: HttpClientRequest.HttpClientRequest, options: SendOptions = defaultSendOptions) =>
  Effect.flatMap(HttpClient.HttpClient, (client) => sendWith(client, request, options))

/** `send` through `client` (a refresher holds its client: no service to look up per request). */
export const sendWith = (
  client: HttpClient.HttpClient,
  request: HttpClientRequest.HttpClientRequest,
  options: SendOptions = defaultSendOptions
): Effect.Effect<Answer, ExchangeFailure> => {
  const what = options.what ?? hostOf(request.url)
  return client.execute(request).pipe(
    Effect.mapError((error) =>
      new ExchangeFailure({ kind: "connection", detail: `${what} could not be reached (${error.reason})` })
    ),
    // The HTTP stack may throw on a request it cannot make: that is a failed request, not a crash.
    Effect.catchAllDefect(() =>
      Effect.fail(new ExchangeFailure({ kind: "connection", detail: `the request to ${what} could not be made` }))
    ),
    Effect.flatMap((response) =>
      Effect.map(
        readBody(response, options.maxBodyBytes),
        (text): Answer => ({ status: response.status, headers: response.headers, text, json: parseJsonLoosely(text) })
      )
    ),
    withoutRedirects,
    Effect.timeoutFail({
      duration: options.timeout,
      onTimeout: () =>
        new ExchangeFailure({
          kind: "timeout",
          detail: `${what} did not answer within ${Duration.format(options.timeout)}`
        })
    })
  )
}

// Only the origin: a URL's query may carry something secret.
const hostOf = (url: string) => {
  try {
    return new URL(url).origin
  } catch {
    return "the endpoint"
  }
}

/** The error code of an error body: `error.code`, a string `error`, or a top-level `code`, lowercased. */
export const errorCode: (body: unknown) => string | undefined = Classify.errorCode

/** Whether a code is one of the standard (or Codex) error codes, safe to repeat in a message. */
export const isKnownCode: (code: string) => boolean = Classify.isKnownCode

/** `Retry-After` as a delay: whole seconds, or an HTTP date relative to `now`. */
export const parseRetryAfter = (value: string | undefined, now: number): Option.Option<Duration.Duration> =>
  Option.map(Option.fromNullable(Classify.parseRetryAfter(value, now)), Duration.millis)

/** A string field of a JSON object, or undefined. */
export const stringField: (body: unknown, key: string) => string | undefined = Classify.stringField

/** A number field, also when a server sends it as a numeric string (some send `"5"`). */
export const numberField: (body: unknown, key: string) => number | undefined = Classify.numberField
