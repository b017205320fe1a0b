// The real OpenID Connect peer of the client-credentials integration suite.
//
//   node server.mjs [PORT] [PARENT_PID]
//
// PORT defaults to env PORT, then 0 (any free port). PARENT_PID (or env
// CC_PARENT_PID) is the pid of the process that owns this peer: the server
// exits once that process is gone, and also when its stdin closes.
//
// When ready it prints exactly one line on stdout:
//   listening http://127.0.0.1:PORT/oidc oidc-provider@VERSION
// Everything else (oidc-provider notices included) goes to stderr.

import { X509Certificate, createHash, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { fstatSync, readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { createRequire } from 'node:module';
import * as path from 'node:path';

// oidc-provider prints its notices with console.info, which is stdout: keep
// stdout for the single readiness line and send everything else to stderr.
const writeLine = (line) => process.stdout.write(`${line}\n`);
console.log = console.error;
console.info = console.error;
// Node 20 is not an LTS oidc-provider 9 favours; it still works for this use.
const benign = [/Unsupported runtime/];
const warn = console.warn;
console.warn = (...args) => {
  if (typeof args[0] === 'string' && benign.some((re) => re.test(args[0]))) return;
  warn(...args);
};

const { default: Provider, errors } = await import('oidc-provider');
const { createMemoryAdapter } = await import('oidc-provider/lib/adapters/memory_adapter.js');

const require = createRequire(import.meta.url);
const VERSION = JSON.parse(
  readFileSync(path.join(path.dirname(require.resolve('oidc-provider')), '..', 'package.json'), 'utf8'),
).version;

export const MOUNT = '/oidc';
export const RESOURCE = 'https://api.example.test/';
export const SCOPES = ['api:read', 'api:write'];
export const CLIENTS = {
  basic: { id: 'basic-client', secret: 's3cr:et/+ &=%?#~' },
  post: { id: 'post-client', secret: 'post-client-secret' },
  // RFC 7523: signed client assertions. HS256 wants a secret of 32 bytes or more.
  privateKeyJwt: { id: 'private-key-jwt-client' },
  clientSecretJwt: { id: 'client-secret-jwt-client', secret: 'client-secret-jwt-secret-of-32-bytes+' },
  // RFC 9449: DPoP-bound tokens, nonces required.
  dpop: { id: 'dpop-client', secret: 'dpop-client-secret' },
  // RFC 8705 (only with CC_MTLS_DIR): a certificate from the test CA, and a
  // self-signed one registered by its thumbprint.
  mtls: { id: 'mtls-client', subject: 'CN=mtls-client' },
  selfSignedMtls: { id: 'self-signed-mtls-client' },
};

// The public halves of the suite's test keys (core/tests/keys), registered
// as the private_key_jwt client's JWKS.
const here = path.dirname(new URL(import.meta.url).pathname);
const publicJwk = (file, alg, kid) => ({
  ...createPublicKey(readFileSync(path.join(here, '..', '..', 'core', 'tests', 'keys', file))).export({ format: 'jwk' }),
  alg,
  kid,
  use: 'sig',
});

const portArg = process.argv[2] ?? process.env.PORT ?? '0';
const port = Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid port ${JSON.stringify(portArg)}`);
  process.exit(2);
}
const ttl = Number.parseInt(process.env.CC_TTL ?? '5', 10);
if (!Number.isInteger(ttl) || ttl <= 0) {
  console.error(`invalid CC_TTL ${JSON.stringify(process.env.CC_TTL)}`);
  process.exit(2);
}
const parentPid = Number.parseInt(process.argv[3] ?? process.env.CC_PARENT_PID ?? '', 10);
// With CC_MTLS_DIR (ca.pem, server.pem, server.key, self-signed.pem made by
// the suite), the token endpoint is also served over TLS with client
// certificates requested, and advertised as the mtls_endpoint_aliases.
const mtlsDir = process.env.CC_MTLS_DIR;
const readMtls = (file) => readFileSync(path.join(mtlsDir, file));

const scopeSet = new Set(SCOPES);
// Only the token's own client may introspect or revoke it.
const sameClient = async (ctx, client, token) => !token.clientId || token.clientId === client.clientId;

// The self-signed client's registered key: its certificate's public key, with
// the certificate (x5c) and its SHA-256 thumbprint.
function selfSignedJwk() {
  const cert = new X509Certificate(readMtls('self-signed.pem'));
  return {
    ...cert.publicKey.export({ format: 'jwk' }),
    x5c: [cert.raw.toString('base64')],
    'x5t#S256': createHash('sha256').update(cert.raw).digest('base64url'),
  };
}

// The client certificate of a TLS request, as PEM (undefined without one).
function peerCertificate(ctx) {
  const socket = ctx.req.socket;
  if (typeof socket.getPeerX509Certificate !== 'function') return undefined;
  const cert = socket.getPeerX509Certificate();
  return cert ? cert.toString() : undefined;
}

function mtlsClients() {
  if (!mtlsDir) return [];
  return [
    {
      client_id: CLIENTS.mtls.id,
      token_endpoint_auth_method: 'tls_client_auth',
      tls_client_auth_subject_dn: CLIENTS.mtls.subject,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: SCOPES.join(' '),
    },
    {
      client_id: CLIENTS.selfSignedMtls.id,
      token_endpoint_auth_method: 'self_signed_tls_client_auth',
      jwks: { keys: [selfSignedJwk()] },
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: SCOPES.join(' '),
    },
  ];
}

function configuration(mtlsOrigin) {
  const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  return {
    adapter: createMemoryAdapter(),
    jwks: { keys: [{ ...signingKey, kid: 'peer-rs256', use: 'sig', alg: 'RS256' }] },
    cookies: { keys: ['client-credentials-peer-cookie-key'] },
    scopes: SCOPES,
    clients: [
      {
        client_id: CLIENTS.basic.id,
        client_secret: CLIENTS.basic.secret,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: SCOPES.join(' '),
      },
      {
        client_id: CLIENTS.privateKeyJwt.id,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: {
          keys: [
            publicJwk('ec.pem', 'ES256', 'suite-es256'),
            publicJwk('ed25519.pem', 'Ed25519', 'suite-ed25519'),
            publicJwk('rsa.pem', 'PS256', 'suite-ps256'),
          ],
        },
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: SCOPES.join(' '),
      },
      {
        client_id: CLIENTS.clientSecretJwt.id,
        client_secret: CLIENTS.clientSecretJwt.secret,
        token_endpoint_auth_method: 'client_secret_jwt',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: SCOPES.join(' '),
      },
      {
        client_id: CLIENTS.dpop.id,
        client_secret: CLIENTS.dpop.secret,
        token_endpoint_auth_method: 'client_secret_basic',
        dpop_bound_access_tokens: true,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: SCOPES.join(' '),
      },
      ...mtlsClients(),
      {
        client_id: CLIENTS.post.id,
        client_secret: CLIENTS.post.secret,
        token_endpoint_auth_method: 'client_secret_post',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: SCOPES.join(' '),
      },
    ],
    clientAuthMethods: [
      'client_secret_basic',
      'client_secret_jwt',
      'client_secret_post',
      'private_key_jwt',
      'none',
      ...(mtlsDir ? ['tls_client_auth', 'self_signed_tls_client_auth'] : []),
    ],
    ttl: { ClientCredentials: ttl },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Every DPoP proof must carry a server nonce: the client's first token
      // request is answered 400 use_dpop_nonce with a DPoP-Nonce header.
      dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true },
      mTLS: {
        enabled: Boolean(mtlsDir),
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        selfSignedTlsClientAuth: true,
        getCertificate: peerCertificate,
        // Verified by node against the test CA (requestCert, not rejecting: the
        // provider decides, so a missing certificate is its invalid_client).
        certificateAuthorized: (ctx) => ctx.req.socket.authorized === true,
        certificateSubjectMatches: (ctx, property, expected) => {
          if (property !== 'tls_client_auth_subject_dn') return false;
          const cert = ctx.req.socket.getPeerX509Certificate();
          return Boolean(cert) && `CN=${cert.subject.replace(/^CN=/, '')}` === expected;
        },
      },
      introspection: { enabled: true, allowedPolicy: sameClient },
      revocation: { enabled: true, allowedPolicy: sameClient },
      resourceIndicators: {
        enabled: true,
        // No default resource: requests without `resource` get opaque tokens.
        defaultResource: async (ctx, client, oneOf) => oneOf,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (ctx, resourceIndicator) => {
          if (resourceIndicator === RESOURCE) {
            return {
              scope: SCOPES.join(' '),
              audience: RESOURCE,
              accessTokenTTL: ttl,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg: 'RS256' } },
            };
          }
          throw new errors.InvalidTarget();
        },
      },
    },
    // oidc-provider silently drops scopes it does not know for
    // client_credentials (and those the resource server does not have when a
    // resource is named); this peer answers invalid_scope instead, before the
    // token is stored.
    extraTokenClaims: async (ctx, token) => {
      if (token.kind === 'ClientCredentials') {
        // The raw body: without `resource`, oidc-provider has already
        // filtered params.scope down to the scopes it knows.
        const raw = ctx?.oidc?.body?.scope ?? ctx?.oidc?.params?.scope ?? '';
        const requested = String(raw).split(' ').filter(Boolean);
        const unknown = requested.filter((scope) => !scopeSet.has(scope));
        if (unknown.length > 0) {
          throw new errors.InvalidScope('requested scope is not supported', unknown.join(' '));
        }
      }
      return undefined;
    },
    discovery: mtlsOrigin
      ? {
          claim_types_supported: ['normal'],
          mtls_endpoint_aliases: { token_endpoint: `${mtlsOrigin}${MOUNT}/token` },
        }
      : { claim_types_supported: ['normal'] },
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  };
}

const server = http.createServer();
// The issuer's port is only known once listening.
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}${MOUNT}`;
let tlsServer;
let mtlsOrigin;
if (mtlsDir) {
  tlsServer = https.createServer({
    key: readMtls('server.key'),
    cert: readMtls('server.pem'),
    ca: readMtls('ca.pem'),
    requestCert: true,
    rejectUnauthorized: false,
  });
  await new Promise((resolve, reject) => {
    tlsServer.once('error', reject);
    tlsServer.listen(0, '127.0.0.1', resolve);
  });
  mtlsOrigin = `https://127.0.0.1:${tlsServer.address().port}`;
}
const provider = new Provider(issuer, configuration(mtlsOrigin));
provider.on('server_error', (ctx, err) => console.error('server_error', err));
const callback = provider.callback();

const handle = (req, res) => {
  const url = req.url ?? '/';
  if (url === MOUNT || url.startsWith(`${MOUNT}/`) || url.startsWith(`${MOUNT}?`)) {
    // Mount under /oidc: oidc-provider derives the mount path from
    // originalUrl minus url, as behind express/connect's app.use('/oidc').
    req.originalUrl = url;
    req.url = url.slice(MOUNT.length) || '/';
    if (req.url.startsWith('?')) req.url = `/${req.url}`;
    callback(req, res);
    return;
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'not_found', error_description: `this peer lives under ${MOUNT}` }));
};
server.on('request', handle);
tlsServer?.on('request', handle);

const shutdown = (code) => {
  server.close();
  tlsServer?.close();
  process.exit(code);
};
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
// Exit when whoever started us goes away: stdin closing, or the parent pid
// disappearing (a test binary's shared peer is never dropped).
// stdin is watched only when it is a pipe or socket, so that running the
// peer by hand (terminal) or in the background (</dev/null) still works.
const stdinStat = fstatSync(0, { throwIfNoEntry: false });
if (stdinStat && (stdinStat.isFIFO() || stdinStat.isSocket())) {
  process.stdin.on('end', () => shutdown(0));
  process.stdin.on('error', () => shutdown(0));
  process.stdin.resume();
}
if (Number.isInteger(parentPid) && parentPid > 0) {
  setInterval(() => {
    try {
      process.kill(parentPid, 0);
    } catch (err) {
      if (err.code !== 'EPERM') shutdown(0);
    }
  }, 1000).unref();
}

writeLine(`listening ${issuer} oidc-provider@${VERSION}${mtlsOrigin ? ` mtls ${mtlsOrigin}${MOUNT}` : ''}`);
