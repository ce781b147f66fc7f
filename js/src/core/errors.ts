/** Thrown for every non-2xx response (and for network failures, with status 0). */
export class BellhopError extends Error {
  override readonly name = 'BellhopError';
  /** HTTP status; 0 for network errors. */
  readonly status: number;
  /** Machine readable code from the body (`not_found`, `unauthorized`, ...) or a fallback. */
  readonly code: string;
  /** Value of the `WWW-Authenticate` header on 401, if any. */
  readonly wwwAuthenticate?: string;

  constructor(status: number, code: string, message: string, opts?: { cause?: unknown; wwwAuthenticate?: string }) {
    super(message);
    this.status = status;
    this.code = code;
    if (opts?.wwwAuthenticate) this.wwwAuthenticate = opts.wwwAuthenticate;
    if (opts?.cause !== undefined) (this as { cause?: unknown }).cause = opts.cause;
  }
}

export function isBellhopError(e: unknown): e is BellhopError {
  return e instanceof BellhopError;
}

function codeForStatus(status: number): string {
  switch (status) {
    case 400: return 'bad_request';
    case 401: return 'unauthorized';
    case 403: return 'forbidden';
    case 404: return 'not_found';
    case 409: return 'conflict';
    case 429: return 'rate_limited';
    default: return status >= 500 ? 'server_error' : 'http_error';
  }
}

/** Map a non-2xx response to a BellhopError (reads the JSON error body if there is one). */
export async function errorFromResponse(res: Response): Promise<BellhopError> {
  let code = codeForStatus(res.status);
  let message = `HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`;
  try {
    const text = await res.text();
    if (text) {
      try {
        const body = JSON.parse(text) as { error?: unknown; message?: unknown };
        if (typeof body.error === 'string' && body.error) code = body.error;
        if (typeof body.message === 'string' && body.message) message = body.message;
      } catch {
        message = text.length > 200 ? text.slice(0, 200) : text;
      }
    }
  } catch {
    /* body unreadable: keep defaults */
  }
  const wwwAuthenticate = res.headers.get('www-authenticate') ?? undefined;
  return new BellhopError(res.status, code, message, { wwwAuthenticate });
}
