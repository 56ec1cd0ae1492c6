/**
 * The pages the browser lands on at the end of a sign-in (the core's pages,
 * as `HttpServerResponse`s). They say what happened and what to do next, and
 * never hold a code or a token.
 */
import * as Pages from "@effect-auth-manager/core/pages"
import { HttpServerResponse } from "effect/http"

const respond = (page: Pages.Page): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(page.body, { status: page.status, headers: page.headers })

export const success = (provider: string) => respond(Pages.success(provider))

export const failure = (heading: string, explanation: string, status = 400) =>
  respond(Pages.failure(heading, explanation, status))

export const redirect = (location: string) => respond(Pages.redirect(location))

export const cancelled = () => respond(Pages.cancelled())

export const notFound = () => respond(Pages.notFound())
