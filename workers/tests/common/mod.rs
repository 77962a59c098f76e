//! What the domain-level tests share.

use domain::settings::Settings;

/// Settings for a process on `url` whose worker does not run (the test drives it).
#[allow(clippy::unwrap_used)]
pub fn settings(url: &str) -> Settings {
    let vars = [
        ("DATABASE_URL", url),
        ("SECRETS_KEY", "11".repeat(32).leak() as &str),
        ("RUN_WORKER", "false"),
    ];
    Settings::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}
