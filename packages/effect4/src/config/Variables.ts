/**
 * Every environment variable the configuration reads, each with the description it carries: the
 * one list, shared by both editions, from which docs/configuration.md's table is generated.
 */
export { type Variable, variables } from "@effect-auth-manager/core/variables"
