import type { IncomingMessage } from 'node:http';
import { OAuthError, type OAuthErrorCode } from '../kernel/oauth-error.ts';
import { strictUtf8, unstorableForm, unstorableText } from './storable-text.ts';

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

/**
 * A text body: UTF-8, else refused with `refusal` (the error code of the endpoint: a registration
 * answers invalid_client_metadata, everything else invalid_request).
 */
export async function readText(req: IncomingMessage, refusal: OAuthErrorCode = 'invalid_request', limit = LIMIT_BYTES): Promise<string> {
  const text = strictUtf8(await readRawBody(req, limit));
  if (text === undefined) throw new OAuthError(refusal, 'the request body is not UTF-8');
  return text;
}

/** An application/x-www-form-urlencoded body (WHATWG URLSearchParams does the parsing), every value storable. */
export async function readForm(req: IncomingMessage, refusal: OAuthErrorCode = 'invalid_request'): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new OAuthError('invalid_request', 'expected an application/x-www-form-urlencoded body');
  }
  const text = await readText(req, refusal);
  const problem = unstorableForm(text);
  if (problem !== undefined) throw new OAuthError(refusal, problem);
  return new URLSearchParams(text);
}

/** A JSON object body, every string in it storable. */
export async function readJsonObject(req: IncomingMessage, refusal: OAuthErrorCode = 'invalid_request'): Promise<Record<string, unknown>> {
  const raw = await readText(req, refusal);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new OAuthError('invalid_request', 'the request body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new OAuthError('invalid_request', 'the request body must be a JSON object');
  }
  const problem = unstorableText(parsed);
  if (problem !== undefined) throw new OAuthError(refusal, problem);
  return parsed as Record<string, unknown>;
}
