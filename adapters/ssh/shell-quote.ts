/**
 * POSIX shell quoting. Every remote command line is assembled from `quote`d words, so no file or VM name,
 * however hostile (spaces, quotes, newlines, `;`, `$(...)`, leading `-`), can change what runs.
 */
export function quote(word: string): string {
  if (word.includes('\0')) throw new Error('a shell word cannot contain a NUL byte');
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A command line from words; each word is quoted. */
export function commandLine(words: readonly string[]): string {
  if (words.length === 0) throw new Error('empty command');
  return words.map(quote).join(' ');
}
