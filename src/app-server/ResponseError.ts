/** What a client answers when it refuses a request of the app server. */
/** The error a client answered a request of this server with. */
export interface ResponseError {
  readonly code: number | null
  readonly message: string
}

export const responseError = (error: unknown): ResponseError => {
  const { code, message } = (error !== null && typeof error === "object" ? error : {}) as {
    code?: unknown
    message?: unknown
  }
  return {
    code: typeof code === "number" ? code : null,
    message: typeof message === "string" ? message : "no message"
  }
}
