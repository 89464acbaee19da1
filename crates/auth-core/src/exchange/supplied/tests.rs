use std::time::Duration;

use super::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A JWT (unsigned: only its claims matter here) expiring at `exp`.
fn jwt(exp: u64, marker: &str) -> String {
    let part = |json: &str| URL_SAFE_NO_PAD.encode(json);
    format!("{}.{}.{}", part(r#"{"alg":"RS256"}"#), part(&format!(r#"{{"sub":"{marker}","exp":{exp}}}"#)), "c2ln")
}

#[test]
fn a_file_is_read_again_once_it_changes_and_its_token_is_never_sent_past_exp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let first = jwt(2_000, "first");
    std::fs::write(&path, format!("{first}\n")).unwrap();
    let token = SuppliedToken::file(&path);
    assert_eq!(token.read("the subject token", at(1_000), true).unwrap().as_str(), first);

    // Same length and modification time: the token read before (not parsed again).
    let same_length = jwt(2_000, "other");
    assert_eq!(same_length.len(), first.len());
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, format!("{same_length}\n")).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(modified).unwrap();
    assert_eq!(token.read("the subject token", at(1_000), true).unwrap().as_str(), first);

    // Rotated (a new modification time): the new token from the next request on.
    let rotated = jwt(3_000, "rotated");
    std::fs::write(&path, &rotated).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(modified + Duration::from_secs(5)).unwrap();
    assert_eq!(token.read("the subject token", at(1_000), true).unwrap().as_str(), rotated);

    // Past its exp: refused, though the file did not change, naming the file and never the token.
    let error = token.read("the subject token", at(3_010), true).unwrap_err();
    let shown = error.to_string();
    assert!(matches!(error, TokenError::Supplied { .. }) && error.is_transient(), "{error:?}");
    assert!(shown.contains("expired 10 s ago") && shown.contains(&path.display().to_string()), "{shown}");
    assert!(!shown.contains(&rotated) && !shown.contains("rotated"), "{shown}");
}

#[test]
fn what_is_not_a_token_is_refused_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let read = |content: &[u8], jwt: bool| {
        std::fs::write(&path, content).unwrap();
        SuppliedToken::file(&path).read("the client assertion", at(1_000), jwt).unwrap_err().to_string()
    };
    assert!(read(b"", false).contains("it is empty"));
    assert!(read(b"two words", false).contains("not a token"));
    assert!(read(b"\xff\xfe", false).contains("not UTF-8"));
    assert!(read(b"opaque-secret-value", true).contains("not a JWT"));
    assert!(!read(b"opaque-secret-value", true).contains("opaque-secret-value"));
    assert!(read(&vec![b'a'; 70 * 1024], false).contains("larger than 64 KiB"));
    let missing = SuppliedToken::file(dir.path().join("missing")).read("the subject token", at(1), false);
    assert!(missing.unwrap_err().to_string().contains("cannot be read"));
    // An opaque token where any token will do; a JWT without exp is fine too.
    std::fs::write(&path, "opaque-1").unwrap();
    assert_eq!(SuppliedToken::file(&path).read("the subject token", at(1), false).unwrap().as_str(), "opaque-1");
}

#[test]
fn a_variable_and_a_function_are_asked_at_every_request() {
    let unset = SuppliedToken::env(format!("AUTH_CORE_SUPPLIED_TEST_UNSET_{}", std::process::id()));
    assert!(unset.read("the subject token", at(1), false).unwrap_err().to_string().contains("is not set"));
    // Cargo sets this one for the tests it runs.
    let set = SuppliedToken::env("CARGO_PKG_NAME");
    assert_eq!(set.read("the subject token", at(1), false).unwrap().as_str(), "auth-core");
    assert!(set.read("the subject token", at(1), true).unwrap_err().to_string().contains("not a JWT"));
    assert_eq!(set.place(), "variable CARGO_PKG_NAME");

    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = calls.clone();
    let supplied = SuppliedToken::from_fn("the metadata service", move |_| {
        match counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Ok("from-fn-1".to_owned()),
            _ => Err("the metadata service did not answer".to_owned()),
        }
    });
    assert_eq!(supplied.read("the subject token", at(1), false).unwrap().as_str(), "from-fn-1");
    let error = supplied.read("the subject token", at(1), false).unwrap_err().to_string();
    assert!(error.contains("the subject token (the metadata service)") && error.contains("did not answer"), "{error}");
    assert_eq!(format!("{supplied:?}"), "SuppliedToken(\"the metadata service\")");
}

proptest::proptest! {
    /// Whatever a file holds, reading it never panics and never shows it.
    #[test]
    fn any_file_is_read_or_refused_without_showing_it(content in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), jwt_wanted in proptest::prelude::any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, &content).unwrap();
        if let Err(error) = SuppliedToken::file(&path).read("the subject token", at(1_000), jwt_wanted) {
            let shown = error.to_string();
            let text = String::from_utf8_lossy(&content);
            let text = text.trim();
            proptest::prop_assert!(text.len() < 8 || !shown.contains(text), "{}", shown);
        }
    }
}
