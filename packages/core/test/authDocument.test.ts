import * as Doc from "@effect-auth-manager/core/authDocument"
import { decodePending, encodePending } from "@effect-auth-manager/core/pendingRefresh"
import { describe, expect, it } from "vitest"
import { chatgptJson, secrets, unsignedJwt } from "./support/fixtures.js"

const document = (decoded: Doc.Decoded): Doc.AuthDocument => {
  if (decoded._tag === "Invalid") throw new Error(decoded.error.detail)
  return decoded.document
}
const read = (value: unknown) => Doc.summarize(document(Doc.decode(value)))
const readText = (text: string) => Doc.summarize(document(Doc.decodeText(text)))
const problem = (text: string) => {
  const decoded = Doc.decodeText(text)
  if (decoded._tag === "Document") throw new Error("decoded")
  return decoded.error
}

describe("authDocument: what a document says", () => {
  it("resolves the mode: explicit auth_mode, else API key, else tokens, else logged out", () => {
    expect(read(chatgptJson()).method).toBe("chatgpt")
    expect(read({ OPENAI_API_KEY: secrets.apiKey }).method).toBe("apikey")
    expect(read({ ...chatgptJson(), OPENAI_API_KEY: "sk-x", auth_mode: undefined }).method).toBe("apikey")
    expect(read({ ...chatgptJson(), OPENAI_API_KEY: "sk-x", auth_mode: "chatgpt" }).method).toBe("chatgpt")
    expect(read({ OPENAI_API_KEY: null }).method).toBeNull()
    expect(read({ auth_mode: "apikey", OPENAI_API_KEY: null }).method).toBeNull()
    expect(read({ auth_mode: "chatgpt", tokens: null }).method).toBeNull()
  })

  it("reads id_token claims, with the profile email and user_id fallbacks, and the stored account id", () => {
    expect(read(chatgptJson()).claims).toEqual({
      email: "ada@example.com",
      planType: "plus",
      userId: "user-1",
      accountId: "acct_123"
    })
    const profile = unsignedJwt({
      "https://api.openai.com/profile": { email: "bob@example.com" },
      "https://api.openai.com/auth": { user_id: "user-2" }
    })
    expect(Doc.idTokenClaims(profile, "acct_9")).toEqual({
      email: "bob@example.com",
      planType: null,
      userId: "user-2",
      accountId: "acct_9"
    })
    expect(Doc.idTokenClaims("opaque", undefined)).toEqual(Doc.noClaims)
    expect(Doc.idTokenClaims("opaque", "acct_1").accountId).toBe("acct_1")
  })

  it("the access token's exp, else a later expires_at, else nothing", () => {
    expect(read(chatgptJson({ expiresIn: 60_000, now: 1_000_000 })).accessTokenExpiresAt).toBe(1_060_000)
    expect(read(chatgptJson({ accessToken: "opaque" })).accessTokenExpiresAt).toBeUndefined()
    const opaque = chatgptJson({ accessToken: "opaque" })
    expect(read({ ...opaque, last_refresh: "2026-01-01T00:00:00Z", expires_at: "2026-01-01T01:00:00Z" }))
      .toMatchObject({ accessTokenExpiresAt: Date.UTC(2026, 0, 1, 1), lastRefreshAt: Date.UTC(2026, 0, 1) })
    // Left behind by a writer that kept it through a later refresh: ignored.
    expect(read({ ...opaque, last_refresh: "2026-01-01T02:00:00Z", expires_at: "2026-01-01T01:00:00Z" }))
      .toMatchObject({ accessTokenExpiresAt: undefined })
    expect(read({ ...opaque, last_refresh: "yesterday" }).lastRefreshAt).toBeUndefined()
  })

  it("the hash ignores key order and whitespace, and sees a change of any field or digit", () => {
    const doc = chatgptJson({ extra: { z: 1, a: { y: 2, b: 3 } } })
    const reordered = Object.fromEntries(Object.entries(doc).reverse())
    expect(read(reordered).hash).toBe(read(doc).hash)
    expect(read({ ...doc, a: { y: 2, b: 4 } }).hash).not.toBe(read(doc).hash)
    expect(read({ ...doc, last_refresh: "2020-01-01T00:00:00Z" }).hash).not.toBe(read(doc).hash)
    expect(read(doc).hash).toMatch(/^[0-9a-f]{64}$/)
    const a = readText(`{"OPENAI_API_KEY": "k", "x": {"b": 12345678901234567890, "a": 1}}`)
    const b = readText(`{"x":{"a":1,"b":12345678901234567890},"OPENAI_API_KEY":"k"}`)
    const c = readText(`{"x":{"a":1,"b":12345678901234567891},"OPENAI_API_KEY":"k"}`)
    expect(a.hash).toBe(b.hash)
    expect(a.hash).not.toBe(c.hash)
  })

  it("jwtPayload and idTokenProblem: a JWT whose payload is a JSON object", () => {
    expect(Doc.jwtPayload(unsignedJwt({ a: 1 }))).toEqual({ a: 1 })
    expect(Doc.jwtPayload("x")).toBeUndefined()
    expect(Doc.jwtPayload("x.!!!.z")).toBeUndefined()
    expect(Doc.jwtPayload(`x.${Buffer.from("[1]").toString("base64url")}.z`)).toBeUndefined()
    expect(Doc.jwtPayload(`x.${Buffer.from("{nope").toString("base64url")}.z`)).toBeUndefined()
    expect(Doc.idTokenProblem(unsignedJwt({ sub: "u" }))).toBeUndefined()
    expect(Doc.idTokenProblem("a.b")).toBe("the id_token is not a JWT (three dot-separated parts)")
    expect(Doc.idTokenProblem("a.b.c")).toBe("the id_token's payload is not base64url-encoded JSON claims")
  })
})

