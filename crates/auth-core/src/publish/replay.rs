//! The replay verdict: what a driver does with the API's answer to a
//! request that carried credentials, decided once for every driver.
//!
//! Providers tell their clients what to do on a 401: "request a new token
//! and retry the call". A request is therefore sent again after a 401 when
//! a copy of it was kept before it was sent ([`ReplayCopies`]: by default
//! every request whose body can be copied). The rules, all here:
//!
//! - an answer other than 401 *accepts* the token it carried;
//! - a 401 to the original request renews the token (the lifecycle drops
//!   that generation, once however many requests it rejects) and sends
//!   the copy again with the new one;
//! - a DPoP nonce demand (`WWW-Authenticate: DPoP error="use_dpop_nonce"`
//!   with a new `DPoP-Nonce`) sends the copy once more with the same token
//!   and a proof carrying the nonce; the token is fine;
//! - a request is sent at most three times: the original, one replay with
//!   a new token, one nonce retry (in either order), and only from a copy;
//! - a 401 asking for a stronger or more recent sign-in
//!   (`insufficient_user_authentication`, RFC 9470) is given back as it
//!   is: a new token of the same sign-in would be refused the same way
//!   ([`crate::resource::step_up`]);
//! - a 401 to a token fetched for this very request is never renewed again
//!   for it: the answer goes back marked [`RejectedAfterRenewal`], and the
//!   lifecycle decides whether the token is dropped (it holds renewals
//!   back only while no request has been accepted with it).
//!
//! A driver keeps an [`Attempt`] per request, asks [`judge`] after every
//! answer and carries out the [`Verdict`]; before each send it keeps a
//! further copy only when [`Attempt::may_send_again`] says one can be used.
//!
//! ```
//! use auth_core::publish::replay::{judge, Attempt, Sent, Verdict};
//! use http::{HeaderMap, StatusCode};
//!
//! let mut attempt = Attempt::default();
//! let sent = Sent { attempt, copy: true, proof: None, accepted: false };
//! // The API revoked the token in the middle of its life.
//! let verdict = judge(&sent, StatusCode::UNAUTHORIZED, &HeaderMap::new());
//! assert_eq!(verdict, Verdict::Renew);
//! attempt = attempt.after(verdict);
//! // The replay with the new token is refused too: given back, marked.
//! let sent = Sent { attempt, copy: true, proof: None, accepted: false };
//! assert_eq!(judge(&sent, StatusCode::UNAUTHORIZED, &HeaderMap::new()), Verdict::RejectedAfterRenewal);
//! assert_eq!(judge(&sent, StatusCode::OK, &HeaderMap::new()), Verdict::Accepted);
//! ```
//!
//! [`RejectedAfterRenewal`]: crate::RejectedAfterRenewal

use http::{HeaderMap, StatusCode};

use crate::dpop::{self, Proof};

/// Which requests keep a copy of themselves, made before they are sent,
/// to send again after a 401 or a DPoP nonce demand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ReplayCopies {
    /// Every request whose body can be copied (none, or a buffered one),
    /// whatever its token: a 401 is answered with a new token and the
    /// request is sent again, as providers tell their clients to do. The
    /// default. A streaming body is never copied, so never replayed.
    #[default]
    Always,
    /// Only requests whose token is [at risk](crate::publish::slot::ReadToken::at_risk)
    /// (new, not yet accepted by the API, past its renewal point, of an
    /// assumed lifetime or DPoP-bound). What it gives up: when a provider
    /// revokes a settled token in the middle of its life (key rotation, a
    /// restart, a one-active-token policy), the requests in flight with it
    /// get the 401 back; the token is dropped and the next request carries
    /// a new one. What it saves is the copy of each request: about 210
    /// instructions per request through the tower layer and 290 through
    /// the reqwest middleware, no allocation either way
    /// (`docs/benchmarks.md` measures both). For callers who measured that
    /// the copy matters to them and can retry a 401 themselves.
    AtRisk,
}

