import { randomBytes } from 'node:crypto';
import { htmlErrorPages } from '../interactions/render-error.ts';
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { CertificateRegistry } from '../certificates/certificate-registry.ts';
import type { MoatConfig } from '../config/schema.ts';
import { SANDBOX_CUSTOMERS } from '../customers/sandbox-customers.ts';
import type { CallDiagnostics } from '../diagnostics/call-diagnostics.ts';
import type { RecentCalls } from '../diagnostics/call-journal.ts';
import type { CallRecord } from '../diagnostics/call-record.ts';
import { CSRF_FIELD, type Csrf } from '../http/csrf.ts';
import { PAGE_REFUSAL_STATUS } from '../kernel/error-responses.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import { readForm } from '../http/read-body.ts';
import type { Views } from '../interactions/views.ts';
import type { Logger } from '../observability/logger.ts';
import type { SandboxMaterial } from '../sandbox/sandbox-material.ts';
import { sandboxRevocationPointers } from '../sandbox/revocation-services.ts';
import { issueSandboxTpp, sandboxTppFiles, sandboxTppNameProblem, sandboxTppSummary, TPP_FILES } from '../sandbox/tpp-credentials.ts';
import { MAX_TPPS_PER_SESSION, type PortalSessions, type PortalTpp } from './portal-sessions.ts';

/*
 * The sandbox's self-service developer portal: what the sandbox is, a form that makes a TPP's
 * credentials (the same ones `moat sandbox tpp` writes), their downloads, a quick start written
 * for them, the demo customers, and the calls those credentials made, each one explained. Served
 * only in sandbox mode, with the customer pages' standards: CSRF-protected forms, no script, a
 * strict CSP, no caching; private keys go only to the browser that created them.
 */

export const PORTAL_PATH = '/portal';
const ROLES = ['AISP', 'PISP', 'CBPII'] as const;
const ROLE_WORDS: Record<string, string> = { AISP: 'account information', PISP: 'payment initiation', CBPII: 'funds confirmation' };
const MAX_REDIRECT_URIS = 5;
const RECENT_CALLS = 20;
/** Download names: the files of a TPP, nothing else (no path can be asked for). */
const DOWNLOADABLE = new Set<string>([...Object.values(TPP_FILES)]);

interface Deps {
  config: MoatConfig;
  material: SandboxMaterial;
  sessions: PortalSessions;
  registry: CertificateRegistry;
  /** Absent when call records are switched off (diagnostics.enabled: false). */
  diagnostics?: CallDiagnostics;
  views: Views;
  csrf: Csrf;
  logger: Logger;
}

type Ctx = ParameterizedContext;

interface FormInput {
  name: string;
  roles: string[];
  redirectUris: string;
}