describe("authDocument: bad input", () => {
  it("says what is wrong without quoting it", () => {
    const notJson = problem(`{"tokens": "${secrets.refresh}`)
    expect(notJson.reason).toBe("not-json")
    expect(notJson.detail).toMatch(/^it is not valid JSON/)
    expect(notJson.detail).not.toContain(secrets.refresh)
    expect(problem("[1, 2]")).toEqual({ reason: "not-an-object", detail: "it is not a JSON object" })
    expect(Doc.decode(null)).toMatchObject({ _tag: "Invalid", error: { reason: "not-an-object" } })
  })

  it("names every wrong field with what it should be", () => {
    const detail = (value: unknown) => problem(JSON.stringify(value)).detail
    expect(detail({ tokens: { id_token: secrets.refresh, access_token: 5, refresh_token: "r" } })).toBe(
      "unexpected content: \"tokens.access_token\" is not of the expected type (string)"
    )
    expect(detail({ tokens: { id_token: "i" } })).toBe(
      "unexpected content: \"tokens.access_token\" is missing; \"tokens.refresh_token\" is missing"
    )
    expect(detail({ auth_mode: "nonsense" })).toBe(
      "unexpected content: \"auth_mode\" is not of the expected type (\"chatgpt\" or \"apikey\")"
    )
    expect(detail({ auth_mode: null })).toContain("\"auth_mode\"")
    expect(detail({ tokens: [] })).toBe(
      "unexpected content: \"tokens\" is not of the expected type (an object with id_token, access_token and refresh_token, or null)"
    )
    expect(detail({ OPENAI_API_KEY: 5, last_refresh: 3, expires_at: {} })).toBe(
      "unexpected content: \"OPENAI_API_KEY\" is not of the expected type (string or null); " +
        "\"last_refresh\" is not of the expected type (string or null); " +
        "\"expires_at\" is not of the expected type (string or null)"
    )
    expect(detail({ tokens: { id_token: "i", access_token: "a", refresh_token: "r", account_id: 5 } })).toBe(
      "unexpected content: \"tokens.account_id\" is not of the expected type (string or null)"
    )
    // Fields it does not know are never judged.
    expect(Doc.decode({ anything: [1, { x: null }], tokens: null })._tag).toBe("Document")
  })
})

