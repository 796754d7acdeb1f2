// Peer for bench/run: panva's oidc-provider 9.x with client_credentials issuing JWT access
// tokens for a resource indicator (signed with PEER_ALG, default RS256), introspection,
// revocation, JWKS and discovery. In-memory adapter (oidc-provider's default), no logging.
//
//   node oidc-provider.mjs PORT      prints `listening on http://127.0.0.1:PORT`
//
// Clients: `bench-cc` / `bench-cc-secret` (client_credentials, scope api:read).
// A request with `resource=urn:bench:api` gets a JWT access token; without `resource`, an
// opaque one (the kind oidc-provider can introspect).
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 3000);
const alg = process.env.PEER_ALG || 'RS256';
const issuer = `http://127.0.0.1:${port}`;
const RESOURCE = 'urn:bench:api';

const keys = [];
for (const a of new Set(['RS256', alg])) {
  const { privateKey } = await generateKeyPair(a, { extractable: true, ...(a === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  keys.push({ ...(await exportJWK(privateKey)), alg: a, use: 'sig', kid: `bench-${a}` });
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench-cc',
    client_secret: 'bench-cc-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'api:read',
  }],
  jwks: { keys },
  scopes: ['api:read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) throw new Error('unknown resource');
        return {
          scope: 'api:read',
          audience: RESOURCE,
          accessTokenTTL: 900,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg } },
        };
      },
    },
  },
});
provider.proxy = false;
// No per-request logging: oidc-provider emits events only; nothing is subscribed.

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`listening on ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
