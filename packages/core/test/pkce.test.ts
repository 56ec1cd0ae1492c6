import { challengeOf, makeLoginId, makePkce, makeState } from "@effect-auth-manager/core/pkce"
import { describe, expect, it } from "vitest"

describe("pkce", () => {
  it("the challenge is base64url(SHA-256(verifier)) without padding (RFC 7636, appendix B)", () => {
    expect(challengeOf("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")).toBe(
      "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
  })

  it("a verifier holds 64 random bytes, the state 32, base64url; each is fresh", () => {
    const pkce = makePkce()
    expect(pkce.verifier).toMatch(/^[A-Za-z0-9_-]{86}$/)
    expect(pkce.challenge).toBe(challengeOf(pkce.verifier))
    expect(makePkce().verifier).not.toBe(pkce.verifier)
    expect(makeState()).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(makeState()).not.toBe(makeState())
    expect(makeLoginId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  })
})
