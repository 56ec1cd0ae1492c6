/**
 * A local OpenID Connect provider to try `effect-auth login` against:
 * oidc-provider on 127.0.0.1 with its development login and consent pages
 * (any login name, any password), PKCE required, the device flow, and
 * refresh-token rotation. For trying and testing only: its keys are
 * generated at start and it keeps everything in memory.
 *
 *   npm run oidc:dev            # prints the issuer and the commands to run
 *
 * The end-to-end sign-in tests start the same provider (`start` below).
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import Provider from "oidc-provider"

export const clientId = "effect-auth-dev"
// Not a secret anywhere but on this machine: the dev provider's one client.
export const clientSecret = "effect-auth-dev-client-SECRET"

export interface DevProvider {
  readonly issuer: string
  /** POSTs that reached the token endpoint. */
  readonly tokenRequests: () => number
  readonly close: () => Promise<void>
}

/** Starts the provider on 127.0.0.1 (`port` 0: any free port). */
export const start = async (port = 0): Promise<DevProvider> => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      // A native client: its 127.0.0.1 redirect URI matches any port (RFC 8252 §7.3).
      application_type: "native",
      grant_types: ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
      response_types: ["code"],
      redirect_uris: ["http://127.0.0.1/callback"],
      token_endpoint_auth_method: "client_secret_basic"
    }],
    pkce: { required: () => true },
    rotateRefreshToken: true,
    // The scope's claims (email) in the id_token, where a Codex-style client reads them.
    conformIdTokenClaims: false,
    findAccount: async (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: async () => ({ sub, email: `${sub}@example.com` })
    }),
    claims: { openid: ["sub"], email: ["email"] },
    scopes: ["openid", "email", "profile", "offline_access"],
    ttl: {
      AccessToken: 600,
      IdToken: 600,
      RefreshToken: 86_400,
      Grant: 86_400,
      Session: 86_400,
      DeviceCode: 600,
      Interaction: 600
    },
    features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
    cookies: { keys: ["effect-auth-dev-cookie-key"] }
  })
  // oidc-provider warns about its development-only settings on stdout: this is one.
  provider.on("server_error", (_ctx: unknown, error: Error) => console.error(`oidc-provider: ${error.message}`))
  let tokenRequests = 0
  const callback = provider.callback()
  server.on("request", (request, response) => {
    if (request.method === "POST" && request.url?.startsWith("/token")) tokenRequests++
    callback(request, response)
  })
  return {
    issuer,
    tokenRequests: () => tokenRequests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

if (process.argv[1] !== undefined && import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.env.PORT ?? 3000)
  const { issuer } = await start(port)
  console.log(`oidc-provider listening at ${issuer} (any login name and password; Ctrl-C to stop)

In another terminal, with a throw-away CODEX_HOME:

  export CODEX_HOME=$(mktemp -d)
  export EFFECT_AUTH_ISSUER=${issuer} EFFECT_AUTH_CLIENT_ID=${clientId} EFFECT_AUTH_CLIENT_SECRET=${clientSecret}
  npx tsx bin/effect-auth.ts login            # a browser sign-in
  npx tsx bin/effect-auth.ts login --device   # or a device code
  npx tsx bin/effect-auth.ts status
  EFFECT_AUTH_REFRESH_WINDOW="15 minutes" EFFECT_AUTH_MIN_REFRESH_INTERVAL="0 seconds" npx tsx bin/effect-auth.ts refresh`)
}
