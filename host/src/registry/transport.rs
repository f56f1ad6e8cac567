//! HTTP to OCI registries with every read bounded: each response body is counted as it
//! streams in (never taken from `Content-Length`) against a limit chosen for its kind,
//! every exchange runs under one overall deadline, and a registry's error text is kept
//! only as a short, sanitised prefix. A registry is a remote party: it may be slow, lie
//! about sizes, send gigabytes or terminal escapes, and none of that may cost the agent
//! its memory, its time or a clean log.
//!
//! The bounds, per kind of response:
//!
//! | what | bound | why |
//! |---|---|---|
//! | manifest | 4 MiB ([`MAX_MANIFEST_BYTES`]) | the OCI distribution spec's recommended manifest limit; CNCF distribution refuses larger manifest uploads, containerd larger manifest fetches |
//! | token response | 256 KiB ([`MAX_TOKEN_BYTES`]) | a bearer token is a few KiB |
//! | error body | 4 KiB read, 300 characters kept ([`MAX_ERROR_BYTES`]) | only the registry's message is wanted |
//! | blob (a plugin) | `--max-plugin-mib` | the agent's plugin limit |

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use super::auth::Credentials;
use crate::policy::untrusted::sanitize;

/// Largest manifest read.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Largest token response read.
pub const MAX_TOKEN_BYTES: usize = 256 << 10;
/// Most of an error body read; of that, [`MAX_ERROR_TEXT`] characters are kept.
pub const MAX_ERROR_BYTES: usize = 4 << 10;
/// Characters of a registry's error message kept for logs, Events and reports.
pub const MAX_ERROR_TEXT: usize = 300;
/// Overall deadline of a manifest exchange, authentication included (the default).
pub const MANIFEST_DEADLINE: Duration = Duration::from_secs(30);
/// The slowest a blob may arrive: a blob's deadline is the manifest's plus its size at
/// this rate (an 18 MiB plugin: 30 s + 72 s).
pub const MIN_BLOB_BYTES_PER_SECOND: u64 = 256 << 10;

/// The overall deadline for moving a blob of `size` bytes, `base` being the manifest's.
pub fn blob_deadline(base: Duration, size: u64) -> Duration {
    base + Duration::from_secs(size / MIN_BLOB_BYTES_PER_SECOND)
}

/// Why an exchange with a registry failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect: {0}")]
    Connect(#[source] reqwest::Error),
    #[error("the connection failed: {0}")]
    Broken(#[source] reqwest::Error),
    #[error(
        "the {what} did not arrive within {} s ({received} bytes received); podlight needs a registry that sends at least {} KiB/s",
        deadline.as_secs(), MIN_BLOB_BYTES_PER_SECOND >> 10
    )]
    TooSlow {
        what: &'static str,
        deadline: Duration,
        received: usize,
    },
    #[error("the {what} is larger than the {limit}-byte bound podlight reads{hint}")]
    TooLarge {
        what: &'static str,
        limit: usize,
        /// How to raise the bound, if one can.
        hint: &'static str,
    },
    #[error("answered {status} to {what}: {message}")]
    Status {
        what: &'static str,
        status: StatusCode,
        /// The registry's own words, sanitised and bounded.
        message: String,
        /// The distribution spec's error codes in the body (`MANIFEST_UNKNOWN`, …).
        codes: Vec<String>,
    },
    #[error("the token service's answer is unusable: {0}")]
    Token(String),
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

impl TransportError {
    /// A registry that is down, failing or slow: worth another try unchanged.
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Connect(_)
            | TransportError::Broken(_)
            | TransportError::TooSlow { .. } => true,
            TransportError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }

    fn from_send(error: reqwest::Error) -> TransportError {
        if error.is_connect() {
            TransportError::Connect(error)
        } else {
            TransportError::Broken(error)
        }
    }
}

/// rustls on ring, as kube uses it, for every HTTP client podlight builds; a
/// provider installed before is kept.
pub fn use_ring_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A response whose body was read whole, within its bound.
pub struct Body {
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

/// One request to send, with how much of its answer to read.
pub struct Exchange<'a> {
    pub method: Method,
    pub url: Url,
    /// For messages: "manifest", "Wasm layer", …
    pub what: &'static str,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: Option<Bytes>,
    /// Most bytes of a successful answer's body read.
    pub limit: usize,
    /// Said when `limit` is exceeded: how to raise it.
    pub hint: &'static str,
    /// Bytes to expect (the capacity reserved up front; at most `limit`).
    pub expected: usize,
}

/// Speaks HTTP to registries, authenticating as their challenges ask (HTTP Basic, or a
/// bearer token from the realm they name) with the credentials for their host.
pub struct Transport {
    http: reqwest::Client,
    insecure: Vec<String>,
    credentials: Credentials,
}

