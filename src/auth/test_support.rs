//! Keys, signers and token builders shared by the auth unit tests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::claims::now_secs;
use super::{AuthConfig, AuthError, Grants, JwtKey, Verifier};

macro_rules! key {
    ($file:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/", $file))
    };
}
pub(super) const RSA_PRIVATE: &[u8] = key!("rsa_private.pem");
pub(super) const RSA_PUBLIC: &[u8] = key!("rsa_public.pem");
pub(super) const RSA_PUBLIC_PKCS1: &[u8] = key!("rsa_public_pkcs1.pem");
pub(super) const RSA1024_PUBLIC: &[u8] = key!("rsa1024_public.pem");
pub(super) const EC_PRIVATE: &[u8] = key!("ec_private.pem");
pub(super) const EC_PUBLIC: &[u8] = key!("ec_public.pem");
pub(super) const EC384_PRIVATE: &[u8] = key!("ec384_private.pem");
pub(super) const EC384_PUBLIC: &[u8] = key!("ec384_public.pem");
pub(super) const ED_PRIVATE: &[u8] = key!("ed_private.pem");
pub(super) const ED_PUBLIC: &[u8] = key!("ed_public.pem");

pub(super) const SECRET: &[u8] = b"unit-test-secret-0123456789abcdef";

pub(super) fn now() -> u64 {
    now_secs()
}

pub(super) fn cfg(key: JwtKey) -> AuthConfig {
    AuthConfig {
        key,
        issuer: None,
        audience: None,
        leeway_secs: 0,
    }
}

pub(super) fn hs_verifier() -> Verifier {
    Verifier::new(&cfg(JwtKey::Secret(SECRET.to_vec()))).unwrap()
}

pub(super) fn pem_verifier(pem: &[u8]) -> Verifier {
    Verifier::new(&cfg(JwtKey::PublicKeyPem(pem.to_vec()))).unwrap()
}

pub(super) fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    encode(&Header::new(alg), claims, key).unwrap()
}

/// HS256 token over `claims` with the test secret.
pub(super) fn hs(claims: Value) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), &claims)
}

/// Valid minimal claims: sub + exp an hour ahead.
pub(super) fn base() -> Value {
    json!({"sub": "alice", "exp": now() + 3600})
}

/// `base()` with extra/overridden claims.
pub(super) fn claims(extra: Value) -> Value {
    let mut c = base();
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    c
}

pub(super) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token over raw header/payload bytes, properly signed.
pub(super) fn sign_raw(header: &[u8], payload: &[u8], key: &EncodingKey, alg: Algorithm) -> String {
    let msg = format!("{}.{}", b64(header), b64(payload));
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap();
    format!("{msg}.{sig}")
}

pub(super) fn hs_raw(header: &[u8], payload: &[u8]) -> String {
    sign_raw(
        header,
        payload,
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
}

pub(super) fn malformed_err(r: Result<Grants, AuthError>) -> String {
    match r {
        Err(AuthError::Malformed(why)) => why,
        other => panic!("expected Malformed, got {other:?}"),
    }
}
