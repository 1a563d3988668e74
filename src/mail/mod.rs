//! Welcome emails: rendered with Tera, sent over SMTP with lettre by a
//! background worker that drains the outbox.

pub mod templates;
pub mod worker;

use serde::{Deserialize, Serialize};

/// The outbox job kind of a welcome email.
pub const WELCOME_EMAIL: &str = "welcome_email";

/// What a welcome email needs; never a password.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WelcomeEmail {
    pub user_id: i64,
    pub username: String,
    pub email: String,
}
