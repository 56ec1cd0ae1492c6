/**
 * Test support for users of effect-auth-manager: a scripted token endpoint
 * on 127.0.0.1. (The scripted refresher is `TokenRefresher.layerTest`.)
 */
export * as TokenEndpoint from "./TokenEndpoint.js"
