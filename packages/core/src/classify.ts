/**
 * What a token endpoint's answer means, as pure functions: the tokens of a
 * 2xx answer, and whether a failure is permanent (the refresh token is dead:
 * never send it again) or transient (try again later). Also the helpers that
 * read OAuth answers (error codes, `Retry-After`, fields), shared by refresh
 * and sign-in.
 */
import type { RefreshedTokens } from "./authDocument.js"

/** Why a refresh token is dead. */
export const permanentReasons = ["expired", "reused", "revoked", "invalid_grant", "invalid_client", "other"] as const
export type PermanentReason = typeof permanentReasons[number]

const permanentCodes: Record<string, PermanentReason> = {
  refresh_token_expired: "expired",
  refresh_token_reused: "reused",
  refresh_token_invalidated: "revoked",
  invalid_grant: "invalid_grant",
  invalid_client: "invalid_client",
  unauthorized_client: "invalid_client"
}

/** A failed refresh, classified. */
export type Failure =
  | { readonly _tag: "Permanent"; readonly reason: PermanentReason; readonly status: number }
  | {
    readonly _tag: "Transient"
    readonly detail: string
    readonly status: number
    /** The server's `Retry-After`, in milliseconds. */
    readonly retryAfter?: number
  }

/** A body as JSON, or undefined when it is not JSON. */
export const parseJsonLoosely = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** The error code of an error body: `error.code`, a string `error`, or a top-level `code`, lowercased. */
export const errorCode = (body: unknown): string | undefined => {
  if (body === null || typeof body !== "object") return undefined
  const { code, error } = body as { readonly error?: unknown; readonly code?: unknown }
  const nested = error !== null && typeof error === "object" ? (error as { readonly code?: unknown }).code : undefined
  const found = [nested, error, code].find((candidate) => typeof candidate === "string")
  return typeof found === "string" ? found.toLowerCase() : undefined
}

/**
 * The error codes quoted in messages. Any other text from an endpoint or a
 * callback is never repeated: an error may echo the token or code it was sent.
 */
const knownCodes: ReadonlySet<string> = new Set([
  // RFC 6749 §4.1.2.1 and §5.2, RFC 8628 §3.5, OpenID Connect Core §3.1.2.6
  "invalid_request",
  "invalid_client",
  "invalid_grant",
  "unauthorized_client",
  "unsupported_grant_type",
  "invalid_scope",
  "access_denied",
  "unsupported_response_type",
  "server_error",
  "temporarily_unavailable",
  "authorization_pending",
  "slow_down",
  "expired_token",
  "interaction_required",
  "login_required",
  "consent_required",
  "account_selection_required",
  // Codex / OpenAI
  "refresh_token_expired",
  "refresh_token_reused",
  "refresh_token_invalidated",
  "rate_limit_exceeded",
  "token_expired"
])

/** Whether a code is one of the standard (or Codex) error codes, safe to repeat in a message. */
export const isKnownCode = (code: string): boolean => knownCodes.has(code)

