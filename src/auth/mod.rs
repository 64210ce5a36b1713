//! JWT authentication for the SFU.
//!
//! A client presents a compact JWS (`header.payload.signature`). The server
//! checks it with a [`Verifier`] built from an [`AuthConfig`] and turns the
//! claims into [`Grants`].
//!
//! # Wire contract
//!
//! * `sub` (required): string or integer; an integer becomes its decimal
//!   string. Becomes [`Grants::participant_id`].
//! * `name`, else `username`, else `sub`: the display name.
//! * `exp` (required), `nbf`, `iat` (optional): NumericDate seconds, checked
//!   with `leeway_secs` of slack each.
//! * `room` (string) and/or `rooms` (array of strings) restrict the rooms;
//!   `"*"` in either means any room; neither present means any room.
//! * `canPublish` / `canSubscribe` (default `true`), `admin` (default `false`).
//! * `iss` / `aud` are checked only when the config sets an issuer / audience.
//! * Unknown claims are ignored.
//!
//! Only the algorithms of the configured key's family are accepted (HMAC
//! secret: HS256/384/512; RSA: RS*/PS*; EC: ES256 for P-256, ES384 for P-384;
//! Ed25519: EdDSA). `alg: none` is never accepted. Verification never panics,
//! whatever the token string.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Map, Value};

mod keys;

pub use keys::KeyFamily;
use keys::{load_public_pem, HMAC_ALGS};

/// Longest token [`Verifier::verify`] looks at, in bytes. Real tokens are a
/// few hundred bytes; anything this big is refused before any decoding work.
const MAX_TOKEN_LEN: usize = 32 * 1024;

/// Key material the server verifies tokens with: the one "which key" type,
/// also what [`crate::config::Config::jwt_key`] holds (re-exported as
/// `config::JwtKey`).
#[derive(Clone)]
pub enum JwtKey {
    /// Development: a random secret made at start; `/dev/token` exists.
    /// Verified exactly like [`JwtKey::Secret`].
    Dev(Vec<u8>),
    /// A shared HMAC secret (the raw bytes are the key). Accepts HS256,
    /// HS384 and HS512, and lets [`Verifier::issue_token`] mint HS256 tokens.
    Secret(Vec<u8>),
    /// A PEM-encoded public key: `BEGIN PUBLIC KEY` (RSA, EC P-256/P-384 or
    /// Ed25519) or `BEGIN RSA PUBLIC KEY`.
    PublicKeyPem(Vec<u8>),
}

impl fmt::Debug for JwtKey {
    /// Never prints the secret itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtKey::Dev(s) => write!(f, "Dev([{} bytes redacted])", s.len()),
            JwtKey::Secret(s) => write!(f, "Secret([{} bytes redacted])", s.len()),
            JwtKey::PublicKeyPem(p) => write!(f, "PublicKeyPem([{} bytes])", p.len()),
        }
    }
}

/// Everything the server needs to verify tokens.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The key tokens must be signed with.
    pub key: JwtKey,
    /// When set, a token's `iss` must equal this.
    pub issuer: Option<String>,
    /// When set, a token's `aud` (a string or an array of strings) must
    /// contain this. When unset, `aud` is ignored.
    pub audience: Option<String>,
    /// Clock-skew slack in seconds for `exp`, `nbf` and `iat`.
    pub leeway_secs: u64,
}

/// What a dev-mode token minted by [`Verifier::issue_token`] grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Participant id (`sub`); must not be empty.
    pub sub: String,
    /// Display name (`name`); when `None` the verifier falls back to `sub`.
    pub name: Option<String>,
    /// Rooms the token is limited to (`rooms`); `None` means any room.
    pub rooms: Option<Vec<String>>,
    /// `canPublish`.
    pub can_publish: bool,
    /// `canSubscribe`.
    pub can_subscribe: bool,
    /// `admin`.
    pub admin: bool,
    /// Lifetime: `exp` is now plus this many seconds.
    pub ttl_secs: u64,
}

/// What a verified token allows its bearer to do. Serializable: a node
/// that forwards a session to the room's owner hands the grants over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grants {
    /// From `sub`.
    pub participant_id: String,
    /// From `name`, else `username`, else `sub`.
    pub username: String,
    /// From `room` / `rooms`.
    pub rooms: RoomScope,
    /// From `canPublish` (default `true`).
    pub can_publish: bool,
    /// From `canSubscribe` (default `true`).
    pub can_subscribe: bool,
    /// From `admin` (default `false`).
    pub admin: bool,
    /// The token's `exp`, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Which rooms a token may join.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RoomScope {
    /// Any room.
    Any,
    /// Only these rooms (deduplicated, in token order). Empty means none.
    Only(Vec<String>),
}

impl Grants {
    /// Whether the token lets its bearer join `room`.
    pub fn allows_room(&self, room: &str) -> bool {
        match &self.rooms {
            RoomScope::Any => true,
            RoomScope::Only(rooms) => rooms.iter().any(|r| r == room),
        }
    }
}

