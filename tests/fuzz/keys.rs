//! Keys: `Verifier::new` on PEM text and on the DER inside it (the PKCS#1
//! and SubjectPublicKeyInfo readers, the family and curve detection, the
//! RSA size and exponent checks), and on shared secrets.

use std::fmt;
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rheo_sfu::auth::{AuthConfig, AuthError, JwtKey, KeyFamily, Verifier};

use crate::{corpus, driver, mutate};

/// Bytes shown as text where they are text.
struct Bytes(Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

#[derive(Debug)]
struct Input {
    key: KeyInput,
    /// Also check a loaded key with signatures of full length, which runs
    /// the backend's arithmetic (milliseconds each in a debug build, so
    /// for some inputs only).
    full_signatures: bool,
}

#[derive(Debug)]
enum KeyInput {
    Pem(Bytes),
    Secret(Bytes),
}

const LABELS: &[&str] = &[
    "PUBLIC KEY",
    "RSA PUBLIC KEY",
    "EC PUBLIC KEY",
    "PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "CERTIFICATE",
    "ENCRYPTED PRIVATE KEY",
    "",
    " PUBLIC KEY ",
    "public key",
];

/// DER pieces: tags, long-form lengths, the algorithm and curve OIDs.
const DER_WORDS: &[&[u8]] = &[
    &[0x30],
    &[0x02],
    &[0x03],
    &[0x04],
    &[0x05, 0x00],
    &[0x00],
    &[0x80],
    &[0x81, 0x80],
    &[0x82, 0x01, 0x00],
    &[0x84, 0xff, 0xff, 0xff, 0xff],
    &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ],
    &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
    &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
    &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
    &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
    &[0x06, 0x03, 0x2b, 0x65, 0x70],
    &[0x06, 0x03, 0x2b, 0x65, 0x71],
];

/// The DER body of a PEM block and its label.
fn decode_pem(pem: &[u8]) -> (String, Vec<u8>) {
    let text = std::str::from_utf8(pem).expect("test keys are text");
    let label = text
        .lines()
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .expect("a BEGIN line")
        .to_owned();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    (label, STANDARD.decode(body).expect("base64 body"))
}

/// DER wrapped as PEM, the way tools write it or not quite.
fn encode_pem(u: &mut Unstructured<'_>, label: &str, der: &[u8]) -> Result<Vec<u8>> {
    let b64 = if u.ratio(1, 16)? {
        URL_SAFE_NO_PAD.encode(der)
    } else {
        STANDARD.encode(der)
    };
    let width = *u.choose(&[64usize, 64, 64, 76, 1, usize::MAX])?;
    let eol = *u.choose(&["\n", "\n", "\r\n", " ", ""])?;
    let mut out = format!("-----BEGIN {label}-----{eol}");
    for chunk in b64.as_bytes().chunks(width.min(b64.len().max(1))) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push_str(eol);
    }
    out.push_str(&format!("-----END {label}-----"));
    if u.ratio(3, 4)? {
        out.push('\n');
    }
    Ok(out.into_bytes())
}

/// A DER length.
fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=0x7f => vec![n as u8],
        0x80..=0xff => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

/// An RSA key of a size around the limits, with an exponent around the
/// limits, as PKCS#1 or inside a SubjectPublicKeyInfo.
fn rsa_key(u: &mut Unstructured<'_>) -> Result<(String, Vec<u8>)> {
    let bytes = *u.choose(&[0usize, 1, 127, 128, 255, 256, 257, 384, 511, 512, 513])?;
    let mut n: Vec<u8> = (0..bytes).map(|_| u.arbitrary()).collect::<Result<_>>()?;
    if let Some(top) = n.first_mut() {
        *top |= *u.choose(&[0x80u8, 0x40, 0x01, 0x00])?;
    }
    if let Some(low) = n.last_mut() {
        if u.ratio(7, 8)? {
            *low |= 1;
        }
    }
    if n.first().is_some_and(|b| b & 0x80 != 0) && u.ratio(7, 8)? {
        n.insert(0, 0);
    }
    let e: &[u8] = u.choose(&[
        &[0x01, 0x00, 0x01][..],
        &[0x03],
        &[0x02],
        &[0x01],
        &[0x00],
        &[],
        &[0x01, 0xff, 0xff, 0xff, 0xff],
        &[0x02, 0x00, 0x00, 0x00, 0x01],
        &[0x01, 0x00, 0x00, 0x00, 0x00, 0x01],
        &[0xff],
        &[0x00, 0x03],
    ])?;
    let pkcs1 = tlv(0x30, &[tlv(0x02, &n), tlv(0x02, e)].concat());
    if u.ratio(1, 2)? {
        return Ok(("RSA PUBLIC KEY".to_owned(), pkcs1));
    }
    let alg = tlv(0x30, &[DER_WORDS[10].to_vec(), vec![0x05, 0x00]].concat());
    let bits = tlv(0x03, &[&[0u8][..], &pkcs1].concat());
    Ok(("PUBLIC KEY".to_owned(), tlv(0x30, &[alg, bits].concat())))
}

