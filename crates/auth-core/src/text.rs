//! Small rules about text that several modules apply: which bytes are
//! percent-encoded, how a secret becomes a header value, how provider text
//! is made safe to show, how a token is named without holding it, and
//! times as Unix milliseconds. A leaf: it imports nothing of this crate.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use zeroize::Zeroizing;

/// Everything but the RFC 3986 unreserved characters `A-Z a-z 0-9 - . _ ~`.
pub(crate) const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Builds a header value marked sensitive whose bytes are zeroized when the
/// last copy of it (on every request it was cloned onto) is dropped.
/// `None` when the bytes are not visible ASCII.
pub(crate) fn sensitive_value(bytes: &[u8]) -> Option<HeaderValue> {
    if bytes.iter().any(|b| !(0x20..0x7f).contains(b)) {
        return None;
    }
    let shared = Bytes::from_owner(ZeroizeOnDrop(Zeroizing::new(bytes.to_vec())));
    let mut value = HeaderValue::from_maybe_shared(shared).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Owner of header bytes: wiped when `bytes` releases it.
struct ZeroizeOnDrop(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for ZeroizeOnDrop {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// Whether `c` changes how the text around it looks without showing
/// itself: a control character, a bidirectional control (which can make
/// `evil.example/moc.knab` read as something else) or an invisible,
/// zero-width one (which can hide inside a code or a URL).
pub(crate) fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Text from a provider made safe to show: tags dropped, control bytes,
/// bidirectional and invisible characters ([`is_deceptive`]) and runs of
/// whitespace turned into one space, cut to `max_chars` characters.
pub(crate) fn sanitize_excerpt(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_add(4)));
    let mut in_tag = false;
    let mut count = 0;
    let mut pending_space = false;
    for c in text.chars() {
        match c {
            '<' => {
                in_tag = true;
                pending_space = true;
            }
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            c if c.is_whitespace() || is_deceptive(c) => pending_space = true,
            c => {
                if pending_space && !out.is_empty() {
                    out.push(' ');
                    count += 1;
                }
                pending_space = false;
                if count >= max_chars {
                    out.push('…');
                    break;
                }
                out.push(c);
                count += 1;
            }
        }
    }
    out
}

/// A SHA-256 of a token, the first 32 hex digits: what a stored
/// [`Envelope`](crate::store::Envelope) carries to name its token without
/// holding it.
pub fn fingerprint(token: &str) -> String {
    sha256(token.as_bytes()).as_ref().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// `url` without its user info (`scheme://user:password@host` becomes
/// `scheme://host`), to quote a URL the user gave in an error.
pub(crate) fn strip_userinfo(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => format!("{}://{}", &url[..scheme_end], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Milliseconds since the Unix epoch (0 before it, saturating after).
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The SHA-256 digest of `data`, from the crypto provider.
pub(crate) fn sha256(data: &[u8]) -> ring::digest::Digest {
    ring::digest::digest(&ring::digest::SHA256, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_text_shown_loses_bidirectional_and_invisible_characters() {
        let shown = sanitize_excerpt("Run\u{202E}hs.xif\u{202C} this\u{200B}now <b>please</b>\u{2066}x\u{2069}", 100);
        assert!(!shown.chars().any(is_deceptive), "{shown:?}");
        assert_eq!(shown, "Run hs.xif this now please x");
    }

    #[test]
    fn times_before_the_epoch_are_zero_and_fingerprints_are_32_hex_digits() {
        assert_eq!(unix_ms(UNIX_EPOCH - std::time::Duration::from_secs(1)), 0);
        assert_eq!(unix_ms(UNIX_EPOCH + std::time::Duration::from_millis(1500)), 1500);
        let print = fingerprint("token");
        assert_eq!(print.len(), 32);
        assert!(print.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(print, fingerprint("token2"));
    }
}
