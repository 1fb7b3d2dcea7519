import { defaultText, textIn } from '../../src/config/localised-text.ts';

/*
 * Which of a bank's texts a page shows (issue 18 point 8): the page language's own entry, then one
 * for its language alone, then the default; one text is every language's.
 */

describe("a bank's text in a page's language", () => {
  const charges = { default: 'No charge', pt: 'Sem tarifa', 'pt-PT': 'Sem comissão', 'en-US': 'No fee' };

  it("shows the page language's own entry", () => {
    expect(textIn(charges, 'pt-PT')).toBe('Sem comissão');
    expect(textIn(charges, 'en-us')).toBe('No fee');
  });

  it('falls back to the entry for the language alone, then to another region of it, then to the default', () => {
    expect(textIn(charges, 'pt-BR')).toBe('Sem tarifa');
    expect(textIn({ default: 'No charge', 'pt-PT': 'Sem comissão' }, 'pt-BR')).toBe('Sem comissão');
    expect(textIn(charges, 'de')).toBe('No charge');
  });

  it('shows one text in every language, and nothing when none is configured', () => {
    expect(textIn('No charge', 'pt-BR')).toBe('No charge');
    expect(textIn(undefined, 'pt-BR')).toBeUndefined();
    expect(defaultText(charges)).toBe('No charge');
    expect(defaultText('Moat Bank')).toBe('Moat Bank');
  });
});
