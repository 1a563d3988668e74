use super::{ErrorType, Invalid};
use crate::secret::Secret;

/// A new password: at least 8 characters, at most 72 bytes of UTF-8 (bcrypt
/// reads no further, and Roster never truncates silently), with at least one
/// ASCII digit and one ASCII uppercase letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Password(Secret);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_BYTES: usize = 72;
    /// The digit and uppercase rules as a JSON Schema pattern (unanchored;
    /// `[\s\S]` because `.` does not match a newline).
    pub const PATTERN: &'static str = r"[0-9][\s\S]*[A-Z]|[A-Z][\s\S]*[0-9]";

    pub fn parse(value: String) -> Result<Self, Invalid> {
        Self::check(&value)?;
        Ok(Password(Secret::new(value)))
    }

    pub fn check(value: &str) -> Result<(), Invalid> {
        if value.chars().count() < Self::MIN_CHARS {
            return Err(Invalid::too_short(Self::MIN_CHARS));
        }
        if value.len() > Self::MAX_BYTES {
            return Err(Invalid::new(
                ErrorType::StringTooLong,
                format!("Password should have at most {} bytes", Self::MAX_BYTES),
            ));
        }
        if !value.bytes().any(|b| b.is_ascii_digit()) {
            return Err(Invalid::new(
                ErrorType::ValueError,
                "Password must contain at least one digit",
            ));
        }
        if !value.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Invalid::new(
                ErrorType::ValueError,
                "Password must contain at least one uppercase letter",
            ));
        }
        Ok(())
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_passwords_are_accepted() {
        let at_limit = format!("A1{}", "a".repeat(70));
        for input in ["Passw0rd", "1234567A", "ÄÖÜäöü1A", at_limit.as_str()] {
            Password::parse(input.to_string()).expect(input);
        }
    }

    #[test]
    fn invalid_passwords_are_refused_with_the_rule_they_break() {
        let over_bytes = format!("A1{}", "a".repeat(71));
        // 40 characters but 80 bytes: too long for bcrypt although short.
        let multibyte = format!("A1{}", "é".repeat(39));
        let cases = [
            ("", ErrorType::StringTooShort),
            ("Pass0rd", ErrorType::StringTooShort),
            (over_bytes.as_str(), ErrorType::StringTooLong),
            (multibyte.as_str(), ErrorType::StringTooLong),
            ("Password", ErrorType::ValueError),
            ("passw0rd", ErrorType::ValueError),
            ("ÄÖÜäöü1ä", ErrorType::ValueError),
        ];
        for (input, kind) in cases {
            let err = Password::parse(input.to_string()).expect_err(input);
            assert_eq!(err.kind, kind, "{input:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let password = Password::parse("Secret123".to_string()).unwrap();
        assert!(!format!("{password:?}").contains("Secret"));
    }
}
