import { OAuthError } from './oauth-error.ts';

/*
 * A form post refused before it is read (its CSRF token is missing, wrong or expired: http/csrf.ts).
 * In the kernel so the error page's dialect (error-responses.ts) can tell the customer their form
 * expired rather than that the request was wrong.
 */
export class FormRefused extends OAuthError {
  constructor(description: string) {
    super('invalid_request', description);
    this.name = 'FormRefused';
  }
}