impl ReplayCopies {
    /// Whether a request sent with a token whose risk is `at_risk` keeps a
    /// copy of itself.
    #[inline]
    pub fn keep(self, at_risk: bool) -> bool {
        self == Self::Always || at_risk
    }
}

/// What a request has been through: which of its two further sends it
/// has used. A request starts with `Attempt::default()` (the original
/// send) and moves on with [`Attempt::after`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Attempt {
    renewed: bool,
    nonce_retried: bool,
}

impl Attempt {
    /// Whether the request was sent again with a token fetched because of
    /// its 401.
    #[inline]
    pub fn renewed(self) -> bool {
        self.renewed
    }

    /// Whether the request was sent again with a DPoP nonce.
    #[inline]
    pub fn nonce_retried(self) -> bool {
        self.nonce_retried
    }

    /// How many times the request has been sent (1 to 3).
    #[inline]
    pub fn sends(self) -> u8 {
        1 + u8::from(self.renewed) + u8::from(self.nonce_retried)
    }

    /// Whether a verdict may still send the request again: keep a copy
    /// before this send only when it is `true` (the copy would otherwise
    /// never be used).
    #[inline]
    pub fn may_send_again(self) -> bool {
        !(self.renewed && self.nonce_retried)
    }

    /// Whether `verdict`, on the answer to this attempt, is one operators'
    /// metrics count: a DPoP nonce retry, or the last answer to a request
    /// replayed with a renewed token.
    #[inline]
    pub fn counted(self, verdict: Verdict) -> bool {
        verdict == Verdict::RetryWithNonce || (self.renewed && !verdict.sends_again())
    }

    /// The attempt that follows `verdict` (unchanged unless the verdict
    /// sends the request again).
    #[inline]
    #[must_use]
    pub fn after(self, verdict: Verdict) -> Self {
        match verdict {
            Verdict::Renew => Self { renewed: true, ..self },
            Verdict::RetryWithNonce => Self { nonce_retried: true, ..self },
            _ => self,
        }
    }
}

/// What was sent, as [`judge`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    /// The sends made so far, this one included.
    pub attempt: Attempt,
    /// Whether a copy of the request is at hand to send again.
    pub copy: bool,
    /// The DPoP proof the request carried, for a DPoP-bound token.
    pub proof: Option<&'a Proof>,
    /// After a renewal: whether the API had accepted the new token (in
    /// another request) before this answer ([`TokenSlot::accepted`]). A 401
    /// to an accepted token is a revocation, not a token the API never
    /// takes. Read only when [`Attempt::renewed`]; `false` otherwise.
    ///
    /// [`TokenSlot::accepted`]: crate::publish::slot::TokenSlot::accepted
    pub accepted: bool,
}

/// What to do with an answer ([`judge`]). Each variant says what the
/// driver does; the generation is always the one the request carried.
///
/// Not `#[non_exhaustive]`: a driver matches every verdict, so that a new
/// one cannot be skipped silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Not a 401: the API accepted the token (tell the source, which stops
    /// guarding against a fetch loop for it). Return the answer.
    Accepted,
    /// A DPoP nonce demand that is not retried (the nonce it names was
    /// just sent, none is offered, no copy is at hand, or the nonce retry
    /// was used): the token is fine. Return the answer as it is.
    GiveBack,
    /// A 401 that is not sent again (no copy at hand, or the request was
    /// renewed once already and its new token, accepted before, was
    /// revoked): report the 401 for the generation (the token is dropped
    /// and the next request carries a new one) and return the answer.
    Invalidate,
    /// A DPoP nonce demand with a new nonce: send the copy again with the
    /// same token and a new proof (which carries the nonce, now cached).
    RetryWithNonce,
    /// A 401: report it for the generation, wait for the next token and
    /// send the copy again with it. If the source gives none (the loop
    /// guard held the renewal back), return the answer marked
    /// [`RejectedAfterRenewal`](crate::RejectedAfterRenewal); if it fails,
    /// return the answer as it is.
    Renew,
    /// A 401 to a token fetched because of this request's own 401, which
    /// the API has never accepted: report the 401 for its generation (the
    /// lifecycle holds renewals back) and return the answer marked
    /// [`RejectedAfterRenewal`](crate::RejectedAfterRenewal). Never renewed
    /// again for this request. (A new token the API had accepted and now
    /// refuses was revoked again: [`Verdict::Invalidate`].)
    RejectedAfterRenewal,
    /// A 401 asking for a stronger or more recent sign-in of the user
    /// (RFC 9470): the token is fine but not enough, and a renewed one
    /// would be refused the same way. Return the answer with the
    /// [`StepUp`](crate::resource::step_up::StepUp) it asks for in its
    /// extensions; nothing is renewed or dropped.
    StepUp,
}

