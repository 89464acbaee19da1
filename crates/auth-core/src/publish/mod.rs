//! What the drivers hand out on every request: the access token
//! ([`token`]), the lock-free slot it is published in and read from
//! ([`slot`]), and the verdict on the API's answer to a request that
//! carried it ([`replay`]).

pub mod replay;
pub mod slot;
pub mod token;
