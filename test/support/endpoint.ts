import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Effect, Layer } from "effect"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { type HttpOptions, TokenRefresher } from "../../src/TokenRefresher.js"

/** The HTTP refresher pointed at a local endpoint, over a real Node HTTP client. */
export const httpRefresher = (url: string, options: Partial<HttpOptions> = {}) =>
  TokenRefresher.layerHttpWith({ tokenUrl: url, ...options }).pipe(Layer.provide(NodeHttpClient.layerUndici))

export const never: TokenEndpoint.Behaviour = () => Effect.never
