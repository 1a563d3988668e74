//! A configuration that fails closed: every key given must be one that
//! Roster or Rocket reads, and every profile section one that can apply, so
//! that a typo is refused at start instead of silently meaning the default.

use rocket::figment::value::{Dict, Value};
use rocket::figment::{Figment, Profile};

use super::ConfigError;

/// Keys under which any name is a key: Rocket's named body limits.
const OPEN: &[&str] = &["limits"];

/// The pool keys of `databases.roster` (rocket_db_pools' and Roster's),
/// which have no built-in default to learn them from.
const POOL_KEYS: &[&str] = &[
    "url",
    "min_connections",
    "max_connections",
    "connect_timeout",
    "idle_timeout",
    "extensions",
    "startup_timeout",
];

/// The profile sections that may appear besides the one in use.
const PROFILES: &[&str] = &["default", "global", "debug", "release"];

/// Refuses profile sections that cannot apply and keys nothing reads;
/// `known` is a figment holding every key (the built-in defaults).
pub fn check(figment: &Figment, known: &Figment) -> Result<(), ConfigError> {
    check_profiles(figment)?;
    let known: Dict = known
        .extract()
        .map_err(|err| ConfigError(format!("the built-in defaults: {err}")))?;
    let given: Dict = figment
        .extract()
        .map_err(|err| ConfigError(err.to_string()))?;
    let mut unknown = Vec::new();
    walk(&given, Some(&known), "", &mut unknown);
    match unknown.first() {
        None => Ok(()),
        Some(path) => {
            let mut message = format!("unknown key `{path}`{}", origin(figment, path));
            match nearest(path, &known) {
                Some(near) => message.push_str(&format!(": did you mean `{near}`?")),
                None => message.push_str(": no such setting"),
            }
            if unknown.len() > 1 {
                message.push_str(&format!(" (and {} more unknown keys)", unknown.len() - 1));
            }
            Err(ConfigError(message))
        }
    }
}

fn check_profiles(figment: &Figment) -> Result<(), ConfigError> {
    let selected = figment.profile();
    for profile in figment.profiles() {
        let name = profile.as_str().as_str();
        if profile == selected || PROFILES.iter().any(|p| profile == *p) {
            continue;
        }
        let mut candidates: Vec<&str> = PROFILES.to_vec();
        candidates.push(selected.as_str().as_str());
        let hint = closest(name, candidates.iter().copied())
            .map(|near| format!(" (did you mean [{near}]?)"))
            .unwrap_or_default();
        let chosen = match std::env::var_os("ROCKET_PROFILE") {
            Some(_) => "chosen by ROCKET_PROFILE",
            None => "this build's default; ROCKET_PROFILE chooses another",
        };
        return Err(ConfigError(format!(
            "profile section [{name}] is neither default, global, debug, release nor the \
             profile in use ({selected}, {chosen}){hint}"
        )));
    }
    Ok(())
}

/// Collects the paths in `given` that `known` does not hold. `known` is
/// `None` under `databases`, whose own rules apply.
fn walk(given: &Dict, known: Option<&Dict>, prefix: &str, unknown: &mut Vec<String>) {
    for (key, value) in given {
        let path = format!("{prefix}{key}");
        if OPEN.contains(&path.as_str()) {
            continue;
        }
        if path == "databases" {
            if let Value::Dict(_, databases) = value {
                for (name, pool) in databases {
                    let pool_path = format!("databases.{name}");
                    if name != "roster" {
                        unknown.push(pool_path);
                    } else if let Value::Dict(_, pool) = pool {
                        unknown.extend(
                            pool.keys()
                                .filter(|k| !POOL_KEYS.contains(&k.as_str()))
                                .map(|k| format!("{pool_path}.{k}")),
                        );
                    }
                }
            }
            continue;
        }
        match known.and_then(|known| known.get(key)) {
            None => unknown.push(path),
            // A value where a table is expected is the type check's to refuse.
            Some(Value::Dict(_, known_child)) => {
                if let Value::Dict(_, child) = value {
                    walk(child, Some(known_child), &format!("{path}."), unknown);
                }
            }
            Some(_) => {}
        }
    }
}

/// Where the value at `path` was given: the variable or the file section.
fn origin(figment: &Figment, path: &str) -> String {
    let Ok(value) = figment.find_value(path) else {
        return String::new();
    };
    let tag = value.tag();
    let Some(metadata) = figment.get_metadata(tag) else {
        return String::new();
    };
    let keys: Vec<&str> = path.split('.').collect();
    let profile = tag.profile().unwrap_or(Profile::Default);
    match &metadata.source {
        Some(source) => format!(" in [{profile}] of {} {source}", metadata.name),
        // The variable a nested value was given in (`ROCKET_RATE_LIMIT`).
        None if metadata.name.contains("environment") => format!(
            " in the environment variable ROCKET_{}",
            keys[0].to_uppercase()
        ),
        None => format!(
            " in {} ({})",
            metadata.interpolate(&profile, &keys),
            metadata.name
        ),
    }
}

