//! What an API says about itself (sans-IO): the challenges of its 401 and
//! 403 answers ([`challenge`]).

pub mod challenge;
