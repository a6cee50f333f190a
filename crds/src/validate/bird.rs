//! What BIRD 2 accepts for each BGP value: the one table every BGP validator and the agent's BIRD
//! renderer use. Each limit was checked with `bird -p` (BIRD 2.0.12); a value outside it makes
//! BIRD reject the whole config.

use std::ops::RangeInclusive;

use super::parse_duration_seconds;

/// Keepalive time in seconds: at least 1, and hold time (three keepalives) at most 65535.
pub const KEEPALIVE_SECONDS: RangeInclusive<u32> = 1..=21845;
/// AS numbers: 0 is reserved (RFC 7607) and BIRD refuses it ("AS number must be set").
pub const AS_NUMBERS: RangeInclusive<u32> = 1..=u32::MAX;
/// TCP ports: BIRD refuses 0 ("Invalid port number").
pub const PORTS: RangeInclusive<u16> = 1..=u16::MAX;
/// Graceful-restart time in seconds: the restart time field of the capability has 12 bits
/// (RFC 4724); BIRD would silently cut a larger value.
pub const RESTART_SECONDS: RangeInclusive<u32> = 0..=4095;
/// TTL security hops ("Multihop must be in range 1-255").
pub const TTL_HOPS: RangeInclusive<u8> = 1..=255;
/// How often the local AS may appear in a received path (Calico's limit).
pub const ALLOWED_LOCAL_AS: RangeInclusive<u32> = 0..=10;
/// The longest TCP MD5 key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const PASSWORD_BYTES: usize = 80;
/// The longest symbol (protocol name) BIRD accepts (`SYM_MAX_LEN`).
pub const NAME_BYTES: usize = 64;
/// The next-hop modes a session may carry.
pub const NEXT_HOP_MODES: [&str; 3] = ["Auto", "Self", "Keep"];

/// Checks that `value` lies in `range`, naming what it is.
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    what: &str,
    value: T,
    range: &RangeInclusive<T>,
) -> Result<T, String> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!("{what} {value} is out of range: BIRD accepts {} to {}", range.start(), range.end()))
    }
}

/// A go-style duration (`20s`, `2m`) as whole seconds (rounded down) within `range`.
pub fn duration_in(what: &str, text: &str, range: &RangeInclusive<u32>) -> Result<u32, String> {
    let seconds = parse_duration_seconds(text)?.floor();
    if seconds < f64::from(*range.start()) || seconds > f64::from(*range.end()) {
        return Err(format!(
            "{what} {text:?} is out of range: BIRD accepts {}s to {}s (whole seconds)",
            range.start(),
            range.end()
        ));
    }
    // In range, so it fits.
    Ok(seconds as u32)
}

/// A BIRD symbol (protocol name): a letter or `_`, then letters, digits and `_`, at most
/// [`NAME_BYTES`] long. Nothing else can end up where BIRD reads a name.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') || name.len() > NAME_BYTES {
        return Err(format!(
            "{name:?} is not a BIRD name: a letter or _, then letters, digits and _, at most {NAME_BYTES} characters"
        ));
    }
    Ok(())
}

/// Text BIRD can read between double quotes. BIRD 2.0's lexer takes everything up to the next `"`
/// on the same line and has no escapes, so a quote, a backslash (an escape in newer BIRD
/// versions), a line break or any other control character cannot be written safely.
pub fn check_quotable(text: &str) -> Result<(), String> {
    match text.chars().find(|c| matches!(c, '"' | '\\') || c.is_control()) {
        Some(c) => Err(format!("contains {c:?}, which BIRD cannot read inside a quoted string")),
        None => Ok(()),
    }
}

/// A BGP session password: quotable, not empty, at most [`PASSWORD_BYTES`] bytes.
pub fn check_password(password: &str) -> Result<(), String> {
    check_quotable(password).map_err(|m| format!("the password {m}"))?;
    if password.is_empty() || password.len() > PASSWORD_BYTES {
        return Err(format!("the password must have 1 to {PASSWORD_BYTES} bytes (Linux's TCP MD5 key limit)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bird_symbols_only() {
        for good in ["mesh_10_0_0_2", "_x", "Peer_ext", &"a".repeat(NAME_BYTES)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1peer", "a-b", "a b", "a;", "a\nprotocol", "a}", "pé", &"a".repeat(NAME_BYTES + 1)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_quotable_and_fit_a_tcp_md5_key() {
        for good in ["s3cret", "with space", "ünïcödé", &"p".repeat(PASSWORD_BYTES)] {
            assert!(check_password(good).is_ok(), "{good}");
        }
        for bad in ["", "a\"b", "a\\b", "a\nb", "a\rb", "a\0b", "a\u{7f}", &"p".repeat(PASSWORD_BYTES + 1)] {
            assert!(check_password(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_are_whole_seconds_within_the_range() {
        let cases: &[(&str, Option<u32>)] = &[
            ("20s", Some(20)),
            ("1.9s", Some(1)),
            ("6h4m5s", Some(21845)),
            ("0s", None),
            ("500ms", None),
            ("21846s", None),
            ("soon", None),
        ];
        for (text, expected) in cases {
            assert_eq!(duration_in("keepaliveTime", text, &KEEPALIVE_SECONDS).ok(), *expected, "{text}");
        }
    }
}
