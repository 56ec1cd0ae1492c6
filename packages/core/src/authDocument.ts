/**
 * The Codex-compatible `auth.json` document: its codec (fields this library
 * does not know are kept exactly as written), the claims read from its
 * tokens, the snapshot hash that keys every piece of refresh state, and the
 * rewrites of a refresh or a sign-in. The one place where `auth.json` is
 * validated.
 *
 * A document is generic in the type of its secrets: the codec reads and
 * writes plain strings (`AuthDocument<string>`), an edition holds them
 * Redacted (`mapSecrets(doc, Redacted.make)`), and the rewrites work on
 * either.
 */
import { sha256Hex } from "./canonicalJson.js"
import { type IdTokenClaims, idTokenClaims, jwtPayload, noClaims } from "./jwt.js"
import {
  canonical,
  defineField,
  fieldsOf,
  objectEntries,
  objectText,
  RawJson,
  splitFields,
  valueText
} from "./rawJson.js"

export { type IdTokenClaims, idTokenClaims, idTokenProblem, jwtPayload, noClaims } from "./jwt.js"
export { RawJson } from "./rawJson.js"

/** The `tokens` object of `auth.json`. */
export interface Tokens<S = string> {
  readonly id_token: S
  readonly access_token: S
  readonly refresh_token: S
  readonly account_id?: string | null | undefined
}

/**
 * The whole `auth.json`. Fields it does not name are kept, as `RawJson`
 * values holding exactly the text they were written with (in `tokens` too).
 */
export interface AuthDocument<S = string> {
  readonly auth_mode?: AuthMethod | undefined
  readonly OPENAI_API_KEY?: S | null | undefined
  /** Writers differ on an absent value: some leave the key out, some write null. */
  readonly tokens?: Tokens<S> | null | undefined
  readonly last_refresh?: string | null | undefined
  /**
   * Ours: when the access token expires (RFC 3339), from the `expires_in` of
   * the answer that brought it, so an opaque token goes stale on time. The
   * Codex CLI drops it when it rewrites the file; then `exp` or
   * `last_refresh` decide, as before.
   */
  readonly expires_at?: string | null | undefined
}

export type AuthMethod = "chatgpt" | "apikey"

/** Why a text is not a credential file. `detail` never quotes the content: it holds secrets. */
export interface DocumentError {
  readonly reason: "not-json" | "not-an-object" | "unexpected-content"
  readonly detail: string
}

export type Decoded =
  | { readonly _tag: "Document"; readonly document: AuthDocument }
  | { readonly _tag: "Invalid"; readonly error: DocumentError }

const documentKeys: ReadonlySet<string> = new Set([
  "auth_mode",
  "OPENAI_API_KEY",
  "tokens",
  "last_refresh",
  "expires_at"
])
// In this order in a decoded document, the unknown ones after them.
const tokenKeyOrder = ["id_token", "access_token", "refresh_token", "account_id"] as const
const tokenKeys: ReadonlySet<string> = new Set(tokenKeyOrder)
const secretTokenKeys: ReadonlySet<string> = new Set(["id_token", "access_token", "refresh_token"])

// ---------------------------------------------------------------------------
// Reading and writing the text
// ---------------------------------------------------------------------------

const invalid = (reason: DocumentError["reason"], detail: string): Decoded => ({
  _tag: "Invalid",
  error: { reason, detail }
})

const notAnObject = invalid("not-an-object", "it is not a JSON object")

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value)

