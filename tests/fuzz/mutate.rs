//! Mutations of realistic inputs: random bytes alone never get past the
//! first check of a parser, mutated real inputs do. Every choice is drawn
//! from the `Unstructured`, so an input is a function of its seed.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Number, Value};

/// Characters that parsers trip over: line ends, the whitespace Rust's
/// `split_whitespace` knows and ASCII's does not, separators, multi-byte
/// characters, controls.
const CHARS: &[char] = &[
    '\r', '\n', '\t', ' ', '\0', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{2028}', '\u{3000}',
    '\u{feff}', '\u{7f}', 'é', '😀', ':', ';', ',', '=', '~', '.', '/', '"', '\\', '{', '}', '[',
    ']', '-', '_', '+', '*', '%', '@', '#', '0', '1', '9', 'a', 'z', 'A',
];

/// The largest char boundary of `s` at or below `at`.
pub fn floor_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A char boundary of `s`, anywhere.
fn boundary(u: &mut Unstructured<'_>, s: &str) -> Result<usize> {
    Ok(floor_boundary(s, u.int_in_range(0..=s.len())?))
}

/// A character: an interesting one or any.
pub fn any_char(u: &mut Unstructured<'_>) -> Result<char> {
    if u.ratio(3, 4)? {
        u.choose(CHARS).copied()
    } else {
        u.arbitrary()
    }
}

/// A string: dictionary words and characters, or a long run of one.
pub fn any_string(u: &mut Unstructured<'_>, dict: &[&str]) -> Result<String> {
    let mut s = String::new();
    match u.int_in_range(0..=9)? {
        0 => {
            // Around the protocol's limits: room names, ids, candidate
            // lines, chat (the targets add longer ones where a limit is).
            let c = any_char(u)?;
            let n = *u.choose(&[64, 65, 128, 129, 256, 257, 1024, 1025, 4096, 4097])?;
            s.extend(std::iter::repeat_n(c, n));
        }
        1 => {
            for _ in 0..u.int_in_range(0..=64)? {
                s.push(u.arbitrary()?);
            }
        }
        _ => {
            for _ in 0..u.int_in_range(0..=6)? {
                if !dict.is_empty() && u.ratio(1, 2)? {
                    s.push_str(u.choose(dict)?);
                } else {
                    s.push(any_char(u)?);
                }
            }
        }
    }
    Ok(s)
}

/// Edits text at character boundaries: inserts dictionary words or odd
/// characters, deletes, duplicates, replaces, truncates.
pub fn text(u: &mut Unstructured<'_>, s: &mut String, dict: &[&str]) -> Result<()> {
    for _ in 0..u.int_in_range(1..=4)? {
        let at = boundary(u, s)?;
        match u.int_in_range(0..=7)? {
            0 | 1 if !dict.is_empty() => s.insert_str(at, u.choose(dict)?),
            0..=2 => s.insert(at, any_char(u)?),
            3 => {
                let end = floor_boundary(s, at + u.int_in_range(1..=32)?);
                s.replace_range(at..end, "");
            }
            4 => {
                let end = floor_boundary(s, at + u.int_in_range(1..=64)?);
                let copy = s[at..end].to_owned();
                let to = boundary(u, s)?;
                s.insert_str(to, &copy);
            }
            5 => {
                let end = floor_boundary(s, at + u.int_in_range(1..=8)?);
                let with = any_string(u, dict)?;
                s.replace_range(at..end, &with);
            }
            6 => s.truncate(at),
            _ => {
                // The same character class elsewhere: a digit for a digit,
                // so numbers stay numbers but change.
                if let Some(c) = s[at..].chars().next() {
                    let end = at + c.len_utf8();
                    let new = if c.is_ascii_digit() {
                        char::from(b'0' + u.int_in_range(0..=9)?)
                    } else {
                        any_char(u)?
                    };
                    s.replace_range(at..end, new.encode_utf8(&mut [0; 4]));
                }
            }
        }
    }
    Ok(())
}