/** `Retry-After` as a delay in milliseconds: whole seconds, or an HTTP date relative to `now`. */
export const parseRetryAfter = (value: string | undefined, now: number): number | undefined => {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  const at = Date.parse(trimmed)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/** A string field of a JSON object, or undefined. */
export const stringField = (body: unknown, key: string): string | undefined => {
  if (body === null || typeof body !== "object") return undefined
  const value = (body as Record<string, unknown>)[key]
  return typeof value === "string" ? value : undefined
}

/** A number field, also when a server sends it as a numeric string (some send `"5"`). */
export const numberField = (body: unknown, key: string): number | undefined => {
  if (body === null || typeof body !== "object") return undefined
  const value = (body as Record<string, unknown>)[key]
  const number = typeof value === "string" && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value
  return typeof number === "number" && Number.isFinite(number) ? number : undefined
}

/** What a non-2xx answer of the token endpoint means (`retryAfter` in milliseconds). */
export const classifyFailure = (status: number, body: unknown, retryAfter: number | undefined): Failure => {
  const code = errorCode(body)
  const reason = code === undefined ? undefined : permanentCodes[code]
  if (reason !== undefined) return { _tag: "Permanent", reason, status }
  if (status === 401) return { _tag: "Permanent", reason: "other", status }
  // 408, 429 and 5xx are transient by definition. Other 4xx (403, 404, a
  // 400 without a known code) usually mean a misconfigured endpoint or a
  // proxy: backing off recovers by itself once fixed, poisoning would not.
  return {
    _tag: "Transient",
    detail: `the token endpoint answered HTTP ${status}${code !== undefined && isKnownCode(code) ? ` (${code})` : ""}`,
    status,
    ...(retryAfter === undefined ? {} : { retryAfter })
  }
}

const nonEmptyString = (value: unknown): string | undefined =>
  typeof value === "string" && value.length > 0 ? value : undefined

/** `expires_in` in milliseconds: seconds as a number, or a numeric string as some providers send. */
const expiresInOf = (value: unknown): number | undefined => {
  const seconds = typeof value === "number"
    ? value
    : typeof value === "string" && /^\s*\d+(\.\d+)?\s*$/.test(value)
    ? Number(value)
    : Number.NaN
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined
}

/**
 * The tokens of a 2xx answer. Every usable field is kept, and an odd one
 * (`id_token: null`, `expires_in: "3600"`, no `access_token` next to a new
 * `refresh_token`) does not discard the others: a rotated refresh token
 * thrown away here would be replayed next time. Undefined when nothing is usable.
 */
export const parseTokenResponse = (text: string): RefreshedTokens | undefined => {
  const body = parseJsonLoosely(text)
  if (body === null || typeof body !== "object" || Array.isArray(body)) return undefined
  const fields = body as Record<string, unknown>
  const accessToken = nonEmptyString(fields.access_token)
  const refreshToken = nonEmptyString(fields.refresh_token)
  const idToken = nonEmptyString(fields.id_token)
  const expiresInMillis = expiresInOf(fields.expires_in)
  if (accessToken === undefined && refreshToken === undefined) return undefined
  return {
    ...(accessToken === undefined ? {} : { accessToken }),
    ...(refreshToken === undefined ? {} : { refreshToken }),
    ...(idToken === undefined ? {} : { idToken }),
    // An expiry describes the access token that came with it.
    ...(expiresInMillis === undefined || accessToken === undefined ? {} : { expiresInMillis })
  }
}

// ---------------------------------------------------------------------------
// Writing a token request
// ---------------------------------------------------------------------------

/** How the client proves who it is at the token endpoint (RFC 6749 §2.3.1, OpenID Connect Core §9). */
export type ClientAuth = "none" | "client_secret_post" | "client_secret_basic"

const strictEncode = (value: string) =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

/**
 * `application/x-www-form-urlencoded` exactly as the Codex CLI writes it
 * (Rust's `urlencoding::encode`): only `A-Z a-z 0-9 - _ . ~` stay as they are,
 * a space is `%20`.
 */
export const formEncode = (entries: ReadonlyArray<readonly [string, string]>): string =>
  entries.map(([key, value]) => `${strictEncode(key)}=${strictEncode(value)}`).join("&")

/** A token request's body and headers, to send as a POST. */
export interface TokenRequestParts {
  readonly contentType: "application/x-www-form-urlencoded" | "application/json"
  readonly body: string
  /** `Basic …` with `client_secret_basic`. */
  readonly authorization?: string
}

/**
 * The body (the grant fields in order, JSON or form) and the client authentication of a token
 * request: `client_secret_post` (the default with a secret) adds the secret to the body,
 * `client_secret_basic` moves the client id and the secret to the `Authorization` header.
 */
export const tokenRequestParts = (
  client: {
    readonly clientId: string
    readonly clientSecret: string | undefined
    readonly clientAuth?: ClientAuth | undefined
    readonly bodyFormat: "json" | "form"
  },
  fields: ReadonlyArray<readonly [string, string]>
): TokenRequestParts => {
  const method = client.clientAuth ?? (client.clientSecret !== undefined ? "client_secret_post" : "none")
  const entries = fields.filter(([key]) => !(method === "client_secret_basic" && key === "client_id"))
  let authorization: string | undefined
  if (client.clientSecret !== undefined) {
    if (method === "client_secret_post") entries.push(["client_secret", client.clientSecret])
    // RFC 6749 §2.3.1: each part form-encoded, then Basic.
    if (method === "client_secret_basic") {
      authorization = `Basic ${
        Buffer.from(`${strictEncode(client.clientId)}:${strictEncode(client.clientSecret)}`).toString("base64")
      }`
    }
  }
  return {
    ...(client.bodyFormat === "form"
      ? { contentType: "application/x-www-form-urlencoded" as const, body: formEncode(entries) }
      : { contentType: "application/json" as const, body: JSON.stringify(Object.fromEntries(entries)) }),
    ...(authorization === undefined ? {} : { authorization })
  }
}
