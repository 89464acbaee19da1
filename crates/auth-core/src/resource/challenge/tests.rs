use proptest::prelude::*;

use super::*;

#[test]
fn the_examples_of_the_rfcs_are_read() {
    let expired =
        parse(r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#)
            .unwrap();
    assert_eq!(expired[0].realm(), Some("example"));
    assert_eq!(expired[0].error(), Some("invalid_token"));
    assert_eq!(expired[0].error_description(), Some("The access token expired"));
    let metadata =
        parse(r#"Bearer resource_metadata="https://resource.example.com/.well-known/oauth-protected-resource""#)
            .unwrap();
    assert_eq!(
        metadata[0].resource_metadata(),
        Some("https://resource.example.com/.well-known/oauth-protected-resource")
    );
    let step_up = parse(
        r#"Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="myACR", max_age="5""#,
    )
    .unwrap();
    assert_eq!(step_up[0].acr_values().collect::<Vec<_>>(), ["myACR"]);
    assert_eq!(step_up[0].max_age(), Some(5));
    let dpop = parse(r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", algs="ES256 PS256""#)
        .unwrap();
    assert_eq!(dpop[0].scheme(), Scheme::Dpop);
    assert_eq!(dpop[0].algs().collect::<Vec<_>>(), ["ES256", "PS256"]);
}

#[test]
fn every_field_and_challenge_is_read_and_other_schemes_skipped() {
    let mut headers = HeaderMap::new();
    headers.append(WWW_AUTHENTICATE, r#"Basic realm="x", DPoP algs="ES256""#.parse().unwrap());
    headers.append(WWW_AUTHENTICATE, "bearer Scope=\"a  b\", unknown=1, ERROR=insufficient_scope".parse().unwrap());
    let challenges = from_headers(&headers).unwrap();
    assert_eq!(challenges.iter().map(Challenge::scheme).collect::<Vec<_>>(), [Scheme::Dpop, Scheme::Bearer]);
    assert_eq!(challenges[1].scopes().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(challenges[1].error(), Some("insufficient_scope"));
    assert!(from_headers(&HeaderMap::new()).unwrap().is_empty());
}

#[test]
fn what_cannot_be_read_whole_gives_nothing() {
    for (header, expected) in [
        (r#"Bearer error="invalid_token"#, "malformed"),
        (r#"Bearer error="invalid_token", Basic realm"#, "malformed"),
        ("Bearer error=invalid_token error", "malformed"),
        (r#"Bearer scope="a", scope="b""#, "twice"),
        (r#"Bearer max_age="-1""#, "number"),
        (r#"Bearer max_age="99999999999999999999999""#, "number"),
        ("Bearer scope=\"a\\\"b\"", "characters"),
        ("Bearer scope=\"a\\\\b\"", "characters"),
        ("Bearer scope=\"a b\", algs=\"ES256\"", "ok"),
        ("Bearer error=\"\"", "characters"),
    ] {
        let outcome = parse(header);
        let shown = match &outcome {
            Ok(_) => "ok".to_owned(),
            Err(error) => error.to_string(),
        };
        assert!(shown.contains(expected), "{header}: {shown}");
    }
    let long = format!("Bearer realm=\"{}\"", "a".repeat(MAX_VALUE_LEN + 1));
    assert!(matches!(parse(&long), Err(ChallengeError::TooLong { .. })));
    let mut headers = HeaderMap::new();
    headers.insert(WWW_AUTHENTICATE, http::HeaderValue::from_bytes(b"Bearer realm=\"\xe9\"").unwrap());
    assert!(matches!(from_headers(&headers), Err(ChallengeError::Malformed { .. })));
}

/// A challenge's parameters, as a generator makes them: quoted values of
/// the characters each allows (quotes and backslashes escaped).
fn params() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let value = "[ -~]{0,12}";
    let token = "[!#-\\[\\]-~]{1,8}( [!#-\\[\\]-~]{1,8}){0,2}";
    prop::collection::vec(
        prop_oneof![
            value.prop_map(|v| ("realm", v)),
            "[!-~]{1,12}".prop_map(|v| ("error", v)),
            value.prop_map(|v| ("error_description", v)),
            token.prop_map(|v| ("scope", v)),
            "https://[a-z]{1,8}\\.example/[a-z/]{0,12}".prop_map(|v| ("resource_metadata", v)),
            token.prop_map(|v| ("acr_values", v)),
            "[0-9]{1,6}".prop_map(|v| ("max_age", v)),
            token.prop_map(|v| ("algs", v)),
        ],
        0..6,
    )
    .prop_map(|mut params| {
        params.sort_by_key(|(name, _)| *name);
        params.dedup_by_key(|(name, _)| *name);
        params
    })
}

fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn render(scheme: &str, params: &[(&'static str, String)]) -> String {
    let params: Vec<String> = params.iter().map(|(name, value)| format!("{name}={}", quoted(value))).collect();
    if params.is_empty() {
        scheme.to_owned()
    } else {
        format!("{scheme} {}", params.join(", "))
    }
}

fn value_of<'a>(challenge: &'a Challenge, name: &str) -> Option<String> {
    let join = |words: Vec<&'a str>| (!words.is_empty()).then(|| words.join(" "));
    match name {
        "realm" => challenge.realm().map(str::to_owned),
        "error" => challenge.error().map(str::to_owned),
        "error_description" => challenge.error_description().map(str::to_owned),
        "scope" => join(challenge.scopes().collect()),
        "resource_metadata" => challenge.resource_metadata().map(str::to_owned),
        "acr_values" => join(challenge.acr_values().collect()),
        "max_age" => challenge.max_age().map(|age| age.to_string()),
        "algs" => join(challenge.algs().collect()),
        _ => None,
    }
}

proptest! {
    #[test]
    fn any_text_is_read_or_refused_without_a_panic(header in ".{0,200}") {
        let _ = parse(&header);
    }

    #[test]
    fn well_formed_challenges_are_read_back_exactly(
        challenges in prop::collection::vec(
            (prop::sample::select(vec!["Bearer", "DPoP", "Basic", "bearer"]), params()),
            1..4,
        ),
    ) {
        let header = challenges.iter().map(|(scheme, params)| render(scheme, params)).collect::<Vec<_>>().join(", ");
        let read = parse(&header).expect("a well-formed header");
        let ours: Vec<_> = challenges.iter().filter(|(scheme, _)| *scheme != "Basic").collect();
        prop_assert_eq!(read.len(), ours.len());
        for (challenge, (_, params)) in read.iter().zip(ours) {
            for (name, value) in params {
                let expected = if matches!(*name, "scope" | "acr_values" | "algs") {
                    value.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
                } else if *name == "max_age" {
                    value.parse::<u64>().unwrap().to_string()
                } else {
                    value.clone()
                };
                prop_assert_eq!(value_of(challenge, name), Some(expected), "{} in {}", name, header);
            }
        }
    }

    /// Cut anywhere, a header never yields a value it did not read whole:
    /// each value read is the one sent (every value is quoted, so a cut
    /// inside one leaves it unterminated, and the header is refused).
    #[test]
    fn a_cut_header_never_yields_a_value_read_in_part(
        scheme in prop::sample::select(vec!["Bearer", "DPoP"]),
        params in params(),
        cut in any::<prop::sample::Index>(),
    ) {
        let header = render(scheme, &params);
        let at = cut.index(header.len() + 1);
        if let Ok(read) = parse(&header[..at]) {
            for challenge in &read {
                for (name, sent) in &params {
                    if let Some(got) = value_of(challenge, name) {
                        let sent = match *name {
                            "scope" | "acr_values" | "algs" => sent.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" "),
                            "max_age" => sent.parse::<u64>().unwrap().to_string(),
                            _ => sent.clone(),
                        };
                        prop_assert_eq!(got, sent, "{} read in part from {:?}", name, &header[..at]);
                    }
                }
            }
        }
    }
}
