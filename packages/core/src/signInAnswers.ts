/**
 * What the answers of a sign-in's endpoints mean, as pure functions: the
 * tokens of a code exchange, a refusal's reason, and the device flows
 * (RFC 8628, and Codex's own) — what to show the person and when to ask
 * again. Each edition sends the requests, waits, and builds its errors.
 */
import { errorCode, isKnownCode, numberField, parseTokenResponse, stringField } from "./classify.js"
import type { SignInReason } from "./messages.js"

/** A sign-in answer that cannot be used: the reason and detail of the edition's error. */
export interface Problem {
  readonly problem: string
}

/** Why an endpoint refused a sign-in request. */
export const refusalReason = (status: number, code: string | undefined): SignInReason =>
  code === "access_denied"
    ? "denied"
    : code === "expired_token"
    ? "expired"
    // A 401 from a token endpoint is its answer to client authentication (RFC 6749 section 5.2):
    // starting the sign-in again cannot help, the client's id or secret must change.
    : code === "invalid_client" || code === "unauthorized_client" || status === 401
    ? "client_refused"
    : "exchange_failed"

/** The refusal of `what` (e.g. "the token endpoint") answering `status` with `body`, as data. */
export const refusal = (what: string, status: number, body: unknown) => {
  const code = errorCode(body)
  return {
    reason: refusalReason(status, code),
    detail: `${what} answered HTTP ${status}${code !== undefined && isKnownCode(code) ? ` (${code})` : ""}`,
    status
  }
}

/** The tokens a sign-in obtained. */
export interface SignInTokens {
  readonly accessToken: string
  readonly refreshToken: string
  readonly idToken: string | undefined
  readonly expiresInMillis: number | undefined
}

/** The tokens of a 2xx answer to a code exchange; a sign-in needs an access and a refresh token. */
export const signInTokens = (text: string): SignInTokens | Problem => {
  const tokens = parseTokenResponse(text) ?? {}
  if (tokens.accessToken === undefined) return { problem: "the token endpoint answered without an access token" }
  if (tokens.refreshToken === undefined) {
    return {
      problem: "the token endpoint gave no refresh token (is the offline_access scope allowed for this client?)"
    }
  }
  return {
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken,
    idToken: tokens.idToken,
    expiresInMillis: tokens.expiresInMillis
  }
}

// A provider's interval of 0 would be a request storm: at least a second apart.
const intervalOf = (body: unknown) => Math.max(1, numberField(body, "interval") ?? 5)

/** An RFC 8628 device authorization answer. */
export interface DeviceAuthorization {
  readonly deviceCode: string
  readonly userCode: string
  readonly verificationUrl: string
  readonly verificationUrlComplete: string | undefined
  /** How long the device code lives, in seconds (600 when not said). */
  readonly expiresIn: number
  /** Seconds between polls, at least 1 (5 when not said). */
  readonly interval: number
}

/** The device authorization answer `body` (RFC 8628 §3.2). */
export const deviceAuthorization = (body: unknown): DeviceAuthorization | Problem => {
  const deviceCode = stringField(body, "device_code")
  const userCode = stringField(body, "user_code")
  const verificationUrl = stringField(body, "verification_uri") ?? stringField(body, "verification_url")
  if (deviceCode === undefined || userCode === undefined || verificationUrl === undefined) {
    return { problem: "the device authorization answer lacks device_code, user_code or verification_uri" }
  }
  return {
    deviceCode,
    userCode,
    verificationUrl,
    verificationUrlComplete: stringField(body, "verification_uri_complete"),
    expiresIn: numberField(body, "expires_in") ?? 600,
    interval: intervalOf(body)
  }
}

/** What a poll of the token endpoint with a device code says to do next. */
export type PollStep =
  | { readonly next: "tokens" }
  | { readonly next: "wait"; readonly interval: number }
  | { readonly next: "refused" }

/** RFC 8628 §3.5: tokens on 2xx; `authorization_pending` waits; `slow_down` adds 5 s, for good. */
export const devicePollStep = (status: number, body: unknown, interval: number): PollStep => {
  if (status >= 200 && status < 300) return { next: "tokens" }
  const code = errorCode(body)
  if (code === "authorization_pending") return { next: "wait", interval }
  if (code === "slow_down") return { next: "wait", interval: interval + 5 }
  return { next: "refused" }
}

/** How long Codex gives the person to enter the code, in milliseconds. */
export const codexDeviceLifetime = 15 * 60 * 1000

/** Codex's device code answer. */
export interface CodexDeviceStart {
  readonly deviceAuthId: string
  readonly userCode: string
  readonly interval: number
}

/** Codex's device code answer `body` (its own endpoints, not RFC 8628). */
export const codexDeviceStart = (body: unknown): CodexDeviceStart | Problem => {
  const deviceAuthId = stringField(body, "device_auth_id")
  const userCode = stringField(body, "user_code") ?? stringField(body, "usercode")
  if (deviceAuthId === undefined || userCode === undefined) {
    return { problem: "the device code answer lacks device_auth_id or user_code" }
  }
  return { deviceAuthId, userCode, interval: intervalOf(body) }
}

/** Codex's device poll: tokens on 2xx; 403 and 404 mean the person has not entered the code yet. */
export const codexPollStep = (status: number, interval: number): PollStep =>
  status >= 200 && status < 300
    ? { next: "tokens" }
    : status === 403 || status === 404
    ? { next: "wait", interval }
    : { next: "refused" }

/** The authorization code Codex's device poll hands over, with its PKCE verifier. */
export const codexDeviceGrant = (body: unknown): { readonly code: string; readonly verifier: string } | Problem => {
  const code = stringField(body, "authorization_code")
  const verifier = stringField(body, "code_verifier")
  return code === undefined || verifier === undefined
    ? { problem: "the device token answer lacks authorization_code or code_verifier" }
    : { code, verifier }
}

/** Whether an answer is a problem rather than the data. */
export const isProblem = <A extends object>(answer: A | Problem): answer is Problem => "problem" in answer
