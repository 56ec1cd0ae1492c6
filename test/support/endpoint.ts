import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Layer } from "effect"
import { type HttpOptions, TokenRefresher } from "../../src/oauth/TokenRefresher.js"

/** The HTTP refresher pointed at a local endpoint, over the HTTP client `layerNode` ships (node:http). */
export const httpRefresher = (url: string, options: Partial<HttpOptions> = {}) =>
  Layer.effect(TokenRefresher, TokenRefresher.makeHttp({ tokenUrl: url, ...options })).pipe(
    Layer.provide(NodeHttpClient.layer)
  )
