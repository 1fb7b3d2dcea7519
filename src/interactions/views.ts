import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Eta } from 'eta';

/** The top-level views/ folder: server-rendered pages, escaped by default (`<%= %>`). */
export const VIEWS_DIR = join(import.meta.dirname, '..', '..', 'views');

export interface Views {
  render(name: 'login' | 'consent' | 'error', data: Record<string, unknown>): string;
  /** The stylesheet, served from /assets/moat.css (CSP allows only same-origin styles). */
  stylesheet: string;
}

export function createViews(common: { bankName: string; sandbox: boolean }): Views {
  const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true });
  return {
    render: (name, data) => eta.render(`./${name}`, { ...common, ...data }),
    stylesheet: readFileSync(join(VIEWS_DIR, 'assets', 'moat.css'), 'utf8'),
  };
}
