// Parsing of one CLI (sub)command's arguments: strict (an unknown option is an error), one-line errors that end
// with the command's usage, and option values that look like negative numbers read as values.
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { CliError } from './context.ts';

type Parsed<O extends ParseArgsOptionsConfig> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>;

/**
 * `usage` is the command's one-line synopsis; `positionals.max` bounds the positional arguments (extra ones are an
 * error, as unknown options are: a flag the operator believes was applied must not be silently ignored).
 */
export function parseCommand<O extends ParseArgsOptionsConfig>(args: string[], options: O, usage: string, positionals: { max?: number } = {}): Parsed<O> {
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ args: joinNegativeValues(args, options), options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError(`${parseProblem(err)}; usage: ${usage}`);
  }
  const max = positionals.max ?? Infinity;
  if (parsed.positionals.length > max) throw new CliError(`unexpected argument "${parsed.positionals[max]!.slice(0, 80)}"; usage: ${usage}`);
  return parsed;
}

/** Positionals only, for commands without options (`--help` is handled before any command runs). */
export function parsePositionals(args: string[], usage: string, max: number): string[] {
  return parseCommand(args, {}, usage, { max }).positionals;
}

/**
 * `--max-users -5`: node:util reads `-5` as an option and the operator gets a three-line message about dashes.
 * A string option followed by a number is its value, so the command's own range check answers in one line.
 */
function joinNegativeValues(args: string[], options: ParseArgsOptionsConfig): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    if (arg.startsWith('--') && !arg.includes('=') && options[arg.slice(2)]?.type === 'string' && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

function parseProblem(err: unknown): string {
  const code = (err as { code?: string }).code;
  const message = err instanceof Error ? err.message : String(err);
  const option = /option '([^']+)'/i.exec(message)?.[1]?.replace(/ <value>$/, '');
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) return `unknown option ${option}`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option) {
    if (message.includes('ambiguous')) return `the value of ${option} starts with a dash: write ${option}=VALUE`;
    return message.includes('argument missing') ? `option ${option} needs a value` : `option ${option} takes no value`;
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return 'unexpected argument';
  return message.split('\n')[0]!;
}

/** A whole-number option within bounds, or undefined when absent; anything else is a one-line error naming the flag. */
export function wholeNumber(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value) || Number(value) < min || Number(value) > max)
    throw new CliError(`${flag} must be a whole number from ${min} to ${max}, got "${value.slice(0, 40)}"`);
  return Number(value);
}
