// Magic links: sendMagicLink answers the same for any address, the link arrives in a real SMTP
// sink, and verifyMagicLink with its token signs in.
import { Gatehouse, GatehouseError } from '@gatehouse/js';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PASSWORD, email, startServer, startSink, type LiveServer, type Sink } from './support/server.js';

let sink: Sink;
let server: LiveServer;

beforeAll(async () => {
  sink = await startSink();
  server = await startServer({ smtp: sink, settings: { GATEHOUSE_MAGIC_LINK_ENABLED: 'true' } });
});

afterAll(async () => {
  await server?.stop();
  await sink?.stop();
});

test('the emailed link signs in through verifyMagicLink', async () => {
  const address = email('linked');
  await new Gatehouse({ url: server.url }).signUp({ email: address, password: PASSWORD });

  const client = new Gatehouse({ url: server.url });
  await client.sendMagicLink(address);
  // An address without an account gets the same answer (nothing to learn from it).
  await client.sendMagicLink(email('stranger'));

  const mail = await sink.waitFor(address, 'sign-in link');
  const link = mail.linkFor('/magic-link');
  expect(link, mail.text()).toBeTruthy();
  const token = new URL(link!, server.url).searchParams.get('token');
  expect(token).toBeTruthy();

  const result = await client.verifyMagicLink(token!);
  expect(result.status).toBe('signed_in');
  expect(client.user?.email).toBe(address);

  // A link works once.
  const again = await new Gatehouse({ url: server.url }).verifyMagicLink(token!).catch((caught: unknown) => caught);
  expect(again).toBeInstanceOf(GatehouseError);
  expect((again as GatehouseError).status).toBe(400);
});
