/**
 * Where and how to sign in, and to refresh: the two provider profiles behind
 * one shape. `codex` speaks exactly as the Codex CLI does (its authorize
 * parameters, its device endpoints, ports 1455 then 1457); `oidc` is any
 * OpenID Connect / OAuth 2 provider (discovery, RFC 8252 loopback on an
 * ephemeral port, RFC 8628 device grant, `client_secret_post` / `_basic`).
 * The profiles, the authorize URL and discovery's rules are the core's
 * (`@effect-auth-manager/core/providers`); here the provider holds its
 * secret Redacted and its absent values as `Option`.
 */
import * as Providers from "@effect-auth-manager/core/providers"
import { Effect, Option, type Redacted } from "effect"
import { type HttpClient, HttpClientRequest } from "effect/http"
import * as Configuration from "../config/Configuration.js"
import type { ClientAuth } from "../config/Configuration.js"
import { SignInError } from "../errors/Errors.js"
import * as OAuthHttp from "./TokenRequest.js"

export const { codexClientId, codexIssuer, codexScopes } = Providers

/** Where the browser comes back to: 127.0.0.1 only, the first port that can be bound. */
export type Loopback = Providers.Loopback

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

export interface CodexOptions extends Providers.CodexOptions {
  /** The `originator` authorize parameter; Codex's CLI sends `codex_cli_rs`. */
  readonly originator?: string | undefined
}

/** This edition's provider from the core's: the absent values as `Option`. */
const fromCore = (provider: Providers.Provider<Redacted.Redacted<string>>): OAuthProvider => ({
  ...provider,
  deviceAuthorizationEndpoint: Option.fromNullishOr(provider.deviceAuthorizationEndpoint),
  clientSecret: Option.fromNullishOr(provider.clientSecret)
})

/** The Codex profile (what `codex login` and the Codex app server send). */
export const codex = (options: CodexOptions = {}): OAuthProvider => fromCore(Providers.codex(options))

/** The authorize URL of a browser sign-in: standard parameters first, in the order Codex sends them. */
export const authorizeUrl: (
  provider: OAuthProvider,
  request: {
    readonly redirectUri: string
    readonly challenge: string
    readonly state: string
    readonly originator?: string
  }
) => string = Providers.authorizeUrl

/** A generic provider's settings (its endpoints are discovered unless both are given). */
export type OidcOptions = Providers.OidcOptions<Redacted.Redacted<string>>

/**
 * A generic provider: its endpoints from `{issuer}/.well-known/openid-configuration`
 * unless given. The discovered `issuer` must be the configured one (RFC 8414 §3.3).
 */
export const discover = Effect.fn("OAuthProvider.discover")(function*(options: OidcOptions) {
  const given = Providers.givenEndpoints(options)
  if (given !== undefined) return fromCore(Providers.oidcFrom(options, given))
  const url = Providers.discoveryUrl(options.issuer)
  const failed = (detail: string) => new SignInError({ reason: "discovery_failed", detail })
  const answer = yield* OAuthHttp.send(HttpClientRequest.get(url).pipe(HttpClientRequest.acceptJson)).pipe(
    Effect.mapError((failure) => failed(failure.detail))
  )
  if (answer.status !== 200) return yield* failed(`${url} answered HTTP ${answer.status}`)
  const endpoints = Providers.discovered(options, answer.json)
  if ("problem" in endpoints) return yield* failed(endpoints.problem)
  return fromCore(Providers.oidcFrom(options, endpoints))
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
    codexPorts: Option.getOrElse(configuration.signIn.ports, () => Providers.codexPorts),
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
              scopes: Option.getOrUndefined(Option.map(config.scopes, Providers.parseScopes)),
              ports: config.oidcPorts
            })
        })
    })
  }
}
