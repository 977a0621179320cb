/**
 * Path templates name where a day's data lives, e.g. `/data/supim/{yyyy}/{ddd}`.
 * Pure and deterministic: used by workflows and activities alike.
 */
import type { CalendarDay } from './julian-day';

export const TEMPLATE_TOKENS = ['yyyy', 'yy', 'ddd', 'mm', 'dd'] as const;
export type TemplateToken = (typeof TEMPLATE_TOKENS)[number];

const TOKEN_PATTERN = /\{([^{}]*)\}/g;

/** Returns a list of problems; empty when the template is usable. */
export function checkPathTemplate(template: string): string[] {
  const problems: string[] = [];
  if (!template.startsWith('/')) problems.push('must be an absolute path');
  if (/[\0\n\r]/.test(template)) problems.push('must not contain NUL or line breaks');
  const tokens = [...template.matchAll(TOKEN_PATTERN)].map((m) => m[1] ?? '');
  for (const token of tokens) {
    if (!(TEMPLATE_TOKENS as readonly string[]).includes(token)) {
      problems.push(`unknown token {${token}} (known: ${TEMPLATE_TOKENS.map((t) => `{${t}}`).join(', ')})`);
    }
  }
  if (template.replace(TOKEN_PATTERN, '').match(/[{}]/)) problems.push('has an unbalanced { or }');
  const distinguishesDays = tokens.includes('ddd') || (tokens.includes('mm') && tokens.includes('dd'));
  if (!tokens.includes('yyyy') && !tokens.includes('yy')) problems.push('must contain {yyyy} or {yy}');
  if (!distinguishesDays) problems.push('must contain {ddd}, or both {mm} and {dd}');
  if (template.split('/').some((segment) => segment === '..' || segment === '.')) {
    problems.push('must not contain . or .. segments');
  }
  return problems;
}

export function renderPathTemplate(template: string, day: CalendarDay): string {
  const values: Record<TemplateToken, string> = {
    yyyy: String(day.year).padStart(4, '0'),
    yy: String(day.year % 100).padStart(2, '0'),
    ddd: String(day.dayOfYear).padStart(3, '0'),
    mm: String(day.month).padStart(2, '0'),
    dd: String(day.dayOfMonth).padStart(2, '0'),
  };
  return template.replace(TOKEN_PATTERN, (whole, token: string) => {
    if (!(token in values)) throw new Error(`path template ${template}: unknown token ${whole}`);
    return values[token as TemplateToken];
  });
}

/** The fixed folder a template's paths all lie under: `/data/supim/{yyyy}/{ddd}` -> `/data/supim`. */
export function templateRoot(template: string): string {
  const fixed = template.split('{')[0] ?? '';
  return fixed.slice(0, fixed.lastIndexOf('/')) || '/';
}
