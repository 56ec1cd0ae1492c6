import { describe, expect, it } from "@effect/vitest"
import { Duration, Option, Redacted, Result } from "effect"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { unsignedJwt } from "../src/testing/TokenEndpoint.js"

const secrets = {
  access: unsignedJwt({ exp: 4_102_444_800, marker: "access-token-SECRET-1" }),
  refresh: "refresh-token-SECRET-2",
  apiKey: "sk-test-api-key-SECRET-3"
}

const idToken = unsignedJwt({
  email: "ada@example.com",
  "https://api.openai.com/auth": {
    chatgpt_plan_type: "plus",
    chatgpt_user_id: "user-1",
    chatgpt_account_id: "acct_123"
  }
})

const chatgptJson = (options: {
  readonly now?: number
  readonly expiresIn?: number
  readonly accessToken?: string
  readonly extra?: Record<string, unknown>
} = {}): Record<string, unknown> => {
  const now = options.now ?? 0
  const access = options.accessToken ??
    (options.expiresIn === undefined
      ? secrets.access
      : unsignedJwt({ exp: Math.floor((now + options.expiresIn) / 1000), marker: "access-token-SECRET-1" }))
  return {
    auth_mode: "chatgpt",
    OPENAI_API_KEY: null,
    tokens: { id_token: idToken, access_token: access, refresh_token: secrets.refresh, account_id: "acct_123" },
    last_refresh: new Date(now - 10 * 86_400_000).toISOString(),
    ...options.extra
  }
}

const apiKeyJson = (): Record<string, unknown> => ({ OPENAI_API_KEY: secrets.apiKey })

const getOrThrow = <A, E>(result: Result.Result<A, E>): A => {
  if (Result.isFailure(result)) throw new Error(`expected a success, got ${String(result.failure)}`)
  return result.success
}
const parse = (value: unknown) => getOrThrow(AuthDocument.parse(JSON.stringify(value)))
const problem = (text: string) => Result.getFailure(AuthDocument.parse(text)).pipe(Option.getOrThrow).detail