/// An EC or Ed25519 SubjectPublicKeyInfo with a point of some length.
fn point_key(u: &mut Unstructured<'_>) -> Result<(String, Vec<u8>)> {
    let (alg, len) = match u.int_in_range(0..=2)? {
        0 => (tlv(0x30, &[DER_WORDS[11], DER_WORDS[12]].concat()), 65usize),
        1 => (tlv(0x30, &[DER_WORDS[11], DER_WORDS[13]].concat()), 97),
        _ => (tlv(0x30, DER_WORDS[15]), 32),
    };
    let len = (len as i64 + i64::from(u.int_in_range(-2i8..=2)?)).max(0) as usize;
    let mut point: Vec<u8> = (0..len).map(|_| u.arbitrary()).collect::<Result<_>>()?;
    if len > 32 {
        point[0] = *u.choose(&[0x04u8, 0x02, 0x03, 0x00])?;
    }
    let bits = tlv(0x03, &[&[0u8][..], &point].concat());
    Ok(("PUBLIC KEY".to_owned(), tlv(0x30, &[alg, bits].concat())))
}

/// The test keys, their DER, and PEM lines to insert, made once.
struct Seeds {
    pems: Vec<&'static [u8]>,
    texts: Vec<&'static str>,
    ders: Vec<(String, Vec<u8>)>,
    lines: Vec<String>,
}

fn seeds() -> &'static Seeds {
    static S: OnceLock<Seeds> = OnceLock::new();
    S.get_or_init(|| {
        let pems: Vec<&'static [u8]> = corpus::PUBLIC_PEMS
            .iter()
            .chain(corpus::PRIVATE_PEMS)
            .copied()
            .collect();
        let texts = pems
            .iter()
            .map(|p| std::str::from_utf8(p).expect("test keys are text"))
            .collect();
        let ders = pems.iter().map(|p| decode_pem(p)).collect();
        let lines = LABELS
            .iter()
            .flat_map(|l| {
                [
                    format!("-----BEGIN {l}-----\n"),
                    format!("-----END {l}-----\n"),
                ]
            })
            .chain(
                [
                    "\n",
                    "MII\n",
                    "AAAA\n",
                    "====\n",
                    "Proc-Type: 4,ENCRYPTED\n",
                ]
                .map(String::from),
            )
            .collect();
        Seeds {
            pems,
            texts,
            ders,
            lines,
        }
    })
}

