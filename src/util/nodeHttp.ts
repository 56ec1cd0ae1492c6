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
 * a connection per token request. An idle connection is closed after 4 s, before the 5 s after
 * which a Node server closes its own, so a request is not sent on a connection being closed.
 */
export const clientLayer = Layer.provide(
  layerWithoutAgent,
  makeAgentLayer({ keepAlive: true, timeout: 4_000, scheduling: "lifo" })
)