/// The known key most like `path`: a sibling spelled nearly alike, or else
/// a key of the same name elsewhere (`per_minute` → `rate_limit.per_minute`).
fn nearest(path: &str, known: &Dict) -> Option<String> {
    let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
    let mut leaves = Vec::new();
    paths(known, "", &mut leaves);
    let siblings = leaves.iter().filter_map(|p| {
        let (p_parent, p_key) = p.rsplit_once('.').unwrap_or(("", p.as_str()));
        (p_parent == parent).then_some(p_key)
    });
    if let Some(near) = closest(key, siblings) {
        return Some(if parent.is_empty() {
            near.to_owned()
        } else {
            format!("{parent}.{near}")
        });
    }
    leaves
        .iter()
        .find(|p| p.rsplit('.').next() == Some(key) || p.split('.').next() == Some(key))
        .cloned()
}

/// Every path of `dict`, tables included.
fn paths(dict: &Dict, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in dict {
        let path = format!("{prefix}{key}");
        if let Value::Dict(_, child) = value {
            paths(child, &format!("{path}."), out);
        }
        out.push(path);
    }
}

/// The candidate within a few edits of `word`, the nearest first.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let most = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(distance, _)| *distance <= most)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use rocket::figment::providers::{Format, Toml};

    use super::*;
    use crate::config::{figment, known};

    fn checked(toml: &str) -> Result<(), String> {
        let figment = figment().merge(Toml::string(toml).nested());
        check(&figment, &known()).map_err(|err| err.0)
    }

    #[test]
    fn every_built_in_and_documented_key_is_known() {
        checked(
            r#"
            [default]
            address = "127.0.0.1"
            port = 8000
            workers = 4
            log_level = "normal"
            limits = { json = "1MiB", "file/pdf" = "5MiB" }
            shutdown = { grace = 5, mercy = 5 }
            jwt_secret = "0123456789abcdef0123456789abcdef"
            rate_limit = { per_minute = 5, backend = "redis" }
            smtp = { url = "smtp://127.0.0.1:25", keep_sent_days = 3 }
            upload = { idle_timeout = 10 }
            migrate_on_start = false
            log_format = "json"
            metrics = { enabled = true, allow = ["10.0.0.0/8", "::1"] }
            databases.roster = { url = "sqlite://x.db", max_connections = 4, startup_timeout = 5 }
            [release]
            port = 80
            "#,
        )
        .unwrap();
    }

    #[test]
    fn a_misspelled_key_is_refused_with_the_nearest_known_one() {
        let err = checked("[default]\nrate_limit = { per_minut = 5 }").unwrap_err();
        assert!(err.contains("`rate_limit.per_minut`"), "{err}");
        assert!(
            err.contains("did you mean `rate_limit.per_minute`?"),
            "{err}"
        );
        assert!(err.contains("TOML"), "says where it came from: {err}");

        let err = checked("[default]\nper_minute = 5").unwrap_err();
        assert!(
            err.contains("did you mean `rate_limit.per_minute`?"),
            "{err}"
        );

        let err = checked("[default]\njwt_secrte = \"x\"").unwrap_err();
        assert!(err.contains("did you mean `jwt_secret`?"), "{err}");

        let err = checked("[default]\nwhatever = 1").unwrap_err();
        assert!(
            err.contains("`whatever`") && err.contains("no such setting"),
            "{err}"
        );
    }

    #[test]
    fn unknown_databases_and_pool_keys_are_refused() {
        let err =
            checked("[default]\ndatabases.rooster = { url = \"sqlite://x.db\" }").unwrap_err();
        assert!(err.contains("`databases.rooster`"), "{err}");
        let err =
            checked("[default]\ndatabases.roster = { urll = \"sqlite://x.db\" }").unwrap_err();
        assert!(err.contains("`databases.roster.urll`"), "{err}");
    }

    #[test]
    fn a_profile_section_that_cannot_apply_is_refused() {
        let err = checked("[relase]\nport = 80").unwrap_err();
        assert!(err.contains("[relase]"), "{err}");
        assert!(err.contains("did you mean [release]?"), "{err}");
        checked("[global]\nport = 80\n[debug]\nport = 81").unwrap();
    }
}
