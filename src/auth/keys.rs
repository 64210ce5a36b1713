//! Key checks: which family a PEM public key is, which `alg` values it
//! verifies, and the RSA checks the crypto backend would otherwise only make
//! when the first token arrives (with a small DER reader for PKCS#1).

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

use super::{sanitize_alg, AuthError};

/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// Largest RSA modulus accepted, in bits: the RSA backend of `jsonwebtoken`
/// refuses bigger keys when verifying, which would make every token fail.
const MAX_RSA_BITS: usize = 4096;

pub(super) const HMAC_ALGS: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const P256_ALGS: &[Algorithm] = &[Algorithm::ES256];
const P384_ALGS: &[Algorithm] = &[Algorithm::ES384];
const ED_ALGS: &[Algorithm] = &[Algorithm::EdDSA];

/// Which family of key the server verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// Shared secret, HS256/HS384/HS512.
    Hmac,
    /// RSA public key, RS256/384/512 and PS256/384/512.
    Rsa,
    /// Elliptic-curve public key (P-256 or P-384), ES256/ES384.
    Ec,
    /// Ed25519 public key, EdDSA.
    Ed,
}

impl fmt::Display for KeyFamily {
    /// Short name for logs: `HMAC`, `RSA`, `EC` or `Ed25519`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyFamily::Hmac => "HMAC",
            KeyFamily::Rsa => "RSA",
            KeyFamily::Ec => "EC",
            KeyFamily::Ed => "Ed25519",
        })
    }
}

/// A public key that passed all checks.
pub(super) struct LoadedKey {
    pub(super) family: KeyFamily,
    pub(super) desc: &'static str,
    pub(super) algorithms: &'static [Algorithm],
    pub(super) decoding: DecodingKey,
}

/// Detects and checks the family of a PEM public key.
pub(super) fn load_public_pem(pem: &[u8]) -> Result<LoadedKey, AuthError> {
    let label = pem_label(pem).ok_or_else(|| {
        AuthError::InvalidKey("not a PEM file (no \"-----BEGIN ...-----\" line)".into())
    })?;
    match label {
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {}
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
            return Err(AuthError::InvalidKey(
                "got a certificate, need a public key (extract it with \
                 `openssl x509 -in cert.pem -pubkey -noout`)"
                    .into(),
            ))
        }
        l if l.contains("PRIVATE KEY") => {
            return Err(AuthError::InvalidKey(format!(
                "got a private key (BEGIN {l}), need the public key \
                 (extract it with `openssl pkey -in key.pem -pubout`)"
            )))
        }
        l => {
            return Err(AuthError::InvalidKey(format!(
                "unsupported PEM block \"BEGIN {}\", need \"BEGIN PUBLIC KEY\"",
                sanitize_alg(l)
            )))
        }
    }

    if let Ok(decoding) = DecodingKey::from_rsa_pem(pem) {
        let der = key_bytes(&decoding);
        check_rsa_public_key(der).map_err(|why| AuthError::InvalidKey(format!("RSA key {why}")))?;
        return Ok(LoadedKey {
            family: KeyFamily::Rsa,
            desc: "RSA",
            algorithms: RSA_ALGS,
            decoding,
        });
    }
    if let Ok(decoding) = DecodingKey::from_ec_pem(pem) {
        // Building a verifier parses the point on the curve; a dummy
        // signature only makes `verify` return Ok(false).
        let (desc, algorithms) = if probe(&decoding, Algorithm::ES256) {
            ("EC P-256", P256_ALGS)
        } else if probe(&decoding, Algorithm::ES384) {
            ("EC P-384", P384_ALGS)
        } else {
            return Err(AuthError::InvalidKey(
                "EC key is not a valid P-256 or P-384 public key".into(),
            ));
        };
        return Ok(LoadedKey {
            family: KeyFamily::Ec,
            desc,
            algorithms,
            decoding,
        });
    }
    if let Ok(decoding) = DecodingKey::from_ed_pem(pem) {
        // The Ed25519 verifier slices the first 32 bytes, so the length must
        // be checked before it is ever built.
        if key_bytes(&decoding).len() != 32 || !probe(&decoding, Algorithm::EdDSA) {
            return Err(AuthError::InvalidKey(
                "Ed25519 key is not a valid 32-byte public key".into(),
            ));
        }
        return Ok(LoadedKey {
            family: KeyFamily::Ed,
            desc: "Ed25519",
            algorithms: ED_ALGS,
            decoding,
        });
    }
    Err(AuthError::InvalidKey(
        "PEM is not an RSA, EC (P-256/P-384) or Ed25519 public key".into(),
    ))
}