/// Edits a byte string: flips, interesting bytes, inserts, deletes,
/// duplicates, truncates, splices in a piece of a donor.
pub fn bytes(
    u: &mut Unstructured<'_>,
    b: &mut Vec<u8>,
    dict: &[&[u8]],
    donors: &[&[u8]],
) -> Result<()> {
    for _ in 0..u.int_in_range(1..=4)? {
        let at = u.int_in_range(0..=b.len())?;
        match u.int_in_range(0..=8)? {
            0 if at < b.len() => b[at] ^= 1 << u.int_in_range(0..=7)?,
            1 if at < b.len() => {
                b[at] = *u.choose(&[
                    0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0x82, 0xff, b'\n', b'\r', b' ',
                ])?
            }
            2 if !dict.is_empty() => {
                let word = u.choose(dict)?;
                b.splice(at..at, word.iter().copied());
            }
            3 => {
                let end = (at + u.int_in_range(1..=16)?).min(b.len());
                b.drain(at..end);
            }
            4 => {
                let end = (at + u.int_in_range(1..=32)?).min(b.len());
                let copy = b[at..end].to_vec();
                let to = u.int_in_range(0..=b.len())?;
                b.splice(to..to, copy);
            }
            5 => b.truncate(at),
            6 if !donors.is_empty() => {
                let donor = u.choose(donors)?;
                let from = u.int_in_range(0..=donor.len())?;
                let end = (from + u.int_in_range(1..=64)?).min(donor.len());
                let to_end = (at + u.int_in_range(0..=64)?).min(b.len());
                b.splice(at..to_end, donor[from..end].iter().copied());
            }
            7 if at < b.len() => b[at] = b[at].wrapping_add(*u.choose(&[1, 255, 16, 240])?),
            _ => {
                let n = u.int_in_range(1..=8)?;
                for _ in 0..n {
                    b.insert(at.min(b.len()), u.arbitrary()?);
                }
            }
        }
    }
    Ok(())
}

/// Line-level edits that keep the text valid UTF-8: delete, duplicate,
/// swap or move lines, insert a dictionary line or a donor's line, change a
/// line's ending, edit inside a line.
pub fn lines(
    u: &mut Unstructured<'_>,
    s: &mut String,
    max_edits: u32,
    dict_lines: &[&str],
    donors: &[&str],
    words: &[&str],
) -> Result<()> {
    let mut ls: Vec<String> = s.split_inclusive('\n').map(str::to_owned).collect();
    for _ in 0..u.int_in_range(1..=max_edits)? {
        let at = u.int_in_range(0..=ls.len())?;
        match u.int_in_range(0..=9)? {
            0 if at < ls.len() => {
                ls.remove(at);
            }
            1 if at < ls.len() => {
                let l = ls[at].clone();
                ls.insert(at, l);
            }
            2 if ls.len() > 1 => {
                let other = u.choose_index(ls.len())?;
                let at = at.min(ls.len() - 1);
                ls.swap(at, other);
            }
            3 | 4 if !dict_lines.is_empty() => ls.insert(at, (*u.choose(dict_lines)?).to_owned()),
            5 if !donors.is_empty() => {
                let donor: Vec<&str> = u.choose(donors)?.split_inclusive('\n').collect();
                if !donor.is_empty() {
                    let from = u.choose_index(donor.len())?;
                    let n = u.int_in_range(1..=8)?;
                    for (k, l) in donor.iter().skip(from).take(n).enumerate() {
                        ls.insert(at + k, (*l).to_owned());
                    }
                }
            }
            6 if at < ls.len() => {
                let l = &mut ls[at];
                let bare = l.trim_end_matches(['\r', '\n']).len();
                l.truncate(bare);
                l.push_str(u.choose(&["\r\n", "\n", "\r", "", "\r\r\n", "\n\r", " \r\n"])?);
            }
            7 if at < ls.len() && ls.len() > 1 => {
                let l = ls.remove(at);
                let to = u.int_in_range(0..=ls.len())?;
                ls.insert(to, l);
            }
            _ if at < ls.len() => text(u, &mut ls[at], words)?,
            _ => {}
        }
    }
    *s = ls.concat();
    Ok(())
}

/// A JSON value of any type, at most `depth` deep: dictionary strings and
/// keys, the numbers parsers mishandle.
pub fn any_json(
    u: &mut Unstructured<'_>,
    depth: u32,
    keys: &[&str],
    strings: &[&str],
) -> Result<Value> {
    let top = if depth == 0 { 5 } else { 7 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(any_number(u)?),
        3 | 4 => Value::String(if !strings.is_empty() && u.ratio(1, 2)? {
            (*u.choose(strings)?).to_owned()
        } else {
            any_string(u, strings)?
        }),
        5 => Value::String(String::new()),
        6 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array(
                (0..n)
                    .map(|_| any_json(u, depth - 1, keys, strings))
                    .collect::<Result<_>>()?,
            )
        }
        _ => {
            let mut map = Map::new();
            for _ in 0..u.int_in_range(0..=4)? {
                let k = key(u, keys)?;
                map.insert(k, any_json(u, depth - 1, keys, strings)?);
            }
            Value::Object(map)
        }
    })
}