/** What is wrong with the known fields, each named with what it should be (never with what it is). */
const problemsOf = (known: Record<string, unknown>): Array<string> => {
  const problems: Array<string> = []
  const expect = (field: string, value: unknown, ok: boolean, expected: string) => {
    if (value !== undefined && !ok) problems.push(`"${field}" is not of the expected type (${expected})`)
  }
  const stringOrNull = (value: unknown) => value === null || typeof value === "string"
  expect(
    "auth_mode",
    known.auth_mode,
    known.auth_mode === "chatgpt" || known.auth_mode === "apikey",
    "\"chatgpt\" or \"apikey\""
  )
  expect("OPENAI_API_KEY", known.OPENAI_API_KEY, stringOrNull(known.OPENAI_API_KEY), "string or null")
  const tokens = known.tokens
  if (isRecord(tokens)) {
    for (const key of secretTokenKeys) {
      if (tokens[key] === undefined) problems.push(`"tokens.${key}" is missing`)
      else expect(`tokens.${key}`, tokens[key], typeof tokens[key] === "string", "string")
    }
    expect("tokens.account_id", tokens.account_id, stringOrNull(tokens.account_id), "string or null")
  } else {
    expect("tokens", tokens, tokens === null, "an object with id_token, access_token and refresh_token, or null")
  }
  expect("last_refresh", known.last_refresh, stringOrNull(known.last_refresh), "string or null")
  expect("expires_at", known.expires_at, stringOrNull(known.expires_at), "string or null")
  return problems
}

/** Reads the text of a credential file as a document, unknown fields kept exactly, in the file's order. */
export const decodeText = (text: string): Decoded => {
  let json: unknown
  try {
    // Validates the whole text first (V8's parser does not recurse, so any depth is fine).
    json = JSON.parse(text)
  } catch (error) {
    const at = /position (\d+)/.exec(String(error))
    return invalid("not-json", `it is not valid JSON${at ? ` (syntax error at character ${at[1]})` : ""}`)
  }
  if (!isRecord(json)) return notAnObject
  const top = splitFields(text, documentKeys)
  const known: Record<string, unknown> = {}
  let tokenExtras: ReadonlyMap<string, RawJson> = new Map()
  for (const [key, raw] of Object.entries(top.knownFields) as Array<[string, string]>) {
    if (key === "tokens" && raw.trimStart().startsWith("{")) {
      const tokens = splitFields(raw, tokenKeys)
      known.tokens = Object.fromEntries(
        Object.entries(tokens.knownFields as Record<string, string>).map(([k, v]) => [k, JSON.parse(v)])
      )
      tokenExtras = tokens.unknownFields
    } else {
      known[key] = JSON.parse(raw)
    }
  }
  const problems = problemsOf(known)
  if (problems.length > 0) return invalid("unexpected-content", `unexpected content: ${problems.join("; ")}`)
  const doc: Record<string, unknown> = {}
  for (const [key] of objectEntries(text)) {
    if (Object.hasOwn(doc, key)) continue
    if (!documentKeys.has(key)) defineField(doc, key, top.unknownFields.get(key))
    else if (key !== "tokens") defineField(doc, key, known[key])
    else if (known.tokens === null) doc.tokens = null
    else {
      const read = known.tokens as Record<string, unknown>
      const tokens: Record<string, unknown> = {}
      for (const tokenKey of tokenKeyOrder) if (read[tokenKey] !== undefined) tokens[tokenKey] = read[tokenKey]
      for (const [extraKey, value] of tokenExtras) defineField(tokens, extraKey, value)
      doc.tokens = tokens
    }
  }
  return { _tag: "Document", document: doc as AuthDocument }
}

/**
 * Decodes an already-parsed JSON value as a document (its numbers are what
 * JavaScript made of them; `decodeText` keeps them exactly).
 */
export const decode = (json: unknown): Decoded => {
  if (!isRecord(json)) return notAnObject
  let text: string
  try {
    text = JSON.stringify(json)
  } catch {
    return invalid("not-json", "it cannot be written as JSON")
  }
  return decodeText(text)
}

/**
 * The text `auth.json` holds for a document: the fields in the document's
 * order, unknown ones exactly as they were read. `indent` 0 is compact.
 */
