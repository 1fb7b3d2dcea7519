import { runChecks, skip, type CheckOutcome, type CheckStep } from './checks.ts';
import { acceptableCaNames } from './acceptable-cas.ts';
import { checkPushedAuthorization, checkTokenBinding } from './authorization.ts';
import { clientAuthenticationOutcome, readRegisteredSubject, revocationOutcome, tokenDryRun, trustAnchorOutcome, type TokenVerdict } from './client-auth.ts';
import type { DiagnoseInputs } from './inputs.ts';
import { checkClientAuthUsage, checkKeyMatches, checkValidity, readCredentials, type LocalCredentials } from './local-certificate.ts';
import type { Diagnosis } from './report.ts';
import {
  checkServerTrust,
  describeConnectFailure,
  endpointOf,
  fetchDiscovery,
  handshake,
  reachable,
  readServerCa,
  type ServerEndpoints,
  type ServerHandshake,
  type TlsMaterial,
} from './server-connection.ts';
import { checkSigningKey, checkSoftwareStatement, type SoftwareStatementClaims } from './software-statement.ts';

/**
 * Walks a TPP's path to the server, check by check (checks.ts lists them), and stops at the first
 * fault. Every later check relies on what the earlier ones established, which is kept here.
 */
export async function diagnose(inputs: DiagnoseInputs): Promise<Diagnosis> {
  const endpoint = endpointOf(inputs.issuer);
  const ca = readServerCa(inputs.caFile);
  const tls: TlsMaterial = { timeoutMs: inputs.timeoutMs, ...(ca.pem === undefined ? {} : { ca: ca.pem }) };
  let server: ServerHandshake | undefined;
  let endpoints: ServerEndpoints | undefined;
  let local: LocalCredentials | undefined;
  let mtls: TlsMaterial | undefined;
  let verdict: TokenVerdict | undefined;
  let ssa: SoftwareStatementClaims | undefined;
  // The scope asked for at PAR and with client_credentials: --scope, else what the local registration registered.
  const scope = inputs.scope ?? inputs.localRegistration?.scope;
  const localOnly =
    (outcome: () => CheckOutcome): (() => Promise<CheckOutcome>) =>
    async () =>
      outcome();

  const steps: CheckStep[] = [
    {
      id: 'server-reachable',
      run: async () => {
        try {
          server = await handshake(endpoint, tls.ca, inputs.timeoutMs);
        } catch (err) {
          return describeConnectFailure(err, endpoint);
        }
        return reachable(endpoint, server);
      },
    },
    { id: 'server-trusted', run: localOnly(() => checkServerTrust(endpoint, server!, ca)) },
    {
      id: 'discovery',
      run: async () => {
        const found = await fetchDiscovery(inputs.issuer, tls);
        endpoints = found.endpoints;
        return found.outcome;
      },
    },
    {
      id: 'certificate-readable',
      run: localOnly(() => {
        const read = readCredentials(inputs.certFile, inputs.keyFile);
        if ('credentials' in read) {
          local = read.credentials;
          mtls = { ...tls, cert: local.certPem, key: local.keyPem };
        }
        return read.outcome;
      }),
    },
    { id: 'key-matches-certificate', run: localOnly(() => checkKeyMatches(local!)) },
    { id: 'certificate-validity', run: localOnly(() => checkValidity(local!)) },
    { id: 'client-auth-eku', run: localOnly(() => checkClientAuthUsage(local!)) },
    {
      id: 'trust-anchor',
      run: async () => {
        verdict = await tokenDryRun(endpoints!, mtls!, inputs.clientId, scope);
        // Only when the chain is refused is it worth a second handshake to read the CA list.
        const acceptable = verdict.kind === 'not-trusted' ? await acceptableCaNames(endpointOf(endpoints!.token), inputs.timeoutMs) : undefined;
        return trustAnchorOutcome(verdict, local!, acceptable);
      },
    },
    { id: 'revocation', run: localOnly(() => revocationOutcome(verdict!, local!, inputs.clientId)) },
    {
      id: 'client-authentication',
      run: async () => {
        const registered =
          verdict?.kind === 'subject-mismatch' && inputs.clientId !== undefined && inputs.registrationToken !== undefined
            ? await readRegisteredSubject(endpoints!, mtls!, inputs.clientId, inputs.registrationToken)
            : undefined;
        return clientAuthenticationOutcome(verdict!, local!, inputs.clientId, registered, inputs.localRegistration);
      },
    },
    {
      id: 'software-statement',
      run: async () => {
        if (inputs.ssaFile === undefined) return skip('no --ssa');
        const checked = await checkSoftwareStatement({
          ssaFile: inputs.ssaFile,
          ...(inputs.directoryJwksFile === undefined ? {} : { directoryJwksFile: inputs.directoryJwksFile }),
          ...(inputs.redirectUri === undefined ? {} : { redirectUri: inputs.redirectUri }),
          ...(scope === undefined ? {} : { scope }),
        });
        ssa = checked.claims;
        return checked.outcome;
      },
    },
    { id: 'signing-key', run: () => checkSigningKey(inputs.signingKeyFile, ssa) },
    {
      id: 'pushed-authorization',
      run: () => checkPushedAuthorization({ endpoints: endpoints!, tls: mtls!, clientId: inputs.clientId, redirectUri: inputs.redirectUri, scope }),
    },
    {
      id: 'token-binding',
      run: () => checkTokenBinding({ endpoints: endpoints!, tls: mtls!, clientId: inputs.clientId, verdict, local: local! }),
    },
  ];

  const checks = await runChecks(steps);
  const failed = checks.find((c) => c.status === 'fail');
  return { issuer: inputs.issuer, ok: failed === undefined, ...(failed === undefined ? {} : { failed: failed.id }), checks };
}
