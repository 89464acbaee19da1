//! Removing our secrets from text a provider sends back.
//!
//! Providers sometimes echo what they were sent: a client secret in an
//! `error_description`, a refresh token in an error page, the whole
//! `Authorization` header of a debugging proxy. Before any provider text
//! goes into an error, a [`Redactor`] replaces every run of
//! [`WINDOW`] or more bytes that also occurs in one of our secrets, in any
//! encoding the request may have used:
//!
//! - as is, and as a sanitiser would show it (whitespace folded);
//! - percent-encoded (RFC 3986 unreserved kept, as in Basic §2.3.1 and
//!   query strings) and form-urlencoded (space as `+`), upper- and
//!   lowercase hex;
//! - JSON-escaped, as serde, Python (`\u` for non-ASCII), Go (`\u003c` for
//!   `<`, `>`, `&`) and PHP (`\/`) write it;
//! - base64, alone and as an HTTP Basic credential with the client id.
//!
//! Matching runs rather than whole values means a secret that the provider
//! cut short, or that a length cap would cut, is still removed. Secrets
//! shorter than [`WINDOW`] bytes (in a given encoding) are replaced where
//! they occur whole, if they have at least 4 bytes.
//!
//! ```
//! use auth_core::redact::Redactor;
//!
//! let mut redactor = Redactor::new();
//! redactor.add("s3cr3t value~with+chars");
//! let echoed = "bad client_secret=s3cr3t+value%7Ewith%2Bchars (cut: s3cr3t valu";
//! let shown = redactor.redact(echoed);
//! assert!(!shown.contains("s3cr3t"), "{shown}");
//! assert!(shown.starts_with("bad client_secret=[redacted]"));
//! ```

use base64::Engine as _;
use percent_encoding::{percent_encode, AsciiSet};
use zeroize::Zeroizing;

use crate::text::NOT_UNRESERVED;

/// The shortest run of secret bytes that is redacted wherever it occurs.
pub const WINDOW: usize = 8;

/// Secrets shorter than this are not looked for at all: redacting every
/// occurrence of two or three characters would destroy the text and hide
/// nothing worth hiding.
const MIN_WHOLE: usize = 4;

/// What is replaced for each redacted run.
pub const MARK: &str = "[redacted]";

/// A set of secrets to remove from provider text; see the [module docs](self).
///
/// Its memory (every run of every encoding) is zeroized when dropped.
#[derive(Default, Clone)]
pub struct Redactor {
    /// Every [`WINDOW`]-byte run of every encoding of every secret, sorted.
    windows: Zeroizing<Vec<[u8; WINDOW]>>,
    /// Encodings shorter than [`WINDOW`], matched whole.
    whole: Vec<Zeroizing<String>>,
    sorted: bool,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("runs", &self.windows.len()).finish_non_exhaustive()
    }
}

