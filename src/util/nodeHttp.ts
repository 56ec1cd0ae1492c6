/**
 * Node's HTTP client and server layers, in a module of their own: the
 * library imports it when first needed (a first request, a first sign-in),
 * and a bundle keeps only these two layers of their modules (no undici).
 */
export { layer as clientLayer } from "@effect/platform-node/NodeHttpClient"
export { make as makeServer } from "@effect/platform-node/NodeHttpServer"
