import { LruMap } from './lru-map.js';

test('holds at most its capacity, evicting the least recently used', () => {
  const m = new LruMap<string, number>(2);
  m.set('a', 1);
  m.set('b', 2);
  expect(m.get('a')).toBe(1); // a is now more recent than b
  m.set('c', 3);
  expect(m.size).toBe(2);
  expect(m.get('b')).toBeUndefined();
  expect(m.get('a')).toBe(1);
  expect(m.get('c')).toBe(3);
  m.set('c', 4); // replacing does not grow it
  expect(m.size).toBe(2);
  expect(m.get('c')).toBe(4);
});

test('refuses a capacity that is not a positive integer', () => {
  expect(() => new LruMap(0)).toThrow(/capacity must be a positive integer, got 0/);
});
