import assert from 'node:assert/strict';
import { it } from 'node:test';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { runObjectStoreContract } from './contract.ts';

runObjectStoreContract('MemoryStore', async () => ({ store: new MemoryStore(), cleanup: async () => {} }));

it('MemoryStore test helpers report size and bytes', async () => {
  const s = new MemoryStore();
  await s.put('a', Buffer.alloc(10));
  await s.put('b/c', Buffer.alloc(5));
  assert.equal(s.size, 2);
  assert.equal(s.totalBytes, 15);
  s.clear();
  assert.equal(s.size, 0);
});
