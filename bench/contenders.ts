/**
 * The token handling a user would pick instead of this library, each used
 * the way its documentation suggests, all pointed at a local token endpoint.
 * `poll()` is what a client's status poll does; `pollRefresh()` is a poll that
 * asks for a refresh explicitly. Both resolve to the access token served, or null.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { OAuth2Client } from "google-auth-library"
import * as openid from "openid-client"
import { AuthManager } from "../src/manager/AuthManager.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import { unsignedJwt } from "../src/testing/TokenEndpoint.js"

export const clientId = "bench-client"
export const clientSecret = "bench-secret"
export const firstRefreshToken = "rt-0"
/** Expired before the run starts, so that every contender wants a refresh. */
export const expiredAccessToken = () => unsignedJwt({ exp: Math.floor(Date.now() / 1000) - 60, n: "initial" })

export interface Polling {
  readonly poll: () => Promise<string | null>
  readonly pollRefresh: () => Promise<string | null>
  readonly close: () => Promise<void>
}

export interface Contender {
  readonly name: string
  readonly make: (tokenUrl: string, accessToken: string) => Promise<Polling>
}

const thisLibrary: Contender = {
  name: "effect-auth-manager",
  make: async (tokenUrl, accessToken) => {
    const runtime = ManagedRuntime.make(
      Layer.scoped(AuthManager, AuthManager.make({})).pipe(
        Layer.provide(Layer.merge(
          AuthStore.layerMemory({
            auth_mode: "chatgpt",
            OPENAI_API_KEY: null,
            tokens: { id_token: unsignedJwt({}), access_token: accessToken, refresh_token: firstRefreshToken },
            last_refresh: new Date(Date.now() - 9 * 86_400_000).toISOString()
          }),
          Layer.effect(TokenRefresher, TokenRefresher.makeHttp({ tokenUrl, clientId, bodyFormat: "form" })).pipe(
            Layer.provide(NodeHttpClient.layerUndici)
          )
        ))
      )
    )
    const status = (refreshToken: boolean) =>
      runtime.runPromise(
        Effect.flatMap(AuthManager, (auth) => auth.getAuthStatus({ includeToken: true, refreshToken })).pipe(
          Effect.map((s) => (s.authToken === null ? null : Redacted.value(s.authToken)))
        )
      )
    return { poll: () => status(false), pollRefresh: () => status(true), close: () => runtime.dispose() }
  }
}

/** Before the fix: every poll goes to the token endpoint. */
const naive: Contender = {
  name: "naive refresh on every poll",
  make: async (tokenUrl, accessToken) => {
    let current: string | null = accessToken
    let refreshToken = firstRefreshToken
    const refresh = async () => {
      try {
        const response = await fetch(tokenUrl, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: clientId })
        })
        const body = await response.json() as { access_token?: string; refresh_token?: string }
        if (response.ok && body.access_token !== undefined) {
          current = body.access_token
          refreshToken = body.refresh_token ?? refreshToken
        }
      } catch {
        // a failed refresh keeps the old token, as most hand-written code does
      }
      return current
    }
    return { poll: refresh, pollRefresh: refresh, close: async () => {} }
  }
}

/** google-auth-library's OAuth2Client: `getAccessToken()` refreshes an expired token (concurrent calls share one). */
const google: Contender = {
  name: "google-auth-library OAuth2Client",
  make: async (tokenUrl, accessToken) => {
    const client = new OAuth2Client({ clientId, clientSecret, endpoints: { oauth2TokenUrl: tokenUrl } })
    client.setCredentials({
      access_token: accessToken,
      refresh_token: firstRefreshToken,
      expiry_date: Date.now() - 60_000
    })
    return {
      poll: () => client.getAccessToken().then((r) => r.token ?? null, () => null),
      pollRefresh: () => client.refreshAccessToken().then((r) => r.credentials.access_token ?? null, () => null),
      close: async () => {}
    }
  }
}

/** openid-client: `refreshTokenGrant` when the token set says it has expired, as its docs suggest. */
const openidClient: Contender = {
  name: "openid-client refreshTokenGrant",
  make: async (tokenUrl, accessToken) => {
    const issuer = new URL(tokenUrl).origin
    const config = new openid.Configuration({ issuer, token_endpoint: tokenUrl }, clientId, clientSecret)
    openid.allowInsecureRequests(config)
    let tokens = { access: accessToken, refresh: firstRefreshToken, expiresAt: Date.now() - 60_000 }
    const refresh = async () => {
      try {
        const response = await openid.refreshTokenGrant(config, tokens.refresh)
        tokens = {
          access: response.access_token,
          refresh: response.refresh_token ?? tokens.refresh,
          expiresAt: Date.now() + (response.expiresIn() ?? 3600) * 1000
        }
      } catch {
        // the old token set stays
      }
      return tokens.access
    }
    return {
      poll: () => (Date.now() >= tokens.expiresAt ? refresh() : Promise.resolve(tokens.access)),
      pollRefresh: refresh,
      close: async () => {}
    }
  }
}

export const contenders: ReadonlyArray<Contender> = [thisLibrary, naive, google, openidClient]
