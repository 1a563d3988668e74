use super::Invalid;

/// A new password: at least 8 characters, at most 72 bytes of UTF-8 (bcrypt
/// reads no further, and Roster never truncates silently), with at least one
/// ASCII digit and one ASCII uppercase letter.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_BYTES: usize = 72;
    /// The digit and uppercase rules as a JSON Schema pattern (unanchored;
    /// `[\s\S]` because `.` does not match a newline).
    pub const PATTERN: &'static str = r"[0-9][\s\S]*[A-Z]|[A-Z][\s\S]*[0-9]";

    pub fn parse(value: String) -> Result<Self, Invalid> {
        Self::check(&value)?;
        Ok(Password(value))
    }

    pub fn check(value: &str) -> Result<(), Invalid> {
        if value.chars().count() < Self::MIN_CHARS {
            return Err(Invalid::too_short(Self::MIN_CHARS));
        }
        if value.len() > Self::MAX_BYTES {
            return Err(Invalid::new(
                "string_too_long",
                format!("Password should have at most {} bytes", Self::MAX_BYTES),
            ));
        }
        if !value.bytes().any(|b| b.is_ascii_digit()) {
            return Err(Invalid::new(
                "value_error",
                "Password must contain at least one digit",
            ));
        }
        if !value.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Invalid::new(
                "value_error",
                "Password must contain at least one uppercase letter",
            ));
        }
        Ok(())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Never print a password, not even in debug logs.
impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
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
            ("", "string_too_short"),
            ("Pass0rd", "string_too_short"),
            (over_bytes.as_str(), "string_too_long"),
            (multibyte.as_str(), "string_too_long"),
            ("Password", "value_error"),
            ("passw0rd", "value_error"),
            ("ÄÖÜäöü1ä", "value_error"),
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
