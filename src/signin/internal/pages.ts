/**
 * The sign-in pages (plain data from the core) as this edition's responses.
 */
import type { Page } from "@effect-auth-manager/core/pages"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"

export const respond = (page: Page): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(page.body, { status: page.status, headers: page.headers })
