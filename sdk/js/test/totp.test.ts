import { expect, test } from 'vitest';
import { base32Decode, totpAt } from './support/totp.js';

// The test's own TOTP must be right before it can judge the server's: RFC 6238 appendix B.
test('the test TOTP matches RFC 6238 appendix B (SHA-1)', () => {
  const secret = Buffer.from('12345678901234567890');
  expect(totpAt(secret, Math.floor(59 / 30), 8)).toBe('94287082');
  expect(totpAt(secret, Math.floor(1111111109 / 30), 8)).toBe('07081804');
  expect(totpAt(secret, Math.floor(20000000000 / 30), 8)).toBe('65353130');
  expect(base32Decode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ')).toEqual(secret);
});
