import { z } from 'zod';

/** How a TPP names a customer's account (OBIE AccountIdentification): the schemes Moat accepts. */
export const ACCOUNT_SCHEMES = ['UK.OBIE.SortCodeAccountNumber', 'UK.OBIE.IBAN'] as const;

export const accountReference = z
  .strictObject({
    schemeName: z.enum(ACCOUNT_SCHEMES, { error: `schemeName must be one of ${ACCOUNT_SCHEMES.join(', ')}` }),
    identification: z.string().min(1).max(256),
    name: z.string().min(1).max(350).optional(),
  })
  .superRefine((account, ctx) => {
    if (account.schemeName === 'UK.OBIE.SortCodeAccountNumber' && !/^\d{14}$/.test(account.identification)) {
      ctx.addIssue({ code: 'custom', path: ['identification'], message: 'a sort code and account number is 14 digits' });
    }
    if (account.schemeName === 'UK.OBIE.IBAN' && !/^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/.test(account.identification)) {
      ctx.addIssue({
        code: 'custom',
        path: ['identification'],
        message: 'an IBAN is two letters, two check digits and up to 30 letters or digits, without spaces',
      });
    }
  });
export type AccountReference = z.infer<typeof accountReference>;