impl Verdict {
    /// Whether the request is sent again.
    #[inline]
    pub fn sends_again(self) -> bool {
        matches!(self, Self::Renew | Self::RetryWithNonce)
    }
}

/// What to do with the answer (`status`, `headers`) to a request sent as
/// `sent` says; see the [module docs](self) for the rules.
#[inline]
pub fn judge(sent: &Sent<'_>, status: StatusCode, headers: &HeaderMap) -> Verdict {
    if status != StatusCode::UNAUTHORIZED {
        return Verdict::Accepted;
    }
    let can_send = sent.copy && sent.attempt.may_send_again();
    if let Some(proof) = sent.proof {
        if dpop::is_nonce_demand(status, headers) {
            let retry = can_send && !sent.attempt.nonce_retried && dpop::offers_new_nonce(proof, headers);
            return if retry { Verdict::RetryWithNonce } else { Verdict::GiveBack };
        }
    }
    if crate::resource::step_up::wants_stronger_sign_in(headers) {
        return Verdict::StepUp;
    }
    if sent.attempt.renewed {
        if sent.accepted {
            Verdict::Invalidate
        } else {
            Verdict::RejectedAfterRenewal
        }
    } else if can_send {
        Verdict::Renew
    } else {
        Verdict::Invalidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, SystemTime};

    fn proof(nonce: Option<&str>) -> Proof {
        let dpop = dpop::Dpop::generate().unwrap();
        let uri: http::Uri = "https://api.example.com/x".parse().unwrap();
        if let Some(nonce) = nonce {
            let mut headers = HeaderMap::new();
            headers.insert(dpop::NONCE_HEADER, nonce.parse().unwrap());
            dpop.observe(&uri, &headers);
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        dpop.proof(&http::Method::GET, &uri, None, now).unwrap()
    }

    fn headers(challenge: Option<&str>, nonce: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(challenge) = challenge {
            headers.insert(http::header::WWW_AUTHENTICATE, challenge.parse().unwrap());
        }
        if let Some(nonce) = nonce {
            headers.insert(dpop::NONCE_HEADER, nonce.parse().unwrap());
        }
        headers
    }

    const NONCE_DEMAND: &str = r#"DPoP error="use_dpop_nonce", error_description="nonce required""#;
    const INVALID: &str = r#"DPoP error="invalid_token""#;
    const STRONGER: &str = r#"Bearer error="insufficient_user_authentication", acr_values="mfa""#;

    #[test]
    fn a_401_for_a_stronger_sign_in_is_given_back_unrenewed() {
        let stronger = headers(Some(STRONGER), None);
        for attempt in [Attempt::default(), Attempt::default().after(Verdict::Renew)] {
            let sent = Sent { attempt, copy: true, proof: None, accepted: false };
            assert_eq!(judge(&sent, StatusCode::UNAUTHORIZED, &stronger), Verdict::StepUp);
            assert!(!Verdict::StepUp.sends_again());
        }
        // The same error in a 403 is an answer like any other.
        let sent = Sent { attempt: Attempt::default(), copy: true, proof: None, accepted: false };
        assert_eq!(judge(&sent, StatusCode::FORBIDDEN, &stronger), Verdict::Accepted);
    }

    #[test]
    fn a_revocation_renews_once_and_a_second_401_is_marked() {
        let (unauthorized, none) = (StatusCode::UNAUTHORIZED, HeaderMap::new());
        let first = Sent { attempt: Attempt::default(), copy: true, proof: None, accepted: false };
        assert_eq!(judge(&first, unauthorized, &none), Verdict::Renew);
        let replay = Sent { attempt: first.attempt.after(Verdict::Renew), ..first };
        assert_eq!(judge(&replay, unauthorized, &none), Verdict::RejectedAfterRenewal);
        assert_eq!(judge(&replay, StatusCode::NO_CONTENT, &none), Verdict::Accepted);
        // The new token was accepted by other requests, then revoked too:
        // the 401 goes back unmarked, and the token is dropped.
        let revoked_again = Sent { accepted: true, ..replay };
        assert_eq!(judge(&revoked_again, unauthorized, &none), Verdict::Invalidate);
        let streaming = Sent { copy: false, ..first };
        assert_eq!(judge(&streaming, unauthorized, &none), Verdict::Invalidate);
        assert_eq!(judge(&streaming, StatusCode::FORBIDDEN, &none), Verdict::Accepted);
    }

    #[test]
    fn a_nonce_demand_after_a_renewal_is_retried_with_the_nonce() {
        // A cached token, a server that now wants nonces: invalid_token,
        // a new token, a nonce demand, the nonce: four steps, three sends.
        let none = proof(None);
        let mut attempt = Attempt::default();
        let sent = Sent { attempt, copy: true, proof: Some(&none), accepted: false };
        let verdict = judge(&sent, StatusCode::UNAUTHORIZED, &headers(Some(INVALID), None));
        assert_eq!(verdict, Verdict::Renew);
        attempt = attempt.after(verdict);
        let sent = Sent { attempt, copy: true, proof: Some(&none), accepted: false };
        let verdict = judge(&sent, StatusCode::UNAUTHORIZED, &headers(Some(NONCE_DEMAND), Some("n-1")));
        assert_eq!(verdict, Verdict::RetryWithNonce);
        attempt = attempt.after(verdict);
        assert_eq!(attempt.sends(), 3);
        assert!(!attempt.may_send_again());
        let with_nonce = proof(Some("n-1"));
        let sent = Sent { attempt, copy: true, proof: Some(&with_nonce), accepted: false };
        let again = judge(&sent, StatusCode::UNAUTHORIZED, &headers(Some(NONCE_DEMAND), Some("n-2")));
        assert_eq!(again, Verdict::GiveBack, "a second nonce demand is not retried");
        assert_eq!(
            judge(&sent, StatusCode::UNAUTHORIZED, &headers(Some(INVALID), None)),
            Verdict::RejectedAfterRenewal
        );
    }

    #[test]
    fn a_nonce_demand_naming_the_nonce_sent_or_none_is_given_back() {
        let sent_with = proof(Some("n-1"));
        let sent = Sent { attempt: Attempt::default(), copy: true, proof: Some(&sent_with), accepted: false };
        let same = headers(Some(NONCE_DEMAND), Some("n-1"));
        assert_eq!(judge(&sent, StatusCode::UNAUTHORIZED, &same), Verdict::GiveBack);
        let without = headers(Some(NONCE_DEMAND), None);
        assert_eq!(judge(&sent, StatusCode::UNAUTHORIZED, &without), Verdict::GiveBack);
        let new = headers(Some(NONCE_DEMAND), Some("n-2"));
        assert_eq!(judge(&sent, StatusCode::UNAUTHORIZED, &new), Verdict::RetryWithNonce);
        assert_eq!(judge(&Sent { copy: false, ..sent }, StatusCode::UNAUTHORIZED, &new), Verdict::GiveBack);
        // A bearer request is not judged by DPoP challenges.
        let bearer = Sent { proof: None, ..sent };
        assert_eq!(judge(&bearer, StatusCode::UNAUTHORIZED, &new), Verdict::Renew);
    }

    #[test]
    fn the_default_copies_every_request() {
        assert_eq!(ReplayCopies::default(), ReplayCopies::Always);
        assert!(ReplayCopies::Always.keep(false) && ReplayCopies::Always.keep(true));
        assert!(ReplayCopies::AtRisk.keep(true) && !ReplayCopies::AtRisk.keep(false));
    }

    /// One answer the API may give.
    #[derive(Debug, Clone)]
    struct Answer {
        status: u16,
        challenge: Option<String>,
        nonce: Option<String>,
    }

    fn answer() -> impl Strategy<Value = Answer> {
        let challenge = prop_oneof![
            Just(None),
            Just(Some(NONCE_DEMAND.to_owned())),
            Just(Some(INVALID.to_owned())),
            Just(Some("Bearer error=\"invalid_token\"".to_owned())),
            Just(Some("dpop   error = use_dpop_nonce".to_owned())),
            Just(Some(STRONGER.to_owned())),
            "[ -~]{0,40}".prop_map(Some),
        ];
        let nonce = prop_oneof![Just(None), Just(Some("n-1".to_owned())), "[!#-~]{1,8}".prop_map(Some)];
        (prop_oneof![Just(401u16), Just(200), Just(403), 100u16..600], challenge, nonce)
            .prop_map(|(status, challenge, nonce)| Answer { status, challenge, nonce })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever the API answers, a request is sent at most three
        /// times, renewed at most once, nonce-retried at most once, sent
        /// again only from a copy, and the sequence always ends.
        #[test]
        fn no_answer_sequence_sends_more_than_three_times(
            answers in proptest::collection::vec(answer(), 1..12),
            copyable in any::<bool>(),
            dpop_bound in any::<bool>(),
            first_nonce in proptest::option::of("[a-z]{1,4}"),
            accepted in any::<bool>(),
        ) {
            let mut attempt = Attempt::default();
            let mut proof_sent = dpop_bound.then(|| proof(first_nonce.as_deref()));
            let mut renewals = 0;
            let mut nonce_retries = 0;
            let mut ended = false;
            for answer in &answers {
                let headers = headers(answer.challenge.as_deref(), answer.nonce.as_deref());
                let status = StatusCode::from_u16(answer.status).unwrap();
                let sent = Sent { attempt, copy: copyable, proof: proof_sent.as_ref(), accepted: accepted && attempt.renewed() };
                let verdict = judge(&sent, status, &headers);
                if verdict.sends_again() {
                    prop_assert!(copyable, "sent again without a copy");
                }
                if status != StatusCode::UNAUTHORIZED {
                    prop_assert_eq!(verdict, Verdict::Accepted);
                }
                if verdict == Verdict::RetryWithNonce {
                    nonce_retries += 1;
                    let offered = headers.get(dpop::NONCE_HEADER).and_then(|n| n.to_str().ok());
                    prop_assert!(offered.is_some() && offered != proof_sent.as_ref().and_then(Proof::nonce));
                    proof_sent = Some(proof(offered));
                }
                if verdict == Verdict::Renew {
                    renewals += 1;
                }
                if answer.challenge.as_deref() == Some(STRONGER) && status == StatusCode::UNAUTHORIZED {
                    prop_assert_eq!(verdict, Verdict::StepUp, "a stronger sign-in is never renewed");
                }
                attempt = attempt.after(verdict);
                prop_assert!(attempt.sends() <= 3);
                if !verdict.sends_again() {
                    ended = true;
                    break;
                }
            }
            prop_assert!(renewals <= 1 && nonce_retries <= 1);
            prop_assert!(ended || answers.len() <= 2, "a third answer always ends the request");
        }
    }
}
