use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
use validator::ValidateEmail;

use super::{ErrorType, Invalid};

/// An email address, validated and stored in one spelling per mailbox: the
/// local part in Unicode NFC and lowercased, the domain in its IDNA ASCII
/// form (`bücher.example` is stored as `xn--bcher-kva.example`). Composed,
/// decomposed and punycode spellings of one address are one account, and
/// uniqueness and lookups ignore case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// RFC 5321's limit on a forward path.
    pub const MAX_CHARS: usize = 254;

    pub fn parse(value: String) -> Result<Self, Invalid> {
        Self::normalize(&value).map(Email)
    }

    pub fn check(value: &str) -> Result<(), Invalid> {
        Self::normalize(value).map(drop)
    }

    /// The stored spelling of `value`, if it is an address.
    fn normalize(value: &str) -> Result<String, Invalid> {
        if value.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::too_long(Self::MAX_CHARS));
        }
        let invalid = || Invalid::new(ErrorType::ValueError, "value is not a valid email address");
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        // `validator` checks the domain (IDNA included) and an ASCII local
        // part; a local part in other scripts (RFC 6531) is checked here.
        let ascii_local = if local.is_ascii() { local } else { "x" };
        if !valid_local_part(local) || !format!("{ascii_local}@{domain}").validate_email() {
            return Err(invalid());
        }
        let domain = idna::domain_to_ascii(domain).map_err(|_| invalid())?;
        let local: String = local.nfc().collect::<String>().to_lowercase();
        let stored = format!("{local}@{domain}");
        // Punycode is longer than the letters it spells.
        if stored.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::too_long(Self::MAX_CHARS));
        }
        Ok(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// RFC 5322's dot-atom, with any letter, digit or mark of other scripts
/// (RFC 6531): at most 64 characters, no dot at either end or twice.
fn valid_local_part(local: &str) -> bool {
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+/=?^_`{|}~-.".contains(c)
            || (!c.is_ascii()
                && (c.is_alphanumeric()
                    || matches!(c.general_category_group(), GeneralCategoryGroup::Mark)))
    };
    !local.is_empty()
        && local.chars().count() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(allowed)
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
            ("jos\u{e9}@example.com", "jos\u{e9}@example.com"),
            ("jose\u{301}@example.com", "jos\u{e9}@example.com"),
            ("JOSE\u{301}@example.com", "jos\u{e9}@example.com"),
            ("user@b\u{fc}cher.example", "user@xn--bcher-kva.example"),
            ("user@B\u{dc}CHER.example", "user@xn--bcher-kva.example"),
            ("user@xn--bcher-kva.example", "user@xn--bcher-kva.example"),
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
            ("jos\u{e9}\u{202e}@example.com", ErrorType::ValueError),
            (".alice@example.com", ErrorType::ValueError),
            ("al..ice@example.com", ErrorType::ValueError),
            ("alice@-example.com", ErrorType::ValueError),
            (long.as_str(), ErrorType::StringTooLong),
        ];
        for (input, kind) in cases {
            let err = Email::parse(input.to_string()).expect_err(input);
            assert_eq!(err.kind, kind, "{input:?}");
        }
    }
}
