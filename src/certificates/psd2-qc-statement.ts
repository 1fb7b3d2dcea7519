import { AsnArray, AsnConvert, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { id_pe_qcStatements, QCStatement, QCStatements } from '@peculiar/asn1-x509-qualified';

/*
 * The PSD2 QCStatement of an eIDAS certificate (ETSI TS 119 495 §5.1): the PSP roles the national
 * competent authority (NCA) authorised, and which NCA. Declared as an ASN.1 schema for
 * @peculiar/asn1-schema (its decorators applied as plain calls, since Node runs Moat's TypeScript
 * by type stripping, which has no decorator syntax) inside the RFC 3739 QCStatements extension that
 * @peculiar/asn1-x509-qualified already models.
 *
 *   PSD2QcType ::= SEQUENCE { rolesOfPSP RolesOfPSP, nCAName NCAName, nCAId NCAId }
 *   RolesOfPSP ::= SEQUENCE OF RoleOfPSP
 *   RoleOfPSP ::= SEQUENCE { roleOfPspOid OBJECT IDENTIFIER, roleOfPspName UTF8String }
 */

export const ID_ETSI_PSD2_QC_STATEMENT = '0.4.0.19495.2';

/** ETSI TS 119 495 §5.1 role OIDs and the names PSD2 uses for them. */
export const PSD2_ROLES = {
  PSP_AS: '0.4.0.19495.1.1',
  PSP_PI: '0.4.0.19495.1.2',
  PSP_AI: '0.4.0.19495.1.3',
  PSP_IC: '0.4.0.19495.1.4',
} as const;
export type Psd2Role = keyof typeof PSD2_ROLES;

/** What each PSD2 role lets a TPP do, in the role names open banking directories use. */
export const SOFTWARE_ROLE_FOR_PSD2: Record<Psd2Role, string> = {
  PSP_AS: 'ASPSP',
  PSP_PI: 'PISP',
  PSP_AI: 'AISP',
  PSP_IC: 'CBPII',
};

class RoleOfPsp {
  roleOfPspOid = '';
  roleOfPspName = '';
}
AsnType({ type: AsnTypeTypes.Sequence })(RoleOfPsp);
AsnProp({ type: AsnPropTypes.ObjectIdentifier })(RoleOfPsp.prototype, 'roleOfPspOid');
AsnProp({ type: AsnPropTypes.Utf8String })(RoleOfPsp.prototype, 'roleOfPspName');

class RolesOfPsp extends AsnArray<RoleOfPsp> {
  constructor(items?: RoleOfPsp[]) {
    super(items);
    Object.setPrototypeOf(this, RolesOfPsp.prototype);
  }
}
AsnType({ type: AsnTypeTypes.Sequence, itemType: RoleOfPsp })(RolesOfPsp);

class Psd2QcType {
  rolesOfPSP = new RolesOfPsp();
  nCAName = '';
  nCAId = '';
}
AsnType({ type: AsnTypeTypes.Sequence })(Psd2QcType);
AsnProp({ type: RolesOfPsp })(Psd2QcType.prototype, 'rolesOfPSP');
AsnProp({ type: AsnPropTypes.Utf8String })(Psd2QcType.prototype, 'nCAName');
AsnProp({ type: AsnPropTypes.Utf8String })(Psd2QcType.prototype, 'nCAId');

export interface Psd2Attributes {
  /** Roles by name; a role OID this code does not know is reported by its OID. */
  roles: string[];
  ncaName: string;
  ncaId: string;
}

/** The PSD2 QCStatement in a qcStatements extension value (DER), if it carries one. */
export function parsePsd2QcStatement(qcStatementsDer: ArrayBuffer | Uint8Array): Psd2Attributes | undefined {
  const statements = AsnConvert.parse(qcStatementsDer, QCStatements);
  const psd2 = statements.find((s) => s.statementId === ID_ETSI_PSD2_QC_STATEMENT);
  if (psd2?.statementInfo === undefined) return undefined;
  const info = AsnConvert.parse(psd2.statementInfo, Psd2QcType);
  const names = Object.fromEntries(Object.entries(PSD2_ROLES).map(([name, oid]) => [oid, name]));
  return {
    roles: Array.from(info.rolesOfPSP, (r) => names[r.roleOfPspOid] ?? r.roleOfPspOid),
    ncaName: info.nCAName,
    ncaId: info.nCAId,
  };
}

/** The DER of a qcStatements extension with a PSD2 statement (for the sandbox CA's eIDAS-style certificates). */
export function encodePsd2QcStatements(attributes: { roles: Psd2Role[]; ncaName: string; ncaId: string }): ArrayBuffer {
  const info = new Psd2QcType();
  info.rolesOfPSP = new RolesOfPsp(attributes.roles.map((role) => Object.assign(new RoleOfPsp(), { roleOfPspOid: PSD2_ROLES[role], roleOfPspName: role })));
  info.nCAName = attributes.ncaName;
  info.nCAId = attributes.ncaId;
  const statement = new QCStatement();
  statement.statementId = ID_ETSI_PSD2_QC_STATEMENT;
  statement.statementInfo = AsnConvert.serialize(info);
  return AsnConvert.serialize(new QCStatements([statement]));
}

export { id_pe_qcStatements as QC_STATEMENTS_EXTENSION };
