/**
 * A standards-compliant OAuth 2.0 / OpenID Connect server on 127.0.0.1:
 * `oidc-provider` (certified), with refresh-token rotation, one confidential
 * client, and its own models used to issue the first grant.
 */
import { Effect } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import Provider from "oidc-provider"

export const clientId = "effect-auth-test-client"
export const clientSecret = "effect-auth-test-client-secret-SECRET"

export interface OidcServer {
  readonly issuer: string
  readonly tokenUrl: string
  /** POSTs that reached the token endpoint. */
  readonly tokenRequests: () => number
  /** The userinfo endpoint (a protected resource: `Authorization: Bearer <access token>`). */
  readonly userinfoUrl: string
  /** Requests that reached the userinfo endpoint. */
  readonly userinfoRequests: () => number
  /** Destroys one access token on the server side (the revocation endpoint would revoke the whole grant's tokens). */
  readonly revokeAccessTokenOnly: (token: string) => Promise<void>
  /** Revokes a token at the RFC 7009 revocation endpoint, as its client would: every token of its grant goes with it. */
  readonly revokeToken: (token: string, hint: "access_token" | "refresh_token") => Promise<void>
  /** A fresh grant (as after a sign-in) and its first refresh token. */
  readonly grant: () => Promise<{ readonly grantId: string; readonly refreshToken: string }>
  /** Revokes a grant on the server side, as a user or an admin would. */
  readonly revoke: (grantId: string) => Promise<void>
}

export const start = Effect.acquireRelease(
  Effect.promise(async (): Promise<OidcServer & { readonly close: () => Promise<void> }> => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const provider = new Provider(issuer, {
      clients: [{
        client_id: clientId,
        client_secret: clientSecret,
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        redirect_uris: ["http://127.0.0.1/callback"],
        token_endpoint_auth_method: "client_secret_post"
      }],
      rotateRefreshToken: true,
      // Put the scope's claims (email) in the id_token, where a Codex-style client reads them.
      conformIdTokenClaims: false,
      issueRefreshToken: async () => true,
      findAccount: async (_ctx: unknown, sub: string) => ({
        accountId: sub,
        claims: async () => ({ sub, email: "ada@example.com" })
      }),
      claims: { openid: ["sub"], email: ["email"] },
      scopes: ["openid", "email", "offline_access"],
      ttl: { AccessToken: 600, IdToken: 600, RefreshToken: 86_400, Grant: 86_400, Session: 86_400 },
      features: {
        devInteractions: { enabled: false },
        revocation: {
          enabled: true,
          allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId: string }) =>
            token.clientId === client.clientId
        }
      },
      cookies: { keys: ["effect-auth-test-cookie-key"] }
    })
    let tokenRequests = 0
    let userinfoRequests = 0
    const callback = provider.callback()
    server.on("request", (request, response) => {
      if (request.method === "POST" && request.url === "/token") tokenRequests++
      if (request.url?.startsWith("/me")) userinfoRequests++
      callback(request, response)
    })
    return {
      issuer,
      tokenUrl: `${issuer}/token`,
      tokenRequests: () => tokenRequests,
      userinfoUrl: `${issuer}/me`,
      userinfoRequests: () => userinfoRequests,
      revokeAccessTokenOnly: async (token) => {
        const found = await provider.AccessToken.find(token)
        if (found === undefined) throw new Error("no such access token")
        await found.destroy()
      },
      revokeToken: async (token, hint) => {
        const response = await fetch(`${issuer}/token/revocation`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ token, token_type_hint: hint, client_id: clientId, client_secret: clientSecret })
        })
        if (response.status !== 200) throw new Error(`revocation answered ${response.status}`)
      },
      grant: async () => {
        const scope = "openid email offline_access"
        const grant = new provider.Grant({ accountId: "user-1", clientId })
        grant.addOIDCScope(scope)
        const grantId: string = await grant.save()
        const client = await provider.Client.find(clientId)
        const refreshToken: string = await new provider.RefreshToken({
          client,
          accountId: "user-1",
          grantId,
          scope,
          gty: "authorization_code",
          iiat: Math.floor(Date.now() / 1000),
          rotations: 0
        }).save()
        return { grantId, refreshToken }
      },
      revoke: async (grantId) => {
        const grant = await provider.Grant.find(grantId)
        await grant?.destroy()
      },
      close: () => new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }),
  (server) => Effect.promise(() => server.close())
)
