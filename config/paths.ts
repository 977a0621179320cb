import { z } from 'zod';

/** A path as the config gives it: absolute (relative ones were resolved against the config file). */
export const absolutePath = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/'), 'must be an absolute path (relative paths are resolved against the config file)')
  .refine((p) => !/[\0\n\r]/.test(p), 'must not contain NUL or line breaks');
