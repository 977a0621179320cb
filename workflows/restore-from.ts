/**
 * The extra activity argument of a restore that reads an off-site repository: its name (a key of config
 * `offsite`, never a location or a password), and nothing at all otherwise, so that the activity inputs of a
 * restore from the primary store (and of every history recorded before off-site restores) stay as they were.
 */
export function fromOffsite(offsite: string | undefined): [] | [string] {
  return offsite === undefined ? [] : [offsite];
}
