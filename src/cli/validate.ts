// Checks of identifiers given on the command line: the one ID rule of src/users/ids.ts, as a one-line CLI error.
import { InvalidIdError, parseId } from '../users/ids.ts';
import { CliError } from './context.ts';

/** The canonical (NFC) form of an ID argument, so `user add` stores what the login and the APIs look up. */
export function validateId(label: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new CliError(`missing ${label}`);
  try {
    return parseId(label, value);
  } catch (err) {
    // The reason never echoes the value: it may be a password typed into the wrong argument.
    if (err instanceof InvalidIdError) throw new CliError(err.message);
    throw err;
  }
}
