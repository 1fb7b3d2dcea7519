import type Provider from 'oidc-provider';

/*
 * Authorization codes for the token-endpoint benchmark, made in bulk before each measurement.
 *
 * FAPI 2.0 SP §5.3.2.1 lets a code live at most 60 s, and the whole flow (PAR → authorize → login →
 * consent) is far slower than redeeming a code, so the codes for a 10 s measurement cannot come from
 * that many real flows. Instead one real flow produces a template code; each clone gets its own
 * grant and its own customer session (as each real flow would: a code is bound to the session that
 * granted it), and Moat's clone its own consent through the consent service, so redemption does
 * exactly the work a real code's does. Everything goes through oidc-provider's public model API and
 * therefore through each server's own adapter.
 */

/** Fields of a stored model without its identity and lifetime, so `save()` issues fresh ones. */
function withoutIdentity(model: object): Record<string, unknown> {
  const { jti: _jti, iat: _iat, exp: _exp, consumed: _consumed, ...fields } = model as Record<string, unknown>;
  return fields;
}

interface Template {
  code: Record<string, unknown>;
  grant: Record<string, unknown>;
  grantId: string;
  clientId: string;
  session: Record<string, unknown> & { authorizations?: Record<string, Record<string, unknown>> };
  sessionTtl: number;
}

/** Called once per cloned grant, before its code is saved (Moat records the consent here). */
export type OnGrant = (clone: { templateGrantId: string; grantId: string; clientId: string; accountId: string }) => Promise<void>;

export function createCodeMinter(provider: Provider, onGrant?: OnGrant): (templateCode: string, count: number) => Promise<string[]> {
  const templates = new Map<string, Template>();

  // The template is read once and kept: the template code itself expires after 60 s.
  const templateOf = async (templateCode: string): Promise<Template> => {
    let template = templates.get(templateCode);
    if (template !== undefined) return template;
    const code = await provider.AuthorizationCode.find(templateCode);
    if (code?.grantId === undefined || code.clientId === undefined) throw new Error('the template authorization code is unknown or has no grant');
    const grant = await provider.Grant.find(code.grantId);
    if (grant === undefined) throw new Error("the template code's grant is gone");
    const session = code.sessionUid === undefined ? undefined : await provider.Session.findByUid(code.sessionUid);
    if (session === undefined) throw new Error("the template code's session is gone");
    const { uid: _uid, ...sessionFields } = withoutIdentity(session);
    template = {
      code: withoutIdentity(code),
      grant: withoutIdentity(grant),
      grantId: code.grantId,
      clientId: code.clientId,
      session: sessionFields,
      sessionTtl: (session.exp ?? 0) - (session.iat ?? 0),
    };
    templates.set(templateCode, template);
    return template;
  };

  const mintOne = async (template: Template): Promise<string> => {
    const grant = new provider.Grant(template.grant as ConstructorParameters<typeof provider.Grant>[0]);
    const grantId = await grant.save();
    await onGrant?.({ templateGrantId: template.grantId, grantId, clientId: template.clientId, accountId: String(template.grant.accountId) });
    // The session's authorization for the client names the new grant, as after a real consent.
    const authorizations = { ...template.session.authorizations, [template.clientId]: { ...template.session.authorizations?.[template.clientId], grantId } };
    // The typings give Session's constructor no argument; oidc-provider's BaseModel takes the payload.
    const SessionModel = provider.Session as unknown as new (payload: Record<string, unknown>) => InstanceType<typeof provider.Session>;
    const session = new SessionModel({ ...template.session, authorizations });
    await session.save(template.sessionTtl);
    const code = new provider.AuthorizationCode({ ...template.code, grantId, sessionUid: session.uid } as ConstructorParameters<
      typeof provider.AuthorizationCode
    >[0]);
    return code.save();
  };

  return async (templateCode, count) => {
    const template = await templateOf(templateCode);
    const codes: string[] = [];
    // A few at a time: storage round trips overlap without flooding the event loop.
    const PARALLEL = 8;
    for (let done = 0; done < count; done += PARALLEL) {
      const batch = Math.min(PARALLEL, count - done);
      codes.push(...(await Promise.all(Array.from({ length: batch }, () => mintOne(template)))));
    }
    return codes;
  };
}
