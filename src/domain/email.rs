use validator::ValidateEmail;

use super::{ErrorType, Invalid};

/// An email address, validated and stored lowercased so that uniqueness and
/// lookups ignore case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// RFC 5321's limit on a forward path.
    pub const MAX_CHARS: usize = 254;

    pub fn parse(value: String) -> Result<Self, Invalid> {
        Self::check(&value)?;
        Ok(Email(value.to_lowercase()))
    }

    pub fn check(value: &str) -> Result<(), Invalid> {
        if value.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::too_long(Self::MAX_CHARS));
        }
        if value.chars().any(char::is_control) || !value.validate_email() {
            return Err(Invalid::new(
                ErrorType::ValueError,
                "value is not a valid email address",
            ));
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_emails_are_accepted_and_lowercased() {
        let cases = [
            ("alice@example.com", "alice@example.com"),
            ("Alice@Example.COM", "alice@example.com"),
            ("a.b+tag@sub.example.org", "a.b+tag@sub.example.org"),
        ];
        for (input, stored) in cases {
            assert_eq!(
                Email::parse(input.to_string()).expect(input).as_str(),
                stored
            );
        }
    }

    #[test]
    fn invalid_emails_are_refused() {
        let long = format!("{}@example.com", "a".repeat(250));
        let cases = [
            ("", ErrorType::ValueError),
            ("alice", ErrorType::ValueError),
            ("alice@", ErrorType::ValueError),
            ("@example.com", ErrorType::ValueError),
            ("al ice@example.com", ErrorType::ValueError),
            (" alice@example.com", ErrorType::ValueError),
            ("alice@exa mple.com", ErrorType::ValueError),
            ("al\0ice@example.com", ErrorType::ValueError),
            ("alice@example.com\n", ErrorType::ValueError),
            (long.as_str(), ErrorType::StringTooLong),
        ];
        for (input, kind) in cases {
            let err = Email::parse(input.to_string()).expect_err(input);
            assert_eq!(err.kind, kind, "{input:?}");
        }
    }
}
