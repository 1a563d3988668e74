//! Email templates: built into the binary, so that it needs no files beside
//! it, and each replaceable by a file of the same name in `templates.dir`
//! (branding without a rebuild). Every template is checked at start by
//! rendering it once; HTML templates are escaped.

use std::path::Path;

use tera::{Context, Tera};

/// The built-in templates: each email has a text and an HTML part.
const BUILT_IN: [(&str, &str); 6] = [
    (
        "welcome.txt.tera",
        include_str!("../../templates/email/welcome.txt.tera"),
    ),
    (
        "welcome.html.tera",
        include_str!("../../templates/email/welcome.html.tera"),
    ),
    (
        "verify_email.txt.tera",
        include_str!("../../templates/email/verify_email.txt.tera"),
    ),
    (
        "verify_email.html.tera",
        include_str!("../../templates/email/verify_email.html.tera"),
    ),
    (
        "password_reset.txt.tera",
        include_str!("../../templates/email/password_reset.txt.tera"),
    ),
    (
        "password_reset.html.tera",
        include_str!("../../templates/email/password_reset.html.tera"),
    ),
];

/// The emails, by template stem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Email {
    Welcome,
    VerifyEmail,
    PasswordReset,
}

impl Email {
    fn stem(self) -> &'static str {
        match self {
            Email::Welcome => "welcome",
            Email::VerifyEmail => "verify_email",
            Email::PasswordReset => "password_reset",
        }
    }
}

pub struct Templates(Tera);

/// A rendered email body in both parts.
pub struct Rendered {
    pub text: String,
    pub html: String,
}

/// What a template may use.
pub struct Values<'a> {
    pub username: &'a str,
    pub email: &'a str,
    /// The token, if the email carries one, and its link.
    pub token: Option<&'a str>,
    pub link: Option<&'a str>,
    /// How long the token works, in words ("1 hour").
    pub valid_for: &'a str,
}

impl Templates {
    /// The built-in templates, each replaced by the file of the same name in
    /// `dir` where there is one. A missing directory, a file that is not a
    /// template's name (a typo would otherwise be ignored), or a template
    /// that does not parse or render is an error that says which.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut sources: Vec<(String, String)> = BUILT_IN
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect();
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir)
                .map_err(|err| format!("templates.dir {}: {err}", dir.display()))?;
            for entry in entries {
                let path = entry
                    .map_err(|err| format!("templates.dir {}: {err}", dir.display()))?
                    .path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned();
                if !name.ends_with(".tera") {
                    continue;
                }
                let Some(slot) = sources.iter_mut().find(|(known, _)| *known == name) else {
                    let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "templates.dir: {} is not the name of a template (they are {})",
                        path.display(),
                        names.join(", ")
                    ));
                };
                slot.1 = std::fs::read_to_string(&path)
                    .map_err(|err| format!("templates.dir: {}: {err}", path.display()))?;
            }
        }
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html.tera"]);
        tera.add_raw_templates(sources)
            .map_err(|err| format!("email templates: {}", chain(&err)))?;
        let templates = Templates(tera);
        for email in [Email::Welcome, Email::VerifyEmail, Email::PasswordReset] {
            let sample = Values {
                username: "alice",
                email: "alice@example.com",
                token: Some("0123456789abcdef"),
                link: Some("https://example.com/verify-email?token=0123456789abcdef"),
                valid_for: "1 hour",
            };
            templates
                .render(email, &sample)
                .map_err(|err| format!("email template {}: {}", email.stem(), chain(&err)))?;
        }
        Ok(templates)
    }

    pub fn render(&self, email: Email, values: &Values<'_>) -> Result<Rendered, tera::Error> {
        let mut context = Context::new();
        context.insert("username", values.username);
        context.insert("email", values.email);
        context.insert("token", &values.token);
        context.insert("valid_for", values.valid_for);
        let link_name = match email {
            Email::PasswordReset => "reset_link",
            Email::Welcome | Email::VerifyEmail => "verify_link",
        };
        context.insert(link_name, &values.link);
        let stem = email.stem();
        Ok(Rendered {
            text: self.0.render(&format!("{stem}.txt.tera"), &context)?,
            html: self.0.render(&format!("{stem}.html.tera"), &context)?,
        })
    }
}

/// `seconds` in words: "45 seconds", "1 hour", "7 days", "90 minutes".
pub fn duration_in_words(seconds: u64) -> String {
    let (amount, unit) = match seconds {
        s if s % 86_400 == 0 => (s / 86_400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    match amount {
        1 => format!("1 {unit}"),
        n => format!("{n} {unit}s"),
    }
}

fn chain(err: &tera::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(username: &'a str, token: Option<&'a str>) -> Values<'a> {
        Values {
            username,
            email: "alice@example.com",
            token,
            link: token.map(|_| "https://app.example.com/verify-email?token=abc"),
            valid_for: "7 days",
        }
    }

    #[test]
    fn welcome_greets_by_name_in_both_parts_and_escapes_html() {
        let templates = Templates::load(None).unwrap();
        let rendered = templates
            .render(Email::Welcome, &values("alice", None))
            .unwrap();
        assert!(rendered.text.contains("Hello alice"));
        assert!(rendered.html.contains("Hello alice"));
        assert!(!rendered.text.contains("verify-email"), "{}", rendered.text);
        let hostile = templates
            .render(Email::Welcome, &values("<b>x</b>", None))
            .unwrap();
        assert!(hostile.html.contains("&lt;b&gt;"), "{}", hostile.html);
    }

    #[test]
    fn token_emails_carry_the_link_the_token_and_the_validity() {
        let templates = Templates::load(None).unwrap();
        for email in [Email::Welcome, Email::VerifyEmail, Email::PasswordReset] {
            let rendered = templates
                .render(email, &values("alice", Some("abc")))
                .unwrap();
            let link = "https://app.example.com/verify-email?token=abc";
            assert!(rendered.text.contains(link), "{email:?}: {}", rendered.text);
            // HTML-escaped in the page (`/` as `&#x2F;`), as a browser reads it.
            let escaped = link.replace('/', "&#x2F;");
            assert!(
                rendered.html.contains(&escaped),
                "{email:?}: {}",
                rendered.html
            );
            for part in [&rendered.text, &rendered.html] {
                assert!(part.contains("7 days"), "{email:?}: {part}");
            }
        }
    }

    #[test]
    fn a_directory_replaces_a_template_and_refuses_unknown_or_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("password_reset.txt.tera"),
            "ACME: reset at {{ reset_link }}",
        )
        .unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let rendered = templates
            .render(Email::PasswordReset, &values("alice", Some("abc")))
            .unwrap();
        assert_eq!(
            rendered.text,
            "ACME: reset at https://app.example.com/verify-email?token=abc"
        );
        assert!(
            rendered.html.contains("Hello alice"),
            "the built-in HTML stays"
        );

        std::fs::write(dir.path().join("pasword_reset.txt.tera"), "x").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap();
        assert!(err.contains("pasword_reset.txt.tera"), "{err}");
        std::fs::remove_file(dir.path().join("pasword_reset.txt.tera")).unwrap();

        std::fs::write(dir.path().join("welcome.txt.tera"), "{{ nope }}").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap();
        assert!(err.contains("welcome"), "{err}");

        let err = Templates::load(Some(&dir.path().join("missing")))
            .err()
            .unwrap();
        assert!(err.contains("templates.dir"), "{err}");
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_in_words(3600), "1 hour");
        assert_eq!(duration_in_words(604_800), "7 days");
        assert_eq!(duration_in_words(5400), "90 minutes");
        assert_eq!(duration_in_words(45), "45 seconds");
    }
}
