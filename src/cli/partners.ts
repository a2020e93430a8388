// CLI: partner add | list | remove — the partner S-IdMS trusted in both directions, with keys provisioned out of band.
import fs from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { recordAudit } from '../audit/store.ts';
import { addPartner, describePartnerKeys, InvalidPartnerError, listPartners, parseCertificate, parseJwks, parsePartnerIssuer, removePartner, type PartnerKeys } from '../federation/partners.ts';
import { CliError, readAllStdin, withDatabase, type CliIo } from './context.ts';

const USAGE = 'usage: partner add <issuer> (--jwks FILE | --cert PEM) · partner list · partner remove <issuer>   (FILE/PEM may be "-" for stdin)';

export async function partnerCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'add') {
    const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { jwks: { type: 'string' }, cert: { type: 'string' } } });
    if (positionals.length !== 1 || (values.jwks === undefined) === (values.cert === undefined)) throw new CliError(USAGE);
    const input = await readInput(io, (values.jwks ?? values.cert)!, values.jwks !== undefined ? 'JWKS' : 'certificate');
    await withDatabase(io, async ({ config, database: { db }, out }) => {
      const issuer = invalidAsCli(() => parsePartnerIssuer(positionals[0], config.issuer));
      const keys: PartnerKeys = invalidAsCli(() => (values.jwks !== undefined ? { jwks: parseJwks(input) } : { certificate: parseCertificate(input) }));
      const outcome = await addPartner(db, issuer, keys);
      await recordAudit(db, { actor: 'cli', action: 'partner.add', subject: issuer, result: 'success', details: { form: keys.jwks ? 'jwks' : 'certificate', outcome } });
      out(`${outcome} partner ${issuer} (${describePartnerKeys({ issuer, jwks: keys.jwks ?? null, certificate: keys.certificate ?? null, policy: {}, createdAt: new Date() })})`);
    });
    return;
  }
  if (sub === 'list') {
    await withDatabase(io, async ({ database: { db }, out }) => {
      for (const p of await listPartners(db)) out([p.issuer, describePartnerKeys(p), p.createdAt.toISOString()].join('\t'));
    });
    return;
  }
  if (sub === 'remove') {
    if (rest.length !== 1) throw new CliError(USAGE);
    const issuer = rest[0]!;
    await withDatabase(io, async ({ database: { db }, out }) => {
      if (!(await removePartner(db, issuer))) throw new CliError(`no partner ${issuer}`);
      await recordAudit(db, { actor: 'cli', action: 'partner.remove', subject: issuer, result: 'success' });
      out(`removed partner ${issuer}: token exchange to it and its security tokens are refused from now on`);
    });
    return;
  }
  throw new CliError(USAGE);
}

/** "-" is stdin (e.g. piped from the partner's `keys export`); inline PEM text is accepted for --cert; else a file path. */
async function readInput(io: CliIo, where: string, what: string): Promise<string> {
  if (where === '-') return readAllStdin(io.stdin);
  if (where.startsWith('-----BEGIN')) return where;
  try {
    return await fs.readFile(where, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${what} from ${where}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function invalidAsCli<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof InvalidPartnerError) throw new CliError(err.message);
    throw err;
  }
}
