/**
 * A shell function, `cb_sha256`, printing the SHA-256 of its standard input as 64 hex digits: OpenSSL's
 * where the host has it (it uses the CPU's SHA instructions: 1.0 GB/s on the machine this was written on,
 * where coreutils' sha256sum does 0.26 GB/s and so capped every disk read it hashed), else sha256sum.
 * Put it before a script that calls it (`${SHA256_FUNCTION}; cb_sha256 < file`).
 */
export const SHA256_FUNCTION =
  'cb_sha256() { if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r | cut -c1-64; ' +
  'else sha256sum | cut -c1-64; fi; }';