export const toText = (doc: AuthDocument, indent = 2): string => {
  const fields: Array<readonly [string, string]> = []
  // The Codex CLI always writes the key, null when there is none.
  const entries = "OPENAI_API_KEY" in doc ? fieldsOf(doc) : [["OPENAI_API_KEY", null] as const, ...fieldsOf(doc)]
  for (const [key, value] of entries) {
    if (value === undefined) continue
    if (key === "tokens" && value !== null && typeof value === "object") {
      const tokenFields = fieldsOf(value).flatMap(([tokenKey, tokenValue]): ReadonlyArray<readonly [string, string]> =>
        tokenValue === undefined ? [] : [[tokenKey, valueText(tokenValue, indent, 2)]]
      )
      fields.push([key, objectText(tokenFields, indent, 1)])
    } else {
      fields.push([key, valueText(value, indent, 1)])
    }
  }
  return objectText(fields, indent, 0)
}

/** The document with each secret (the API key, the three tokens) turned by `f`; order and unknown fields kept. */
export const mapSecrets = <A, B>(doc: AuthDocument<A>, f: (secret: A) => B): AuthDocument<B> => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of fieldsOf(doc)) {
    if (key === "OPENAI_API_KEY" && value != null) defineField(out, key, f(value as A))
    else if (key === "tokens" && value !== null && typeof value === "object") {
      const tokens: Record<string, unknown> = {}
      for (const [tokenKey, tokenValue] of fieldsOf(value)) {
        defineField(
          tokens,
          tokenKey,
          secretTokenKeys.has(tokenKey) && tokenValue !== undefined ? f(tokenValue as A) : tokenValue
        )
      }
      out.tokens = tokens
    } else defineField(out, key, value)
  }
  return out as AuthDocument<B>
}

// ---------------------------------------------------------------------------
// What a document says
// ---------------------------------------------------------------------------

/** Explicit `auth_mode` wins; else an API key; else tokens; else logged out. */
export const resolveMethod = <S>(doc: AuthDocument<S>): AuthMethod | null => {
  const hasKey = doc.OPENAI_API_KEY !== undefined && doc.OPENAI_API_KEY !== null
  const hasTokens = doc.tokens !== undefined && doc.tokens !== null
  const mode = doc.auth_mode ?? (hasKey ? "apikey" : hasTokens ? "chatgpt" : undefined)
  // A mode without the credential it needs cannot authenticate anything.
  if (mode === "apikey") return hasKey ? "apikey" : null
  if (mode === "chatgpt") return hasTokens ? "chatgpt" : null
  return null
}

/** The snapshot hash: SHA-256 of the canonical JSON of the whole document (key order and spacing do not count). */
export const hashOf = (doc: AuthDocument): string => sha256Hex(canonical(toText(doc, 0)))

/** Everything a poll needs of a document, worked out once. */
export interface Summary {
  readonly hash: string
  readonly method: AuthMethod | null
  readonly claims: IdTokenClaims
  /** The access token's `exp` (or, for an opaque one, our `expires_at`), in epoch milliseconds. */
  readonly accessTokenExpiresAt: number | undefined
  /** `last_refresh`, in epoch milliseconds, when present and valid. */
  readonly lastRefreshAt: number | undefined
}

export const summarize = (doc: AuthDocument): Summary => {
  const tokens = doc.tokens
  const exp = tokens == null ? undefined : jwtPayload(tokens.access_token)?.exp
  return {
    hash: hashOf(doc),
    method: resolveMethod(doc),
    claims: tokens == null ? noClaims : idTokenClaims(tokens.id_token, tokens.account_id),
    accessTokenExpiresAt: tokens == null ? undefined : typeof exp === "number" ? exp * 1000 : storedExpiry(doc),
    lastRefreshAt: instant(doc.last_refresh)
  }
}

const instant = (text: string | null | undefined): number | undefined => {
  const at = text == null ? NaN : Date.parse(text)
  return Number.isFinite(at) ? at : undefined
}

// `expires_at` describes the token of the refresh that wrote it: one older than `last_refresh`
// was left behind by a writer that kept unknown fields, and says nothing of the current token.
const storedExpiry = <S>(doc: AuthDocument<S>): number | undefined => {
  const at = instant(doc.expires_at)
  const refreshed = instant(doc.last_refresh)
  return at !== undefined && (refreshed === undefined || at > refreshed) ? at : undefined
}

