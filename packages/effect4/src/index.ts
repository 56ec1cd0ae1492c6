/**
 * effect-auth-manager for Effect 4: OAuth credentials for Effect servers, with no
 * refresh-token storms.
 *
 * Every service is exported as its tag, with its constructors as static
 * members (`AuthManager.layer`, `AuthStore.layerFile`, `AuthStore.layerMemory`,
 * `TokenRefresher.layerHttp`, …). Test helpers are in the `./testing` entry point.
 */
export { AuthHttpClient } from "./client/AuthHttpClient.js"
export type { AuthorizedClient } from "./client/AuthHttpClient.js"
export { Configuration } from "./config/Configuration.js"
export type { Input as ConfigurationInput, Options as ConfigurationOptions } from "./config/Configuration.js"
export type { Settings } from "./config/Settings.js"
export * as AuthDocument from "./document/AuthDocument.js"
export * from "./errors/Errors.js"
export { AuthManager } from "./manager/AuthManager.js"
export type { AuthManagerShape } from "./manager/AuthManager.js"
export type {
  AccountInfo,
  AuthState,
  AuthStatus,
  AuthStatusParams,
  ChatgptTokens,
  Credentials,
  UnauthorizedRecovery
} from "./manager/AuthState.js"
export * as HostTokens from "./manager/HostTokens.js"
export { KeyedAuthManager } from "./manager/KeyedAuthManager.js"
export type { KeyedAuthManagerShape, Options as KeyedAuthManagerOptions } from "./manager/KeyedAuthManager.js"
export { layerNode, layerNodeConfigured, layerNodeHttpClient, layerStderrLogger } from "./node/layerNode.js"
export * as OAuthProvider from "./oauth/OAuthProvider.js"
export { TokenRefresher } from "./oauth/TokenRefresher.js"
export type { HttpOptions, ScriptStep, TokenRefresherShape } from "./oauth/TokenRefresher.js"
export { SignIn } from "./signin/SignIn.js"
export type { BrowserLogin, DeviceLogin, Login, SignInShape, StartOptions } from "./signin/SignIn.js"
export { AuthStore } from "./stores/AuthStore.js"
export type { AuthStoreShape } from "./stores/AuthStore.js"
export { CredentialStore } from "./stores/CredentialStore.js"
export type {
  Backend as CredentialBackend,
  CredentialStoreShape,
  Entry as CredentialEntry,
  Stored as StoredCredential,
  Write as CredentialWrite
} from "./stores/CredentialStore.js"
export * as FileStore from "./stores/FileStore.js"
export * as KeyringStore from "./stores/KeyringStore.js"
export { RefreshCoordinator } from "./stores/RefreshCoordinator.js"
export type {
  Backend as CoordinatorBackend,
  RefreshCoordinatorShape,
  SharedHealth
} from "./stores/RefreshCoordinator.js"
