// The operator's partner use cases (`partner add|update|remove`): the partner store's writes, each with its audit event.
import { recordAudit } from '../audit/store.ts';
import type { Db } from '../db/knex.ts';
import { addPartner, removePartner, updatePartner, type Partner, type PartnerKeys, type PolicyChange } from './partners.ts';

export class NoSuchPartnerError extends Error {}

/** Adds a trusted partner S-IdMS (or replaces the keys and policy of one with the same issuer). */
export async function registerPartner(db: Db, actor: string, issuer: string, keys: PartnerKeys, change: PolicyChange): Promise<'added' | 'updated'> {
  const outcome = await addPartner(db, issuer, keys, change);
  await recordAudit(db, {
    actor,
    action: 'partner.add',
    subject: issuer,
    result: 'success',
    details: { form: keys.jwks ? 'jwks' : 'certificate', policy: change, outcome },
  });
  return outcome;
}

export async function changePartner(db: Db, actor: string, issuer: string, keys: PartnerKeys | undefined, change: PolicyChange): Promise<Partner> {
  const partner = await updatePartner(db, issuer, keys, change);
  if (!partner) throw new NoSuchPartnerError(`no partner ${issuer} (partner add creates one)`);
  await recordAudit(db, {
    actor,
    action: 'partner.update',
    subject: issuer,
    result: 'success',
    details: { ...(keys ? { form: keys.jwks ? 'jwks' : 'certificate' } : {}), policy: change },
  });
  return partner;
}

/** Token exchange to the partner and its security tokens are refused from now on. */
export async function deregisterPartner(db: Db, actor: string, issuer: string): Promise<void> {
  if (!(await removePartner(db, issuer))) throw new NoSuchPartnerError(`no partner ${issuer}`);
  await recordAudit(db, { actor, action: 'partner.remove', subject: issuer, result: 'success' });
}