impl Transport {
    /// `roots`: DER certificates registries are checked against.
    pub fn new(
        roots: Vec<Vec<u8>>,
        insecure: Vec<String>,
        credentials: Credentials,
    ) -> Result<Transport, TransportError> {
        let certificates = roots
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TransportError::Setup(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_certs_only(certificates)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("podlight/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Setup(e.to_string()))?;
        Ok(Transport {
            http,
            insecure,
            credentials,
        })
    }

    /// `https://REGISTRY/v2/PATH`, or `http://` for a registry named insecure.
    pub fn url(&self, registry: &str, path: &str) -> Result<Url, TransportError> {
        let scheme = if self.insecure.iter().any(|host| host == registry) {
            "http"
        } else {
            "https"
        };
        Url::parse(&format!("{scheme}://{registry}/v2/{path}"))
            .map_err(|e| TransportError::Setup(format!("{registry}/v2/{path}: {e}")))
    }

    /// Sends `exchange` (authenticating for `scope` if the registry asks), all of it
    /// within `deadline`; a 2xx answer's body read within its limit.
    pub async fn send(
        &self,
        registry: &str,
        scope: &str,
        auth: &mut Option<String>,
        exchange: Exchange<'_>,
        deadline: Duration,
    ) -> Result<Body, TransportError> {
        let mut received = 0;
        let work = async {
            let mut response = self.request(&exchange, auth.as_deref()).await?;
            if response.status() == StatusCode::UNAUTHORIZED && auth.is_none() {
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(Challenge::parse);
                if let Some(header) = self.authorize(registry, scope, challenge).await? {
                    *auth = Some(header);
                    response = self.request(&exchange, auth.as_deref()).await?;
                }
            }
            if !response.status().is_success() {
                return Err(failure(exchange.what, response).await);
            }
            let headers = response.headers().clone();
            let bytes = read_bounded(
                response,
                Bound {
                    limit: exchange.limit,
                    expected: exchange.expected,
                    what: exchange.what,
                    hint: exchange.hint,
                },
                &mut received,
            )
            .await?;
            Ok(Body { headers, bytes })
        };
        let result = tokio::time::timeout(deadline, work).await;
        result.unwrap_or(Err(TransportError::TooSlow {
            what: exchange.what,
            deadline,
            received,
        }))
    }

    async fn request(
        &self,
        exchange: &Exchange<'_>,
        auth: Option<&str>,
    ) -> Result<reqwest::Response, TransportError> {
        let mut request = self
            .http
            .request(exchange.method.clone(), exchange.url.clone());
        if let Some(accept) = exchange.accept {
            request = request.header(ACCEPT, accept);
        }
        if let Some(content_type) = exchange.content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some(auth) = auth {
            request = request.header(AUTHORIZATION, auth);
        }
        if let Some(body) = &exchange.body {
            request = request.body(body.clone());
        }
        request.send().await.map_err(TransportError::from_send)
    }

    /// The `Authorization` header the challenge asks for; none when the registry asked
    /// for nothing podlight can give (the 401 then stands).
    async fn authorize(
        &self,
        registry: &str,
        scope: &str,
        challenge: Option<Challenge>,
    ) -> Result<Option<String>, TransportError> {
        use base64::Engine as _;
        let credentials = self.credentials.for_registry(registry);
        let basic = credentials.map(|(user, password)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        });
        let Some(challenge) = challenge else {
            return Ok(basic);
        };
        if !challenge.scheme.eq_ignore_ascii_case("bearer") {
            return Ok(basic);
        }
        let Some(realm) = challenge.param("realm") else {
            return Err(TransportError::Token(
                "the bearer challenge names no realm".into(),
            ));
        };
        let mut url = Url::parse(realm)
            .map_err(|e| TransportError::Token(format!("realm {}: {e}", sanitize(realm, 200))))?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("scope", scope);
            if let Some(service) = challenge.param("service") {
                query.append_pair("service", service);
            }
        }
        let mut request = self.http.get(url);
        if let Some(basic) = &basic {
            request = request.header(AUTHORIZATION, basic);
        }
        let response = request.send().await.map_err(TransportError::from_send)?;
        if !response.status().is_success() {
            return Err(failure("token request", response).await);
        }
        let bound = Bound {
            limit: MAX_TOKEN_BYTES,
            expected: 0,
            what: "token response",
            hint: "",
        };
        let bytes = read_bounded(response, bound, &mut 0).await?;
        let token = token_of(&bytes)?;
        Ok(Some(format!("Bearer {token}")))
    }
}

/// How much of a body to read, and how to name it when there is more.
struct Bound {
    limit: usize,
    /// Bytes expected, for the capacity reserved up front (at most `limit`).
    expected: usize,
    what: &'static str,
    hint: &'static str,
}

