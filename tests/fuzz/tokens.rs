//! Tokens: `Verifier::verify` on every part of a compact JWS (header,
//! payload, signature, the dots between them), for each key family, and
//! `Verifier::issue_token` (the dev-mode `/dev/token` query).

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rheo_sfu::auth::{AuthConfig, AuthError, Grants, JwtKey, RoomScope, TokenRequest, Verifier};
use serde_json::{json, Value};

use crate::{corpus, driver, mutate};

const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef-0123456789";
const ISSUER: &str = "https://auth.example";
const AUDIENCE: &str = "rheo";

/// The verifiers and the tokens minted for them.
struct Keys {
    /// (name, verifier, leeway); the first two use the shared secret.
    verifiers: Vec<(&'static str, Verifier, u64)>,
    /// (verifier index, token that verifies there).
    seeds: Vec<(usize, String)>,
    /// Claims the seeds were made from.
    claims: Vec<Value>,
}

const HS: usize = 0;
const HS_STRICT: usize = 1;

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let verifier = |key: JwtKey, strict: bool| {
            Verifier::new(&AuthConfig {
                key,
                issuer: strict.then(|| ISSUER.to_owned()),
                audience: strict.then(|| AUDIENCE.to_owned()),
                leeway_secs: if strict { 60 } else { 0 },
            })
            .expect("test key loads")
        };
        let pem = |b: &[u8]| JwtKey::PublicKeyPem(b.to_vec());
        let verifiers = vec![
            ("hs", verifier(JwtKey::Secret(SECRET.to_vec()), false), 0),
            ("hs-iss-aud", verifier(JwtKey::Secret(SECRET.to_vec()), true), 60),
            ("rsa", verifier(pem(corpus::RSA_PUBLIC), false), 0),
            ("ec-p256", verifier(pem(corpus::EC_PUBLIC), false), 0),
            ("ec-p384", verifier(pem(corpus::EC384_PUBLIC), false), 0),
            ("ed25519", verifier(pem(corpus::ED_PUBLIC), false), 0),
        ];
        // A month: long runs stay within the tokens' lifetime.
        let now = now();
        let exp = now + 30 * 24 * 3600;
        let claims = vec![
            json!({"sub": "alice", "exp": exp}),
            json!({"sub": "bob", "exp": exp, "room": "r1", "name": "Bob"}),
            json!({"sub": 42, "exp": exp, "rooms": ["r1", "r2", "r1"], "username": "u"}),
            json!({"sub": "carol", "exp": exp as f64 + 0.5, "nbf": now - 10, "iat": now - 10,
                   "canPublish": false, "canSubscribe": true, "admin": true}),
            json!({"sub": "dave", "exp": exp, "iss": ISSUER, "aud": [AUDIENCE, "other"],
                   "rooms": ["*"], "video": {"room": "x"}}),
            json!({"sub": "erin", "exp": exp, "iss": ISSUER, "aud": AUDIENCE, "room": "r", "rooms": []}),
        ];
        let secret = EncodingKey::from_secret(SECRET);
        let mut seeds = Vec::new();
        for (i, c) in claims.iter().enumerate() {
            let alg = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512][i % 3];
            let v = if c.get("iss").is_some() { HS_STRICT } else { HS };
            seeds.push((v, sign(alg, &secret, c)));
        }
        let asymmetric = [
            (2, Algorithm::RS256, EncodingKey::from_rsa_pem(corpus::RSA_PRIVATE)),
            (2, Algorithm::PS384, EncodingKey::from_rsa_pem(corpus::RSA_PRIVATE)),
            (3, Algorithm::ES256, EncodingKey::from_ec_pem(corpus::EC_PRIVATE)),
            (4, Algorithm::ES384, EncodingKey::from_ec_pem(corpus::EC384_PRIVATE)),
            (5, Algorithm::EdDSA, EncodingKey::from_ed_pem(corpus::ED_PRIVATE)),
        ];
        for (v, alg, key) in asymmetric {
            seeds.push((v, sign(alg, &key.expect("test key"), &claims[1])));
        }
        for (v, token) in &seeds {
            let (name, verifier, _) = &verifiers[*v];
            verifier
                .verify(token)
                .unwrap_or_else(|e| panic!("seed token for {name} does not verify: {e}"));
        }
        Keys {
            verifiers,
            seeds,
            claims,
        }
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("signs")
}

/// Who signed a token the harness made.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Signer {
    /// Nobody since minting: a seed token (or pieces of seeds) mutated.
    Mutated,
    /// HMAC with the verifiers' shared secret.
    Secret,
    /// HMAC keyed with a public key's PEM bytes (algorithm confusion).
    PemAsSecret,
}

#[derive(Debug)]
enum Input {
    Verify {
        verifier: &'static str,
        index: usize,
        signer: Signer,
        token: String,
    },
    Issue(TokenRequest),
}