/// Why a token (or a key) was refused. `Display` is a short human reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is not a well-formed JWS/JWT, or a claim has the wrong type.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header's `alg` is not one the server's key can verify (this
    /// includes `none`).
    #[error("algorithm not allowed: {alg} (server key is {server_key})")]
    AlgorithmNotAllowed {
        /// The `alg` from the token header (sanitised, truncated).
        alg: String,
        /// The server's key, e.g. `RSA`, `EC P-256`.
        server_key: String,
    },
    /// The signature does not match.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// No `exp` claim.
    #[error("missing exp claim")]
    MissingExp,
    /// No `sub` claim.
    #[error("missing sub claim")]
    MissingSub,
    /// `sub` is empty or neither a string nor an integer.
    #[error("invalid sub claim")]
    InvalidSub,
    /// `iss` missing or not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` missing or not containing the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// The configured key cannot be used.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// [`Verifier::issue_token`] needs a shared secret; the server has a
    /// public key of this family.
    #[error("cannot issue tokens: server key is {0} (issuing needs a shared secret)")]
    CannotIssue(KeyFamily),
    /// A [`TokenRequest`] the verifier would refuse.
    #[error("invalid token request: {0}")]
    InvalidRequest(String),
}

/// Verifies tokens against one configured key; cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    family: KeyFamily,
    /// Human description of the key for messages, e.g. `EC P-256`.
    key_desc: &'static str,
    /// The header `alg` values accepted.
    algorithms: &'static [Algorithm],
    decoding: DecodingKey,
    /// Present only for a shared secret ([`JwtKey::Dev`], [`JwtKey::Secret`]).
    encoding: Option<EncodingKey>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
}

impl fmt::Debug for Verifier {
    /// Prints the key family and checks, never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("key", &self.key_desc)
            .field("algorithms", &self.algorithms)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway)
            .finish()
    }
}

impl Verifier {
    /// Builds a verifier, checking the key up front.
    ///
    /// Fails with a clear message if the PEM is not an RSA, EC (P-256/P-384)
    /// or Ed25519 public key (a private key or certificate is named as such),
    /// if an RSA key is outside 2048..=4096 bits, or if a secret is empty or
    /// is actually a PEM key.
    pub fn new(cfg: &AuthConfig) -> Result<Verifier, AuthError> {
        let (family, key_desc, algorithms, decoding, encoding) = match &cfg.key {
            JwtKey::Dev(secret) | JwtKey::Secret(secret) => {
                if secret.is_empty() {
                    return Err(AuthError::InvalidKey("the secret is empty".into()));
                }
                if secret.trim_ascii_start().starts_with(b"-----BEGIN") {
                    return Err(AuthError::InvalidKey(
                        "the secret looks like a PEM key; configure it as a public key instead"
                            .into(),
                    ));
                }
                (
                    KeyFamily::Hmac,
                    "HMAC",
                    HMAC_ALGS,
                    DecodingKey::from_secret(secret),
                    Some(EncodingKey::from_secret(secret)),
                )
            }
            JwtKey::PublicKeyPem(pem) => {
                let key = load_public_pem(pem)?;
                (key.family, key.desc, key.algorithms, key.decoding, None)
            }
        };
        Ok(Verifier {
            family,
            key_desc,
            algorithms,
            decoding,
            encoding,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway: cfg.leeway_secs,
        })
    }

    /// Checks `token` (signature, algorithm, times, issuer, audience) and
    /// returns what it grants. Never panics, whatever the input.
    pub fn verify(&self, token: &str) -> Result<Grants, AuthError> {
        if token.is_empty() {
            return Err(malformed("empty token"));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(malformed(format!(
                "token is longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("expected three dot-separated parts"));
        };

        // Header: only `alg` (and `crit`) matter, and they are read before
        // anything is trusted, to refuse foreign algorithms with a clear reason.
        let header =
            decode_json_object(header_b64).map_err(|why| malformed(format!("header {why}")))?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.as_str(),
            Some(_) => return Err(malformed("header alg is not a string")),
            None => return Err(malformed("header has no alg")),
        };
        let Some(algorithm) = self
            .algorithms
            .iter()
            .copied()
            .find(|a| alg_name(*a) == alg)
        else {
            return Err(AuthError::AlgorithmNotAllowed {
                alg: sanitize_alg(alg),
                server_key: self.key_desc.to_string(),
            });
        };
        if header.contains_key("crit") {
            return Err(malformed("unsupported critical header parameters"));
        }

        if URL_SAFE_NO_PAD.decode(sig_b64).is_err() {
            return Err(malformed("signature is not base64url"));
        }
        // The signed message is the token up to (not including) the last dot.
        let message_len = header_b64.len() + 1 + payload_b64.len();
        let message = token.as_bytes().get(..message_len).unwrap_or_default();
        match jsonwebtoken::crypto::verify(sig_b64, message, &self.decoding, algorithm) {
            Ok(true) => {}
            Ok(false) => return Err(AuthError::BadSignature),
            // The key was checked in `new`, so this means a key the crypto
            // backend cannot use after all: a server problem, say so.
            Err(e) => return Err(AuthError::InvalidKey(e.to_string())),
        }

        let claims =
            decode_json_object(payload_b64).map_err(|why| malformed(format!("payload {why}")))?;
        self.grants_from_claims(&claims)
    }

    /// Which family the key is: for logs.
    pub fn family(&self) -> KeyFamily {
        self.family
    }

    /// Mints an HS256 token for `claims` (dev mode). Only for a shared
    /// secret ([`JwtKey::Dev`], [`JwtKey::Secret`]); a public-key verifier
    /// returns [`AuthError::CannotIssue`]. The token carries the configured
    /// issuer and audience, so it verifies with this same verifier.
    pub fn issue_token(&self, claims: &TokenRequest) -> Result<String, AuthError> {
        let Some(key) = &self.encoding else {
            return Err(AuthError::CannotIssue(self.family));
        };
        if claims.sub.is_empty() {
            return Err(AuthError::InvalidRequest("sub must not be empty".into()));
        }
        let now = now_secs();
        let mut out = Map::new();
        out.insert("sub".into(), Value::String(claims.sub.clone()));
        if let Some(name) = &claims.name {
            out.insert("name".into(), Value::String(name.clone()));
        }
        if let Some(rooms) = &claims.rooms {
            if rooms.iter().any(String::is_empty) {
                return Err(AuthError::InvalidRequest(
                    "room names must not be empty".into(),
                ));
            }
            let rooms = rooms.iter().cloned().map(Value::String).collect();
            out.insert("rooms".into(), Value::Array(rooms));
        }
        out.insert("canPublish".into(), Value::Bool(claims.can_publish));
        out.insert("canSubscribe".into(), Value::Bool(claims.can_subscribe));
        out.insert("admin".into(), Value::Bool(claims.admin));
        out.insert("iat".into(), Value::from(now));
        out.insert(
            "exp".into(),
            Value::from(now.saturating_add(claims.ttl_secs)),
        );
        if let Some(iss) = &self.issuer {
            out.insert("iss".into(), Value::String(iss.clone()));
        }
        if let Some(aud) = &self.audience {
            out.insert("aud".into(), Value::String(aud.clone()));
        }
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &out, key)
            .map_err(|e| AuthError::InvalidKey(e.to_string()))
    }

    /// Applies the claim rules to a payload whose signature is verified.
    fn grants_from_claims(&self, claims: &Map<String, Value>) -> Result<Grants, AuthError> {
        let now = now_secs();
        let slack = |t: u64| t.saturating_add(self.leeway);

        let exp = numeric_date(claims, "exp")?.ok_or(AuthError::MissingExp)?;
        if now >= slack(exp) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = numeric_date(claims, "nbf")? {
            if nbf > slack(now) {
                return Err(AuthError::NotYetValid);
            }
        }
        if let Some(iat) = numeric_date(claims, "iat")? {
            if iat > slack(now) {
                return Err(AuthError::IssuedInFuture);
            }
        }

        if let Some(expected) = &self.issuer {
            match claims.get("iss") {
                Some(Value::String(iss)) if iss == expected => {}
                _ => return Err(AuthError::WrongIssuer),
            }
        }
        if let Some(expected) = &self.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => aud == expected,
                Some(Value::Array(auds)) => auds
                    .iter()
                    .any(|a| matches!(a, Value::String(a) if a == expected)),
                _ => false,
            };
            if !ok {
                return Err(AuthError::WrongAudience);
            }
        }

