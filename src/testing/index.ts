/**
 * Test support for users of effect-auth-manager: a scripted token endpoint
 * and a scripted Codex-compatible issuer, both on 127.0.0.1. (The scripted
 * refresher is `TokenRefresher.layerTest`.)
 */
export * as CodexIssuer from "./CodexIssuer.js"
export * as TokenEndpoint from "./TokenEndpoint.js"