const CLAIM_KEYS: &[&str] = &[
    "sub",
    "exp",
    "nbf",
    "iat",
    "iss",
    "aud",
    "room",
    "rooms",
    "name",
    "username",
    "canPublish",
    "canSubscribe",
    "admin",
    "jti",
];
const HEADER_KEYS: &[&str] = &[
    "alg", "typ", "crit", "kid", "jku", "jwk", "x5u", "x5c", "cty", "b64",
];
const ALGS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "EdDSA", "none", "None", "NONE", "", "hs256", "HS256 ", "ES256K", "Ed25519",
];

fn strings() -> &'static [&'static str] {
    static S: OnceLock<Vec<&'static str>> = OnceLock::new();
    S.get_or_init(|| {
        let mut s = ALGS.to_vec();
        s.extend([
            ISSUER, AUDIENCE, "*", "r1", "alice", "JWT", "", "\u{0}", "é",
        ]);
        s
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hmac(alg: &str, message: &str, key: &[u8]) -> String {
    let alg = match alg {
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        _ => Algorithm::HS256,
    };
    jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(key), alg)
        .expect("HMAC signs")
}

/// A verifier for a token made for `own`: mostly its own; sometimes
/// another, where a public-key one is picked rarely (in a debug build its
/// signature check takes milliseconds).
fn pick_verifier(u: &mut Unstructured<'_>, own: usize) -> Result<usize> {
    let k = keys();
    Ok(match u.int_in_range(0..=99)? {
        0..=79 => own,
        80..=97 => u.choose(&[HS, HS_STRICT])?.to_owned(),
        _ => u.choose_index(k.verifiers.len())?,
    })
}

fn make(u: &mut Unstructured<'_>) -> Result<Input> {
    let k = keys();
    let (index, signer, token) = match u.int_in_range(0..=99)? {
        // Claims under a valid signature: what reaches the claim rules.
        0..=44 => {
            let mut claims = u.choose(&k.claims)?.clone();
            mutate::json(u, &mut claims, CLAIM_KEYS, strings())?;
            let mut header = json!({"alg": "HS256", "typ": "JWT"});
            if u.ratio(1, 4)? {
                header["alg"] = json!(*u.choose(&["HS256", "HS384", "HS512"])?);
            }
            if u.ratio(1, 10)? {
                mutate::json(u, &mut header, HEADER_KEYS, strings())?;
            }
            let mut payload = claims.to_string().into_bytes();
            if u.ratio(1, 10)? {
                mutate::bytes(u, &mut payload, &[b"\"", b"{", b"}", b":", b","], &[])?;
            }
            let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(&payload));
            let alg = header["alg"].as_str().unwrap_or("HS256");
            let sig = hmac(alg, &message, SECRET);
            let v = if u.ratio(1, 2)? { HS } else { HS_STRICT };
            (v, Signer::Secret, format!("{message}.{sig}"))
        }
        // A minted token, mutated in one or more of its parts.
        45..=84 => {
            let (own, seed) = if u.ratio(1, 400)? {
                u.choose(&k.seeds)?
            } else {
                let hs: Vec<&(usize, String)> =
                    k.seeds.iter().filter(|(v, _)| *v <= HS_STRICT).collect();
                *u.choose(&hs)?
            };
            let token = mutate_parts(u, seed)?;
            (pick_verifier(u, *own)?, Signer::Mutated, token)
        }
        // Headers of every kind, signatures of every kind.
        85..=94 => {
            let mut header = serde_json::Map::new();
            header.insert("alg".into(), json!(*u.choose(ALGS)?));
            for _ in 0..u.int_in_range(0..=2)? {
                let key = (*u.choose(HEADER_KEYS)?).to_owned();
                header.insert(key, mutate::any_json(u, 1, &["alg", "b64"], strings())?);
            }
            let header = Value::Object(header);
            let claims = u.choose(&k.claims)?;
            let message = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let alg = header["alg"].as_str().unwrap_or("");
            let (signer, sig) = match u.int_in_range(0..=4)? {
                0 => (Signer::Secret, hmac(alg, &message, SECRET)),
                1 => (
                    Signer::PemAsSecret,
                    hmac(alg, &message, u.choose(corpus::PUBLIC_PEMS)?),
                ),
                2 => (Signer::Mutated, String::new()),
                3 => {
                    let n = *u.choose(&[32usize, 48, 64, 96, 256, 384, 512])?;
                    let bytes: Vec<u8> = (0..n).map(|_| u.arbitrary()).collect::<Result<_>>()?;
                    (Signer::Mutated, b64(&bytes))
                }
                _ => {
                    let (_, seed) = u.choose(&k.seeds)?;
                    (
                        Signer::Mutated,
                        seed.rsplit('.').next().unwrap_or("").to_owned(),
                    )
                }
            };
            // Public-key verifiers rarely: their signature check is slow here.
            let v = if u.ratio(1, 16)? {
                u.choose_index(k.verifiers.len())?
            } else {
                u.choose(&[HS, HS_STRICT])?.to_owned()
            };
            (v, signer, format!("{message}.{sig}"))
        }
        95..=96 => {
            let mut token = mutate::any_string(u, &[".", "eyJ", "=", "-", "_"])?;
            if u.ratio(1, 32)? {
                // Around the length limit of 32 KiB.
                let n: usize = u.int_in_range(32 * 1024 - 2..=32 * 1024 + 1)?;
                token = format!("{}.eyJ9.", "A".repeat(n.saturating_sub(6)));
            }
            if u.ratio(1, 2)? {
                token = format!(
                    "{token}.{}.{}",
                    mutate::any_string(u, &[])?,
                    mutate::any_string(u, &[])?
                );
            }
            (pick_verifier(u, HS)?, Signer::Mutated, token)
        }
        _ => {
            let dict = ["", "*", "r1", "alice", "é", "\u{0}"];
            let mut sub = mutate::any_string(u, &dict)?;
            if u.ratio(1, 32)? {
                // A `sub` that makes the token longer than `verify` takes.
                sub = "%".repeat(u.int_in_range(20_000..=30_000)?);
            }
            return Ok(Input::Issue(TokenRequest {
                sub,
                name: u
                    .ratio(1, 2)?
                    .then(|| mutate::any_string(u, &dict))
                    .transpose()?,
                rooms: if u.ratio(1, 2)? {
                    let n = u.int_in_range(0..=3)?;
                    Some(
                        (0..n)
                            .map(|_| mutate::any_string(u, &dict))
                            .collect::<Result<_>>()?,
                    )
                } else {
                    None
                },
                can_publish: u.arbitrary()?,
                can_subscribe: u.arbitrary()?,
                admin: u.arbitrary()?,
                ttl_secs: *u.choose(&[0, 1, 60, 3600, u64::MAX / 2, u64::MAX])?,
            }));
        }
    };
    Ok(Input::Verify {
        verifier: k.verifiers[index].0,
        index,
        signer,
        token,
    })
}

/// One seed token with some of its parts changed: the decoded JSON of the
/// header or payload, their bytes, the base64 text of any part, the parts
/// themselves (dropped, repeated, swapped with another seed's), the dots.
fn mutate_parts(u: &mut Unstructured<'_>, seed: &str) -> Result<String> {
    let mut parts: Vec<String> = seed.split('.').map(str::to_owned).collect();
    let b64_words = ["A", "_", "-", "=", "+", "/", " ", ".", "eyJ", "AAAA"];
    for _ in 0..u.int_in_range(1..=2)? {
        let p = u.int_in_range(0..=2)?;
        match u.int_in_range(0..=5)? {
            0 if p < 2 => {
                let decoded = URL_SAFE_NO_PAD.decode(&parts[p]).unwrap_or_default();
                if let Ok(mut v) = serde_json::from_slice::<Value>(&decoded) {
                    let keys = if p == 0 { HEADER_KEYS } else { CLAIM_KEYS };
                    mutate::json(u, &mut v, keys, strings())?;
                    parts[p] = b64(v.to_string().as_bytes());
                }
            }
            1 => {
                let mut decoded = URL_SAFE_NO_PAD.decode(&parts[p]).unwrap_or_default();
                mutate::bytes(u, &mut decoded, &[b"\"", b"{", b"}", b"\xff"], &[])?;
                parts[p] = b64(&decoded);
            }
            2 => mutate::text(u, &mut parts[p], &b64_words)?,
            3 => {
                let (_, other) = u.choose(&keys().seeds)?;
                if let Some(piece) = other.split('.').nth(p) {
                    parts[p] = piece.to_owned();
                }
            }
            4 => match u.int_in_range(0..=3)? {
                0 => {
                    parts.pop();
                }
                1 => parts.push(parts[p].clone()),
                2 => parts[p].clear(),
                _ => parts.swap(0, 1),
            },
            _ => {
                let mut joined = parts.join(".");
                mutate::text(u, &mut joined, &b64_words)?;
                parts = joined.split('.').map(str::to_owned).collect();
            }
        }
        if parts.len() < 3 {
            break;
        }
    }
    Ok(parts.join("."))
}

fn label(e: &AuthError) -> &'static str {
    match e {
        AuthError::Malformed(_) => "malformed",
        AuthError::AlgorithmNotAllowed { .. } => "alg-not-allowed",
        AuthError::BadSignature => "bad-signature",
        AuthError::Expired => "expired",
        AuthError::NotYetValid => "not-yet-valid",
        AuthError::IssuedInFuture => "issued-in-future",
        AuthError::MissingExp => "missing-exp",
        AuthError::MissingSub => "missing-sub",
        AuthError::InvalidSub => "invalid-sub",
        AuthError::WrongIssuer => "wrong-issuer",
        AuthError::WrongAudience => "wrong-audience",
        AuthError::InvalidKey(_) => "invalid-key",
        AuthError::CannotIssue(_) => "cannot-issue",
        AuthError::InvalidRequest(_) => "invalid-request",
    }
}

