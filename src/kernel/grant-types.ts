/** The CIBA grant type (OpenID Connect CIBA Core 1.0 §10.1). */
export const CIBA_GRANT_TYPE = 'urn:openid:params:grant-type:ciba';
