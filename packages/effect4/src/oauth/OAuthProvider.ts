/**
 * Where and how to sign in, and to refresh: the two provider profiles behind
 * one shape. `codex` speaks exactly as the Codex CLI does (its authorize
 * parameters, its device endpoints, ports 1455 then 1457); `oidc` is any
 * OpenID Connect / OAuth 2 provider (discovery, RFC 8252 loopback on an
 * ephemeral port, RFC 8628 device grant, `client_secret_post` / `_basic`).
 */
import { Effect, Option, type Redacted } from "effect"
import { type HttpClient, HttpClientRequest } from "effect/http"
import * as Configuration from "../config/Configuration.js"
import type { ClientAuth } from "../config/Configuration.js"
import { SignInError } from "../errors/Errors.js"
import * as OAuthHttp from "./TokenRequest.js"

export const codexIssuer = Configuration.codexIssuer
export const codexClientId = Configuration.codexClientId
export const codexScopes = [
  "openid",
  "profile",
  "email",
  "offline_access",
  "api.connectors.read",
  "api.connectors.invoke"
]

/** Where the browser comes back to: 127.0.0.1 only, the first port that can be bound. */
export interface Loopback {
  /** Tried in order; 0 is an ephemeral port (RFC 8252 §7.3). */
  readonly ports: ReadonlyArray<number>
  readonly path: string
  /** On a busy first port, ask the older login server there to `/cancel` first (what Codex does). */
  readonly cancelPrevious: boolean
}

export interface OAuthProvider {
  readonly profile: "codex" | "oidc"
  /** A name for people: shown on the success page and by the CLI. */
  readonly name: string
  readonly issuer: string
  readonly authorizationEndpoint: string
  readonly tokenEndpoint: string
  /** RFC 8628 device authorization endpoint; for the Codex profile, its user-code endpoint. */
  readonly deviceAuthorizationEndpoint: Option.Option<string>
  readonly clientId: string
  readonly clientSecret: Option.Option<Redacted.Redacted<string>>
  readonly clientAuth: ClientAuth
  readonly scopes: ReadonlyArray<string>
  /** Extra authorize parameters, after the standard ones, in order. */
  readonly authorizeParams: ReadonlyArray<readonly [string, string]>
  readonly loopback: Loopback
  /** How refresh requests are written: JSON for Codex (what it sends), form for OAuth 2. */
  readonly refreshBody: "json" | "form"
}

export interface CodexOptions {
  readonly issuer?: string | undefined
  readonly clientId?: string | undefined
  /** The `originator` authorize parameter; Codex's CLI sends `codex_cli_rs`. */
  readonly originator?: string | undefined
  /** Default `[1455, 1457]`, the ports registered for the Codex client. */
  readonly ports?: ReadonlyArray<number> | undefined
}

const trimSlash = (url: string) => url.replace(/\/+$/, "")

/** The Codex profile (what `codex login` and the Codex app server send). */
export const codex = (options: CodexOptions = {}): OAuthProvider => {
  const issuer = trimSlash(options.issuer ?? codexIssuer)
  return {
    profile: "codex",
    name: issuer === codexIssuer ? "ChatGPT" : issuer,
    issuer,
    authorizationEndpoint: `${issuer}/oauth/authorize`,
    tokenEndpoint: `${issuer}/oauth/token`,
    deviceAuthorizationEndpoint: Option.some(`${issuer}/api/accounts/deviceauth/usercode`),
    clientId: options.clientId ?? codexClientId,
    clientSecret: Option.none(),
    clientAuth: "none",
    scopes: codexScopes,
    authorizeParams: [
      ["id_token_add_organizations", "true"],
      ["codex_cli_simplified_flow", "true"]
    ],
    loopback: { ports: options.ports ?? [1455, 1457], path: "/auth/callback", cancelPrevious: true },
    refreshBody: "json"
  }
}

/** The authorize URL of a browser sign-in: standard parameters first, in the order Codex sends them. */
export const authorizeUrl = (
  provider: OAuthProvider,
  request: {
    readonly redirectUri: string
    readonly challenge: string
    readonly state: string
    readonly originator?: string
  }
): string => {
  const head: Array<readonly [string, string]> = [
    ["response_type", "code"],
    ["client_id", provider.clientId],
    ["redirect_uri", request.redirectUri],
    ["scope", provider.scopes.join(" ")],
    ["code_challenge", request.challenge],
    ["code_challenge_method", "S256"],
    ...provider.authorizeParams,
    ["state", request.state],
    ...(provider.profile === "codex" ? [["originator", request.originator ?? "codex_cli_rs"] as const] : [])
  ]
  const separator = provider.authorizationEndpoint.includes("?") ? "&" : "?"
  return `${provider.authorizationEndpoint}${separator}${OAuthHttp.formEncode(head)}`
}

export interface OidcOptions {
  readonly issuer: string
  readonly clientId: string
  readonly clientSecret?: Redacted.Redacted<string> | undefined
  /** Default: `client_secret_basic` with a secret (OpenID Connect's default), else `none`. */
  readonly clientAuth?: ClientAuth | undefined
  /** Default `openid profile email offline_access`. */
  readonly scopes?: ReadonlyArray<string> | undefined
  /** Given endpoints skip discovery (both of these are needed for that). */
  readonly authorizationEndpoint?: string | undefined
  readonly tokenEndpoint?: string | undefined
  readonly deviceAuthorizationEndpoint?: string | undefined
  /** Default `[0]`: an ephemeral port, as RFC 8252 §7.3 recommends. */
  readonly ports?: ReadonlyArray<number> | undefined
  /**
   * Extra authorize parameters. Default: `prompt=consent` when `offline_access`
   * is asked for, which OpenID Connect Core §11 requires for a refresh token.
   */
  readonly authorizeParams?: ReadonlyArray<readonly [string, string]> | undefined
  /** Default `/callback`. */
  readonly redirectPath?: string | undefined
}

