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

/**
 * The last lines the guest printed, fit to be kept and shown: terminal escapes and control characters
 * removed, blank lines dropped, anything that looks like a secret masked, at most CONSOLE_LINES lines of
 * at most CONSOLE_LINE_CHARS characters. The first line of a tail cut mid-line is kept: it is the end of one.
 */
export function consoleLines(tail: string): string[] {
  return tail
    .replace(ESCAPES, '')
    .split(/\r\n|\r|\n/)
    .map((line) =>
      line.replace(CONTROL, ' ').replace(SECRET_VALUE, '$1$2[masked]').replace(KEY_LIKE, '[masked]').trim(),
    )
    .filter((line) => line.length > 0)
    .slice(-CONSOLE_LINES)
    .map((line) => (line.length > CONSOLE_LINE_CHARS ? `${line.slice(0, CONSOLE_LINE_CHARS - 1)}…` : line));
}