export function createPortalRouter(deps: Deps): Router {
  const { views, csrf, sessions } = deps;
  const router = new Router({ prefix: PORTAL_PATH });

  router.use(htmlErrorPages(views, { back: { link: PORTAL_PATH, labelKey: 'error.back.portal' }, technical: true }));

  /** The certificates and clients whose calls this browser may see: those of the TPPs it created. */
  const ownersOf = async (tpps: PortalTpp[]) => {
    const thumbprints = tpps.map((t) => t.thumbprint);
    const found = await Promise.all(thumbprints.map((t) => deps.registry.find(t)));
    return { thumbprints, clientIds: [...new Set(found.flatMap((c) => c?.clients ?? []))] };
  };

  const renderPortal = async (ctx: Ctx, form: { input?: FormInput; errors?: Record<string, string>; created?: string } = {}) => {
    const tpps = await sessions.tpps(ctx);
    const calls =
      deps.diagnostics === undefined || tpps.length === 0 ? [] : newestOf(await deps.diagnostics.recentFor(await ownersOf(tpps), RECENT_CALLS), RECENT_CALLS);
    const now = Date.now();
    const newest = tpps[0];
    ctx.type = 'html';
    ctx.body = views.render('portal', {
      csrf: csrf.token(ctx, 'portal'),
      issuer: deps.config.issuer,
      roles: ROLES.map((r) => ({ value: r, words: ROLE_WORDS[r] })),
      input: form.input ?? { name: '', roles: ['AISP', 'PISP'], redirectUris: 'https://localhost:3000/callback' },
      errors: form.errors ?? {},
      created: form.created,
      maxTpps: MAX_TPPS_PER_SESSION,
      tpps: tpps.map((t) => ({
        ...t,
        downloadable: Date.parse(t.downloadableUntil) > now,
        files: [...DOWNLOADABLE]
          .filter((f) => f !== TPP_FILES.summary)
          .concat(TPP_FILES.summary)
          .map((f) => ({ name: f, secret: f === TPP_FILES.transportKey || f === TPP_FILES.signingJwks })),
      })),
      quickStart: newest === undefined ? undefined : quickStart(deps.config.issuer, newest),
      customers: SANDBOX_CUSTOMERS.map(({ username, password, name }) => ({ username, password, name })),
      callsEnabled: deps.diagnostics !== undefined,
      calls: calls.map((c) => describeCall(c, tpps)),
    });
  };

  router.get('/', (ctx) => renderPortal(ctx));

  router.post('/tpps', async (ctx) => {
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'portal', form.get(CSRF_FIELD) ?? undefined);
    const input: FormInput = { name: (form.get('name') ?? '').trim(), roles: form.getAll('roles'), redirectUris: form.get('redirect_uris') ?? '' };
    const uris = input.redirectUris
      .split(/\r?\n/)
      .map((u) => u.trim())
      .filter((u) => u !== '');
    const errors = validate(input, uris);
    if ((await sessions.tpps(ctx)).length >= MAX_TPPS_PER_SESSION) {
      errors.form = `This browser has made ${MAX_TPPS_PER_SESSION} sandbox TPPs already; use one of them, or \`npm run moat -- sandbox tpp\` on the command line.`;
    }
    if (Object.keys(errors).length > 0) {
      ctx.status = PAGE_REFUSAL_STATUS.input_refused;
      await renderPortal(ctx, { input, errors });
      return;
    }
    const tpp = await issueSandboxTpp(deps.material, {
      name: input.name,
      issuer: deps.config.issuer,
      roles: input.roles,
      redirectUris: uris,
      // As the CLI makes them: eIDAS style, with the sandbox CA's revocation services.
      eidas: true,
      ...sandboxRevocationPointers(deps.config.issuer),
    });
    const record: PortalTpp = {
      id: randomBytes(12).toString('base64url'),
      name: tpp.name,
      orgId: tpp.orgId,
      softwareId: tpp.softwareId,
      roles: tpp.roles,
      redirectUris: tpp.redirectUris,
      subjectDn: tpp.subjectDn,
      thumbprint: tpp.thumbprint,
      createdAt: new Date().toISOString(),
      downloadableUntil: new Date(Date.now() + deps.config.portal.downloadSeconds * 1000).toISOString(),
    };
    const files = [
      ...sandboxTppFiles(tpp),
      {
        name: TPP_FILES.summary,
        secret: false,
        content: `${JSON.stringify(
          sandboxTppSummary(tpp, (f) => `./${folderFor(tpp.name)}/${f}`),
          null,
          2,
        )}\n`,
      },
    ];
    await sessions.add(ctx, record, files, deps.config.portal.downloadSeconds);
    deps.logger.info({ event: 'portal.tpp_created', orgId: tpp.orgId, softwareId: tpp.softwareId }, 'sandbox TPP created in the portal');
    // Post/redirect/get: a reload must not make a second TPP.
    ctx.status = 303;
    ctx.redirect(`${PORTAL_PATH}?created=${encodeURIComponent(record.id)}#tpp-${record.id}`);
  });

  router.get('/tpps/:id/:file', async (ctx) => {
    const name = ctx.params.file!;
    const file = DOWNLOADABLE.has(name) ? await sessions.file(ctx, ctx.params.id!, name) : undefined;
    if (file === undefined) {
      throw new OAuthError('not_found', 'No such file for a TPP this browser created, or its download time is over: create new credentials.');
    }
    ctx.type = name.endsWith('.json') ? 'application/json' : name.endsWith('.jwt') ? 'application/jwt' : 'application/x-pem-file';
    ctx.set('Content-Disposition', `attachment; filename="${name}"`);
    ctx.body = file.content;
  });

  router.get('/calls/:interactionId', async (ctx) => {
    const tpps = await sessions.tpps(ctx);
    const interactionId = ctx.params.interactionId!;
    const calls = deps.diagnostics === undefined || tpps.length === 0 ? [] : await deps.diagnostics.callsFor(await ownersOf(tpps), interactionId);
    if (calls.length === 0) throw new OAuthError('not_found', 'No recent call with that interaction id was made with the credentials this browser created.');
    ctx.type = 'html';
    ctx.body = views.render('portal-call', { interactionId, calls: calls.map((c) => describeCall(c, tpps)) });
  });

  return router;
}

function validate(input: FormInput, uris: string[]): Record<string, string> {
  const errors: Record<string, string> = {};
  const nameProblem = sandboxTppNameProblem(input.name);
  if (nameProblem !== undefined) errors.name = nameProblem;
  if (input.roles.length === 0 || input.roles.some((r) => !(ROLES as readonly string[]).includes(r))) errors.roles = 'Choose at least one role.';
  if (uris.length === 0 || uris.length > MAX_REDIRECT_URIS) errors.redirect_uris = `Give 1 to ${MAX_REDIRECT_URIS} redirect URIs, one per line.`;
  else {
    const bad = uris.find((u) => !URL.canParse(u) || new URL(u).protocol !== 'https:' || new URL(u).hash !== '');
    if (bad !== undefined) errors.redirect_uris = `${bad.slice(0, 100)} is not an https URL without a fragment (FAPI 2.0 SP §5.3.2.2, RFC 6749 §3.1.2).`;
  }
  return errors;
}