describe("AuthDocument", () => {
  it("resolves the mode: explicit auth_mode, else API key, else tokens, else logged out", () => {
    expect(parse(chatgptJson()).method).toBe("chatgpt")
    expect(parse(apiKeyJson()).method).toBe("apikey")
    expect(parse({ ...chatgptJson(), OPENAI_API_KEY: "sk-x", auth_mode: undefined }).method).toBe("apikey")
    expect(parse({ ...chatgptJson(), OPENAI_API_KEY: "sk-x", auth_mode: "chatgpt" }).method).toBe("chatgpt")
    expect(parse({ OPENAI_API_KEY: null }).method).toBeNull()
    expect(parse({ auth_mode: "apikey", OPENAI_API_KEY: null }).method).toBeNull()
  })

  it("reads id_token claims, with the profile email and user_id fallbacks", () => {
    const snapshot = parse(chatgptJson())
    expect(snapshot.claims).toEqual({
      email: "ada@example.com",
      planType: "plus",
      userId: "user-1",
      accountId: "acct_123"
    })
    const fallback = parse(chatgptJson({ extra: {} }))
    expect(fallback.claims.email).toBe("ada@example.com")
    const doc = chatgptJson() as { tokens: Record<string, unknown> }
    doc.tokens.id_token = unsignedJwt({
      "https://api.openai.com/profile": { email: "bob@example.com" },
      "https://api.openai.com/auth": { user_id: "user-2" }
    })
    expect(parse(doc).claims).toEqual({
      email: "bob@example.com",
      planType: null,
      userId: "user-2",
      accountId: "acct_123"
    })
  })

  it("reads the access token's exp, and tolerates an opaque token", () => {
    expect(parse(chatgptJson({ expiresIn: 60_000, now: 1_000_000 })).accessTokenExpiresAt).toEqual(
      Option.some(1_060_000)
    )
    expect(parse(chatgptJson({ accessToken: "opaque" })).accessTokenExpiresAt).toEqual(Option.none())
  })

  it("hashes canonical JSON: key order does not matter, any field change does", () => {
    const doc = chatgptJson({ extra: { z: 1, a: { y: 2, b: 3 } } })
    const reordered = Object.fromEntries(Object.entries(doc).reverse())
    expect(parse(reordered).hash).toBe(parse(doc).hash)
    expect(parse({ ...doc, a: { y: 2, b: 4 } }).hash).not.toBe(parse(doc).hash)
    expect(parse({ ...doc, last_refresh: "2020-01-01T00:00:00Z" }).hash).not.toBe(parse(doc).hash)
    expect(parse(doc).hash).toMatch(/^[0-9a-f]{64}$/)
  })

  it("keeps unknown fields at every depth through a rewrite", () => {
    const doc = chatgptJson({ extra: { future_field: { nested: [1, 2] } } }) as { tokens: Record<string, unknown> }
    doc.tokens.future_token_field = "kept"
    const snapshot = parse(doc)
    const refreshed = AuthDocument.applyRefresh(Option.getOrThrow(snapshot.document), {
      accessToken: Redacted.make("new")
    }, new Date(0))
    const json = AuthDocument.toJson(refreshed) as { tokens: Record<string, unknown>; future_field: unknown }
    expect(json.future_field).toEqual({ nested: [1, 2] })
    expect(json.tokens.future_token_field).toBe("kept")
    expect(json.tokens.access_token).toBe("new")
    expect(json.tokens.refresh_token).toBe(secrets.refresh)
  })

  it("reports bad input without quoting it", () => {
    expect(problem(`{"tokens": "${secrets.refresh}`)).toMatch(/not valid JSON/)
    expect(problem(`{"tokens": "${secrets.refresh}`)).not.toContain(secrets.refresh)
    const wrongType = problem(
      JSON.stringify({ tokens: { id_token: secrets.refresh, access_token: 5, refresh_token: "r" } })
    )
    expect(wrongType).toContain(`"tokens.access_token"`)
    expect(wrongType).not.toContain(secrets.refresh)
    expect(problem("[1, 2]")).toBe("it is not a JSON object")
    expect(problem(JSON.stringify({ auth_mode: "nonsense" }))).toContain(`"auth_mode"`)
  })

  it("writes OPENAI_API_KEY always, null when there is none", () => {
    const doc = AuthDocument.withTokens(Option.none(), {
      id_token: Redacted.make("i"),
      access_token: Redacted.make("a"),
      refresh_token: Redacted.make("r")
    }, new Date(0))
    expect(AuthDocument.toJson(doc)).toMatchObject({ OPENAI_API_KEY: null, auth_mode: "chatgpt" })
  })
})

