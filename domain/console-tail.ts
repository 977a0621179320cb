/** What a failed boot test quotes of the guest's serial console: pure, so it is tested as a unit. */

/** At most this many lines, each cut to CONSOLE_LINE_CHARS: a result, a status line and an email stay small. */
export const CONSOLE_LINES = 8;
export const CONSOLE_LINE_CHARS = 160;

/** `password: x`, `token=x`, `API_KEY = x`...: the value is masked, the word kept (it says what was there). */
const SECRET_VALUE =
  /\b((?:password|passwd|passphrase|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credential)s?)(\s*[:=]\s*)\S+/gi;
/** A long run of key-like characters (a key, a hash, a base64 blob): masked whatever it is. */
const KEY_LIKE = /[A-Za-z0-9+/=_-]{40,}/g;
// eslint-disable-next-line no-control-regex -- terminal escape sequences and control characters are the point
const ESCAPES = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_])/g;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g;

/** How much of its console log the boot probe reads each time (it asks for a byte more, to tell a cut). */
export const CONSOLE_TAIL_BYTES = 4096;

/**
 * The console log's tail as `tail -c CONSOLE_TAIL_BYTES+1` gave it, starting at a whole line: when more
 * than CONSOLE_TAIL_BYTES came, the first line began before the tail and is dropped (a cut `…sword: x`
 * would escape the mask, and a cut line could match the pattern by chance).
 */
export function wholeLinesOfTail(read: Buffer): string {
  if (read.length <= CONSOLE_TAIL_BYTES) return read.toString('utf8');
  const newline = read.indexOf(0x0a);
  return newline < 0 ? '' : read.subarray(newline + 1).toString('utf8');
}

/** One console line fit to be kept and shown: no terminal escapes or control characters, secrets masked, cut short. */
export function cleanConsoleLine(line: string): string {
  const clean = line
    .replace(ESCAPES, '')
    .replace(CONTROL, ' ')
    .replace(SECRET_VALUE, '$1$2[masked]')
    .replace(KEY_LIKE, '[masked]')
    .trim();
  return clean.length > CONSOLE_LINE_CHARS ? `${clean.slice(0, CONSOLE_LINE_CHARS - 1)}…` : clean;
}

/** The first line of the tail matching the boot test's pattern, cleaned for the result (see cleanConsoleLine). */
export function matchingConsoleLine(tail: string, pattern: RegExp): string | undefined {
  const line = tail.split('\n').find((l) => pattern.test(l));
  return line === undefined ? undefined : cleanConsoleLine(line);
}

/**
 * The last lines the guest printed, fit to be kept and shown: each as cleanConsoleLine makes it, blank lines
 * dropped, at most CONSOLE_LINES lines. `tail` starts at a whole line (see wholeLinesOfTail).
 */
export function consoleLines(tail: string): string[] {
  return tail
    .replace(ESCAPES, '')
    .split(/\r\n|\r|\n/)
    .map(cleanConsoleLine)
    .filter((line) => line.length > 0)
    .slice(-CONSOLE_LINES);
}
