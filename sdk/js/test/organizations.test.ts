// Organizations: create, list, switch the session's active organization; the switch rotates
// the refresh token too, so the stored session carries the organization's claims.
import { Gatehouse, GatehouseError, decodeJwtPayload } from '@gatehouse/js';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PASSWORD, email, startServer, type LiveServer } from './support/server.js';

let server: LiveServer;

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
});

test('switchOrganization puts the organization claims in the tokens, refresh keeps them', async () => {
  const client = new Gatehouse({ url: server.url });
  await client.signUp({ email: email('owner'), password: PASSWORD });
  expect(client.activeOrganization()).toBeNull();
  const slug = `acme-${Date.now().toString(36)}`;
  const created = await client.createOrganization({ name: 'Acme', slug });
  expect(created.role).toBe('owner');

  const list = await client.listOrganizations();
  expect(list.data.map((organization) => organization.id)).toContain(created.id);

  const oldRefresh = client.session!.refreshToken;
  const active = await client.switchOrganization(created.id);
  expect(active).toMatchObject({ org_id: created.id, org_slug: slug, org_role: 'owner' });
  expect(active?.org_permissions.length).toBeGreaterThan(0);
  expect(client.activeOrganization()).toEqual(active);
  const claims = decodeJwtPayload<Record<string, unknown>>(client.session!.accessToken!);
  expect(claims?.org_id).toBe(created.id);
  expect(client.session!.refreshToken).not.toBe(oldRefresh);

  // The rotated refresh token is the session's current one, and the claims survive it.
  await client.refresh();
  expect(client.activeOrganization()?.org_id).toBe(created.id);

  await client.switchOrganization(null);
  expect(client.activeOrganization()).toBeNull();
});

test('switching to an organization one is not a member of fails and keeps the session', async () => {
  const owner = new Gatehouse({ url: server.url });
  await owner.signUp({ email: email('owner'), password: PASSWORD });
  const theirs = await owner.createOrganization({ name: 'Theirs', slug: `theirs-${Date.now().toString(36)}` });

  const outsider = new Gatehouse({ url: server.url });
  await outsider.signUp({ email: email('outsider'), password: PASSWORD });
  const error = await outsider.switchOrganization(theirs.id).catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(GatehouseError);
  expect((error as GatehouseError).status).toBe(404);
  expect(outsider.isSignedIn).toBe(true);
  expect(outsider.activeOrganization()).toBeNull();
  expect(await outsider.getUser()).not.toBeNull();
});

test('a taken slug is slug_taken (409)', async () => {
  const client = new Gatehouse({ url: server.url });
  await client.signUp({ email: email('slugs'), password: PASSWORD });
  const slug = `dup-${Date.now().toString(36)}`;
  await client.createOrganization({ name: 'One', slug });
  const error = await client.createOrganization({ name: 'Two', slug }).catch((caught: unknown) => caught);
  expect((error as GatehouseError).code).toBe('slug_taken');
  expect((error as GatehouseError).status).toBe(409);
});