impl Redactor {
    /// An empty redactor: it changes nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no secret was added.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.whole.is_empty()
    }

    /// Adds a secret in every encoding (see the [module docs](self)).
    pub fn add(&mut self, secret: &str) {
        if secret.len() < MIN_WHOLE {
            return;
        }
        for encoding in encodings(secret) {
            self.add_form(&encoding);
        }
    }

    /// Adds the HTTP Basic credential `user:password` as base64, with and
    /// without the RFC 6749 §2.3.1 encoding of each part (an echoed
    /// `Authorization` header). The password is added on its own too.
    pub fn add_basic(&mut self, user: &str, password: &str) {
        self.add(password);
        let encoded = Zeroizing::new(format!(
            "{}:{}",
            percent_encode(user.as_bytes(), NOT_UNRESERVED),
            percent_encode(password.as_bytes(), NOT_UNRESERVED)
        ));
        let raw = Zeroizing::new(format!("{user}:{password}"));
        for plain in [encoded, raw] {
            self.add_form(&base64::engine::general_purpose::STANDARD.encode(plain.as_bytes()));
        }
    }

    /// Adds one exact form of a secret.
    fn add_form(&mut self, form: &str) {
        let bytes = form.as_bytes();
        if bytes.len() < WINDOW {
            if bytes.len() >= MIN_WHOLE && !self.whole.iter().any(|w| w.as_str() == form) {
                self.whole.push(Zeroizing::new(form.to_owned()));
            }
            return;
        }
        for run in bytes.windows(WINDOW) {
            let mut window = [0u8; WINDOW];
            window.copy_from_slice(run);
            self.windows.push(window);
        }
        self.sorted = false;
    }

    fn prepare(&mut self) {
        if !self.sorted {
            self.windows.sort_unstable();
            self.windows.dedup();
            self.sorted = true;
        }
    }

    /// Marks the bytes of `text` that belong to a secret.
    fn marks(&self, text: &[u8]) -> Vec<bool> {
        let mut marked = vec![false; text.len()];
        if text.len() >= WINDOW && !self.windows.is_empty() {
            for (start, run) in text.windows(WINDOW).enumerate() {
                let found = if self.sorted {
                    self.windows.binary_search_by(|w| w.as_slice().cmp(run)).is_ok()
                } else {
                    self.windows.iter().any(|w| w.as_slice() == run)
                };
                if found {
                    marked[start..start + WINDOW].fill(true);
                }
            }
        }
        for whole in &self.whole {
            let needle = whole.as_bytes();
            let mut from = 0;
            while let Some(at) = find(&text[from..], needle) {
                marked[from + at..from + at + needle.len()].fill(true);
                from += at + 1;
            }
        }
        marked
    }

    /// `text` with every run of secret bytes replaced by `[redacted]`
    /// (runs are widened to whole characters).
    pub fn redact(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        let marked = self.marks(text.as_bytes());
        if !marked.contains(&true) {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut in_run = false;
        for (at, c) in text.char_indices() {
            // A character goes when any of its bytes is a secret's.
            if marked[at..at + c.len_utf8()].contains(&true) {
                if !in_run {
                    out.push_str(MARK);
                    in_run = true;
                }
            } else {
                out.push(c);
                in_run = false;
            }
        }
        out
    }

    /// Finishes building: sorts the runs for fast look-ups. Called by the
    /// constructors in this crate; [`Redactor::redact`] works without it,
    /// only slower.
    pub fn build(mut self) -> Self {
        self.prepare();
        self
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Every form of `secret` that a request or an echo of it may hold.
fn encodings(secret: &str) -> Vec<Zeroizing<String>> {
    let mut forms: Vec<Zeroizing<String>> = Vec::with_capacity(12);
    let mut push = |form: String| {
        let form = Zeroizing::new(form);
        if !forms.iter().any(|f| f.as_str() == form.as_str()) {
            forms.push(form);
        }
    };
    push(secret.to_owned());
    push(crate::text::sanitize_excerpt(secret, usize::MAX));
    let percent = percent_encode(secret.as_bytes(), NOT_UNRESERVED).to_string();
    push(lower_hex(&percent));
    push(percent);
    let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    push(lower_hex(&form));
    push(form);
    push(percent_encode(secret.as_bytes(), PATH_SAFE).to_string());
    for style in [JsonStyle::Serde, JsonStyle::Ascii, JsonStyle::HtmlSafe, JsonStyle::AsciiSlash] {
        push(json_escape(secret, style));
    }
    push(base64::engine::general_purpose::STANDARD.encode(secret.as_bytes()));
    push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.as_bytes()));
    forms
}

/// What `encodeURIComponent`-style encoders leave alone.
const PATH_SAFE: &AsciiSet = &NOT_UNRESERVED.remove(b'!').remove(b'*').remove(b'\'').remove(b'(').remove(b')');

/// Percent escapes with lowercase hex digits.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or(&rest[at..]);
        out.push_str(&escape.to_ascii_lowercase());
        rest = &rest[at + escape.len()..];
    }
    out.push_str(rest);
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum JsonStyle {
    /// serde_json: `"`, `\` and control bytes escaped; other text as is.
    Serde,
    /// Python's default: non-ASCII as `\uXXXX` (lowercase hex).
    Ascii,
    /// Go's default: `<`, `>`, `&` as `\u003c`...; other text as is.
    HtmlSafe,
    /// PHP's default: non-ASCII as `\uXXXX`, and `/` as `\/`.
    AsciiSlash,
}

