import { NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { type HttpOptions, TokenRefresher } from "../../src/TokenRefresher.js"

/** The HTTP refresher pointed at a local endpoint, over a real Node HTTP client. */
export const httpRefresher = (url: string, options: Partial<HttpOptions> = {}) =>
  TokenRefresher.layerHttpWith({ tokenUrl: url, ...options }).pipe(Layer.provide(NodeHttpClient.layerUndici))

/** Starts a local endpoint answering with `behaviour`, for the rest of the scope. */
export const startEndpoint = (behaviour: TokenEndpoint.Behaviour) => TokenEndpoint.make(behaviour)

export const never: TokenEndpoint.Behaviour = () => Effect.never