/** The folder the quick start keeps a TPP's downloads in. */
function folderFor(name: string): string {
  const slug = name
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 30);
  return slug === '' ? 'tpp' : slug;
}

function quickStart(issuer: string, tpp: PortalTpp) {
  const dir = folderFor(tpp.name);
  const redirect = tpp.redirectUris[0]!;
  const scope = ['openid', ...tpp.roles.map((r) => ({ AISP: 'accounts', PISP: 'payments', CBPII: 'fundsconfirmations' })[r] ?? [])].flat().join(' ');
  const tls = `--cacert ${dir}/server-ca.pem --cert ${dir}/transport.pem --key ${dir}/transport.key`;
  return {
    dir,
    curl: [
      `mkdir ${dir}   # put the downloaded files in it`,
      `TLS="${tls} -s"`,
      `curl $TLS -H 'content-type: application/json' --data @${dir}/registration.json ${issuer}/register`,
      'CLIENT_ID=…   # client_id from the answer',
      "VERIFIER=$(openssl rand -base64 48 | tr -d '=+/\\n' | cut -c1-64)",
      "CHALLENGE=$(printf %s \"$VERIFIER\" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')",
      `curl $TLS -d client_id=$CLIENT_ID -d response_type=code -d scope='${scope}' -d redirect_uri=${redirect} \\`,
      `     -d code_challenge=$CHALLENGE -d code_challenge_method=S256 ${issuer}/par`,
      `# open ${issuer}/authorize?client_id=$CLIENT_ID&request_uri=<request_uri>, sign in as alice / alice-sandbox, Allow`,
      `curl $TLS -d grant_type=authorization_code -d client_id=$CLIENT_ID -d code=$CODE -d redirect_uri=${redirect} -d code_verifier=$VERIFIER ${issuer}/token`,
      `curl $TLS -H "authorization: Bearer $ACCESS_TOKEN" ${issuer}/sandbox-api/accounts`,
    ].join('\n'),
    // The other pair FAPI 2.0 allows (SP §5.3.2.1): private_key_jwt with the SSA's key, DPoP-bound tokens.
    privateKeyJwt: [
      `curl $TLS -H 'content-type: application/json' --data @- ${issuer}/register <<EOF`,
      `{"software_statement": "$(cat ${dir}/ssa.jwt)",`,
      ` "redirect_uris": ["${redirect}"],`,
      ' "token_endpoint_auth_method": "private_key_jwt",',
      ' "token_endpoint_auth_signing_alg": "ES256",',
      ' "dpop_bound_access_tokens": true,',
      ' "grant_types": ["authorization_code", "refresh_token", "client_credentials"],',
      ' "response_types": ["code"],',
      ` "scope": "${scope}"}`,
      'EOF',
      `# then, without a certificate: a client assertion signed with ${dir}/signing.jwks.json (its kid; aud = ${issuer}),`,
      '# a DPoP proof of a key of your own on every token and API request, and dpop_jkt (its RFC 7638 thumbprint) at PAR',
    ].join('\n'),
    typescript: [
      '# In a clone of Moat: register, PAR, consent as alice, token, introspection — over mutual TLS (oauth4webapi)',
      `npm run first-call -- --issuer ${issuer} --credentials ./${dir}`,
      '# the same with private_key_jwt (the signing key) and DPoP-bound tokens: no certificate after registration',
      `npm run first-call -- --issuer ${issuer} --credentials ./${dir} --auth private_key_jwt --dpop`,
    ].join('\n'),
    diagnose: `npm run moat -- diagnose --issuer ${issuer} --credentials ${dir}`,
    lookup: `curl $TLS ${issuer}/diagnostics/calls/<x-fapi-interaction-id>`,
  };
}

/** The portal shows one list: the sandbox TPPs are this browser's own, so a call in their name is theirs too. */
function newestOf(recent: RecentCalls, limit: number): CallRecord[] {
  return [...recent.made, ...recent.named].sort((a, b) => b.at.localeCompare(a.at)).slice(0, limit);
}

/** A call as the portal shows it: which TPP, what happened, and why. */
function describeCall(call: CallRecord, tpps: PortalTpp[]) {
  const tpp = tpps.find((t) => t.thumbprint === call.certificate?.['x5t#S256']);
  return {
    ...call,
    tppName: tpp?.name ?? call.clientId ?? 'unknown',
    when: call.at.replace('T', ' ').slice(0, 19),
    ok: call.status < 400,
  };
}
