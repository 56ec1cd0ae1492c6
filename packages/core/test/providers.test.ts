import * as Providers from "@effect-auth-manager/core/providers"
import { describe, expect, it } from "vitest"

describe("providers", () => {
  it("the Codex profile speaks as the Codex CLI", () => {
    const codex = Providers.codex()
    expect(codex).toMatchObject({
      profile: "codex",
      name: "ChatGPT",
      tokenEndpoint: "https://auth.openai.com/oauth/token",
      deviceAuthorizationEndpoint: "https://auth.openai.com/api/accounts/deviceauth/usercode",
      clientId: Providers.codexClientId,
      clientSecret: undefined,
      clientAuth: "none",
      loopback: { ports: [1455, 1457], path: "/auth/callback", cancelPrevious: true },
      refreshBody: "json"
    })
    expect(Providers.codex({ issuer: "http://127.0.0.1:9/", ports: [0] })).toMatchObject({
      name: "http://127.0.0.1:9",
      authorizationEndpoint: "http://127.0.0.1:9/oauth/authorize",
      loopback: { ports: [0] }
    })
    const url = new URL(
      Providers.authorizeUrl(codex, { redirectUri: "http://localhost:1455/auth/callback", challenge: "c", state: "s" })
    )
    expect([...url.searchParams.keys()]).toEqual([
      "response_type",
      "client_id",
      "redirect_uri",
      "scope",
      "code_challenge",
      "code_challenge_method",
      "id_token_add_organizations",
      "codex_cli_simplified_flow",
      "state",
      "originator"
    ])
    expect(url.searchParams.get("originator")).toBe("codex_cli_rs")
    expect(url.search).toContain("scope=openid%20profile%20email%20offline_access%20api.connectors.read")
  })

  it("a generic provider: Basic with a secret, consent for offline access, an ephemeral port", () => {
    const endpoints = { authorization: "https://id/authorize?tenant=1", token: "https://id/token", device: undefined }
    const oidc = Providers.oidcFrom({ issuer: "https://id/", clientId: "c", clientSecret: "s" }, endpoints)
    expect(oidc).toMatchObject({
      profile: "oidc",
      issuer: "https://id",
      clientAuth: "client_secret_basic",
      authorizeParams: [["prompt", "consent"]],
      loopback: { ports: [0], path: "/callback", cancelPrevious: false },
      refreshBody: "form"
    })
    expect(Providers.oidcFrom({ issuer: "https://id", clientId: "c", scopes: ["openid"] }, endpoints)).toMatchObject({
      clientAuth: "none",
      authorizeParams: []
    })
    const url = Providers.authorizeUrl(oidc, { redirectUri: "http://127.0.0.1:5/callback", challenge: "c", state: "s" })
    expect(url.startsWith("https://id/authorize?tenant=1&response_type=code&")).toBe(true)
    expect(url).not.toContain("originator")
  })

  it("discovery: given endpoints skip it; the answer must name this issuer and both endpoints", () => {
    const options = { issuer: "https://id/", clientId: "c" }
    expect(Providers.givenEndpoints(options)).toBeUndefined()
    expect(Providers.givenEndpoints({ ...options, authorizationEndpoint: "a", tokenEndpoint: "t" })).toEqual({
      authorization: "a",
      token: "t",
      device: undefined
    })
    expect(Providers.discoveryUrl("https://id/")).toBe("https://id/.well-known/openid-configuration")
    expect(Providers.discovered(options, {
      issuer: "https://id",
      authorization_endpoint: "https://id/a",
      token_endpoint: "https://id/t",
      device_authorization_endpoint: "https://id/d"
    })).toEqual({ authorization: "https://id/a", token: "https://id/t", device: "https://id/d" })
    expect(Providers.discovered(options, { issuer: "https://evil" })).toEqual({
      problem: "the provider calls itself https://evil, not https://id"
    })
    expect(Providers.discovered(options, { token_endpoint: "t" })).toEqual({
      problem: "the configuration names no authorization_endpoint or token_endpoint"
    })
    expect(Providers.parseScopes(" openid, email  offline_access ")).toEqual(["openid", "email", "offline_access"])
  })
})