        let participant_id = match claims.get("sub") {
            None | Some(Value::Null) => return Err(AuthError::MissingSub),
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            Some(_) => return Err(AuthError::InvalidSub),
        };
        let username = match display_name(claims, "name")? {
            Some(name) => name,
            None => display_name(claims, "username")?.unwrap_or_else(|| participant_id.clone()),
        };

        Ok(Grants {
            participant_id,
            username,
            rooms: room_scope(claims)?,
            can_publish: flag(claims, "canPublish", true)?,
            can_subscribe: flag(claims, "canSubscribe", true)?,
            admin: flag(claims, "admin", false)?,
            expires_at: exp,
        })
    }
}

/// Random 32-byte secret for dev mode, returned hex-encoded as bytes
/// (64 ASCII hex digits; those ASCII bytes are the HMAC key).
pub fn random_secret() -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let raw: [u8; 32] = rand::random();
    raw.iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]])
        .collect()
}

// ---------------------------------------------------------------------------
// Token parsing helpers

fn malformed(why: impl Into<String>) -> AuthError {
    AuthError::Malformed(why.into())
}

/// The JWS name of an algorithm, exactly as it appears in `alg`.
fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
    }
}

/// Makes an attacker-chosen string safe for a log line: printable ASCII
/// only, at most 32 characters.
fn sanitize_alg(alg: &str) -> String {
    if alg.is_empty() {
        return "(empty)".into();
    }
    let mut out: String = alg
        .chars()
        .take(32)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if alg.chars().nth(32).is_some() {
        out.push_str("...");
    }
    out
}

/// Decodes one base64url segment into a JSON object; the error completes
/// "header ..." / "payload ...".
fn decode_json_object(segment: &str) -> Result<Map<String, Value>, &'static str> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| "is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "is not a JSON object")
}

/// Seconds since the Unix epoch; 0 if the clock is before 1970.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A NumericDate claim: `None` when absent or null. Fractions are truncated.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            // `as` saturates for huge values; NaN/infinity cannot come from JSON.
            (None, Some(secs)) if secs.is_finite() && secs >= 0.0 => Ok(Some(secs as u64)),
            _ => Err(malformed(format!("{name} must be a non-negative number"))),
        },
        Some(_) => Err(malformed(format!("{name} must be a number"))),
    }
}

/// A display-name claim: `None` when absent, null or empty.
fn display_name(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(format!("{name} must be a string"))),
    }
}

/// A boolean claim with a default for absent or null.
fn flag(claims: &Map<String, Value>, name: &str, default: bool) -> Result<bool, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(malformed(format!("{name} must be a boolean"))),
    }
}

