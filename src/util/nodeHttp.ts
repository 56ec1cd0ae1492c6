/**
 * Node's HTTP client and server layers, in a module of their own: the
 * library imports it when first needed (a first request, a first sign-in),
 * and a bundle keeps only these two layers of their modules (no undici).
 */
import { layerWithoutAgent, makeAgentLayer } from "@effect/platform-node/NodeHttpClient"
import { Layer } from "effect"

export { make as makeServer } from "@effect/platform-node/NodeHttpServer"

/**
 * Node's HTTP client on an agent that keeps its connections open between requests, as Node's own
 * global agent does: a server refreshing many credentials does not open (and, over TLS, negotiate)
 * a connection per token request. An idle connection is closed after 2 s, well before the 5 s
 * after which a Node server closes its own, so a request is not sent on a connection being closed
 * even by a busy process whose timers run late (such a request fails, and its refresh backs off).
 */
export const clientLayer = Layer.provide(
  layerWithoutAgent,
  makeAgentLayer({ keepAlive: true, timeout: 2_000, scheduling: "lifo" })
)
