//! The command line.

use std::path::PathBuf;

use auth_core::ClientAuth;
use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// authc: get a token, call an API with the right credentials, sign a
/// user in, revoke a token, or see the library work against its embedded
/// provider.
#[derive(Debug, Parser)]
#[command(name = "authc", bin_name = "authc", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = "\
SECRETS are never taken from the command line (it shows in the process list).
In order of precedence:
  client secret   AUTHC_CLIENT_SECRET, --client-secret-file, or the profile's
                  client_secret_env, client_secret_file
  API key         AUTHC_API_KEY, --api-key-file, or api_key_env, api_key_file
  Basic password  AUTHC_BASIC_PASSWORD, or basic_password_env, basic_password_file
  key password    AUTHC_PRIVATE_KEY_PASSWORD (an encrypted --private-key-file),
                  AUTHC_CLIENT_KEY_PASSWORD (an encrypted --client-key)
A global variable that overrides a profile's setting is said on stderr.

PROFILES: ~/.config/authc/config.toml (or --config / AUTHC_CONFIG), one
[profiles.NAME] table per provider or environment; flags and environment
variables override its keys. `authc profiles` lists them, `authc config
check --profile NAME` checks one. Keys:
  token_url            string   the OAuth 2.0 token endpoint
  issuer               string   the issuer: endpoints from its discovery document
  authorize_url        string   the authorization endpoint (a user's sign-in)
  device_url           string   the RFC 8628 device authorization endpoint
  sign_in              bool     use the signed-in user's tokens (authc login)
  client_id            string
  client_secret_file   path     a file holding the client secret
  client_secret_env    string   the variable holding it (e.g. \"FLUTE_SECRET\")
  auth_method          string   basic | basic-raw | post | json | none |
                                private-key-jwt | client-secret-jwt |
                                tls-client-auth | self-signed-tls-client-auth
  private_key_file     path     the client's private key (PEM or JWK)
  key_id               string   its `kid`
  assertion_audience   string   issuer | token-url | a value
  grant                string   client-credentials | jwt-bearer | token-exchange
  assertion_file       path     the JWT bearer grant's assertion
  client_assertion_file path    a workload token as the client assertion
  subject_token_file   path     the token exchange's subject token
  subject_token_type   string   access_token | refresh_token | id_token |
                                saml1 | saml2 | jwt | a URI
  actor_token_file     path     the token exchange's actor token
  actor_token_type     string   as subject_token_type
  requested_token_type string   as subject_token_type
  dpop                 bool     DPoP-bound tokens (the key kept beside the cache)
  dpop_key_file        path     the DPoP key to use instead
  client_cert          path     the TLS client certificate (PEM) for mutual TLS
  client_key           path     its private key (PEM; default: client_cert's file)
  ca_cert              path     trust only these CA certificates (PEM)
  scope                string or list   \"read write\" or [\"read\", \"write\"]
  audience             string
  resource             string or list   RFC 8707 resources
  params               table    extra token request parameters { key = \"value\" }
  api_key_header       string   header for the API key (e.g. \"X-API-Key\")
  api_key_query        string   query parameter for the API key
  api_key_file         path
  api_key_env          string
  basic_user           string   legacy HTTP Basic user
  basic_password_file  path
  basic_password_env   string
  api_origin           string or list   origins the credentials may go to;
                                        requests elsewhere are refused
  revocation_url       string   the RFC 7009 endpoint
  allow_insecure_http  bool     plain http to hosts that are not loopback
  store                string   file | file:DIR | redis[s]://... | redis[s]+cluster://... |
                                redis+sentinel://... | none
  max_fetches_per_day  integer  token requests allowed in any 24 hours
A client_secret key is refused: secrets stay out of the file.

EXIT CODES:
  0  success
  2  usage or configuration error (a request to an origin that is not an
     API origin of the configuration included)
  3  the provider refused (RFC 6749 error: code and description printed),
     or the fetch budget (--max-fetches-per-day) is spent, or a user must
     sign in (run `authc login`), or the user declined the sign-in, or the
     API wants a token it can be told about (its 401 names its metadata:
     the `authc login --resource` to run is printed), more scopes or a
     stronger sign-in (the login that asks for them is printed)
  4  network or protocol failure
  5  the API answered an error status, or redirected to another origin";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an access token (alone on stdout, for `$(authc token)`).
    Token {
        #[command(flatten)]
        auth: AuthArgs,
        /// Print {"access_token","token_type","expires_in","scope"} instead.
        #[arg(long)]
        json: bool,
    },
    /// Send a request with the credentials; print the response body.
    Request {
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        request: RequestArgs,
    },
    /// Revoke the cached token (RFC 7009) and remove it from the cache.
    Revoke {
        #[command(flatten)]
        auth: AuthArgs,
        /// The revocation endpoint.
        #[arg(long, env = "AUTHC_REVOCATION_URL", value_name = "URL")]
        revocation_url: Option<String>,
        /// With --token: what kind of token it is.
        #[arg(long, value_enum, value_name = "HINT")]
        token_type_hint: Option<TokenTypeHint>,
        /// Revoke this token instead of the cached one; `-` reads it from stdin.
        #[arg(long, value_name = "-")]
        token: Option<String>,
    },
    /// Sign a user in (authorization code with PKCE through the browser, or
    /// --device for a machine without one) and keep the user's tokens in
    /// the token store for `authc token` / `authc request --sign-in`.
    Login {
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        login: LoginArgs,
    },
    /// Revoke the signed-in user's tokens (where a revocation endpoint is
    /// known) and forget them. Without the login's --scope (or
    /// --audience, --resource), the sign-ins `authc login` noted for this
    /// client in the token store are the ones signed out.
    Logout {
        #[command(flatten)]
        auth: AuthArgs,
        /// The revocation endpoint (without it, discovery's or the
        /// profile's; with none, the tokens are only forgotten).
        #[arg(long, env = "AUTHC_REVOCATION_URL", value_name = "URL")]
        revocation_url: Option<String>,
    },
    /// List the profiles of the config file (an invalid one is marked, with why).
    Profiles {
        /// The config file (default: the user's config directory, authc/config.toml).
        #[arg(long, env = "AUTHC_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check a configuration (a profile with flags and environment) and
    /// show where each secret would come from, never its value.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Start the embedded provider and show the library at work.
    Demo,
    /// Run the embedded OAuth provider and protected API on 127.0.0.1 until
    /// interrupted, for trying things and for other programs' tests. Prints
    /// `export AUTHC_...=...` lines a shell can eval:
    /// `authc serve > authc.env & sleep 1; . ./authc.env; authc request "$AUTHC_API_URL/items"`.
    Serve {
        /// Listen on this port (default: a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The lifetime of the tokens issued, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
        token_lifetime: u64,
        /// Delay every token response this long, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        latency: u64,
        /// Fail the first N token requests (with --fault).
        #[arg(long, value_name = "N", default_value_t = 0)]
        fail_next: u32,
        /// How they fail: 500, 503, or 429 (with Retry-After: 1).
        #[arg(long, value_name = "STATUS", default_value = "503", value_parser = ["500", "503", "429"])]
        fault: String,
    },
}

/// How `authc login` signs the user in.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// The device flow (RFC 8628): show a code to enter on another device.
    #[arg(long)]
    pub device: bool,
    /// The device authorization endpoint (default: from --issuer's discovery).
    #[arg(long, env = "AUTHC_DEVICE_URL", value_name = "URL")]
    pub device_url: Option<String>,
    /// Do not open a browser: print the authorization URL alone on one
    /// line of stderr and wait for the redirect.
    #[arg(long)]
    pub no_browser: bool,
    /// Listen for the redirect on this port of 127.0.0.1 (default: a free
    /// one), for providers that only accept a registered port.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub redirect_port: u16,
    /// The redirect URI's path.
    #[arg(long, value_name = "PATH", default_value = "/callback")]
    pub redirect_path: String,
    /// Push the authorization request to the server first (RFC 9126 PAR),
    /// as when its metadata requires it: the browser then gets only a
    /// reference.
    #[arg(long)]
    pub par: bool,
    /// Ask for these authentication context classes (`acr_values`), as an
    /// API that wants a stronger sign-in names them.
    #[arg(long, value_name = "VALUES")]
    pub acr_values: Option<String>,
    /// Ask the user to have signed in at most this many seconds ago (`max_age`).
    #[arg(long, value_name = "SECS")]
    pub max_age: Option<u64>,
    /// Give up after this many seconds without a sign-in.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration `authc token` / `authc request` would
    /// use with the same options; exit 0 when it is usable, 2 otherwise.
    Check {
        #[command(flatten)]
        auth: AuthArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenTypeHint {
    #[value(name = "access_token")]
    AccessToken,
    #[value(name = "refresh_token")]
    RefreshToken,
}

/// `--auth-method`: the names are `ClientAuth`'s own (one list, in
/// auth-core), each with what it needs here.
fn client_auth() -> impl clap::builder::TypedValueParser<Value = ClientAuth> {
    let help = |method: ClientAuth| match method {
        ClientAuth::PrivateKeyJwt => Some("A JWT signed with --private-key-file (RFC 7523, OpenID Connect)"),
        ClientAuth::ClientSecretJwt => Some("A JWT signed with the client secret (HS256); the secret is not sent"),
        ClientAuth::TlsClientAuth => Some("A TLS client certificate (RFC 8705, --client-cert / --client-key)"),
        ClientAuth::SelfSignedTlsClientAuth => {
            Some("A self-signed TLS client certificate registered with the provider")
        }
        _ => None,
    };
    let names = ClientAuth::ALL.map(|method| clap::builder::PossibleValue::new(method.as_str()).help(help(method)));
    clap::builder::PossibleValuesParser::new(names)
        .try_map(|name| ClientAuth::parse(&name).ok_or("not a client authentication method"))
}

/// The grant `authc` asks tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GrantArg {
    /// The client's own token (the default).
    ClientCredentials,
    /// RFC 7523 §2.1: a JWT assertion (--assertion-file) is the grant.
    JwtBearer,
    /// RFC 8693: the token in --subject-token-file is exchanged for one.
    TokenExchange,
}

/// What `authc request` sends and how it shows the answer (curl's flags).
#[derive(Debug, Clone, Args)]
pub struct RequestArgs {
    /// The HTTP method (default GET, or POST with a body).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// A header, as 'Name: value'. Repeatable.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// The request body; `@FILE` reads it from a file (`@-`: stdin).
    #[arg(short = 'd', long = "data", value_name = "DATA", conflicts_with_all = ["data_file", "json"])]
    pub data: Option<String>,
    /// Read the request body from a file.
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    pub data_file: Option<PathBuf>,
    /// A JSON body (`@FILE` reads it from a file), sent with
    /// `Content-Type: application/json` and `Accept: application/json`.
    #[arg(long, value_name = "DATA")]
    pub json: Option<String>,
    /// Print the response's status line and headers before its body.
    #[arg(short = 'i', long)]
    pub include: bool,
    /// Write the body to FILE instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Show the token request and the API requests (lines and headers,
    /// every credential redacted) and the answers' headers on stderr.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// No notices on stderr (errors are still said).
    #[arg(short = 's', long)]
    pub silent: bool,
    /// Give up when the API stays silent this long (connecting, or
    /// between two parts of the answer); a long answer streams on as
    /// long as data keeps coming.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    /// The URL.
    pub url: String,
}

/// How to authenticate: flags, environment, or a profile.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// A named profile of the config file.
    #[arg(long, env = "AUTHC_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// The config file (default: the user's config directory, authc/config.toml).
    #[arg(long, env = "AUTHC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The OAuth 2.0 token endpoint.
    #[arg(long, env = "AUTHC_TOKEN_URL", value_name = "URL")]
    pub token_url: Option<String>,
    /// The authorization server's issuer: its endpoints come from its
    /// discovery document (RFC 8414 / OpenID Connect), whose issuer must
    /// match. For a client without a secret it means a user's sign-in.
    #[arg(long, env = "AUTHC_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,
    /// The authorization endpoint: the options describe a user's sign-in.
    #[arg(long, env = "AUTHC_AUTHORIZE_URL", value_name = "URL")]
    pub authorize_url: Option<String>,
    /// Use the signed-in user's tokens (see `authc login`), never client
    /// credentials; with none, exit 3 and say to run `authc login`.
    #[arg(long)]
    pub sign_in: bool,
    /// The client id.
    #[arg(long, env = "AUTHC_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// Read the client secret from a file (or set AUTHC_CLIENT_SECRET).
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// How the client authenticates at the token endpoint [default: basic,
    /// or private-key-jwt with --private-key-file and no secret].
    #[arg(long, value_name = "METHOD", value_parser = client_auth())]
    pub auth_method: Option<ClientAuth>,
    /// The client's private key (PEM: PKCS#8, PKCS#1 or SEC1, or a JWK) for
    /// private-key-jwt; an encrypted PKCS#8 key takes its password from
    /// AUTHC_PRIVATE_KEY_PASSWORD.
    #[arg(long, env = "AUTHC_PRIVATE_KEY_FILE", value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
    /// The key id (`kid`) the provider registered for the private key.
    #[arg(long, value_name = "KID")]
    pub key_id: Option<String>,
    /// The `aud` of assertions: `issuer`, `token-url`, or a value
    /// [default: the issuer when known, the token URL otherwise].
    #[arg(long, value_name = "AUD")]
    pub assertion_audience: Option<String>,
    /// The grant [default: client-credentials].
    #[arg(long, value_enum, value_name = "GRANT")]
    pub grant: Option<GrantArg>,
    /// DPoP-bound tokens (RFC 9449): a proof with every token and API
    /// request. The key is kept beside the cached tokens (mode 0600), so
    /// that a cached token stays usable by later runs.
    #[arg(long)]
    pub dpop: bool,
    /// The DPoP private key (PEM or JWK) instead of the kept one; implies
    /// --dpop. Processes that share tokens through a store must share it.
    #[arg(long, env = "AUTHC_DPOP_KEY_FILE", value_name = "FILE")]
    pub dpop_key_file: Option<PathBuf>,
    /// The TLS client certificate (PEM, with its chain) for mutual TLS (RFC
    /// 8705): presented to the token endpoint (tls-client-auth, the default
    /// method with no secret or key, or certificate-bound tokens) and to the
    /// API. Discovery then uses the provider's mtls_endpoint_aliases.
    #[arg(long, env = "AUTHC_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM) [default: the
    /// --client-cert file]; an encrypted PKCS#8 key takes its password from
    /// AUTHC_CLIENT_KEY_PASSWORD.
    #[arg(long, env = "AUTHC_CLIENT_KEY", value_name = "FILE")]
    pub client_key: Option<PathBuf>,
    /// Trust only the CA certificates in FILE (PEM) at the token endpoint,
    /// for discovery and at the API, instead of the built-in web roots: for
    /// servers of a private PKI.
    #[arg(long, env = "AUTHC_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// With --grant jwt-bearer: the file holding the JWT assertion, read
    /// again for every token request (a rotating workload identity file);
    /// `-` reads it once from stdin.
    #[arg(long, value_name = "FILE")]
    pub assertion_file: Option<PathBuf>,
    /// The client proves itself with the JWT in FILE (a workload identity
    /// token the platform writes and rotates) instead of a secret: read
    /// again at every token request, never sent once expired.
    #[arg(long, value_name = "FILE")]
    pub client_assertion_file: Option<PathBuf>,
    /// With --grant token-exchange: the file holding the subject token (a
    /// Kubernetes service account token, a CI job's OIDC token), read again
    /// at every token request.
    #[arg(long, value_name = "FILE")]
    pub subject_token_file: Option<PathBuf>,
    /// The subject token's type: access_token, refresh_token, id_token,
    /// saml1, saml2, jwt (the default) or a URI.
    #[arg(long, value_name = "TYPE")]
    pub subject_token_type: Option<String>,
    /// With --grant token-exchange: the actor token's file (delegation).
    #[arg(long, value_name = "FILE")]
    pub actor_token_file: Option<PathBuf>,
    /// The actor token's type [default: jwt].
    #[arg(long, value_name = "TYPE")]
    pub actor_token_type: Option<String>,
    /// The type of token to ask for (requested_token_type) [default: the
    /// server's choice, an access token expected].
    #[arg(long, value_name = "TYPE")]
    pub requested_token_type: Option<String>,
    /// A scope to request. Repeatable.
    #[arg(long, value_name = "SCOPE")]
    pub scope: Vec<String>,
    /// The `audience` parameter.
    #[arg(long, value_name = "AUDIENCE")]
    pub audience: Option<String>,
    /// An RFC 8707 `resource`. Repeatable.
    #[arg(long, value_name = "URI")]
    pub resource: Vec<String>,
    /// An extra token request parameter. Repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub param: Vec<String>,
    /// Send an API key in this header (key from AUTHC_API_KEY or --api-key-file).
    #[arg(long, env = "AUTHC_API_KEY_HEADER", value_name = "NAME")]
    pub api_key_header: Option<String>,
    /// Read the API key from a file.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Send the API key in this query parameter.
    #[arg(long, value_name = "NAME")]
    pub api_key_query: Option<String>,
    /// Legacy HTTP Basic credentials: the user (password from AUTHC_BASIC_PASSWORD).
    #[arg(long, value_name = "USER")]
    pub basic_user: Option<String>,
    /// The origin (scheme://host, with :port if not the default) the credentials may be sent to;
    /// a request to any other origin is refused. Repeatable. Default: the
    /// origin of the URL requested.
    #[arg(long, value_name = "ORIGIN")]
    pub api_origin: Vec<String>,
    /// An origin that discovery from an API's URL may contact besides the
    /// API's own: where its metadata or its authorization server is (RFC
    /// 9728). Repeatable. Without it, an API naming another origin is
    /// refused: an API cannot send the client to any host it likes.
    #[arg(long, value_name = "ORIGIN")]
    pub trust_origin: Vec<String>,
    /// Allow plain http to hosts that are not loopback (test environments only).
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// Neither read nor write the token cache (the same as `--store none`).
    #[arg(long)]
    pub no_cache: bool,
    /// Where tokens are shared between runs, processes and hosts: `file`
    /// (the cache directory, the default), `file:DIR`,
    /// `redis://[user:password@]HOST:PORT/DB`, a Redis Cluster by its seed
    /// nodes `redis+cluster://[user:password@]HOST:PORT[,HOST:PORT...]/`,
    /// the primary that Redis Sentinel names
    /// `redis+sentinel://[user:password@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]`
    /// (followed after a failover), or `none`. `rediss://` and
    /// `rediss+cluster://` are Redis over TLS
    /// (the server certificate checked against the system's roots, or the
    /// PEM CA in AUTHC_STORE_CA_FILE).
    /// With AUTHC_STORE_KEY_FILE (32 bytes or 64 hex digits) the records
    /// are encrypted. With AUTHC_STORE_CONFIRM=REPLICAS or REPLICAS:MS a Redis write
    /// counts once that many replicas have it (within MS, default 500):
    /// then a shared refresh token is spent once across a failover too.
    #[arg(long, env = "AUTHC_STORE", value_name = "STORE")]
    pub store: Option<String>,
    /// At most N token requests in any 24 hours, counted in the store for
    /// every run and host sharing it (for providers that cap tokens per
    /// day). When spent, a cached token is still used; without one the run
    /// fails (exit 3) and says when the next request is allowed.
    #[arg(long, env = "AUTHC_MAX_FETCHES_PER_DAY", value_name = "N")]
    pub max_fetches_per_day: Option<u32>,
}