const defaultScopes = ["openid", "profile", "email", "offline_access"]

const oidcFrom = (
  options: OidcOptions,
  endpoints: { readonly authorization: string; readonly token: string; readonly device: Option.Option<string> }
): OAuthProvider => ({
  profile: "oidc",
  name: trimSlash(options.issuer),
  issuer: trimSlash(options.issuer),
  authorizationEndpoint: endpoints.authorization,
  tokenEndpoint: endpoints.token,
  deviceAuthorizationEndpoint: endpoints.device,
  clientId: options.clientId,
  clientSecret: Option.fromNullishOr(options.clientSecret),
  clientAuth: options.clientAuth ?? (options.clientSecret === undefined ? "none" : "client_secret_basic"),
  scopes: options.scopes ?? defaultScopes,
  authorizeParams: options.authorizeParams ??
    ((options.scopes ?? defaultScopes).includes("offline_access") ? [["prompt", "consent"]] : []),
  loopback: { ports: options.ports ?? [0], path: options.redirectPath ?? "/callback", cancelPrevious: false },
  refreshBody: "form"
})

/**
 * A generic provider: its endpoints from `{issuer}/.well-known/openid-configuration`
 * unless given. The discovered `issuer` must be the configured one (RFC 8414 §3.3).
 */
export const discover = Effect.fn("OAuthProvider.discover")(function*(options: OidcOptions) {
  if (options.authorizationEndpoint !== undefined && options.tokenEndpoint !== undefined) {
    return oidcFrom(options, {
      authorization: options.authorizationEndpoint,
      token: options.tokenEndpoint,
      device: Option.fromNullishOr(options.deviceAuthorizationEndpoint)
    })
  }
  const issuer = trimSlash(options.issuer)
  const failed = (detail: string) => new SignInError({ reason: "discovery_failed", detail })
  const answer = yield* OAuthHttp.send(
    HttpClientRequest.get(`${issuer}/.well-known/openid-configuration`).pipe(HttpClientRequest.acceptJson)
  ).pipe(Effect.mapError((failure) => failed(failure.detail)))
  if (answer.status !== 200) {
    return yield* failed(`${issuer}/.well-known/openid-configuration answered HTTP ${answer.status}`)
  }
  const field = (key: string) => OAuthHttp.stringField(answer.json, key)
  if (field("issuer") !== undefined && trimSlash(field("issuer")!) !== issuer) {
    return yield* failed(`the provider calls itself ${field("issuer")}, not ${issuer}`)
  }
  const authorization = options.authorizationEndpoint ?? field("authorization_endpoint")
  const token = options.tokenEndpoint ?? field("token_endpoint")
  if (authorization === undefined || token === undefined) {
    return yield* failed("the configuration names no authorization_endpoint or token_endpoint")
  }
  return oidcFrom(options, {
    authorization,
    token,
    device: Option.fromNullishOr(options.deviceAuthorizationEndpoint ?? field("device_authorization_endpoint"))
  })
})

/** The settings the token refresher needs to refresh what this provider issued. */
export const refresherOptions = (provider: OAuthProvider) => ({
  tokenUrl: provider.tokenEndpoint,
  clientId: provider.clientId,
  clientSecret: provider.clientSecret,
  clientAuth: provider.clientAuth,
  bodyFormat: provider.refreshBody
})

/**
 * The provider a program signs in with, from its `Configuration`. With an
 * `issuer` it is a generic provider (its client id, secret, authentication
 * and scopes; discovered when first used); without it, Codex (its issuer,
 * client and originator). `ports` sets the loopback ports of either.
 */
export const fromConfiguration = (configuration: Configuration.Options): {
  readonly provider: Effect.Effect<OAuthProvider, SignInError, HttpClient.HttpClient>
  readonly originator: string
} => {
  const config = {
    ...configuration.signIn,
    codexPorts: Option.getOrElse(configuration.signIn.ports, () => [1455, 1457]),
    oidcPorts: Option.getOrElse(configuration.signIn.ports, () => [0])
  }
  return {
    originator: config.originator,
    provider: Option.match(config.issuer, {
      onNone: () =>
        Effect.succeed(codex({ issuer: config.codexIssuer, clientId: config.codexClientId, ports: config.codexPorts })),
      onSome: (issuer) =>
        Option.match(config.clientId, {
          onNone: () =>
            Effect.fail(
              new SignInError({
                reason: "discovery_failed",
                detail: "EFFECT_AUTH_ISSUER is set but EFFECT_AUTH_CLIENT_ID is not"
              })
            ),
          onSome: (clientId) =>
            discover({
              issuer,
              clientId,
              clientSecret: Option.getOrUndefined(config.clientSecret),
              clientAuth: Option.getOrUndefined(config.clientAuth),
              scopes: Option.getOrUndefined(
                Option.map(config.scopes, (scopes) => scopes.split(/[\s,]+/).filter((s) => s.length > 0))
              ),
              ports: config.oidcPorts
            })
        })
    })
  }
}