/// What any grants must look like, whatever the claims were.
fn check_grants(g: &Grants, leeway: u64) {
    assert!(!g.participant_id.is_empty(), "empty participant id: {g:?}");
    assert!(!g.username.is_empty(), "empty username: {g:?}");
    assert!(
        // A few seconds of slack: the clock moves between verify and here.
        g.expires_at.saturating_add(leeway).saturating_add(5) > now(),
        "expired grants: {g:?}"
    );
    if let RoomScope::Only(rooms) = &g.rooms {
        for (i, r) in rooms.iter().enumerate() {
            assert!(!r.is_empty() && r != "*", "room {r:?} in {g:?}");
            assert!(!rooms[..i].contains(r), "room {r:?} twice in {g:?}");
        }
    }
}

/// No panic. A token verifies only if the verifier's own key signed exactly
/// it (a seed, or HMAC with the shared secret), and then its grants are well
/// formed. Refusals are never "invalid key" (the keys are good), and an
/// algorithm named in a refusal is printable and short.
fn check(input: &Input) -> &'static str {
    let k = keys();
    match input {
        Input::Issue(request) => {
            let v = &k.verifiers[HS_STRICT].1;
            match v.issue_token(request) {
                Err(e) => {
                    assert!(matches!(e, AuthError::InvalidRequest(_)), "{e:?}");
                    "issue-refused"
                }
                Ok(token) => match v.verify(&token) {
                    Ok(g) => {
                        check_grants(&g, 60);
                        assert_eq!(g.participant_id, request.sub);
                        assert_eq!(
                            (g.can_publish, g.can_subscribe, g.admin),
                            (request.can_publish, request.can_subscribe, request.admin)
                        );
                        "issued"
                    }
                    // A zero lifetime is expired at once; a second or two
                    // may pass between minting and verifying.
                    Err(AuthError::Expired) if request.ttl_secs < 60 => "issued-expired",
                    Err(e) => panic!("minted token refused: {e:?} ({token})"),
                },
            }
        }
        Input::Verify {
            verifier: name,
            index,
            signer,
            token,
        } => {
            let (_, verifier, leeway) = &k.verifiers[*index];
            match verifier.verify(token) {
                Ok(g) => {
                    check_grants(&g, *leeway);
                    let signed_by_key = match signer {
                        Signer::Secret => *index <= HS_STRICT,
                        Signer::PemAsSecret => false,
                        // The two HMAC verifiers share the secret.
                        Signer::Mutated => k.seeds.iter().any(|(v, t)| {
                            t == token && (v == index || (*v <= HS_STRICT && *index <= HS_STRICT))
                        }),
                    };
                    assert!(
                        signed_by_key,
                        "{name}: a token its key did not sign verified: {g:?}"
                    );
                    "ok"
                }
                Err(e) => {
                    if let AuthError::AlgorithmNotAllowed { alg, .. } = &e {
                        assert!(alg.chars().count() <= 35, "{alg:?}");
                        assert!(alg.chars().all(|c| c.is_ascii_graphic()), "{alg:?}");
                    }
                    assert!(
                        !matches!(e, AuthError::InvalidKey(_)),
                        "good key called invalid: {e:?}"
                    );
                    assert!(!e.to_string().is_empty());
                    label(&e)
                }
            }
        }
    }
}

#[test]
fn token() {
    let tally = driver::run("token", make, check);
    for (outcome, share) in [
        ("ok", 0.05),
        ("malformed", 0.05),
        ("bad-signature", 0.05),
        ("alg-not-allowed", 0.005),
        ("expired", 0.001),
        ("invalid-sub", 0.001),
        ("wrong-audience", 0.001),
        ("issued", 0.001),
    ] {
        tally.expect_share(outcome, share);
    }
}

/// Inputs that failed once, kept as they were found.
#[test]
fn token_regressions() {
    // `issue_token` minted a token longer than `verify` accepts
    // (`/dev/token?sub=` with 25,000 characters): refused now.
    let request = TokenRequest {
        sub: "%".repeat(25_000),
        name: None,
        rooms: None,
        can_publish: true,
        can_subscribe: false,
        admin: false,
        ttl_secs: 0,
    };
    assert_eq!(check(&Input::Issue(request)), "issue-refused");
}
