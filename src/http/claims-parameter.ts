/**
 * The OIDC Core §5.5 `claims` request parameter as an object: oidc-provider hands it over as the
 * JSON string the client sent (or already parsed); anything that is not a JSON object is no request.
 */
export function claimsParameter(claims: unknown): Record<string, unknown> | undefined {
  let parsed = claims;
  if (typeof claims === 'string') {
    try {
      parsed = JSON.parse(claims);
    } catch {
      return undefined;
    }
  }
  return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
}