describe("authDocument: unknown fields exactly as written", () => {
  const chatgptText = (extraTop: string, extraTokens: string) => {
    const doc = chatgptJson() as { tokens: Record<string, unknown> }
    const tokens = JSON.stringify(doc.tokens).slice(0, -1) + extraTokens + "}"
    const { tokens: _tokens, ...rest } = doc
    return JSON.stringify(rest).slice(0, -1) + `,"tokens":${tokens}` + extraTop + "}"
  }

  it("big integers, __proto__ and odd spellings survive a refresh, a sign-in and a sign-out of the key", () => {
    const top = `,"big": 12345678901234567890,"edge": 9007199254740993,"__proto__": {"polluted": true},` +
      `"float": 1.50e3,"nested": {"z": [1, {"deep": 18446744073709551616}], "a": "\\u00e9"}`
    const doc = document(Doc.decodeText(chatgptText(top, `,"token_big": 9007199254740993,"__proto__": 1`)))
    expect(Object.getPrototypeOf(doc)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    const rewrites = [
      Doc.applyRefresh(doc, { accessToken: "new", refreshToken: "r2" }, new Date(0)),
      Doc.withApiKey(doc, "sk-x"),
      Doc.withTokens(doc, { id_token: "i.d.t", access_token: "a", refresh_token: "r" }, new Date(0), { reveal: String })
    ]
    for (const rewritten of rewrites) {
      for (const indent of [2, 0]) {
        const text = Doc.toText(rewritten, indent)
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
        expect(Doc.toText(document(Doc.decodeText(text)), indent)).toBe(text)
      }
    }
    expect(Doc.toText(rewrites[0]!)).toContain(`"token_big": 9007199254740993`)
    expect(Doc.toText(rewrites[0]!)).toContain(`"r2"`)
  })

  it("the file's order of fields, the known token fields first; OPENAI_API_KEY always written", () => {
    const doc = document(Doc.decodeText(
      `{"z":1,"tokens":{"x":true,"refresh_token":"r","access_token":"a","id_token":"i"},"auth_mode":"chatgpt"}`
    ))
    expect(Doc.toText(doc, 0)).toBe(
      `{"OPENAI_API_KEY":null,"z":1,"tokens":{"id_token":"i","access_token":"a","refresh_token":"r","x":true},"auth_mode":"chatgpt"}`
    )
    expect(Doc.toText(document(Doc.decodeText(`{"OPENAI_API_KEY":"k","a":2,"a":3}`)), 2)).toBe(
      "{\n  \"OPENAI_API_KEY\": \"k\",\n  \"a\": 3\n}"
    )
  })

  it("an unknown field nested 100,000 deep is read, hashed and written back", () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000)
    const doc = document(Doc.decodeText(chatgptText(`,"deep": ${deep}`, "")))
    expect(Doc.summarize(doc).method).toBe("chatgpt")
    expect(Doc.toText(doc)).toContain(deep)
  })

  it("mapSecrets turns the four secrets only, keeping the order and the unknown fields", () => {
    const doc = document(Doc.decodeText(chatgptText(`,"big": 12345678901234567890`, `,"extra": "e"`)))
    const wrapped = Doc.mapSecrets({ ...doc, OPENAI_API_KEY: "k" }, (secret) => ({ secret }))
    expect(wrapped.OPENAI_API_KEY).toEqual({ secret: "k" })
    expect(wrapped.tokens).toMatchObject({ id_token: { secret: doc.tokens!.id_token }, account_id: "acct_123" })
    expect((wrapped.tokens as unknown as Record<string, Doc.RawJson>).extra!.text).toBe("\"e\"")
    const back = Doc.mapSecrets(wrapped, ({ secret }) => secret)
    expect(Doc.toText(back)).toBe(Doc.toText({ ...doc, OPENAI_API_KEY: "k" }))
    expect(Doc.mapSecrets({ OPENAI_API_KEY: null, tokens: null }, () => "x")).toEqual({
      OPENAI_API_KEY: null,
      tokens: null
    })
  })
})

