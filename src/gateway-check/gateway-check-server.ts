import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as TlsServer } from 'node:https';
import { createOperatorAuthenticator, AdminAuthenticationError } from '../admin/operator-authentication.ts';
import type { GatewayCheckConfig } from '../config/gateway-check-schema.ts';
import { listenOn } from '../http/listen.ts';
import { trackConnections } from '../http/listener-connections.ts';
import { gatewayUnauthenticatedResponse, serverErrorResponse } from '../kernel/error-responses.ts';
import type { Logger } from '../observability/logger.ts';
import { loadTrustAnchors } from '../pki/certificate-chain.ts';
import { parseDistinguishedName } from '../pki/distinguished-name.ts';
import { createHttpsServer } from '../tls/https-server.ts';
import type { GatewayCheck } from './gateway-check.ts';

/*
 * The check endpoint's own listener. Never the TPP port: its answers are what the gateway trusts,
 * and the forwarded client certificate it reads is believed only because the caller is the gateway
 * (the trusted-proxy rule of src/tls/trusted-proxies.ts, with authentication in place of an
 * address). Who the gateway is: a certificate from `gatewayCheck.tls.clientCaFiles` (mTLS, the
 * admin listener's operator-certificate policy), or the shared secret in `X-Moat-Gateway-Secret` on
 * a loopback listener. Every path answers the check: nginx's auth_request and Envoy's ext_authz
 * call it with the original path or put it in X-Original-URI.
 */

/** The header carrying the shared secret (never the TPP's Authorization, which is the token to check). */
export const GATEWAY_SECRET_HEADER = 'x-moat-gateway-secret';

export interface GatewayCheckServer {
  server: Server | TlsServer;
  listen(): Promise<number>;
  /** Stops accepting, ends the connections that carried no request, and waits for the checks in flight. */
  close(): Promise<void>;
  /** Ends every connection at once: a drain's deadline. Returns how many it ended. */
  closeConnections(): number;
}

function readFile(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${key}: cannot read ${file} (${(err as Error).message})`, { cause: err });
  }
}

type GatewayAuthenticator = (req: IncomingMessage) => Promise<string | undefined>;

/** Reads the listener's credentials once at start-up; a file that cannot be used stops start-up naming its key. */
function createGatewayAuthenticator(config: GatewayCheckConfig): { authenticate: GatewayAuthenticator; tls?: { cert: Buffer; key: Buffer; ca: string } } {
  if (config.tls !== undefined) {
    let anchors;
    try {
      anchors = loadTrustAnchors(config.tls.clientCaFiles);
    } catch (err) {
      throw new Error(`gatewayCheck.tls.clientCaFiles: ${(err as Error).message}`, { cause: err });
    }
    const tls = {
      cert: readFile('gatewayCheck.tls.certFile', config.tls.certFile),
      key: readFile('gatewayCheck.tls.keyFile', config.tls.keyFile),
      anchors,
      ...(config.tls.allowedSubjects === undefined ? {} : { allowedSubjects: config.tls.allowedSubjects.map((dn) => parseDistinguishedName(dn)) }),
    };
    const operator = createOperatorAuthenticator({ tls });
    return {
      tls: { cert: tls.cert, key: tls.key, ca: anchors.pem },
      async authenticate(req) {
        try {
          await operator(req);
          return undefined;
        } catch (err) {
          if (err instanceof AdminAuthenticationError) return err.description.replace('operator', 'gateway').replace(/admin\.tls/g, 'gatewayCheck.tls');
          throw err;
        }
      },
    };
  }
  const secret = readFile('gatewayCheck.sharedSecretFile', config.sharedSecretFile!).toString('utf8').trim();
  if (secret.length < 32)
    throw new Error(`gatewayCheck.sharedSecretFile: ${config.sharedSecretFile} holds fewer than 32 characters (use openssl rand -hex 32)`);
  const expected = Buffer.from(secret);
  return {
    authenticate(req) {
      const sent = req.headersDistinct[GATEWAY_SECRET_HEADER];
      const value = sent?.length === 1 ? Buffer.from(sent[0]!) : undefined;
      // Constant time over the secret's bytes; its length (at least 32 characters) is no secret.
      if (value?.length !== expected.length || !timingSafeEqual(value, expected))
        return Promise.resolve(`the gateway check needs the shared secret in ${GATEWAY_SECRET_HEADER}`);
      return Promise.resolve(undefined);
    },
  };
}

/** Every outcome the check answers with, so a counter can start each at zero. */
export const GATEWAY_CHECK_OUTCOMES = [
  'allowed',
  'invalid_request',
  'invalid_token',
  'insufficient_scope',
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'gateway_unauthenticated',
] as const;

export function createGatewayCheckServer(deps: {
  config: GatewayCheckConfig;
  check: GatewayCheck;
  logger: Logger;
  onOutcome?: (outcome: string) => void;
}): GatewayCheckServer {
  const { authenticate, tls } = createGatewayAuthenticator(deps.config);
  const send = (res: ServerResponse, status: number, headers: Record<string, string>, body: unknown) => {
    if (body === undefined) {
      // An allowed request: the headers are the answer (one write, no body to parse at the gateway).
      res.writeHead(status, { ...headers, 'cache-control': 'no-store', 'content-length': '0' });
      res.end();
      return;
    }
    res.writeHead(status, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    // The check reads headers only: a body is not read, and the request is answered as soon as decided.
    req.resume();
    void (async () => {
      const refused = await authenticate(req);
      if (refused !== undefined) {
        deps.logger.warn(
          { event: 'gateway_check.unauthenticated', remoteAddress: req.socket.remoteAddress, reason: refused },
          'gateway check from an unauthenticated caller refused',
        );
        deps.onOutcome?.('gateway_unauthenticated');
        const answer = gatewayUnauthenticatedResponse(refused);
        send(res, answer.status, {}, answer.body);
        return;
      }
      const verdict = await deps.check(req);
      deps.onOutcome?.(verdict.outcome);
      // Refusals are security events (info); allowed checks, the bulk, only at debug.
      const log = {
        event: 'gateway_check',
        outcome: verdict.outcome,
        clientId: verdict.clientId,
        status: verdict.status,
        interactionId: verdict.headers['x-fapi-interaction-id'],
      };
      if (verdict.status === 200) deps.logger.debug(log, 'gateway check allowed');
      else deps.logger.info(log, 'gateway check refused');
      send(
        res,
        verdict.status,
        verdict.headers,
        verdict.status === 200 ? undefined : { error: verdict.headers['x-moat-error'], error_description: describe(verdict.headers['www-authenticate']) },
      );
    })().catch((err: unknown) => {
      deps.logger.error({ err, event: 'gateway_check.failed' }, 'gateway check failed');
      if (!res.headersSent) {
        const failed = serverErrorResponse('the gateway check failed; see the Moat log');
        send(res, failed.status, {}, failed.body);
      }
    });
  };
  const server = tls === undefined ? createServer(handler) : createHttpsServer({ cert: tls.cert, key: tls.key, ca: tls.ca, handler });
  const connections = trackConnections(server);
  return {
    server,
    listen: () => listenOn(server, 'gatewayCheck', deps.config.host, deps.config.port),
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeIdleConnections();
        connections.drain();
      }),
    closeConnections: () => connections.closeAll(),
  };
}

/** The error_description of a challenge, for the JSON body. */
function describe(challenge: string | undefined): string | undefined {
  return /error_description="([^"]*)"/.exec(challenge ?? '')?.[1];
}
