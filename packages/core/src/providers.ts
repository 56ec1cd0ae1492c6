/**
 * Where and how to sign in, and to refresh, as data: the two provider
 * profiles behind one shape. `codex` speaks exactly as the Codex CLI does
 * (its authorize parameters, its device endpoints, ports 1455 then 1457);
 * `oidc` is any OpenID Connect / OAuth 2 provider (RFC 8252 loopback on an
 * ephemeral port, RFC 8628 device grant, `client_secret_post` / `_basic`).
 * The provider is generic in its secret (an edition holds it Redacted) and
 * says an absent value with `undefined`; discovery's request is the
 * edition's, reading its answer is `discovered`.
 */
import { type ClientAuth, formEncode, stringField } from "./classify.js"

export const codexIssuer = "https://auth.openai.com"
export const codexClientId = "app_EMoamEEZ73f0CkXaXp7hrann"
export const codexTokenUrl = `${codexIssuer}/oauth/token`
export const codexScopes: ReadonlyArray<string> = [
  "openid",
  "profile",
  "email",
  "offline_access",
  "api.connectors.read",
  "api.connectors.invoke"
]
/** The scopes of a generic provider when none are given. */
export const defaultScopes: ReadonlyArray<string> = ["openid", "profile", "email", "offline_access"]
/** The loopback ports registered for the Codex client. */
export const codexPorts: ReadonlyArray<number> = [1455, 1457]

/** Where the browser comes back to: 127.0.0.1 only, the first port that can be bound. */
export interface Loopback {
  /** Tried in order; 0 is an ephemeral port (RFC 8252 §7.3). */
  readonly ports: ReadonlyArray<number>
  readonly path: string
  /** On a busy first port, ask the older login server there to `/cancel` first (what Codex does). */
  readonly cancelPrevious: boolean
}

export interface Provider<S = string> {
  readonly profile: "codex" | "oidc"
  /** A name for people: shown on the success page and by the CLI. */
  readonly name: string
  readonly issuer: string
  readonly authorizationEndpoint: string
  readonly tokenEndpoint: string
  /** RFC 8628 device authorization endpoint; for the Codex profile, its user-code endpoint. */
  readonly deviceAuthorizationEndpoint: string | undefined
  readonly clientId: string
  readonly clientSecret: S | undefined
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
  /** Default `[1455, 1457]`, the ports registered for the Codex client. */
  readonly ports?: ReadonlyArray<number> | undefined
}

/** An issuer URL without its trailing slashes, as issuers are compared. */
export const trimSlash = (url: string) => url.replace(/\/+$/, "")

/** The Codex profile (what `codex login` and the Codex app server send). */
export const codex = (options: CodexOptions = {}): Provider<never> => {
  const issuer = trimSlash(options.issuer ?? codexIssuer)
  return {
    profile: "codex",
    name: issuer === codexIssuer ? "ChatGPT" : issuer,
    issuer,
    authorizationEndpoint: `${issuer}/oauth/authorize`,
    tokenEndpoint: `${issuer}/oauth/token`,
    deviceAuthorizationEndpoint: `${issuer}/api/accounts/deviceauth/usercode`,
    clientId: options.clientId ?? codexClientId,
    clientSecret: undefined,
    clientAuth: "none",
    scopes: codexScopes,
    authorizeParams: [
      ["id_token_add_organizations", "true"],
      ["codex_cli_simplified_flow", "true"]
    ],
    loopback: { ports: options.ports ?? codexPorts, path: "/auth/callback", cancelPrevious: true },
    refreshBody: "json"
  }
}

export interface OidcOptions<S = string> {
  readonly issuer: string
  readonly clientId: string
  readonly clientSecret?: S | undefined
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

/** A provider's endpoints. */
export interface Endpoints {
  readonly authorization: string
  readonly token: string
  readonly device: string | undefined
}

/** A generic provider with `endpoints` (given, or discovered). */
export const oidcFrom = <S>(options: OidcOptions<S>, endpoints: Endpoints): Provider<S> => ({
  profile: "oidc",
  name: trimSlash(options.issuer),
  issuer: trimSlash(options.issuer),
  authorizationEndpoint: endpoints.authorization,
  tokenEndpoint: endpoints.token,
  deviceAuthorizationEndpoint: endpoints.device,
  clientId: options.clientId,
  clientSecret: options.clientSecret,
  clientAuth: options.clientAuth ?? (options.clientSecret === undefined ? "none" : "client_secret_basic"),
  scopes: options.scopes ?? defaultScopes,
  authorizeParams: options.authorizeParams ??
    ((options.scopes ?? defaultScopes).includes("offline_access") ? [["prompt", "consent"]] : []),
  loopback: { ports: options.ports ?? [0], path: options.redirectPath ?? "/callback", cancelPrevious: false },
  refreshBody: "form"
})

/** The endpoints `options` gives, when it gives both needed ones: no discovery then. */
export const givenEndpoints = <S>(options: OidcOptions<S>): Endpoints | undefined =>
  options.authorizationEndpoint !== undefined && options.tokenEndpoint !== undefined
    ? {
      authorization: options.authorizationEndpoint,
      token: options.tokenEndpoint,
      device: options.deviceAuthorizationEndpoint
    }
    : undefined

/** Where a provider's configuration is published (OpenID Connect Discovery). */
export const discoveryUrl = (issuer: string): string => `${trimSlash(issuer)}/.well-known/openid-configuration`

/**
 * The endpoints of a discovery answer `json` (given ones win), or why it cannot be used. The
 * discovered `issuer` must be the configured one (RFC 8414 §3.3).
 */
export const discovered = <S>(options: OidcOptions<S>, json: unknown): Endpoints | { readonly problem: string } => {
  const issuer = trimSlash(options.issuer)
  const named = stringField(json, "issuer")
  if (named !== undefined && trimSlash(named) !== issuer) {
    return { problem: `the provider calls itself ${named}, not ${issuer}` }
  }
  const authorization = options.authorizationEndpoint ?? stringField(json, "authorization_endpoint")
  const token = options.tokenEndpoint ?? stringField(json, "token_endpoint")
  if (authorization === undefined || token === undefined) {
    return { problem: "the configuration names no authorization_endpoint or token_endpoint" }
  }
  return {
    authorization,
    token,
    device: options.deviceAuthorizationEndpoint ?? stringField(json, "device_authorization_endpoint")
  }
}

/** The authorize URL of a browser sign-in: standard parameters first, in the order Codex sends them. */
export const authorizeUrl = (
  provider: Pick<Provider<unknown>, "authorizationEndpoint" | "clientId" | "scopes" | "authorizeParams" | "profile">,
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
  return `${provider.authorizationEndpoint}${separator}${formEncode(head)}`
}

/** The scopes of a setting's text: separated by spaces or commas. */
export const parseScopes = (text: string): ReadonlyArray<string> => text.split(/[\s,]+/).filter((s) => s.length > 0)
