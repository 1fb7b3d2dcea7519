import type { webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import * as x509 from '../pki/x509.ts';

/*
 * What a CA publishes about revocation, built with pkijs (OCSP, RFC 6960) and @peculiar/x509
 * (CRLs, RFC 5280 §5): the sandbox TPP CA answers with these, and the tests' loopback CA does too.
 */

type CryptoKey = webcrypto.CryptoKey;

export interface CaSigner {
  certificate: x509.X509Certificate;
  key: CryptoKey;
}

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: globalThis.crypto });
const OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';

/** A CRL listing `revoked` (serial hex → when), valid for an hour. */
export async function buildCrl(ca: CaSigner, revoked: ReadonlyMap<string, Date>, signingKey: CryptoKey = ca.key): Promise<Buffer> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.certificate.subject,
    thisUpdate: new Date(Date.now() - 60_000),
    nextUpdate: new Date(Date.now() + 3_600_000),
    entries: [...revoked].map(([serialNumber, revocationDate]) => ({ serialNumber, revocationDate, reason: x509.X509CrlReason.keyCompromise })),
    signingKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return Buffer.from(crl.rawData);
}

/** An OCSP response to a DER request, signed by the CA itself (RFC 6960 §4.2.2.2). */
export async function answerOcsp(ca: CaSigner, requestDer: Uint8Array, revoked: ReadonlyMap<string, Date>, signingKey: CryptoKey = ca.key): Promise<Buffer> {
  let request: pkijs.OCSPRequest;
  try {
    request = pkijs.OCSPRequest.fromBER(requestDer);
  } catch {
    // RFC 6960 §2.3 malformedRequest.
    return Buffer.from(new pkijs.OCSPResponse({ responseStatus: new asn1js.Enumerated({ value: 1 }) }).toSchema().toBER());
  }
  const basic = new pkijs.BasicOCSPResponse();
  basic.tbsResponseData.responderID = pkijs.Certificate.fromBER(ca.certificate.rawData).subject;
  basic.tbsResponseData.producedAt = new Date();
  for (const { reqCert } of request.tbsRequest.requestList) {
    const serial = Buffer.from(reqCert.serialNumber.valueBlock.valueHexView).toString('hex').replace(/^0+/, '');
    const revokedAt = [...revoked].find(([s]) => s.replace(/^0+/, '') === serial)?.[1];
    basic.tbsResponseData.responses.push(
      new pkijs.SingleResponse({
        certID: reqCert,
        certStatus:
          revokedAt === undefined
            ? new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 }, lenBlock: { length: 0 } } as never)
            : new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 1 }, value: [new asn1js.GeneralizedTime({ valueDate: revokedAt })] }),
        thisUpdate: new Date(Date.now() - 60_000),
        nextUpdate: new Date(Date.now() + 3_600_000),
      }),
    );
  }
  await basic.sign(signingKey, 'SHA-256', engine);
  const response = new pkijs.OCSPResponse({
    responseStatus: new asn1js.Enumerated({ value: 0 }),
    responseBytes: new pkijs.ResponseBytes({ responseType: OCSP_BASIC, response: new asn1js.OctetString({ valueHex: basic.toSchema().toBER() }) }),
  });
  return Buffer.from(response.toSchema().toBER());
}
