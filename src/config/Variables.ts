/**
 * The environment variables the configuration reads: the core's one list, named here for
 * scripts/configuration-reference.ts.
 */
export { type Variable, variables } from "@effect-auth-manager/core/variables"