fn make(u: &mut Unstructured<'_>) -> Result<Input> {
    let seeds = seeds();
    let pems = &seeds.pems;
    let key = match u.int_in_range(0..=99)? {
        // The DER of a real key, mutated, wrapped again.
        0..=39 => {
            let (label, der) = u.choose(&seeds.ders)?;
            let (mut label, mut der) = (label.clone(), der.clone());
            let donors: Vec<&[u8]> = seeds.ders.iter().map(|(_, d)| d.as_slice()).collect();
            mutate::bytes(u, &mut der, DER_WORDS, &donors)?;
            if u.ratio(1, 8)? {
                label = (*u.choose(LABELS)?).to_owned();
            }
            KeyInput::Pem(Bytes(encode_pem(u, &label, &der)?))
        }
        // Keys built around the checks' limits.
        40..=54 => {
            let (label, der) = if u.ratio(1, 2)? {
                rsa_key(u)?
            } else {
                point_key(u)?
            };
            KeyInput::Pem(Bytes(encode_pem(u, &label, &der)?))
        }
        // The PEM text, mutated.
        55..=84 => {
            let mut text = (*u.choose(&seeds.texts)?).to_owned();
            let lines: Vec<&str> = seeds.lines.iter().map(String::as_str).collect();
            mutate::lines(
                u,
                &mut text,
                6,
                &lines,
                &seeds.texts,
                &["-", "=", "+", "/", " ", "\r"],
            )?;
            let mut bytes = text.into_bytes();
            if u.ratio(1, 8)? {
                mutate::bytes(u, &mut bytes, &[b"-----", b"\xff"], &[])?;
            }
            KeyInput::Pem(Bytes(bytes))
        }
        85..=89 => {
            let n = u.int_in_range(0..=512)?;
            KeyInput::Pem(Bytes((0..n).map(|_| u.arbitrary()).collect::<Result<_>>()?))
        }
        _ => {
            let mut secret = match u.int_in_range(0..=3)? {
                0 => Vec::new(),
                1 => u.choose(pems)?.to_vec(),
                2 => b" \n\t-----BEGIN PUBLIC KEY-----".to_vec(),
                _ => mutate::any_string(u, &[])?.into_bytes(),
            };
            if u.ratio(1, 2)? {
                mutate::bytes(u, &mut secret, &[b"-----BEGIN", b" ", b"\n"], &[])?;
            }
            KeyInput::Secret(Bytes(secret))
        }
    };
    Ok(Input {
        key,
        full_signatures: u.ratio(1, 50)?,
    })
}

/// A token header for `alg` over a fixed payload, with a signature of
/// `sig_len` bytes.
fn token(alg: &str, sig_len: usize) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
    let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"a","exp":4000000000}"#);
    let sig = URL_SAFE_NO_PAD.encode(vec![0x5a; sig_len]);
    format!("{header}.{payload}.{sig}")
}

const ALGS: &[&str] = &[
    "HS256", "HS512", "RS256", "RS512", "PS256", "ES256", "ES384", "EdDSA",
];

/// No panic. A refused key is refused as an invalid key, with a reason. A
/// loaded key is usable: a token with a wrong signature gets "bad
/// signature" (or is refused before the signature), never "invalid key"
/// and never a panic in the crypto backend.
fn check(input: &Input) -> &'static str {
    let key = match &input.key {
        KeyInput::Pem(b) => JwtKey::PublicKeyPem(b.0.clone()),
        KeyInput::Secret(b) => JwtKey::Secret(b.0.clone()),
    };
    let cfg = AuthConfig {
        key,
        issuer: None,
        audience: None,
        leeway_secs: 0,
    };
    let verifier = match Verifier::new(&cfg) {
        Err(AuthError::InvalidKey(why)) => {
            assert!(!why.is_empty());
            return "refused";
        }
        Err(e) => panic!("a key refused other than as invalid: {e:?}"),
        Ok(v) => v,
    };
    let mut lengths = vec![0, 1, 31, 63];
    if input.full_signatures {
        lengths.extend([32, 64, 96, 256, 384, 512]);
    }
    let mut accepted_an_alg = false;
    for alg in ALGS {
        for &len in &lengths {
            match verifier.verify(&token(alg, len)) {
                Err(AuthError::AlgorithmNotAllowed { .. }) => {}
                Err(AuthError::BadSignature | AuthError::Malformed(_)) => accepted_an_alg = true,
                other => panic!("{alg} with a {len}-byte signature on a loaded key: {other:?}"),
            }
        }
    }
    assert!(
        accepted_an_alg,
        "a loaded key takes no algorithm: {verifier:?}"
    );
    match verifier.family() {
        KeyFamily::Hmac => "secret",
        KeyFamily::Rsa => "rsa",
        KeyFamily::Ec => "ec",
        KeyFamily::Ed => "ed25519",
    }
}

#[test]
fn pem_key() {
    let tally = driver::run("pem_key", make, check);
    tally.expect_share("refused", 0.2);
    for family in ["rsa", "ec", "ed25519", "secret"] {
        tally.expect_share(family, 0.002);
    }
}
