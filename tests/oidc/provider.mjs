// A real OpenID provider for the sign-in tests: panva's certified `oidc-provider` (pinned in
// tests/clients/package.json, installed by `make clients`), configured as small as it goes.
//
//   node provider.mjs PORT        (or OIDC_PORT=PORT)
//   OIDC_CLIENT_SECRET   the secret of the one client, `skills-hub`
//   OIDC_REDIRECT_URIS   its redirect URIs, separated by spaces
//   OIDC_JWKS            the private signing keys as a JWKS; the harness makes them, so tests
//                        can also sign tokens with a key the provider really publishes
//   OIDC_MODULES_DIR     the folder whose node_modules holds oidc-provider (`.clients`)
//
// Prints one line `READY <issuer>` once it listens on 127.0.0.1. Everything lives in memory.

import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

// oidc-provider lives with the other test clients, not beside this file, and ES modules do
// not read NODE_PATH: resolve it from the folder given, then import it by its path.
const fromModules = createRequire(`${process.env.OIDC_MODULES_DIR}/`);
const { default: Provider } = await import(
  pathToFileURL(fromModules.resolve('oidc-provider')).href);

const port = Number(process.argv[2] || process.env.OIDC_PORT);
if (!port) {
  console.error('usage: node provider.mjs PORT');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'skills-hub',
    client_secret: process.env.OIDC_CLIENT_SECRET,
    redirect_uris: (process.env.OIDC_REDIRECT_URIS || '').split(/\s+/).filter(Boolean),
    grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: JSON.parse(process.env.OIDC_JWKS),
  // PKCE on every authorization request, confidential client or not.
  pkce: { required: () => true },
  features: {
    // The provider's own login and consent pages: any login name, any password.
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
  },
  // Which claims each scope releases. By default (conformIdTokenClaims) the ID token carries
  // only `sub` and the protocol claims; scope claims come from the userinfo endpoint.
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // Every login name is an account; its claims are made up from the name.
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: `${sub}@example.test`,
          email_verified: true,
          name: `Name ${sub}`,
          preferred_username: sub,
        };
      },
    };
  },
  cookies: { keys: ['test-only-cookie-signing-key'] },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});
