//! Who is asking: password hashing, tokens, and the guards that check them.

pub mod account;
pub mod guards;
pub mod password;
pub mod pruner;
pub mod sessions;
pub mod tokens;

pub use guards::{AuthConn, AuthUser};
