/**
 * effect-auth-manager: OAuth credentials for Effect servers, with no
 * refresh-token storms.
 *
 * The three services are exported as their tags (their layers are static
 * members: `AuthManager.layer`, `AuthStore.layerFile`, …), as SPEC §6 names them.
 */
export * as AuthDocument from "./document/AuthDocument.js"
export * as AuthHttpClient from "./client/AuthHttpClient.js"
export { AuthManager } from "./manager/AuthManager.js"
export type { AuthManagerShape } from "./manager/AuthManager.js"
export type { AccountInfo, AuthState, AuthStatus, AuthStatusParams, ChatgptTokens, Credentials, UnauthorizedRecovery } from "./manager/AuthState.js"
export type { Settings } from "./config/Configuration.js"
export { AuthStore } from "./stores/AuthStore.js"
export type { AuthStoreShape } from "./stores/AuthStore.js"
export { Configuration } from "./config/Configuration.js"
export type { Input as ConfigurationInput, Options as ConfigurationOptions } from "./config/Configuration.js"
export * as CredentialStore from "./stores/CredentialStore.js"
export * as FileStore from "./stores/FileStore.js"
export * from "./errors/Errors.js"
export * as KeyedAuthManager from "./manager/KeyedAuthManager.js"
export { layerNode, layerNodeConfigured, layerNodeHttpClient, layerNodeWith, layerStderrLogger } from "./node/layerNode.js"
export * as OAuthProvider from "./oauth/OAuthProvider.js"
export { SignIn } from "./signin/SignIn.js"
export type { BrowserLogin, DeviceLogin, Login, SignInShape, StartOptions } from "./signin/SignIn.js"
export * as RefreshCoordinator from "./stores/RefreshCoordinator.js"
export { TokenRefresher, TokenRefresherTest } from "./oauth/TokenRefresher.js"
export type { HttpOptions, ScriptStep, TokenRefresherShape } from "./oauth/TokenRefresher.js"