/// Reads a body, refusing past `bound.limit` bytes counted as they arrive; `received`
/// follows the count, so a deadline that cuts the read short can say how far it got.
async fn read_bounded(
    mut response: reqwest::Response,
    bound: Bound,
    received: &mut usize,
) -> Result<Vec<u8>, TransportError> {
    let mut bytes = Vec::with_capacity(bound.expected.min(bound.limit));
    while let Some(chunk) = response.chunk().await.map_err(TransportError::Broken)? {
        if bytes.len() + chunk.len() > bound.limit {
            return Err(TransportError::TooLarge {
                what: bound.what,
                limit: bound.limit,
                hint: bound.hint,
            });
        }
        bytes.extend_from_slice(&chunk);
        *received = bytes.len();
    }
    Ok(bytes)
}

/// The bearer token in a token endpoint's answer (`token` or `access_token`), if it
/// is one a header can carry.
pub(crate) fn token_of(bytes: &[u8]) -> Result<String, TransportError> {
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        token: Option<String>,
        access_token: Option<String>,
    }
    let answer: TokenAnswer = serde_json::from_slice(bytes)
        .map_err(|e| TransportError::Token(format!("not JSON with a token: {e}")))?;
    let token = answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TransportError::Token("it holds no token".into()))?;
    // A header value cannot carry control characters: refuse rather than send one.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TransportError::Token(
            "the token has characters a header cannot carry".into(),
        ));
    }
    Ok(token)
}

/// The message and error codes of a failed answer's body (its start): the
/// distribution spec's `errors[]` when it is that JSON envelope, else the text;
/// sanitised and bounded.
pub(crate) fn error_message(prefix: &[u8]) -> (String, Vec<String>) {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<EnvelopeError>,
    }
    #[derive(serde::Deserialize)]
    struct EnvelopeError {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let (message, codes): (String, Vec<String>) = match serde_json::from_slice::<Envelope>(prefix) {
        Ok(envelope) => (
            envelope
                .errors
                .iter()
                .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
                .collect::<Vec<_>>()
                .join("; "),
            envelope
                .errors
                .into_iter()
                .map(|e| sanitize(&e.code, 40))
                .collect(),
        ),
        Err(_) => (
            String::from_utf8_lossy(prefix).trim().to_string(),
            Vec::new(),
        ),
    };
    let message = if message.is_empty() {
        "(no message)".to_string()
    } else {
        sanitize(&message, MAX_ERROR_TEXT)
    };
    (message, codes)
}

/// A non-2xx answer: its status, and the start of its body as the registry's message
/// (the distribution spec's `errors[].message`s when the body is its JSON envelope).
async fn failure(what: &'static str, mut response: reqwest::Response) -> TransportError {
    let status = response.status();
    let mut prefix = Vec::new();
    while prefix.len() < MAX_ERROR_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ERROR_BYTES - prefix.len();
                prefix.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    // The rest is never read: dropping the response closes the connection.
    drop(response);
    let (message, codes) = error_message(&prefix);
    TransportError::Status {
        what,
        status,
        message,
        codes,
    }
}

/// A `WWW-Authenticate` challenge: its scheme and parameters.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// `Bearer realm="…",service="…",scope="…"` (RFC 7235's auth-param list; quoted
    /// values may hold commas and escaped quotes).
    pub(crate) fn parse(header: &str) -> Challenge {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let mut params = Vec::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.next_if(|c| *c == ',' || c.is_whitespace()).is_some() {}
            let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
                .collect::<String>()
                .trim()
                .to_ascii_lowercase();
            if key.is_empty() {
                break;
            }
            if chars.next_if_eq(&'=').is_none() {
                params.push((key, String::new()));
                continue;
            }
            let mut value = String::new();
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                    .collect::<String>()
                    .trim()
                    .to_string();
            }
            params.push((key, value));
        }
        Challenge {
            scheme: scheme.to_string(),
            params,
        }
    }

    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_challenge_gives_its_realm_service_and_scope() {
        let challenge = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(challenge.scheme, "Bearer");
        assert_eq!(challenge.param("realm"), Some("https://auth.example/token"));
        assert_eq!(challenge.param("service"), Some("registry.example"));
        assert_eq!(challenge.param("scope"), Some("repository:a/b:pull,push"));
    }

    #[test]
    fn a_basic_challenge_and_unquoted_or_escaped_values() {
        let challenge = Challenge::parse(r#"Basic realm=lab, note="say \"hi\"""#);
        assert_eq!(challenge.scheme, "Basic");
        assert_eq!(challenge.param("realm"), Some("lab"));
        assert_eq!(challenge.param("note"), Some(r#"say "hi""#));
        assert_eq!(Challenge::parse("Bearer").params, Vec::new());
    }

    #[test]
    fn a_blob_deadline_allows_the_stated_minimum_rate() {
        assert_eq!(blob_deadline(MANIFEST_DEADLINE, 0), MANIFEST_DEADLINE);
        assert_eq!(
            blob_deadline(MANIFEST_DEADLINE, 18 << 20),
            MANIFEST_DEADLINE + Duration::from_secs(72)
        );
    }
}
