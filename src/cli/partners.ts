// CLI: partner add | update | show | list | remove — the partner S-IdMS trusted in both directions, with keys
// provisioned out of band (TS 33.180 clause 5.1.4.2) and the policy applied to its security tokens.
import fs from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { NO_CACHE } from '../db/change-feed.ts';
import { changePartner, deregisterPartner, registerPartner } from '../federation/partner-admin.ts';
import {
  describePartnerKeys,
  describePartnerPolicy,
  findPartner,
  InvalidPartnerError,
  listPartners,
  parseCertificate,
  parseJwks,
  parsePartnerIssuer,
  parsePolicyOptions,
  type PartnerKeys,
} from '../federation/partners.ts';
import { CliError, readAllStdin, withDatabase, type CliIo, type CommandHelp } from './context.ts';

const ACTOR = 'cli';

const POLICY_USAGE = '[--max-token-lifetime S] [--token-endpoint URL] [--alg A,B] [--clients a,b] [--services x,y] [--[no-]allow-local-users]';
const USAGE =
  `usage: partner add <issuer> (--jwks FILE | --cert PEM) ${POLICY_USAGE} · partner update <issuer> [--jwks FILE | --cert PEM] ${POLICY_USAGE}` +
  ' · partner show <issuer> · partner list · partner remove <issuer>   (FILE/PEM may be "-" for stdin; an empty option value restores its default)';

export const partnerHelp: CommandHelp = {
  '': `usage: seal-idms partner <subcommand>
  add <issuer> (--jwks FILE | --cert PEM) [policy options]   trust a partner S-IdMS (keys provisioned out of band)
  update <issuer> [--jwks FILE | --cert PEM] [policy options] change its keys or policy
  show <issuer>   ·   list   ·   remove <issuer>
  policy options: ${POLICY_USAGE}
  FILE/PEM may be "-" for stdin; an empty option value restores its default. See docs/inter-domain.md.`,
  add: `usage: seal-idms partner add <issuer> (--jwks FILE | --cert PEM) ${POLICY_USAGE}
  Trusts a partner S-IdMS (TS 33.180 clause 5.1.4.2): its public keys as a JWKS file or a PEM certificate ("-": stdin),
  and the policy applied to its security tokens (lifetime limit, token endpoint, algorithms, clients, services, whether
  it may vouch for this domain's local users).`,
  update: `usage: seal-idms partner update <issuer> [--jwks FILE | --cert PEM] ${POLICY_USAGE}
  Replaces the partner's keys and/or the policy options given; an empty value restores an option's default.`,
  show: "usage: seal-idms partner show <issuer>\n  The partner's keys and policy.",
  list: 'usage: seal-idms partner list\n  One partner per line: issuer, keys, added.',
  remove: 'usage: seal-idms partner remove <issuer>\n  Token exchange to the partner and its security tokens are refused from now on.',
};

const OPTIONS = {
  jwks: { type: 'string' },
  cert: { type: 'string' },
  'max-token-lifetime': { type: 'string' },
  'token-endpoint': { type: 'string' },
  alg: { type: 'string', multiple: true },
  clients: { type: 'string' },
  services: { type: 'string' },
  'allow-local-users': { type: 'boolean' },
} as const;

export async function partnerCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'add' || sub === 'update') {
    const { values, positionals } = parseOrUsage(rest);
    if (positionals.length !== 1 || (values.jwks !== undefined && values.cert !== undefined)) throw new CliError(USAGE);
    if (sub === 'add' && values.jwks === undefined && values.cert === undefined) throw new CliError(USAGE);
    const keyInput = values.jwks ?? values.cert;
    const input = keyInput === undefined ? undefined : await readInput(io, keyInput, values.jwks !== undefined ? 'JWKS' : 'certificate');
    await withDatabase(io, async ({ config, database: { db }, out }) => {
      const issuer = invalidAsCli(() => parsePartnerIssuer(positionals[0], config.issuer));
      const keys: PartnerKeys | undefined =
        input === undefined
          ? undefined
          : invalidAsCli(() => (values.jwks !== undefined ? { jwks: parseJwks(input) } : { certificate: parseCertificate(input) }));
      const change = invalidAsCli(() =>
        parsePolicyOptions(
          {
            maxTokenLifetime: values['max-token-lifetime'],
            tokenEndpoint: values['token-endpoint'],
            alg: values.alg,
            clients: values.clients,
            services: values.services,
            allowLocalUsers: values['allow-local-users'],
          },
          config.issuer,
        ),
      );
      if (sub === 'add') {
        const outcome = await invalidAsCliAsync(() => registerPartner(db, ACTOR, issuer, keys!, change));
        out(`${outcome} partner ${issuer} (${describePartnerKeys({ jwks: keys!.jwks ?? null, certificate: keys!.certificate ?? null })})`);
        return;
      }
      const partner = await invalidAsCliAsync(() => changePartner(db, ACTOR, issuer, keys, change));
      out(`updated partner ${issuer} (${describePartnerKeys(partner)})`);
    });
    return;
  }
  if (sub === 'show') {
    if (rest.length !== 1) throw new CliError(USAGE);
    await withDatabase(io, async ({ database: { db }, out }) => {
      const partner = await findPartner(db, NO_CACHE, rest[0]!);
      if (!partner) throw new CliError(`no partner ${rest[0]}`);
      out(`issuer: ${partner.issuer}`);
      out(`keys: ${describePartnerKeys(partner)}`);
      for (const line of describePartnerPolicy(partner.policy)) out(line);
      out(`added: ${partner.createdAt.toISOString()}`);
    });
    return;
  }
  if (sub === 'list') {
    if (rest.length) throw new CliError(`unexpected argument "${rest[0]!.slice(0, 80)}"; usage: partner list`);
    await withDatabase(io, async ({ database: { db }, out }) => {
      for (const p of await listPartners(db)) out([p.issuer, describePartnerKeys(p), p.createdAt.toISOString()].join('\t'));
    });
    return;
  }
  if (sub === 'remove') {
    if (rest.length !== 1) throw new CliError(USAGE);
    const issuer = rest[0]!;
    await withDatabase(io, async ({ database: { db }, out }) => {
      await deregisterPartner(db, ACTOR, issuer);
      out(`removed partner ${issuer}: token exchange to it and its security tokens are refused from now on`);
    });
    return;
  }
  throw new CliError(USAGE);
}

function parseOrUsage(args: string[]) {
  try {
    return parseArgs({ args, allowPositionals: true, allowNegative: true, options: OPTIONS });
  } catch (err) {
    throw new CliError(`${(err as Error).message.split('\n')[0]}; ${USAGE}`);
  }
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

async function invalidAsCliAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof InvalidPartnerError) throw new CliError(err.message);
    throw err;
  }
}
