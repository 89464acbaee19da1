//! Peers side by side; see benches/peers.rs.
