use super::{ErrorType, Invalid};

/// A username: 3–50 ASCII letters or digits. Case is kept as given;
/// uniqueness and lookups ignore it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MIN_CHARS: usize = 3;
    pub const MAX_CHARS: usize = 50;
    /// The rule as a JSON Schema pattern (stated in the OpenAPI document).
    pub const PATTERN: &'static str = "^[A-Za-z0-9]+$";

    pub fn parse(value: String) -> Result<Self, Invalid> {
        Self::check(&value)?;
        Ok(Username(value))
    }

    pub fn check(value: &str) -> Result<(), Invalid> {
        let chars = value.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(Invalid::too_short(Self::MIN_CHARS));
        }
        if chars > Self::MAX_CHARS {
            return Err(Invalid::too_long(Self::MAX_CHARS));
        }
        if !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Invalid::new(
                ErrorType::StringPatternMismatch,
                "Username may contain only ASCII letters and digits",
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

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_usernames_are_accepted_with_their_case() {
        for name in ["abc", "Alice", "bob42", "X1Y", &"a".repeat(50)] {
            let parsed = Username::parse(name.to_string()).expect(name);
            assert_eq!(parsed.as_str(), name);
        }
    }

    #[test]
    fn invalid_usernames_are_refused_with_the_rule_they_break() {
        let long = "a".repeat(51);
        let cases = [
            ("", ErrorType::StringTooShort),
            ("ab", ErrorType::StringTooShort),
            (long.as_str(), ErrorType::StringTooLong),
            ("al ice", ErrorType::StringPatternMismatch),
            ("al_ice", ErrorType::StringPatternMismatch),
            ("al-ice", ErrorType::StringPatternMismatch),
            ("élise", ErrorType::StringPatternMismatch),
            ("abc\0", ErrorType::StringPatternMismatch),
            ("админ", ErrorType::StringPatternMismatch),
        ];
        for (input, kind) in cases {
            let err = Username::parse(input.to_string()).expect_err(input);
            assert_eq!(err.kind, kind, "{input:?}");
        }
    }
}
