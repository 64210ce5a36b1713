//! The JWS front end: splits a compact token, reads the header's `alg`
//! before trusting anything, refuses algorithms outside the key's family,
//! checks the signature, then hands the payload to the claim rules.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Map, Value};

use super::keys::{load_public_pem, KeyFamily, HMAC_ALGS};
use super::{malformed, sanitize_alg, AuthConfig, AuthError, Grants, JwtKey};

/// Longest token [`Verifier::verify`] looks at, in bytes. Real tokens are a
/// few hundred bytes; anything this big is refused before any decoding work.
pub(super) const MAX_TOKEN_LEN: usize = 32 * 1024;

/// Verifies tokens against one configured key; cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    pub(super) family: KeyFamily,
    /// Human description of the key for messages, e.g. `EC P-256`.
    pub(super) key_desc: &'static str,
    /// The header `alg` values accepted.
    pub(super) algorithms: &'static [Algorithm],
    pub(super) decoding: DecodingKey,
    /// Present only for a shared secret ([`JwtKey::Dev`], [`JwtKey::Secret`]).
    pub(super) encoding: Option<EncodingKey>,
    pub(super) issuer: Option<String>,
    pub(super) audience: Option<String>,
    pub(super) leeway: u64,
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

/// Decodes one base64url segment into a JSON object; the error completes
/// "header ..." / "payload ...".
fn decode_json_object(segment: &str) -> Result<Map<String, Value>, &'static str> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| "is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "is not a JSON object")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_support::*;
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    // --- signatures and algorithms -----------------------------------------

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
}