fn key(u: &mut Unstructured<'_>, keys: &[&str]) -> Result<String> {
    if !keys.is_empty() && u.ratio(7, 8)? {
        Ok((*u.choose(keys)?).to_owned())
    } else {
        any_string(u, keys)
    }
}

/// Numbers at the edges: 0, ±1, the integer type limits, fractions, large
/// floats, times around now (relative to the clock, so a replayed seed
/// keeps an input's relation to the current time, not its absolute value).
pub fn any_number(u: &mut Unstructured<'_>) -> Result<Number> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(match u.int_in_range(0..=9)? {
        0 => Number::from(*u.choose(&[0u64, 1, 2, 3, 7, 255, 256, 65_535, 65_536, 1013])?),
        1 => Number::from(*u.choose(&[
            u64::MAX,
            u64::MAX - 1,
            u64::from(u32::MAX),
            i64::MAX as u64,
            i64::MAX as u64 + 1,
        ])?),
        2 => Number::from(*u.choose(&[-1i64, i64::MIN, -7, i64::from(i32::MIN)])?),
        3 => Number::from(now.saturating_add(u.int_in_range(0..=7200)?)),
        4 => Number::from(now.saturating_sub(u.int_in_range(0..=7200)?)),
        5 => Number::from_f64(*u.choose(&[
            0.5,
            -0.0,
            1.5,
            -1.5,
            1e300,
            -1e300,
            1.8446744073709552e19,
            9.3e18,
            f64::MIN_POSITIVE,
        ])?)
        .unwrap_or_else(|| Number::from(0)),
        6 => Number::from_f64(now as f64 + 0.5).unwrap_or_else(|| Number::from(0)),
        7 => Number::from(u.arbitrary::<i64>()?),
        8 => Number::from(u.arbitrary::<u64>()?),
        _ => Number::from_f64(u.arbitrary::<f64>()?).unwrap_or_else(|| Number::from(0)),
    })
}

/// Edits a JSON value in place: a node somewhere replaced by any value,
/// a key removed, a key added, a string edited as text, an array element
/// duplicated.
pub fn json(
    u: &mut Unstructured<'_>,
    v: &mut Value,
    keys: &[&str],
    strings: &[&str],
) -> Result<()> {
    for _ in 0..u.int_in_range(1..=3)? {
        let node = pick_node(u, v)?;
        match u.int_in_range(0..=6)? {
            0 | 1 => *node = any_json(u, 2, keys, strings)?,
            2 => {
                if let Value::Object(map) = node {
                    if !map.is_empty() {
                        let i = u.choose_index(map.len())?;
                        let k = map.keys().nth(i).cloned().unwrap_or_default();
                        map.remove(&k);
                    }
                }
            }
            3 => {
                if let Value::Object(map) = node {
                    let k = key(u, keys)?;
                    map.insert(k, any_json(u, 1, keys, strings)?);
                }
            }
            4 => {
                if let Value::String(s) = node {
                    text(u, s, strings)?;
                } else if let Value::Number(_) = node {
                    *node = Value::Number(any_number(u)?);
                }
            }
            5 => {
                if let Value::Array(items) = node {
                    if let Some(first) = items.first().cloned() {
                        items.push(first);
                    }
                }
            }
            _ => {
                if let Value::String(s) = node {
                    *s = (*u.choose(strings)?).to_owned();
                }
            }
        }
    }
    Ok(())
}

/// A node of `v` (the root included), walking down at random.
fn pick_node<'v>(u: &mut Unstructured<'_>, v: &'v mut Value) -> Result<&'v mut Value> {
    let len = match &*v {
        Value::Object(map) => map.len(),
        Value::Array(items) => items.len(),
        _ => 0,
    };
    if len == 0 || !u.ratio(3, 4)? {
        return Ok(v);
    }
    let i = u.choose_index(len)?;
    match v {
        Value::Object(map) => pick_node(u, map.values_mut().nth(i).expect("index in range")),
        Value::Array(items) => pick_node(u, &mut items[i]),
        other => Ok(other),
    }
}