/// The raw bytes inside a PEM-derived key (empty for the n/e form, which PEM
/// loading never produces).
fn key_bytes(key: &DecodingKey) -> &[u8] {
    match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => bytes,
        DecodingKeyKind::RsaModulusExponent { .. } => &[],
    }
}

/// Whether the crypto backend accepts `key` for `alg`.
fn probe(key: &DecodingKey, alg: Algorithm) -> bool {
    jsonwebtoken::crypto::verify("AA", b"probe", key, alg).is_ok()
}

/// The label of the first PEM block (`PUBLIC KEY`, ...), if any.
fn pem_label(pem: &[u8]) -> Option<&str> {
    const BEGIN: &str = "-----BEGIN ";
    let text = std::str::from_utf8(pem).ok()?;
    let rest = text.get(text.find(BEGIN)? + BEGIN.len()..)?;
    let label = rest.get(..rest.find("-----")?)?;
    Some(label.trim())
}

/// Checks a PKCS#1 `RSAPublicKey` (`SEQUENCE { n INTEGER, e INTEGER }`) the
/// way the RSA backend will when verifying, which `DecodingKey` does not do
/// up front.
fn check_rsa_public_key(der: &[u8]) -> Result<(), String> {
    let bad = || "is not a valid PKCS#1 public key".to_string();
    let (tag, seq, rest) = der_tlv(der).ok_or_else(bad)?;
    if tag != 0x30 || !rest.is_empty() {
        return Err(bad());
    }
    let (tag, n, rest) = der_tlv(seq).ok_or_else(bad)?;
    if tag != 0x02 {
        return Err(bad());
    }
    let (tag, e, rest) = der_tlv(rest).ok_or_else(bad)?;
    if tag != 0x02 || !rest.is_empty() {
        return Err(bad());
    }
    let n = der_unsigned(n).ok_or_else(bad)?;
    let e = der_unsigned(e).ok_or_else(bad)?;

    let bits = bit_len(n);
    if bits < MIN_RSA_BITS {
        return Err(format!("is {bits} bits, need at least {MIN_RSA_BITS}"));
    }
    if bits > MAX_RSA_BITS {
        return Err(format!(
            "is {bits} bits, at most {MAX_RSA_BITS} are supported"
        ));
    }
    if n.last().is_none_or(|b| b & 1 == 0) {
        return Err("has an even modulus".into());
    }
    if e.len() > 5 {
        return Err("has a public exponent that is too large".into());
    }
    let e = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if e < 3 || e & 1 == 0 || e > (1 << 33) - 1 {
        return Err(format!("has an unsupported public exponent {e}"));
    }
    Ok(())
}

/// One DER tag-length-value: `(tag, content, rest)`. Single-byte tags and
/// minimal lengths only.
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(count);
        if len_bytes.first() == Some(&0) {
            return None;
        }
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if len < 0x80 {
            return None;
        }
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

/// The magnitude of a positive, minimally encoded DER INTEGER, without the
/// leading zero byte. `None` for empty, negative or non-minimal encodings.
fn der_unsigned(int: &[u8]) -> Option<&[u8]> {
    match int {
        [] => None,
        [b, ..] if b & 0x80 != 0 => None,
        [0] => Some(&[]),
        [0, next, ..] if next & 0x80 == 0 => None,
        [0, rest @ ..] => Some(rest),
        all => Some(all),
    }
}

