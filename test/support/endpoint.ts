import { HttpServerResponse } from "@effect/platform"
import { Effect, Layer } from "effect"
import { layerNodeHttpClient } from "../../src/node/layerNode.js"
import { type HttpOptions, TokenRefresher } from "../../src/oauth/TokenRefresher.js"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"

/** The HTTP refresher pointed at a local endpoint, over the HTTP client `layerNode` ships. */
export const httpRefresher = (url: string, options: Partial<HttpOptions> = {}) =>
  Layer.effect(TokenRefresher, TokenRefresher.makeHttp({ tokenUrl: url, ...options })).pipe(
    Layer.provide(layerNodeHttpClient)
  )

/**
 * A token endpoint that accepts any refresh token: a new access token (1 h, carrying the refresh
 * token it answered as `rt`) and the refresh token rotated to `<it>-next`, each time.
 */
export const issuing: TokenEndpoint.Behaviour = (request) =>
  Effect.sync(() =>
    HttpServerResponse.unsafeJson({
      token_type: "Bearer",
      access_token: TokenEndpoint.unsignedJwt({
        exp: Math.floor(Date.now() / 1000) + 3600,
        rt: request.fields.refresh_token
      }),
      refresh_token: `${request.fields.refresh_token}-next`,
      expires_in: 3600
    })
  )
