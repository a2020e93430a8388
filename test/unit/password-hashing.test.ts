// The cores are the machine's: N serving processes together hash at most as many passwords at once as there are
// cores (src/users/passwords.ts shareHashingAmong, called by each cluster worker), and every hash still completes.
import os from 'node:os';
import { hashingCapacity, hashPassword, shareHashingAmong, verifyPassword } from '../../src/users/passwords.ts';

const cores = os.availableParallelism();

afterEach(() => shareHashingAmong(1));

test('one process alone hashes one password per core at once', () => {
  shareHashingAmong(1);
  expect(hashingCapacity()).toBe(cores);
});

test('workers share the cores, and each keeps at least one', () => {
  shareHashingAmong(cores);
  expect(hashingCapacity()).toBe(1);
  shareHashingAmong(cores * 4);
  expect(hashingCapacity()).toBe(1);
  shareHashingAmong(Math.max(1, Math.floor(cores / 2)));
  expect(hashingCapacity()).toBe(Math.floor(cores / Math.max(1, Math.floor(cores / 2))));
});

test('with a capacity of one, concurrent hashes queue and all complete', async () => {
  shareHashingAmong(cores);
  const hashes = await Promise.all(['password-one', 'password-two', 'password-three'].map((p) => hashPassword(p)));
  expect(await Promise.all(hashes.map((h, i) => verifyPassword(h, ['password-one', 'password-two', 'password-three'][i]!)))).toEqual([true, true, true]);
  expect(await verifyPassword(hashes[0]!, 'password-two')).toBe(false);
});
