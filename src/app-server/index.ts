/**
 * effect-auth-manager/app-server: the Codex app-server wire protocol
 * (newline-delimited JSON over stdio) served from an `AuthManager`. A separate
 * entry point: a library user who only needs tokens never loads it.
 */
export * as AppServer from "./AppServer.js"
