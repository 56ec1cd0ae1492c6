/**
 * The claims of the JWTs in `auth.json`, read without verifying a signature
 * (the provider already did, for us the token is opaque but for who it names).
 */

/** Who the id_token says the user is. Claims are read without verifying the signature. */
export interface IdTokenClaims {
  readonly email: string | null
  readonly planType: string | null
  readonly userId: string | null
  readonly accountId: string | null
}

export const noClaims: IdTokenClaims = { email: null, planType: null, userId: null, accountId: null }

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value)

const base64UrlText = (text: string): string | undefined => {
  const stripped = text.replace(/[\n\r]/g, "")
  if (stripped.length % 4 === 1 || !/^[-_A-Z0-9]*?={0,2}$/i.test(stripped)) return undefined
  return Buffer.from(stripped, "base64url").toString("utf8")
}

/** A JWT's payload (a JSON object), read without verifying its signature; undefined when there is none. */
export const jwtPayload = (jwt: string): Record<string, unknown> | undefined => {
  const payload = jwt.split(".")[1]
  const text = payload === undefined ? undefined : base64UrlText(payload)
  if (text === undefined) return undefined
  try {
    const value: unknown = JSON.parse(text)
    return isRecord(value) ? value : undefined
  } catch {
    return undefined
  }
}

const stringField = (record: unknown, key: string): string | null => {
  if (record === null || typeof record !== "object") return null
  const value = (record as Record<string, unknown>)[key]
  return typeof value === "string" ? value : null
}

/** The user the id_token names; `accountId` is the stored `account_id`, used when the token has none. */
export const idTokenClaims = (idToken: string, accountId: string | null | undefined): IdTokenClaims => {
  const claims = jwtPayload(idToken)
  if (claims === undefined) return { ...noClaims, accountId: accountId ?? null }
  const auth = claims["https://api.openai.com/auth"]
  return {
    email: stringField(claims, "email") ?? stringField(claims["https://api.openai.com/profile"], "email"),
    planType: stringField(auth, "chatgpt_plan_type"),
    userId: stringField(auth, "chatgpt_user_id") ?? stringField(auth, "user_id"),
    accountId: stringField(auth, "chatgpt_account_id") ?? accountId ?? null
  }
}

/**
 * What is wrong with an id_token that the Codex CLI could not read (it must
 * be a JWT whose payload is a JSON object), or undefined.
 */
export const idTokenProblem = (idToken: string): string | undefined =>
  idToken.split(".").length !== 3
    ? "the id_token is not a JWT (three dot-separated parts)"
    : jwtPayload(idToken) === undefined
    ? "the id_token's payload is not base64url-encoded JSON claims"
    : undefined
