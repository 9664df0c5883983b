// A real OpenID provider for berth's tests: the certified `oidc-provider` package from npm
// (installed by ./scripts/test outside the clone), with its development login and consent
// pages. Configured by the environment:
//   OIDC_PROVIDER_MODULE  the package's directory (node_modules/oidc-provider)
//   PORT                  where to listen on 127.0.0.1 (the issuer is http://127.0.0.1:PORT)
//   CLIENT_SECRET         berth's client secret (client id "berth")
//   REDIRECT_URI          berth's callback URL
//   ACCOUNTS_FILE         JSON: { "<login>": { claims... } }, read at each sign-in
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(
  pathToFileURL(join(process.env.OIDC_PROVIDER_MODULE, 'lib', 'index.js')).href
);
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'berth-test', use: 'sig', alg: 'RS256' };
const accounts = () => JSON.parse(readFileSync(process.env.ACCOUNTS_FILE, 'utf8'));
const port = Number(process.env.PORT);

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'berth',
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // The scopes' claims go into the ID token (berth reads no userinfo).
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => accounts()[id] && {
    accountId: id,
    claims: async () => ({ sub: id, ...accounts()[id] }),
  },
  cookies: { keys: ['berth-test-provider-cookies'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
});
provider.listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
