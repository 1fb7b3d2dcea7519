/*
 * Who regulates a TPP, as a customer reads it: the consent screen names the regulator ("Financial
 * Conduct Authority (FCA)", "BaFin") and the authorisation number, never the raw identifier.
 *
 * ETSI TS 119 495 §5.2.1: a PSD2 QWAC's organizationIdentifier is "PSD" + the NCA's ISO 3166
 * country code + "-" + the NCA identifier + "-" + the authorisation number, e.g. PSDGB-FCA-123456.
 * Open Finance Brasil certificates carry "OFBBR-" + the directory's organisation id, which is an
 * internal id of the directory, not an authorisation number: only the regulator is shown.
 */

/** National competent authorities by ETSI TS 119 495 country and NCA id (EBA register abbreviations). */
const NCA_NAMES: Record<string, string> = {
  'GB-FCA': 'Financial Conduct Authority (FCA)',
  'DE-BAFIN': 'BaFin',
  'FR-ACPR': 'Autorité de contrôle prudentiel et de résolution (ACPR)',
  'IE-CBI': 'Central Bank of Ireland',
  'NL-DNB': 'De Nederlandsche Bank (DNB)',
  'ES-BE': 'Banco de España',
  'IT-BI': "Banca d'Italia",
  'BE-NBB': 'National Bank of Belgium',
  'LU-CSSF': 'Commission de Surveillance du Secteur Financier (CSSF)',
  'LT-BOL': 'Bank of Lithuania',
  'SE-FINA': 'Finansinspektionen',
  'DK-DFSA': 'Danish Financial Supervisory Authority',
  'FI-FINFSA': 'Finnish Financial Supervisory Authority',
  'AT-FMA': 'Austrian Financial Market Authority (FMA)',
  'PL-PFSA': 'Polish Financial Supervision Authority (KNF)',
  // The sandbox's own test certificates (src/sandbox/tpp-credentials.ts).
  'GB-SBX': 'Sandbox test regulator',
};

export interface Regulator {
  /** The regulator's name, or the raw NCA id when Moat does not know it. */
  name: string;
  /** The TPP's authorisation number at that regulator, when the certificate carries one. */
  authorisationNumber?: string;
}

/** The regulator named by a certificate's organizationIdentifier, or undefined when it names none. */
export function regulatorOf(organizationIdentifier: string | undefined): Regulator | undefined {
  if (organizationIdentifier === undefined) return undefined;
  if (organizationIdentifier.startsWith('OFBBR-')) return { name: 'Banco Central do Brasil' };
  const psd2 = /^PSD([A-Z]{2})-([A-Z]{2,8})-(.+)$/.exec(organizationIdentifier);
  if (psd2 === null) return undefined;
  const [, country, nca, number] = psd2;
  return { name: NCA_NAMES[`${country}-${nca}`] ?? `${nca} (${country})`, authorisationNumber: number! };
}
