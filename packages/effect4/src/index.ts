/**
 * effect-auth-manager for Effect 4.
 */
export {}
