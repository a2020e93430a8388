// Checks of identifiers given on the command line, with the same limits as the HTTP APIs.
import { CliError } from './context.ts';

export const MAX_ID_LENGTH = 255;
// Printable, no whitespace or control characters: IDs end up in tokens, logs and URLs.
const ID_PATTERN = /^[\x21-\x7e\u00a0-\uffff]+$/u;

export function validateId(label: string, value: string | undefined): string {
  if (!value) throw new CliError(`missing ${label}`);
  if (value.length > MAX_ID_LENGTH || !ID_PATTERN.test(value)) {
    throw new CliError(`invalid ${label} "${value.slice(0, 40)}": 1 to ${MAX_ID_LENGTH} printable characters without spaces`);
  }
  return value;
}
