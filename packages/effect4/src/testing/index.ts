/**
 * Test support for users of the Effect 4 edition: a scripted token endpoint
 * and a scripted Codex-compatible issuer, both on 127.0.0.1, and the record of
 * the scripted refresher `TokenRefresher.layerTest` (`TokenRefresherTest`).
 */
export { TokenRefresherTest } from "../oauth/TokenRefresher.js"
export * as CodexIssuer from "./CodexIssuer.js"
export * as TokenEndpoint from "./TokenEndpoint.js"
