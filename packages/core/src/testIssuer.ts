/**
 * The state machines of the scripted servers each edition ships in
 * `./testing`: a token endpoint that rotates refresh tokens, and a
 * Codex-compatible issuer (codes spent once, checked against the client,
 * the redirect URI and PKCE; refresh tokens current or used; device grants
 * approved by user code). Transitions are `(state) => [outcome, state]`;
 * each edition keeps its state in a Ref and writes the HTTP answers.
 */
import { challengeOf } from "./pkce.js"

/** A JWT with the given payload and no valid signature: claims are read, never verified. */
export const unsignedJwt = (payload: Record<string, unknown>): string =>
  [
    Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url"),
    Buffer.from(JSON.stringify(payload)).toString("base64url"),
    "signature"
  ].join(".")

// ---------------------------------------------------------------------------
// A rotating token endpoint
// ---------------------------------------------------------------------------

export interface Rotation {
  readonly current: string
  readonly used: ReadonlySet<string>
  readonly issued: number
}

export const rotation = (firstRefreshToken: string): Rotation => ({
  current: firstRefreshToken,
  used: new Set(),
  issued: 0
})

/**
 * A refresh token presented: the current one works once and is replaced by `rt-N` (N, the count
 * of refreshes, is the outcome); one used before is "reused"; anything else is "unknown".
 */
export const present = (presented: string) => (state: Rotation): readonly [number | "reused" | "unknown", Rotation] => {
  if (presented !== state.current) return [state.used.has(presented) ? "reused" : "unknown", state]
  const issued = state.issued + 1
  return [issued, { current: `rt-${issued}`, used: new Set([...state.used, presented]), issued }]
}

// ---------------------------------------------------------------------------
// A Codex-compatible issuer
// ---------------------------------------------------------------------------

/** What `/oauth/authorize` does with the next requests. */
export type Decision = { readonly _tag: "Approve" } | { readonly _tag: "Error"; readonly error: string }

export interface CodeGrant {
  readonly challenge: string
  readonly redirectUri: string
  readonly clientId: string
  readonly used: boolean
}

export interface DeviceGrant {
  readonly deviceAuthId: string
  readonly approved: boolean
}

export interface IssuerState {
  readonly decision: Decision
  readonly codes: ReadonlyMap<string, CodeGrant>
  readonly devices: ReadonlyMap<string, DeviceGrant>
  readonly refreshTokens: ReadonlyMap<string, "current" | "used">
  readonly issued: number
}

export const initialIssuer: IssuerState = {
  decision: { _tag: "Approve" },
  codes: new Map(),
  devices: new Map(),
  refreshTokens: new Map(),
  issued: 0
}

/** Whether an authorize request is one the Codex CLI would make for `clientId`. */
export const isValidAuthorize = (query: URLSearchParams, clientId: string): boolean =>
  query.get("response_type") === "code" && query.get("client_id") === clientId &&
  query.get("code_challenge_method") === "S256" && (query.get("code_challenge") ?? "").length >= 43 &&
  /^http:\/\/(127\.0\.0\.1|localhost):\d+\//.test(query.get("redirect_uri") ?? "") &&
  (query.get("state") ?? "").length > 0

/** An authorization code granted. */
export const grantCode = (code: string, grant: Omit<CodeGrant, "used">) => (state: IssuerState): IssuerState => ({
  ...state,
  codes: new Map([...state.codes, [code, { ...grant, used: false }]])
})

/**
 * An authorization code redeemed (it is spent whatever follows): undefined when it is good, else
 * what is wrong with it.
 */
export const redeem =
  (fields: Readonly<Record<string, string>>) => (state: IssuerState): readonly [string | undefined, IssuerState] => {
    const code = fields.code ?? ""
    const grant = state.codes.get(code)
    if (grant === undefined) return ["unknown authorization code", state]
    if (grant.used) return ["authorization code already used", state]
    const spent = { ...state, codes: new Map([...state.codes, [code, { ...grant, used: true }]]) }
    if (fields.client_id !== grant.clientId) return ["client_id does not match", spent]
    if (fields.redirect_uri !== grant.redirectUri) return ["redirect_uri does not match", spent]
    if (challengeOf(fields.code_verifier ?? "") !== grant.challenge) return ["PKCE verification failed", spent]
    return [undefined, spent]
  }

/** Tokens issued: the count of issues so far (the outcome), and the new refresh token made current. */
export const issue = (refreshToken: string) => (state: IssuerState): readonly [number, IssuerState] => [
  state.issued + 1,
  {
    ...state,
    issued: state.issued + 1,
    refreshTokens: new Map([...state.refreshTokens, [refreshToken, "current" as const]])
  }
]

/** A refresh token presented: a current one is spent; the outcome is what it was (undefined: unknown). */
export const presentRefreshToken =
  (presented: string) => (state: IssuerState): readonly ["current" | "used" | undefined, IssuerState] => {
    const status = state.refreshTokens.get(presented)
    return status === "current"
      ? [status, { ...state, refreshTokens: new Map([...state.refreshTokens, [presented, "used" as const]]) }]
      : [status, state]
  }

/** A device sign-in started, shown as `userCode`. */
export const startDevice = (userCode: string, deviceAuthId: string) => (state: IssuerState): IssuerState => ({
  ...state,
  devices: new Map([...state.devices, [userCode, { deviceAuthId, approved: false }]])
})

/** The person approved the device sign-in showing `userCode` (as typed: trimmed, any case); false when none does. */
export const approve = (userCode: string) => (state: IssuerState): readonly [boolean, IssuerState] => {
  const key = userCode.trim().toUpperCase()
  const device = state.devices.get(key)
  if (device === undefined) return [false, state]
  return [true, { ...state, devices: new Map([...state.devices, [key, { ...device, approved: true }]]) }]
}

/** Where a device poll stands: unknown, not approved yet, or approved. */
export const devicePoll = (
  state: IssuerState,
  fields: Readonly<Record<string, string>>
): "unknown" | "pending" | "approved" => {
  const device = state.devices.get(fields.user_code ?? "")
  if (device === undefined || device.deviceAuthId !== fields.device_auth_id) return "unknown"
  return device.approved ? "approved" : "pending"
}

/** An approved device sign-in handed over as an authorization code (the device grant is then gone). */
export const handOver =
  (userCode: string, code: string, grant: Omit<CodeGrant, "used">) => (state: IssuerState): IssuerState => {
    const devices = new Map(state.devices)
    devices.delete(userCode)
    return grantCode(code, grant)({ ...state, devices })
  }
