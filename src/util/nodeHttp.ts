/**
 * Node's HTTP client and server layers, in a module of their own: the
 * library imports it when first needed (a first request, a first sign-in).
 */
export { make as makeServer } from "@effect/platform-node/NodeHttpServer"

/**
 * The platform's HTTP client over undici (`NodeHttpClient.layerUndici`), on an agent of its own,
 * destroyed with the layer's scope, that keeps connections open between requests: an idle one is
 * closed after 4 s, or 2 s before the `Keep-Alive: timeout` a server announces. (undici refuses a
 * request that sets `Connection`, `Keep-Alive`, `Transfer-Encoding`, `Upgrade` or `Expect` itself.)
 *
 * Not the platform's `node:http` client: it creates the request, then listens for its answer and
 * its errors from fibers it forks. On a busy server those fibers can start seconds later, and an
 * error emitted meanwhile (a kept connection that the server closed) is heard by no one: the
 * request then waits for an answer that never comes, until the refresh's own bound (measured: a
 * replica holding thousands of credentials had dozens of token requests stalled so, each for the
 * whole answer limit). undici answers with one promise, which keeps what happened until it is
 * awaited, and a token request through it costs about a third of the CPU (0.14–0.22 against
 * 0.48–0.67 ms, in one process, 16 at once).
 */
export { layerUndici as clientLayer } from "@effect/platform-node/NodeHttpClient"