// ---------------------------------------------------------------------------
// Rewrites: a refresh, a sign-in
// ---------------------------------------------------------------------------

/** The tokens a successful refresh returned: only those present replace the old ones. */
export interface RefreshedTokens<S = string> {
  readonly accessToken?: S
  readonly idToken?: S
  readonly refreshToken?: S
  /** How long the new access token lives (`expires_in`), in milliseconds. */
  readonly expiresInMillis?: number
}

/** The same tokens with each secret turned by `f`. */
export const mapRefreshed = <A, B>(tokens: RefreshedTokens<A>, f: (secret: A) => B): RefreshedTokens<B> => ({
  ...(tokens.accessToken === undefined ? {} : { accessToken: f(tokens.accessToken) }),
  ...(tokens.idToken === undefined ? {} : { idToken: f(tokens.idToken) }),
  ...(tokens.refreshToken === undefined ? {} : { refreshToken: f(tokens.refreshToken) }),
  ...(tokens.expiresInMillis === undefined ? {} : { expiresInMillis: tokens.expiresInMillis })
})

/**
 * A refresh whose tokens are not saved yet: what it received, the refresh token it replaced (dead
 * at the provider once it rotated), and when it was answered, in epoch milliseconds. Its tokens
 * belong on credentials that still hold `replaced`, and on nothing else.
 */
export interface PendingRefresh<S = string> {
  readonly tokens: RefreshedTokens<S>
  readonly replaced: S
  readonly at: number
}

const later = (now: Date, millis: number) => new Date(now.getTime() + millis).toISOString()

/** The document after a successful refresh at `now`. Unknown fields are kept. */
export const applyRefresh = <S>(doc: AuthDocument<S>, refreshed: RefreshedTokens<S>, now: Date): AuthDocument<S> => {
  if (doc.tokens == null) return doc
  const { expires_at: previousExpiry, ...rest } = doc
  // A new access token brings its own expiry, or none; without one, the old token keeps its own.
  const expiresAt = refreshed.accessToken === undefined
    ? previousExpiry
    : refreshed.expiresInMillis === undefined
    ? undefined
    : later(now, refreshed.expiresInMillis)
  return {
    ...rest,
    tokens: {
      ...doc.tokens,
      access_token: refreshed.accessToken ?? doc.tokens.access_token,
      id_token: refreshed.idToken ?? doc.tokens.id_token,
      refresh_token: refreshed.refreshToken ?? doc.tokens.refresh_token
    },
    last_refresh: now.toISOString(),
    ...(expiresAt == null ? {} : { expires_at: expiresAt })
  }
}

/** The document after signing in with an API key. Unknown top-level fields are kept. */
export const withApiKey = <S>(doc: AuthDocument<S> | undefined, apiKey: S): AuthDocument<S> => {
  const { expires_at: _expiresAt, last_refresh: _lastRefresh, tokens: _tokens, ...rest } = doc ?? {}
  return { ...rest, auth_mode: "apikey", OPENAI_API_KEY: apiKey }
}

/**
 * The document after signing in with ChatGPT tokens at `now`. Unknown
 * top-level fields are kept. A missing `account_id` is taken from the
 * id_token's `chatgpt_account_id` claim, as the Codex CLI does (`reveal`
 * reads the id_token of a document whose secrets are not plain strings).
 */
export const withTokens = <S>(
  doc: AuthDocument<S> | undefined,
  tokens: Tokens<S>,
  now: Date,
  options: { readonly reveal: (secret: S) => string; readonly expiresInMillis?: number | undefined }
): AuthDocument<S> => {
  const accountId = tokens.account_id ?? idTokenClaims(options.reveal(tokens.id_token), null).accountId
  const { expires_at: _expiresAt, ...rest } = doc ?? {}
  return {
    ...rest,
    auth_mode: "chatgpt",
    OPENAI_API_KEY: null,
    tokens: { ...tokens, account_id: accountId },
    last_refresh: now.toISOString(),
    ...(options.expiresInMillis === undefined ? {} : { expires_at: later(now, options.expiresInMillis) })
  }
}
