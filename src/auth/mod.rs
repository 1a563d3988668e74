//! Who is asking: password hashing (and, with the auth issue, tokens and the
//! guards that check them).

pub mod password;