/// The inside of a JSON string holding `text`, in one server's style.
fn json_escape(text: &str, style: JsonStyle) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '/' if style == JsonStyle::AsciiSlash => out.push_str("\\/"),
            '<' | '>' | '&' if style == JsonStyle::HtmlSafe => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if !c.is_ascii() && matches!(style, JsonStyle::Ascii | JsonStyle::AsciiSlash) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        let mut r = Redactor::new();
        for s in secrets {
            r.add(s);
        }
        r.build()
    }

    #[test]
    fn whole_and_partial_echoes_are_removed() {
        let r = redactor(&["abcdefghijklmnop"]);
        assert_eq!(r.redact("x abcdefghijklmnop y"), "x [redacted] y");
        assert_eq!(r.redact("cut abcdefghij…"), "cut [redacted]…");
        assert_eq!(r.redact("short abcdefg"), "short abcdefg", "7 bytes are not a run");
        assert_eq!(r.redact("twice abcdefghXabcdefgh"), "twice [redacted]X[redacted]");
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn every_encoding_is_removed() {
        let secret = "s3cr3t ~+/&=%<é>\t\"q";
        let r = redactor(&[secret]);
        let echoes = [
            secret.to_owned(),
            percent_encode(secret.as_bytes(), NOT_UNRESERVED).to_string(),
            lower_hex(&percent_encode(secret.as_bytes(), NOT_UNRESERVED).to_string()),
            form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
            serde_json::to_string(secret).unwrap(),
            json_escape(secret, JsonStyle::Ascii),
            json_escape(secret, JsonStyle::HtmlSafe),
            json_escape(secret, JsonStyle::AsciiSlash),
            base64::engine::general_purpose::STANDARD.encode(secret),
        ];
        for echo in echoes {
            let shown = r.redact(&format!("error: {echo} end"));
            assert!(shown.starts_with("error: ") && shown.ends_with(" end"), "{echo}: {shown}");
            assert!(shown.contains(MARK), "{echo}: {shown}");
            assert!(!shown.contains("s3cr3t"), "{echo}: {shown}");
        }
    }

    #[test]
    fn basic_credentials_are_removed_in_both_encodings() {
        let mut r = Redactor::new();
        r.add_basic("my app", "p@ss word!");
        let r = r.build();
        for plain in ["my%20app:p%40ss%20word%21", "my app:p@ss word!"] {
            let header = base64::engine::general_purpose::STANDARD.encode(plain);
            let shown = r.redact(&format!("Authorization: Basic {header}"));
            assert_eq!(shown, "Authorization: Basic [redacted]");
        }
    }

    #[test]
    fn short_secrets_are_matched_whole_and_tiny_ones_ignored() {
        let r = redactor(&["abcd12", "ab"]);
        assert_eq!(r.redact("x abcd12 y abcd1"), "x [redacted] y abcd1");
        assert_eq!(r.redact("ab ab"), "ab ab");
    }

    #[test]
    fn runs_are_widened_to_whole_characters() {
        let r = redactor(&["ééééééé"]);
        let shown = r.redact("xééééééy");
        assert!(!shown.contains('é') || shown.matches('é').count() < 4, "{shown}");
        assert!(shown.starts_with('x') && shown.ends_with('y'), "{shown}");
        // Never splits a character.
        let r = redactor(&["aaaaaaaé"]);
        assert_eq!(r.redact("aaaaaaaé!"), "[redacted]!");
        assert_eq!(r.redact("ü aaaaaaaé"), "ü [redacted]");
    }

    #[test]
    fn debug_shows_no_secret() {
        let r = redactor(&["visible-secret-value"]);
        assert!(!format!("{r:?}").contains("visible"));
    }
}
