// `sqlx::migrate!` embeds the migrations at compile time: rebuild when they
// change. `roster --version` names the commit it was built from (`unknown`
// outside a git checkout).
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|hash| hash.trim().to_owned())
        .filter(|hash| !hash.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ROSTER_COMMIT={commit}");
    // A new commit moves HEAD's branch; a checkout moves HEAD itself.
    if let Ok(out) = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
    {
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            println!("cargo:rerun-if-changed={dir}/HEAD");
            println!("cargo:rerun-if-changed={dir}/refs/heads");
            println!("cargo:rerun-if-changed={dir}/packed-refs");
        }
    }
}
