#[test]
fn urls_are_checked_without_echoing_them() {
    let bad = [
        "redis://user:pa55word@[::1",
        "http://user:pa55word@host",
        "rediss://user:pa55word@[::1",
        "rediss://user:pa55word@host:6380/0#insecure",
    ];
    for url in bad {
        let error = super::client(url, None, None).unwrap_err();
        assert!(!error.message.contains("pa55word"), "{error}");
    }
    let fragment = super::client("rediss://host:6380/0#insecure", None, None).unwrap_err();
    assert!(fragment.message.contains("certificate checks cannot be turned off"), "{fragment}");
    let missing = super::client("rediss://host:6380/0", None, Some("tower-tls")).unwrap_err();
    assert!(missing.message.contains("enable the auth-store feature `tower-tls`"), "{missing}");
    assert!(super::client("redis://127.0.0.1:6379/0", None, None).is_ok());
    // A cluster by its seed nodes, each a URL of its own.
    assert_eq!(
        super::cluster_seeds("redis+cluster://user:pa55word@10.0.0.1:7000,10.0.0.2:7001/"),
        Some(vec![
            "redis://user:pa55word@10.0.0.1:7000/".to_owned(),
            "redis://user:pa55word@10.0.0.2:7001/".to_owned()
        ])
    );
    assert_eq!(super::cluster_seeds("rediss+cluster://h:1"), Some(vec!["rediss://h:1/".to_owned()]));
    assert_eq!(super::cluster_seeds("redis://h:1/0"), None);
    assert!(matches!(
        super::client("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/", None, None),
        Ok(super::Client::Cluster { .. })
    ));
    for bad in ["redis+cluster://", "redis+cluster://user:pa55word@[::1,h:2/", "redis+cluster://h:1/#insecure"] {
        let error = super::client(bad, None, None).unwrap_err();
        assert!(!error.message.contains("pa55word"), "{error}");
    }
    let tls = super::client("rediss+cluster://h:1,h:2/", None, Some("tower-tls")).unwrap_err();
    assert!(tls.message.contains("enable the auth-store feature `tower-tls`"), "{tls}");
    assert!(super::check_prefix("auth:{x}:").is_err() && super::check_prefix("auth-store:").is_ok());
    // Behind Sentinel: the Sentinels, the service, the primary's user and database.
    let Some(Ok(sentinel)) = super::sentinel("redis+sentinel://app:pa55word@10.0.0.1:26379,10.0.0.2:26379/tokens/3")
    else {
        panic!("a Sentinel URL")
    };
    assert_eq!(sentinel.sentinels, ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"]);
    assert_eq!((sentinel.service.as_str(), sentinel.node.db()), ("tokens", 3));
    assert_eq!(sentinel.node.username(), Some("app"));
    assert!(matches!(super::sentinel("redis+sentinel://h:1/mymaster"), Some(Ok(_))));
    assert!(super::sentinel("redis://h:1/0").is_none());
    for bad in ["redis+sentinel://h:1", "redis+sentinel://h:1/", "redis+sentinel://user:pa55word@[::1/x"] {
        let error = super::client(bad, None, None).unwrap_err();
        assert!(error.message.contains("Sentinel URL") && !error.message.contains("pa55word"), "{error}");
    }
    assert!(
        format!("{:?}", super::client("redis+sentinel://u:pa55word@h:1/s", None, None).unwrap())
            == "Sentinel(1 sentinels)"
    );
    let root = super::client("redis://127.0.0.1:6379/0", Some(b"pem"), None).unwrap_err();
    assert!(root.message.contains("use rediss://"), "{root}");
    #[cfg(feature = "tls")]
    {
        assert!(super::client("rediss://host:6380/0", None, None).is_ok());
        let pem = super::client("rediss://user:pa55word@host:6380/0", Some(b"not a certificate"), None);
        assert!(pem.is_err_and(|e| !e.message.contains("pa55word")));
    }
}
