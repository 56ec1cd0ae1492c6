import { describe, expect, it } from "@effect/vitest"
import { Either, Option, Redacted } from "effect"
import * as AuthDocument from "../src/AuthDocument.js"
import { unsignedJwt } from "../src/testing/TokenEndpoint.js"
import { apiKeyJson, chatgptJson, secrets } from "./support/fixtures.js"

const parse = (value: unknown) => Either.getOrThrow(AuthDocument.parse(JSON.stringify(value)))
const problem = (text: string) => Either.getLeft(AuthDocument.parse(text)).pipe(Option.getOrThrow)

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
    expect(snapshot.claims).toEqual({ email: "ada@example.com", planType: "plus", userId: "user-1", accountId: "acct_123" })
    const fallback = parse(chatgptJson({ extra: {} }))
    expect(fallback.claims.email).toBe("ada@example.com")
    const doc = chatgptJson() as { tokens: Record<string, unknown> }
    doc.tokens.id_token = unsignedJwt({
      "https://api.openai.com/profile": { email: "bob@example.com" },
      "https://api.openai.com/auth": { user_id: "user-2" }
    })
    expect(parse(doc).claims).toEqual({ email: "bob@example.com", planType: null, userId: "user-2", accountId: "acct_123" })
  })

  it("reads the access token's exp, and tolerates an opaque token", () => {
    expect(parse(chatgptJson({ expiresIn: 60_000, now: 1_000_000 })).accessTokenExpiresAt).toEqual(Option.some(1_060_000))
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
    const wrongType = problem(JSON.stringify({ tokens: { id_token: secrets.refresh, access_token: 5, refresh_token: "r" } }))
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
