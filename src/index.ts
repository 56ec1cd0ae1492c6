/**
 * effect-auth-manager: OAuth credentials for Effect servers, with no
 * refresh-token storms.
 *
 * The three services are exported as their tags (their layers are static
 * members: `AuthManager.layer`, `AuthStore.layerFile`, …), as SPEC §6 names them.
 */
export * as AuthDocument from "./AuthDocument.js"
export * as AuthHttpClient from "./AuthHttpClient.js"
export { AuthManager } from "./AuthManager.js"
export type {
  AccountInfo,
  AuthManagerShape,
  AuthState,
  AuthStatus,
  AuthStatusParams,
  ChatgptTokens,
  Credentials,
  Settings,
  UnauthorizedRecovery
} from "./AuthManager.js"
export { AuthStore } from "./AuthStore.js"
export type { AuthStoreShape } from "./AuthStore.js"
export { Configuration } from "./Configuration.js"
export type { Input as ConfigurationInput, Options as ConfigurationOptions } from "./Configuration.js"
export * as CredentialStore from "./CredentialStore.js"
export * as FileStore from "./FileStore.js"
export * from "./Errors.js"
export * as KeyedAuthManager from "./KeyedAuthManager.js"
export * as KeyringStore from "./KeyringStore.js"
export { layerNode, layerNodeConfigured, layerNodeHttpClient, layerNodeWith, layerStderrLogger } from "./layerNode.js"
export * as OAuthProvider from "./OAuthProvider.js"
export { SignIn } from "./SignIn.js"
export type { BrowserLogin, DeviceLogin, Login, SignInShape, StartOptions } from "./SignIn.js"
export * as RefreshCoordinator from "./RefreshCoordinator.js"
export { TokenRefresher, TokenRefresherTest } from "./TokenRefresher.js"
export type { HttpOptions, ScriptStep, TokenRefresherShape } from "./TokenRefresher.js"
