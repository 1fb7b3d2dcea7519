import type { IncomingMessage } from 'node:http';
import { OAuthError } from './oauth-error.ts';

/** Moat's own forms and JSON bodies are small; anything larger is refused before it is buffered. */
const LIMIT_BYTES = 64 * 1024;

export async function readRawBody(req: IncomingMessage, limit = LIMIT_BYTES): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw new OAuthError('invalid_request', `request body larger than ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new OAuthError('invalid_request', `request body larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

/** An application/x-www-form-urlencoded body (WHATWG URLSearchParams does the parsing). */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new OAuthError('invalid_request', 'expected an application/x-www-form-urlencoded body');
  }
  return new URLSearchParams((await readRawBody(req)).toString('utf8'));
}

/** A JSON object body. */
export async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const raw = (await readRawBody(req)).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new OAuthError('invalid_request', 'the request body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new OAuthError('invalid_request', 'the request body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}
