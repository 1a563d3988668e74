//! Email templates, embedded at compile time so the binary needs no files
//! beside it. HTML templates are escaped.

use tera::{Context, Tera};

const WELCOME_TXT: &str = include_str!("../../templates/email/welcome.txt.tera");
const WELCOME_HTML: &str = include_str!("../../templates/email/welcome.html.tera");

pub struct Templates(Tera);

/// A rendered email body in both parts.
pub struct Rendered {
    pub text: String,
    pub html: String,
}

impl Templates {
    pub fn new() -> Result<Self, tera::Error> {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html.tera"]);
        tera.add_raw_templates(vec![
            ("welcome.txt.tera", WELCOME_TXT),
            ("welcome.html.tera", WELCOME_HTML),
        ])?;
        Ok(Templates(tera))
    }

    pub fn welcome(&self, username: &str) -> Result<Rendered, tera::Error> {
        let mut context = Context::new();
        context.insert("username", username);
        Ok(Rendered {
            text: self.0.render("welcome.txt.tera", &context)?,
            html: self.0.render("welcome.html.tera", &context)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome_greets_by_name_in_both_parts_and_escapes_html() {
        let templates = Templates::new().unwrap();
        let rendered = templates.welcome("alice").unwrap();
        assert!(rendered.text.contains("Hello alice"));
        assert!(rendered.html.contains("Hello alice"));
        let hostile = templates.welcome("<b>x</b>").unwrap();
        assert!(hostile.html.contains("&lt;b&gt;"), "{}", hostile.html);
    }
}