/// The rooms from `room` and `rooms`.
fn room_scope(claims: &Map<String, Value>) -> Result<RoomScope, AuthError> {
    let mut present = false;
    let mut names: Vec<&str> = Vec::new();
    match claims.get("room") {
        None | Some(Value::Null) => {}
        Some(Value::String(room)) => {
            present = true;
            names.push(room);
        }
        Some(_) => return Err(malformed("room must be a string")),
    }
    match claims.get("rooms") {
        None | Some(Value::Null) => {}
        Some(Value::Array(rooms)) => {
            present = true;
            for room in rooms {
                match room {
                    Value::String(room) => names.push(room),
                    _ => return Err(malformed("rooms must be an array of strings")),
                }
            }
        }
        Some(_) => return Err(malformed("rooms must be an array of strings")),
    }
    if names.iter().any(|r| r.is_empty()) {
        return Err(malformed("room names must not be empty"));
    }
    if !present || names.contains(&"*") {
        return Ok(RoomScope::Any);
    }
    let mut rooms: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !rooms.iter().any(|r| r == name) {
            rooms.push(name.to_string());
        }
    }
    Ok(RoomScope::Only(rooms))
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    // --- valid tokens -------------------------------------------------------

    #[test]
    fn valid_hs256_token() {
        let exp = now() + 3600;
        let g = hs_verifier()
            .verify(&hs(json!({"sub": "alice", "exp": exp})))
            .unwrap();
        assert_eq!(
            g,
            Grants {
                participant_id: "alice".into(),
                username: "alice".into(),
                rooms: RoomScope::Any,
                can_publish: true,
                can_subscribe: true,
                admin: false,
                expires_at: exp,
            }
        );
    }

    #[test]
    fn hs384_and_hs512_accepted_with_secret() {
        let v = hs_verifier();
        let key = EncodingKey::from_secret(SECRET);
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let g = v.verify(&sign(alg, &key, &base())).unwrap();
            assert_eq!(g.participant_id, "alice");
        }
        assert_eq!(v.family(), KeyFamily::Hmac);
    }

    #[test]
    fn unknown_claims_ignored_and_fractional_exp_ok() {
        let exp = now() + 3600;
        let g = hs_verifier()
            .verify(&hs(json!({
                "sub": "a", "exp": exp as f64 + 0.5, "video": {"x": [1, 2]}, "metadata": "m"
            })))
            .unwrap();
        assert_eq!(g.expires_at, exp);
    }

    #[test]
    fn numeric_sub() {
        let v = hs_verifier();
        let g = v.verify(&hs(claims(json!({"sub": 12345})))).unwrap();
        assert_eq!(g.participant_id, "12345");
        assert_eq!(g.username, "12345");
        let g = v.verify(&hs(claims(json!({"sub": -7})))).unwrap();
        assert_eq!(g.participant_id, "-7");
    }

    #[test]
    fn invalid_sub_types_and_empty() {
        let v = hs_verifier();
        for sub in [
            json!(""),
            json!(true),
            json!(1.5),
            json!([]),
            json!({"a": 1}),
        ] {
            assert!(
                matches!(
                    v.verify(&hs(claims(json!({ "sub": sub.clone() })))),
                    Err(AuthError::InvalidSub)
                ),
                "sub {sub}"
            );
        }
    }

    #[test]
    fn missing_sub() {
        let v = hs_verifier();
        let r = v.verify(&hs(json!({"exp": now() + 60})));
        assert!(matches!(r, Err(AuthError::MissingSub)), "{r:?}");
        let r = v.verify(&hs(json!({"sub": null, "exp": now() + 60})));
        assert!(matches!(r, Err(AuthError::MissingSub)), "{r:?}");
        assert_eq!(AuthError::MissingSub.to_string(), "missing sub claim");
    }

    #[test]
    fn name_username_default() {
        let v = hs_verifier();
        let name = |c| v.verify(&hs(claims(c))).unwrap().username;
        assert_eq!(name(json!({"name": "Alice"})), "Alice");
        assert_eq!(name(json!({"username": "ali"})), "ali");
        assert_eq!(name(json!({"name": "Alice", "username": "ali"})), "Alice");
        assert_eq!(name(json!({})), "alice");
        assert_eq!(name(json!({"name": "", "username": "ali"})), "ali");
        assert_eq!(name(json!({"name": null})), "alice");
        let r = v.verify(&hs(claims(json!({"name": 5}))));
        assert!(malformed_err(r).contains("name"));
    }

    #[test]
    fn room_claims() {
        let v = hs_verifier();
        let rooms = |c| v.verify(&hs(claims(c))).unwrap().rooms;

        assert_eq!(
            rooms(json!({"room": "r1"})),
            RoomScope::Only(vec!["r1".into()])
        );
        assert_eq!(
            rooms(json!({"rooms": ["r1", "r2", "r1"]})),
            RoomScope::Only(vec!["r1".into(), "r2".into()])
        );
        assert_eq!(
            rooms(json!({"room": "r0", "rooms": ["r1"]})),
            RoomScope::Only(vec!["r0".into(), "r1".into()])
        );
        assert_eq!(rooms(json!({"room": "*"})), RoomScope::Any);
        assert_eq!(rooms(json!({"rooms": ["r1", "*"]})), RoomScope::Any);
        assert_eq!(rooms(json!({"room": "r1", "rooms": ["*"]})), RoomScope::Any);
        assert_eq!(rooms(json!({})), RoomScope::Any);
        assert_eq!(rooms(json!({"rooms": []})), RoomScope::Only(vec![]));

        let g = v
            .verify(&hs(claims(json!({"rooms": ["r1", "r2"]}))))
            .unwrap();
        assert!(g.allows_room("r1") && g.allows_room("r2"));
        assert!(!g.allows_room("r3") && !g.allows_room("*") && !g.allows_room(""));
        let g = v.verify(&hs(base())).unwrap();
        assert!(g.allows_room("anything"));
        let g = v.verify(&hs(claims(json!({"rooms": []})))).unwrap();
        assert!(!g.allows_room("r1"));

        for bad in [
            json!({"room": 1}),
            json!({"room": ["r1"]}),
            json!({"rooms": "r1"}),
            json!({"rooms": ["r1", 2]}),
            json!({"room": ""}),
        ] {
            let r = v.verify(&hs(claims(bad.clone())));
            assert!(malformed_err(r).contains("room"), "{bad}");
        }
    }

    #[test]
    fn permission_flags() {
        let v = hs_verifier();
        let g = v
            .verify(&hs(claims(
                json!({"canPublish": false, "canSubscribe": false}),
            )))
            .unwrap();
        assert!(!g.can_publish && !g.can_subscribe && !g.admin);
        let g = v.verify(&hs(claims(json!({"canPublish": false})))).unwrap();
        assert!(!g.can_publish && g.can_subscribe);
        let g = v
            .verify(&hs(claims(json!({"canSubscribe": false, "admin": true}))))
            .unwrap();
        assert!(g.can_publish && !g.can_subscribe && g.admin);
    }

    #[test]
    fn permission_flags_wrong_type() {
        let v = hs_verifier();
        for (claim, value) in [
            ("canPublish", json!("false")),
            ("canSubscribe", json!(0)),
            ("admin", json!("true")),
            ("admin", json!(1)),
        ] {
            let r = v.verify(&hs(claims(json!({ claim: value }))));
            assert!(malformed_err(r).contains(claim));
        }
    }

    // --- times --------------------------------------------------------------

    #[test]
    fn expired() {
        let r = hs_verifier().verify(&hs(claims(json!({"exp": now() - 10}))));
        assert!(matches!(r, Err(AuthError::Expired)), "{r:?}");
        assert_eq!(AuthError::Expired.to_string(), "token expired");
    }

    #[test]
    fn leeway_applies_to_exp_nbf_iat() {
        let mut c = cfg(JwtKey::Secret(SECRET.to_vec()));
        c.leeway_secs = 120;
        let v = Verifier::new(&c).unwrap();
        let t = now();
        v.verify(&hs(claims(json!({"exp": t - 60})))).unwrap();
        v.verify(&hs(claims(json!({"nbf": t + 60})))).unwrap();
        v.verify(&hs(claims(json!({"iat": t + 60})))).unwrap();
        assert!(matches!(
            v.verify(&hs(claims(json!({"exp": t - 600})))),
            Err(AuthError::Expired)
        ));
        assert!(matches!(
            v.verify(&hs(claims(json!({"nbf": t + 600})))),
            Err(AuthError::NotYetValid)
        ));
        assert!(matches!(
            v.verify(&hs(claims(json!({"iat": t + 600})))),
            Err(AuthError::IssuedInFuture)
        ));
    }

    #[test]
    fn huge_leeway_does_not_overflow() {
        let mut c = cfg(JwtKey::Secret(SECRET.to_vec()));
        c.leeway_secs = u64::MAX;
        let v = Verifier::new(&c).unwrap();
        v.verify(&hs(
            json!({"sub": "a", "exp": u64::MAX, "nbf": u64::MAX, "iat": 0}),
        ))
        .unwrap();
        v.verify(&hs(json!({"sub": "a", "exp": 0}))).unwrap();
    }

    #[test]
    fn not_yet_valid() {
        let v = hs_verifier();
        let r = v.verify(&hs(claims(json!({"nbf": now() + 3600}))));
        assert!(matches!(r, Err(AuthError::NotYetValid)), "{r:?}");
        assert_eq!(AuthError::NotYetValid.to_string(), "token not yet valid");
        v.verify(&hs(claims(json!({"nbf": now() - 5})))).unwrap();
    }

    #[test]
    fn iat_in_future() {
        let v = hs_verifier();
        let r = v.verify(&hs(claims(json!({"iat": now() + 3600}))));
        assert!(matches!(r, Err(AuthError::IssuedInFuture)), "{r:?}");
        v.verify(&hs(claims(json!({"iat": now() - 5})))).unwrap();
    }

    #[test]
    fn missing_exp() {
        let r = hs_verifier().verify(&hs(json!({"sub": "alice"})));
        assert!(matches!(r, Err(AuthError::MissingExp)), "{r:?}");
        let r = hs_verifier().verify(&hs(json!({"sub": "alice", "exp": null})));
        assert!(matches!(r, Err(AuthError::MissingExp)), "{r:?}");
    }

    #[test]
    fn time_claims_wrong_type() {
        let v = hs_verifier();
        for (claim, value) in [
            ("exp", json!("9999999999")),
            ("exp", json!(-1)),
            ("nbf", json!(true)),
            ("iat", json!({"t": 1})),
            ("iat", json!(-5.5)),
        ] {
            let r = v.verify(&hs(claims(json!({ claim: value }))));
            assert!(malformed_err(r).contains(claim));
        }
    }

    // --- signatures and algorithms -----------------------------------------

    #[test]
    fn bad_signature() {
        let v = hs_verifier();
        let other = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(b"another secret"),
            &base(),
        );
        assert!(matches!(v.verify(&other), Err(AuthError::BadSignature)));

        // Payload swapped under a valid signature.
        let good = hs(base());
        let forged = hs(claims(json!({"admin": true})));
        let g: Vec<&str> = good.split('.').collect();
        let f: Vec<&str> = forged.split('.').collect();
        let spliced = format!("{}.{}.{}", g[0], f[1], g[2]);
        assert!(matches!(v.verify(&spliced), Err(AuthError::BadSignature)));

        // Empty signature.
        let stripped = format!("{}.{}.", g[0], g[1]);
        assert!(matches!(v.verify(&stripped), Err(AuthError::BadSignature)));
        assert_eq!(AuthError::BadSignature.to_string(), "bad signature");
    }

    #[test]
    fn bad_signature_public_keys() {
        let claims = base();
        for (private, public, alg) in [
            (
                EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
                RSA_PUBLIC,
                Algorithm::RS256,
            ),
            (
                EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
                EC_PUBLIC,
                Algorithm::ES256,
            ),
            (
                EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
                ED_PUBLIC,
                Algorithm::EdDSA,
            ),
        ] {
            let token = sign(alg, &private, &claims);
            let v = pem_verifier(public);
            v.verify(&token).unwrap();
            let mut parts: Vec<String> = token.split('.').map(String::from).collect();
            parts[1] = b64(format!(r#"{{"sub":"mallory","exp":{}}}"#, now() + 60).as_bytes());
            let r = v.verify(&parts.join("."));
            assert!(matches!(r, Err(AuthError::BadSignature)), "{alg:?}: {r:?}");
        }
    }

    #[test]
    fn alg_none_rejected() {
        let payload = serde_json::to_vec(&base()).unwrap();
        for v in [
            hs_verifier(),
            pem_verifier(RSA_PUBLIC),
            pem_verifier(ED_PUBLIC),
        ] {
            for alg in ["none", "None", "NONE", "nOnE"] {
                let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
                let unsigned = format!("{}.{}.", b64(header.as_bytes()), b64(&payload));
                let r = v.verify(&unsigned);
                match r {
                    Err(AuthError::AlgorithmNotAllowed { alg: got, .. }) => assert_eq!(got, alg),
                    other => panic!("alg {alg}: {other:?}"),
                }
                // Some "none" tokens carry junk in the signature slot.
                let junk = format!("{}.{}.AAAA", b64(header.as_bytes()), b64(&payload));
                assert!(matches!(
                    v.verify(&junk),
                    Err(AuthError::AlgorithmNotAllowed { .. })
                ));
            }
        }
        let header = br#"{"alg":"none"}"#;
        let unsigned = format!("{}.{}.", b64(header), b64(&payload));
        assert_eq!(
            hs_verifier().verify(&unsigned).unwrap_err().to_string(),
            "algorithm not allowed: none (server key is HMAC)"
        );
    }

    #[test]
    fn key_confusion_hs256_signed_with_rsa_public_pem() {
        // The classic attack: use the server's public key bytes as an HMAC
        // secret and hope the server verifies HS256 with them.
        let token = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(RSA_PUBLIC),
            &claims(json!({"admin": true})),
        );
        let r = pem_verifier(RSA_PUBLIC).verify(&token);
        match &r {
            Err(AuthError::AlgorithmNotAllowed { alg, server_key }) => {
                assert_eq!(alg, "HS256");
                assert_eq!(server_key, "RSA");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            r.unwrap_err().to_string(),
            "algorithm not allowed: HS256 (server key is RSA)"
        );

        // Same with EC and Ed25519 public keys.
        for public in [EC_PUBLIC, ED_PUBLIC] {
            let token = sign(Algorithm::HS256, &EncodingKey::from_secret(public), &base());
            assert!(matches!(
                pem_verifier(public).verify(&token),
                Err(AuthError::AlgorithmNotAllowed { .. })
            ));
        }
    }

    #[test]
    fn rs256_against_hmac_verifier() {
        let token = sign(
            Algorithm::RS256,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
            &base(),
        );
        let r = hs_verifier().verify(&token);
        assert_eq!(
            r,
            Err(AuthError::AlgorithmNotAllowed {
                alg: "RS256".into(),
                server_key: "HMAC".into()
            })
        );
    }

    #[test]
    fn cross_family_public_keys_rejected() {
        let es = sign(
            Algorithm::ES256,
            &EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
            &base(),
        );
        let ed = sign(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
            &base(),
        );
        let rs = sign(
            Algorithm::RS256,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
            &base(),
        );
        let cases = [
            (RSA_PUBLIC, &es, "ES256"),
            (RSA_PUBLIC, &ed, "EdDSA"),
            (EC_PUBLIC, &rs, "RS256"),
            (EC_PUBLIC, &ed, "EdDSA"),
            (ED_PUBLIC, &rs, "RS256"),
            (ED_PUBLIC, &es, "ES256"),
        ];
        for (public, token, alg) in cases {
            match pem_verifier(public).verify(token) {
                Err(AuthError::AlgorithmNotAllowed { alg: got, .. }) => assert_eq!(got, alg),
                other => panic!("{alg}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_alg_named_and_sanitised() {
        let payload = serde_json::to_vec(&base()).unwrap();
        let v = hs_verifier();
        let token = |alg: &str| {
            let header = json!({ "alg": alg });
            format!(
                "{}.{}.AAAA",
                b64(header.to_string().as_bytes()),
                b64(&payload)
            )
        };
        assert_eq!(
            v.verify(&token("HS1024")).unwrap_err().to_string(),
            "algorithm not allowed: HS1024 (server key is HMAC)"
        );
        // alg names are case-sensitive.
        assert!(matches!(
            v.verify(&token("hs256")),
            Err(AuthError::AlgorithmNotAllowed { .. })
        ));
        match v.verify(&token(&format!("bad\nalg{}", "x".repeat(100)))) {
            Err(AuthError::AlgorithmNotAllowed { alg, .. }) => {
                assert!(alg.starts_with("bad?alg") && alg.len() <= 35, "{alg}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            v.verify(&token("")),
            Err(AuthError::AlgorithmNotAllowed { .. })
        ));
    }

    #[test]
    fn crit_header_rejected() {
        let payload = serde_json::to_vec(&base()).unwrap();
        let token = hs_raw(br#"{"alg":"HS256","crit":["exp"],"exp":1}"#, &payload);
        assert!(malformed_err(hs_verifier().verify(&token)).contains("critical"));
    }

    // --- iss / aud ------------------------------------------------------------

    #[test]
    fn issuer() {
        let mut c = cfg(JwtKey::Secret(SECRET.to_vec()));
        c.issuer = Some("https://auth.example".into());
        let v = Verifier::new(&c).unwrap();
        v.verify(&hs(claims(json!({"iss": "https://auth.example"}))))
            .unwrap();
        for bad in [
            json!({"iss": "https://evil.example"}),
            json!({}),
            json!({"iss": ["https://auth.example"]}),
            json!({"iss": 1}),
        ] {
            let r = v.verify(&hs(claims(bad.clone())));
            assert!(matches!(r, Err(AuthError::WrongIssuer)), "{bad}: {r:?}");
        }
        assert_eq!(AuthError::WrongIssuer.to_string(), "wrong issuer");
        // Unconfigured: iss ignored.
        hs_verifier()
            .verify(&hs(claims(json!({"iss": "whoever"}))))
            .unwrap();
    }

    #[test]
    fn audience() {
        let mut c = cfg(JwtKey::Secret(SECRET.to_vec()));
        c.audience = Some("sfu".into());
        let v = Verifier::new(&c).unwrap();
        v.verify(&hs(claims(json!({"aud": "sfu"})))).unwrap();
        v.verify(&hs(claims(json!({"aud": ["api", "sfu"]}))))
            .unwrap();
        for bad in [
            json!({"aud": "api"}),
            json!({"aud": ["api", "web"]}),
            json!({"aud": []}),
            json!({}),
            json!({"aud": 7}),
        ] {
            let r = v.verify(&hs(claims(bad.clone())));
            assert!(matches!(r, Err(AuthError::WrongAudience)), "{bad}: {r:?}");
        }
        assert_eq!(AuthError::WrongAudience.to_string(), "wrong audience");
    }

    #[test]
    fn audience_ignored_when_unconfigured() {
        let v = hs_verifier();
        for aud in [json!("anything"), json!(["a", "b"]), json!(42)] {
            v.verify(&hs(claims(json!({ "aud": aud })))).unwrap();
        }
    }

    // --- garbage --------------------------------------------------------------

    #[test]
    fn garbage_strings() {
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        let huge_dots = ".".repeat(100_000);
        let too_long_valid = hs(claims(json!({ "pad": "x".repeat(MAX_TOKEN_LEN) })));
        let inputs: Vec<&str> = vec![
            "",
            ".",
            "..",
            "...",
            "a",
            "a.b",
            "a.b.c",
            "a.b.c.d.e",
            "Bearer abc",
            "ééé.ééé.ééé",
            "\0\0.\0.\0",
            "eyJ.eyJ.",
            "eyJhbGciOiJIUzI1NiJ9",
            "eyJhbGciOiJIUzI1NiJ9..",
            "eyJhbGciOiJIUzI1NiJ9.e30",
            "eyJhbGciOiJIUzI1NiJ9.e30.!!!",
            "eyJhbGciOiJIUzI1NiJ9.e30.AAA=",
            &huge,
            &huge_dots,
            &too_long_valid,
        ];
        for v in [
            hs_verifier(),
            pem_verifier(RSA_PUBLIC),
            pem_verifier(EC_PUBLIC),
        ] {
            for input in &inputs {
                let r = v.verify(input);
                assert!(
                    matches!(
                        r,
                        Err(AuthError::Malformed(_)
                            | AuthError::BadSignature
                            | AuthError::AlgorithmNotAllowed { .. })
                    ),
                    "{:?}: {r:?}",
                    input.get(..40)
                );
            }
        }
        assert!(malformed_err(hs_verifier().verify(&huge)).contains("longer"));
        assert!(
            malformed_err(hs_verifier().verify("")).contains("empty"),
            "empty"
        );
    }

    #[test]
    fn malformed_headers() {
        let payload = serde_json::to_vec(&base()).unwrap();
        let v = hs_verifier();
        for header in [
            &b"not json"[..],
            b"[1,2]",
            b"\"HS256\"",
            b"{}",
            br#"{"alg":256}"#,
            br#"{"alg":null}"#,
            b"\xff\xfe\xfd",
        ] {
            let token = hs_raw(header, &payload);
            let why = malformed_err(v.verify(&token));
            assert!(why.contains("header"), "{why}");
        }
    }

    #[test]
    fn malformed_payloads_with_valid_signatures() {
        let v = hs_verifier();
        let header = br#"{"alg":"HS256","typ":"JWT"}"#;
        for payload in [
            &b""[..],
            b"not json",
            b"[1,2,3]",
            b"42",
            b"null",
            b"\"sub\"",
            b"\xff\xfe\x00\x80",
            b"{\"sub\":\"a\",",
            br#"{"sub":"a","exp":1e999}"#,
        ] {
            let token = hs_raw(header, payload);
            let why = malformed_err(v.verify(&token));
            assert!(why.contains("payload"), "{why}");
        }
        // Deep nesting stays an error, not a stack overflow.
        let deep = format!(
            "{{\"sub\":\"a\",\"x\":{}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(malformed_err(v.verify(&hs_raw(header, deep.as_bytes()))).contains("payload"));
    }

    #[test]
    fn mutated_tokens_never_panic() {
        // Deterministic xorshift so failures reproduce.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"ABCxyz019-_.=+/ \xc3\xa9";
        let sources = [
            (
                hs_verifier(),
                hs(claims(json!({"rooms": ["a"], "name": "n"}))),
            ),
            (
                pem_verifier(ED_PUBLIC),
                sign(
                    Algorithm::EdDSA,
                    &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
                    &base(),
                ),
            ),
        ];
        for (v, token) in &sources {
            for _ in 0..1500 {
                let mut bytes = token.as_bytes().to_vec();
                for _ in 0..(1 + next() % 4) {
                    let i = (next() as usize) % bytes.len();
                    match next() % 3 {
                        0 => bytes[i] = alphabet[(next() as usize) % alphabet.len()],
                        1 => {
                            bytes.remove(i);
                        }
                        _ => bytes.truncate(i),
                    }
                    if bytes.is_empty() {
                        bytes.push(b'.');
                    }
                }
                let s = String::from_utf8_lossy(&bytes);
                if s != token.as_str() {
                    // Any outcome but a panic is fine; most are errors.
                    let _ = v.verify(&s);
                }
            }
        }
    }

    // --- issuing ----------------------------------------------------------------

    #[test]
    fn issue_token_round_trip() {
        let mut c = cfg(JwtKey::Secret(SECRET.to_vec()));
        c.issuer = Some("rheo-sfu".into());
        c.audience = Some("rheo".into());
        let v = Verifier::new(&c).unwrap();
        let req = TokenRequest {
            sub: "bob".into(),
            name: Some("Bob".into()),
            rooms: Some(vec!["lobby".into(), "stage".into()]),
            can_publish: false,
            can_subscribe: true,
            admin: true,
            ttl_secs: 600,
        };
        let before = now();
        let token = v.issue_token(&req).unwrap();
        let g = v.verify(&token).unwrap();
        assert_eq!(g.participant_id, "bob");
        assert_eq!(g.username, "Bob");
        assert_eq!(
            g.rooms,
            RoomScope::Only(vec!["lobby".into(), "stage".into()])
        );
        assert!(!g.can_publish && g.can_subscribe && g.admin);
        assert!(g.expires_at >= before + 600 && g.expires_at <= now() + 600);

        // HS256 header.
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);

        // Defaults: no name, any room.
        let token = v
            .issue_token(&TokenRequest {
                name: None,
                rooms: None,
                ..req.clone()
            })
            .unwrap();
        let g = v.verify(&token).unwrap();
        assert_eq!(g.username, "bob");
        assert_eq!(g.rooms, RoomScope::Any);

        // Another secret cannot verify it.
        let other = Verifier::new(&AuthConfig {
            key: JwtKey::Secret(b"different".to_vec()),
            ..c.clone()
        })
        .unwrap();
        assert!(matches!(other.verify(&token), Err(AuthError::BadSignature)));

        // Zero TTL is already expired.
        let token = v
            .issue_token(&TokenRequest {
                ttl_secs: 0,
                ..req.clone()
            })
            .unwrap();
        assert!(matches!(v.verify(&token), Err(AuthError::Expired)));
    }

    #[test]
    fn issue_token_bad_requests() {
        let v = hs_verifier();
        let req = TokenRequest {
            sub: String::new(),
            name: None,
            rooms: None,
            can_publish: true,
            can_subscribe: true,
            admin: false,
            ttl_secs: 60,
        };
        assert!(matches!(
            v.issue_token(&req),
            Err(AuthError::InvalidRequest(_))
        ));
        let req = TokenRequest {
            sub: "a".into(),
            rooms: Some(vec!["".into()]),
            ..req
        };
        assert!(matches!(
            v.issue_token(&req),
            Err(AuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn issue_token_errors_for_public_keys() {
        let req = TokenRequest {
            sub: "a".into(),
            name: None,
            rooms: None,
            can_publish: true,
            can_subscribe: true,
            admin: false,
            ttl_secs: 60,
        };
        for (pem, family) in [
            (RSA_PUBLIC, KeyFamily::Rsa),
            (EC_PUBLIC, KeyFamily::Ec),
            (ED_PUBLIC, KeyFamily::Ed),
        ] {
            let r = pem_verifier(pem).issue_token(&req);
            assert_eq!(r, Err(AuthError::CannotIssue(family)));
        }
    }

    #[test]
    fn family_and_debug_do_not_leak_secrets() {
        let v = hs_verifier();
        assert_eq!(v.family(), KeyFamily::Hmac);
        let dbg = format!("{v:?}");
        assert!(!dbg.contains("unit-test-secret"), "{dbg}");
        let dbg = format!("{:?}", cfg(JwtKey::Secret(SECRET.to_vec())));
        assert!(!dbg.contains("unit-test-secret"), "{dbg}");
        assert_eq!(KeyFamily::Rsa.to_string(), "RSA");
        assert_eq!(pem_verifier(ED_PUBLIC).family(), KeyFamily::Ed);
    }

    #[test]
    fn random_secret_is_hex_and_usable() {
        let a = random_secret();
        let b = random_secret();
        assert_eq!(a.len(), 64);
        assert!(a
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        let v = Verifier::new(&cfg(JwtKey::Secret(a.clone()))).unwrap();
        let token = sign(Algorithm::HS256, &EncodingKey::from_secret(&a), &base());
        v.verify(&token).unwrap();
    }
}
