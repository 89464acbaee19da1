// An independently written authorization server for the interop tests:
// panva's oidc-provider (OpenID-certified), with an RFC 8693 token
// exchange grant registered the way its documentation describes
// (Provider#registerGrantType). The subject token must be a JWT signed by
// the workload issuer whose public JWK is given; the answer is one of the
// provider's own access tokens for the workload's `sub`.
//
// node server.mjs PORT WORKLOAD_ISSUER WORKLOAD_JWK
// Prints `listening ISSUER` once ready; stops when stdin closes.
import Provider, { errors } from 'oidc-provider';
import * as jose from 'jose';

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT = 'urn:ietf:params:oauth:token-type:jwt';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

const [port, workloadIssuer, workloadJwk] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const workloadKey = await jose.importJWK(JSON.parse(workloadJwk), 'ES256');

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'rust-sts',
    client_secret: 'rust-sts-secret-0123456789',
    grant_types: ['client_credentials', GRANT],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
  scopes: ['read', 'write'],
});

provider.registerGrantType(GRANT, async (ctx) => {
  const { params, client } = ctx.oidc;
  if (params.subject_token_type !== JWT) {
    throw new errors.InvalidRequest('subject_token_type must be the jwt token type');
  }
  let payload;
  try {
    ({ payload } = await jose.jwtVerify(params.subject_token, workloadKey, {
      issuer: workloadIssuer,
      audience: `${issuer}/token`,
    }));
  } catch (error) {
    throw new errors.InvalidGrant(`the subject token was refused (${error.code})`);
  }
  if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN) {
    throw new errors.InvalidTarget('only access tokens are issued');
  }
  const token = new provider.ClientCredentials({
    client,
    scope: params.scope || undefined,
    extra: { sub: payload.sub },
  });
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN,
    token_type: 'Bearer',
    expires_in: token.expiration,
    scope: token.scope || undefined,
  };
}, ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'audience', 'scope']);

const server = provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});
process.stdin.on('end', () => server.close(() => process.exit(0)));
process.stdin.resume();
