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
//!
//! # Layout
//!
//! * `verify`: the JWS front end, [`Verifier`]: segments, header `alg`
//!   checks, signature.
//! * `keys`: which family a PEM public key is, the RSA checks and their
//!   small DER reader.
//! * `claims`: claims to [`Grants`] (the wire contract above).
//! * `mint`: dev tokens ([`Verifier::issue_token`]) and [`random_secret`].
//! * here: the shared types [`JwtKey`], [`AuthConfig`] and [`AuthError`].

use std::fmt;

mod claims;
mod keys;
mod mint;
mod verify;

pub use claims::{Grants, RoomScope};
pub use keys::KeyFamily;
pub use mint::{random_secret, Signer, TokenRequest};
pub use verify::Verifier;

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

impl AuthError {
    /// A short, fixed name of the kind of failure (a metrics label).
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Malformed(_) => "malformed",
            AuthError::AlgorithmNotAllowed { .. } => "algorithm",
            AuthError::BadSignature => "signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid | AuthError::IssuedInFuture => "not-yet-valid",
            AuthError::MissingExp
            | AuthError::MissingSub
            | AuthError::InvalidSub
            | AuthError::WrongIssuer
            | AuthError::WrongAudience => "claims",
            AuthError::InvalidKey(_) | AuthError::CannotIssue(_) | AuthError::InvalidRequest(_) => {
                "server"
            }
        }
    }
}

fn malformed(why: impl Into<String>) -> AuthError {
    AuthError::Malformed(why.into())
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

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn failure_reasons_are_in_the_metric_label_set() {
        for e in [
            AuthError::Malformed(String::new()),
            AuthError::AlgorithmNotAllowed {
                alg: String::new(),
                server_key: String::new(),
            },
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::IssuedInFuture,
            AuthError::MissingExp,
            AuthError::MissingSub,
            AuthError::InvalidSub,
            AuthError::WrongIssuer,
            AuthError::WrongAudience,
            AuthError::InvalidKey(String::new()),
            AuthError::CannotIssue(KeyFamily::Rsa),
            AuthError::InvalidRequest(String::new()),
        ] {
            assert!(crate::metrics::AUTH_FAILURES.contains(&e.reason()), "{e}");
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
}