/// Bits needed for the big-endian unsigned number `bytes` (no leading zeros).
fn bit_len(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(top) => (bytes.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_support::*;
    use crate::auth::{JwtKey, RoomScope, Verifier};
    use base64::Engine as _;
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    fn key_err(key: JwtKey) -> String {
        match Verifier::new(&cfg(key)) {
            Err(AuthError::InvalidKey(why)) => why,
            other => panic!("expected InvalidKey, got {other:?}"),
        }
    }

    #[test]
    fn invalid_keys() {
        for private in [RSA_PRIVATE, EC_PRIVATE, ED_PRIVATE] {
            let why = key_err(JwtKey::PublicKeyPem(private.to_vec()));
            assert!(why.contains("private key"), "{why}");
        }
        let why = key_err(JwtKey::PublicKeyPem(
            b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n".to_vec(),
        ));
        assert!(why.contains("private key"), "{why}");
        let why = key_err(JwtKey::PublicKeyPem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
        ));
        assert!(why.contains("certificate"), "{why}");
        for junk in [
            &b""[..],
            b"hello",
            b"\xff\xfe",
            b"-----BEGIN PUBLIC KEY-----",
            b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            b"-----BEGIN OPENSSH KEY-----\nAAAA\n-----END OPENSSH KEY-----\n",
        ] {
            key_err(JwtKey::PublicKeyPem(junk.to_vec()));
        }
        let why = key_err(JwtKey::PublicKeyPem(RSA1024_PUBLIC.to_vec()));
        assert!(why.contains("1024 bits"), "{why}");
        assert!(key_err(JwtKey::Secret(vec![])).contains("empty"));
        assert!(key_err(JwtKey::Secret(RSA_PUBLIC.to_vec())).contains("PEM"));
        assert_eq!(
            AuthError::InvalidKey("x".into()).to_string(),
            "invalid key: x"
        );
    }

    #[test]
    fn truncated_ed_key_is_an_error_not_a_panic() {
        // A well-formed Ed25519 SPKI whose key bit string is 4 bytes long.
        let der = [
            0x30, 0x0c, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x03, 0x00, 0x01, 0x02,
        ];
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        let why = key_err(JwtKey::PublicKeyPem(pem.into_bytes()));
        assert!(why.contains("Ed25519"), "{why}");
    }

    #[test]
    fn rsa_der_checks() {
        assert!(check_rsa_public_key(&[]).is_err());
        assert!(check_rsa_public_key(&[0x30, 0x00]).is_err());
        // SEQUENCE { INTEGER 0xC5 (8 bits), INTEGER 3 }: too small.
        let small = [0x30, 0x07, 0x02, 0x02, 0x00, 0xc5, 0x02, 0x01, 0x03];
        assert!(check_rsa_public_key(&small).unwrap_err().contains("8 bits"));
        // Trailing data after the sequence.
        let mut trailing = small.to_vec();
        trailing.push(0);
        assert!(check_rsa_public_key(&trailing)
            .unwrap_err()
            .contains("PKCS#1"));
        assert_eq!(der_unsigned(&[0x00, 0x80]), Some(&[0x80][..]));
        assert_eq!(der_unsigned(&[0x00, 0x01]), None);
        assert_eq!(der_unsigned(&[0x80]), None);
        assert_eq!(bit_len(&[0x01, 0x00]), 9);
        // Non-minimal long-form length.
        assert_eq!(der_tlv(&[0x02, 0x81, 0x01, 0x00]), None);
        assert_eq!(der_tlv(&[0x02, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn rsa_all_algorithms_valid() {
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
        for public in [RSA_PUBLIC, RSA_PUBLIC_PKCS1] {
            let v = pem_verifier(public);
            assert_eq!(v.family(), KeyFamily::Rsa);
            for alg in RSA_ALGS {
                let g = v.verify(&sign(*alg, &key, &base())).unwrap();
                assert_eq!(g.participant_id, "alice", "{alg:?}");
            }
        }
    }

    #[test]
    fn es256_valid() {
        let v = pem_verifier(EC_PUBLIC);
        assert_eq!(v.family(), KeyFamily::Ec);
        let token = sign(
            Algorithm::ES256,
            &EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
            &claims(json!({"name": "Eve", "room": "r"})),
        );
        let g = v.verify(&token).unwrap();
        assert_eq!(g.username, "Eve");
        assert_eq!(g.rooms, RoomScope::Only(vec!["r".into()]));
    }

    #[test]
    fn es384_valid_with_p384_and_refused_by_p256() {
        let token = sign(
            Algorithm::ES384,
            &EncodingKey::from_ec_pem(EC384_PRIVATE).unwrap(),
            &base(),
        );
        let v = pem_verifier(EC384_PUBLIC);
        assert_eq!(v.family(), KeyFamily::Ec);
        v.verify(&token).unwrap();
        assert_eq!(
            pem_verifier(EC_PUBLIC).verify(&token),
            Err(AuthError::AlgorithmNotAllowed {
                alg: "ES384".into(),
                server_key: "EC P-256".into()
            })
        );
    }

    #[test]
    fn eddsa_valid() {
        let v = pem_verifier(ED_PUBLIC);
        assert_eq!(v.family(), KeyFamily::Ed);
        let token = sign(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
            &claims(json!({"canPublish": false})),
        );
        let g = v.verify(&token).unwrap();
        assert!(!g.can_publish);
    }
}
