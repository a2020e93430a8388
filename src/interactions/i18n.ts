// Which language a page is shown in: the client's ui_locales (OIDC Core §3.1.2.1), then the browser's
// Accept-Language (RFC 9110 §12.5.4), then English. One file of texts per language in ./locales/.
import { de } from './locales/de.ts';
import { en, type Messages, type PluralText } from './locales/en.ts';

// A Map, not an object literal: a language range such as "constructor" must find nothing.
const LOCALES: ReadonlyMap<string, Messages> = new Map([
  ['en', en],
  ['de', de],
]);
/** Discovery `ui_locales_supported` (OIDC Discovery §3), in the order `*` falls back through. */
export const SUPPORTED_LOCALES: readonly string[] = [...LOCALES.keys()];
const FALLBACK = en;
// Enough for any real preference list; a longer one is read only this far.
const MAX_RANGES = 32;

/** RFC 4647 §3.4 lookup: the range itself, then ever shorter prefixes ("de-CH-1996" → "de-CH" → "de"). */
function lookup(range: string): Messages | undefined {
  const subtags = range.toLowerCase().split('-');
  for (let n = subtags.length; n > 0; n--) {
    const found = LOCALES.get(subtags.slice(0, n).join('-'));
    if (found) return found;
  }
  return undefined;
}

// RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;
// RFC 4647 §2.1 language-range: 1*8ALPHA *("-" 1*8alphanum) / "*".
const RANGE = /^(?:\*|[a-z]{1,8}(?:-[a-z0-9]{1,8})*)$/i;

type WeightedRange = { range: string; q: number };

/** Accept-Language as ranges by descending weight (equal weights keep their order); malformed members are skipped. */
export function parseAcceptLanguage(header: string | undefined): WeightedRange[] {
  const ranges: WeightedRange[] = [];
  for (const member of (header ?? '').split(',').slice(0, MAX_RANGES)) {
    const [rangePart, ...params] = member.split(';').map((p) => p.trim());
    if (!rangePart || !RANGE.test(rangePart)) continue;
    let q = 1;
    const weight = params.find((p) => /^q=/i.test(p));
    if (weight !== undefined) {
      const value = weight.slice(2);
      if (!QVALUE.test(value)) continue;
      q = Number(value);
    }
    ranges.push({ range: rangePart, q });
  }
  return ranges.sort((a, b) => b.q - a.q);
}

function fromAcceptLanguage(header: string | undefined): Messages | undefined {
  const ranges = parseAcceptLanguage(header);
  // q=0 means "not acceptable" (RFC 9110 §12.4.2): such a language is never chosen, not even for "*".
  const refused = new Set(ranges.filter((r) => r.q === 0).map((r) => lookup(r.range)?.lang));
  for (const { range, q } of ranges) {
    if (q === 0) break;
    // "*" matches every language not named elsewhere in the field: the first one we have that is not refused.
    const found = range === '*' ? SUPPORTED_LOCALES.map((tag) => LOCALES.get(tag)!).find((m) => !refused.has(m.lang)) : lookup(range);
    if (found && !refused.has(found.lang)) return found;
  }
  return undefined;
}

/**
 * The texts for a page: the first of the client's `ui_locales` (space-separated BCP 47 tags, most preferred first;
 * OIDC Core §3.1.2.1, RP-Initiated Logout §2) that we have, else the browser's Accept-Language, else English.
 */
export function chooseMessages(uiLocales: unknown, acceptLanguage: string | undefined): Messages {
  if (typeof uiLocales === 'string') {
    for (const tag of uiLocales.split(' ').filter(Boolean).slice(0, MAX_RANGES)) {
      const found = RANGE.test(tag) && tag !== '*' ? lookup(tag) : undefined;
      if (found) return found;
    }
  }
  return fromAcceptLanguage(acceptLanguage) ?? FALLBACK;
}

/** A text with {name} slots filled in (plain text, for a {{…}} placeholder that escapes it). */
export function formatText(text: string, values: Record<string, string | number>): string {
  return text.replace(/\{(\w+)\}/g, (slot, name: string) => (Object.hasOwn(values, name) ? String(values[name]) : slot));
}

/** The form of a counted text that the page's language uses for `count` (Intl.PluralRules), filled in. */
export function formatCount(t: Messages, text: PluralText, count: number, slot: string): string {
  const category = new Intl.PluralRules(t.lang).select(count);
  return formatText((category === 'one' ? text.one : undefined) ?? text.other, { [slot]: count });
}

/** The texts for a request: its ui_locales (when the caller has them), then its Accept-Language header. */
export function messagesFor(request: { get(field: string): string }, uiLocales?: unknown): Messages {
  return chooseMessages(uiLocales, request.get('accept-language') || undefined);
}
