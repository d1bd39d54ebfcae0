// The external identity provider of Garrison's OAuth tests: panva's oidc-provider with its
// development login and consent pages, on a loopback port.
//
//   node provider.mjs PORT CLIENTS_JSON
//
// CLIENTS_JSON is a JSON list of oidc-provider client metadata. Any login name is accepted
// with any password; the account's e-mail address is the login name, asserted as verified
// unless the name starts with "unverified".
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const clients = JSON.parse(process.argv[3] || '[]');
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients,
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: ['garrison-test-idp-cookie-key'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: id,
          email_verified: !id.startsWith('unverified'),
          name: id.split('@')[0],
        };
      },
    };
  },
});
// The development pages warn on every start; the tests read only the "listening" line.
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