describe("authDocument: rewrites", () => {
  it("a refresh replaces only the tokens it brought, and keeps expires_in as expires_at", () => {
    const doc = document(Doc.decode(chatgptJson({ accessToken: "opaque-access" })))
    const now = new Date(Date.UTC(2026, 0, 1))
    const refreshed = Doc.applyRefresh(doc, { accessToken: "opaque-2", expiresInMillis: 3_600_000 }, now)
    expect(refreshed.tokens).toMatchObject({ access_token: "opaque-2", refresh_token: secrets.refresh })
    expect(refreshed.expires_at).toBe("2026-01-01T01:00:00.000Z")
    expect(refreshed.last_refresh).toBe("2026-01-01T00:00:00.000Z")
    expect(Doc.summarize(document(Doc.decodeText(Doc.toText(refreshed)))).accessTokenExpiresAt).toBe(
      now.getTime() + 3_600_000
    )
    // A refresh that brings no new access token keeps its expiry; one without expires_in drops it.
    expect(Doc.applyRefresh(refreshed, { refreshToken: "r3" }, now).expires_at).toBe(refreshed.expires_at)
    expect(Doc.applyRefresh(refreshed, { accessToken: "o3" }, now).expires_at).toBeUndefined()
    const apiKey = { OPENAI_API_KEY: "k" }
    expect(Doc.applyRefresh(apiKey, { accessToken: "a" }, now)).toBe(apiKey)
  })

  it("signing in with a key drops the tokens; with tokens, the key is null and the account id read from the id_token", () => {
    const doc = document(Doc.decode(chatgptJson({ extra: { kept: 1 } })))
    expect(Doc.withApiKey(doc, "sk-1")).toEqual({
      auth_mode: "apikey",
      OPENAI_API_KEY: "sk-1",
      kept: expect.objectContaining({ text: "1" })
    })
    const idToken = unsignedJwt({ "https://api.openai.com/auth": { chatgpt_account_id: "acct_7" } })
    const signedIn = Doc.withTokens(
      undefined,
      { id_token: { v: idToken }, access_token: { v: "a" }, refresh_token: { v: "r" } },
      new Date(0),
      { reveal: (secret) => secret.v, expiresInMillis: 1000 }
    )
    expect(signedIn).toEqual({
      auth_mode: "chatgpt",
      OPENAI_API_KEY: null,
      tokens: { id_token: { v: idToken }, access_token: { v: "a" }, refresh_token: { v: "r" }, account_id: "acct_7" },
      last_refresh: "1970-01-01T00:00:00.000Z",
      expires_at: "1970-01-01T00:00:01.000Z"
    })
    expect(Doc.toText(
      Doc.withTokens(undefined, { id_token: "i", access_token: "a", refresh_token: "r" }, new Date(0), {
        reveal: String
      }),
      0
    )).toContain(`"OPENAI_API_KEY":null,"tokens"`)
  })
})

describe("pendingRefresh: the file of a refresh not saved yet", () => {
  it("round-trips what it holds, and nothing more", () => {
    const pending: Doc.PendingRefresh = {
      replaced: "old-refresh",
      tokens: { accessToken: "a", refreshToken: "r", expiresInMillis: 3_600_000 },
      at: 1234
    }
    const text = encodePending(pending)
    expect(JSON.parse(text)).toEqual({
      replaced_refresh_token: "old-refresh",
      access_token: "a",
      refresh_token: "r",
      expires_in_seconds: 3600,
      refreshed_at: 1234
    })
    expect(text.endsWith("}\n")).toBe(true)
    expect(decodePending(text)).toEqual(pending)
  })

  it("is refused when it is not one: empty secrets, wrong types, not JSON", () => {
    const good = { replaced_refresh_token: "x", refreshed_at: 1 }
    expect(decodePending(JSON.stringify(good))).toEqual({ replaced: "x", tokens: {}, at: 1 })
    for (
      const bad of [
        "{",
        "[]",
        JSON.stringify({ ...good, replaced_refresh_token: "" }),
        JSON.stringify({ refreshed_at: 1 }),
        JSON.stringify({ ...good, refreshed_at: "1" }),
        JSON.stringify({ ...good, access_token: "" }),
        JSON.stringify({ ...good, id_token: null }),
        JSON.stringify({ ...good, expires_in_seconds: "60" })
      ]
    ) {
      expect(decodePending(bad), bad).toBeUndefined()
    }
  })
})