describe("AuthDocument: unknown fields exactly as written, and the expiry of an opaque token", () => {
  const chatgptText = (extraTop: string, extraTokens: string) => {
    const doc = chatgptJson() as { tokens: Record<string, unknown> }
    const tokens = JSON.stringify(doc.tokens).slice(0, -1) + extraTokens + "}"
    const { tokens: _tokens, ...rest } = doc
    return JSON.stringify(rest).slice(0, -1) + `,"tokens":${tokens}` + extraTop + "}"
  }
  const decodeText = (text: string) => getOrThrow(AuthDocument.decodeText(text))

  it("big integers, __proto__ and odd spellings survive a refresh, a sign-in and a sign-out of the key", () => {
    const top = `,"big": 12345678901234567890,"edge": 9007199254740993,"__proto__": {"polluted": true},` +
      `"float": 1.50e3,"nested": {"z": [1, {"deep": 18446744073709551616}], "a": "\\u00e9"}`
    const inTokens = `,"token_big": 9007199254740993,"__proto__": 1`
    const doc = decodeText(chatgptText(top, inTokens))
    expect(Object.getPrototypeOf(doc)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    const rewrites = [
      AuthDocument.applyRefresh(
        doc,
        { accessToken: Redacted.make("new"), refreshToken: Redacted.make("r2") },
        new Date(0)
      ),
      AuthDocument.withApiKey(Option.some(doc), Redacted.make("sk-x")),
      AuthDocument.withTokens(Option.some(doc), {
        id_token: Redacted.make("i.d.t"),
        access_token: Redacted.make("a"),
        refresh_token: Redacted.make("r")
      }, new Date(0))
    ]
    for (const rewritten of rewrites) {
      for (const indent of [2, 0]) {
        const text = AuthDocument.toText(rewritten, indent)
        for (
          const kept of [
            "12345678901234567890",
            "9007199254740993",
            `{"polluted": true}`,
            "1.50e3",
            `{"z": [1, {"deep": 18446744073709551616}], "a": "\\u00e9"}`
          ]
        ) {
          expect(text).toContain(kept)
        }
        expect(text).toContain(`"__proto__"`)
        // Read back and written again: the same text.
        expect(AuthDocument.toText(decodeText(text), indent)).toBe(text)
      }
    }
    // Inside tokens too, while the tokens are the same.
    expect(AuthDocument.toText(rewrites[0]!)).toContain(`"token_big": 9007199254740993`)
    expect(AuthDocument.toText(rewrites[0]!)).toContain(`"r2"`)
  })

  it("an unknown field nested 100,000 deep is read, hashed and written back", () => {
    const depth = 100_000
    const deep = "[".repeat(depth) + "]".repeat(depth)
    const snapshot = getOrThrow(AuthDocument.parse(chatgptText(`,"deep": ${deep}`, "")))
    expect(snapshot.method).toBe("chatgpt")
    expect(snapshot.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(AuthDocument.toText(Option.getOrThrow(snapshot.document))).toContain(deep)
  })

  it("the hash ignores key order and whitespace, and sees a change of any digit", () => {
    const a = AuthDocument.parse(`{"OPENAI_API_KEY": "k", "x": {"b": 12345678901234567890, "a": 1}}`)
    const b = AuthDocument.parse(`{"x":{"a":1,"b":12345678901234567890},"OPENAI_API_KEY":"k"}`)
    const c = AuthDocument.parse(`{"x":{"a":1,"b":12345678901234567891},"OPENAI_API_KEY":"k"}`)
    expect(getOrThrow(a).hash).toBe(getOrThrow(b).hash)
    expect(getOrThrow(a).hash).not.toBe(getOrThrow(c).hash)
  })

  it("expires_in is kept as expires_at, so an opaque access token goes stale on time", () => {
    const opaque = chatgptJson({ accessToken: "opaque-access" })
    const doc = Option.getOrThrow(parse(opaque).document)
    const now = new Date(Date.UTC(2026, 0, 1))
    const refreshed = AuthDocument.applyRefresh(doc, {
      accessToken: Redacted.make("opaque-2"),
      expiresIn: Duration.seconds(3600)
    }, now)
    expect(refreshed.expires_at).toBe("2026-01-01T01:00:00.000Z")
    const snapshot = getOrThrow(AuthDocument.parse(AuthDocument.toText(refreshed)))
    expect(Option.getOrThrow(snapshot.accessTokenExpiresAt)).toBe(now.getTime() + 3_600_000)
    // A refresh that brings no new access token keeps its expiry; one without expires_in drops it.
    expect(AuthDocument.applyRefresh(refreshed, { refreshToken: Redacted.make("r3") }, now).expires_at).toBe(
      refreshed.expires_at
    )
    expect(AuthDocument.applyRefresh(refreshed, { accessToken: Redacted.make("o3") }, now).expires_at).toBeUndefined()
    // Left behind by a writer that kept it through a later refresh: ignored.
    const stale = getOrThrow(AuthDocument.parse(JSON.stringify({
      ...opaque,
      last_refresh: "2026-01-01T02:00:00Z",
      expires_at: "2026-01-01T01:00:00Z"
    })))
    expect(Option.isNone(stale.accessTokenExpiresAt)).toBe(true)
  })
})
