//! The `roster` binary: serves by default; `roster admin create` makes an
//! administrator.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rocket_db_pools::Database;

/// sqlx builds every SQLite row on the connection's own thread and the
/// request's thread frees it: glibc's malloc spent over a tenth of the time
/// of a list of users in `_int_malloc`, `_int_free` and consolidation
/// (perf, bench/NOTES.md). jemalloc handles frees from other threads well:
/// 15-25 % more reads per second, with a peak RSS under load of 31 MiB
/// (mimalloc was as fast but held 40 MiB).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Roster: a user-management REST service (registration, JWT login,
/// profiles, roles).
///
/// Configuration comes from Rocket.toml (optional), ROCKET_* variables and
/// DATABASE_URL (SQLite by default: ./roster.db).
#[derive(Parser)]
#[command(name = "roster", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default when no command is given).
    Serve,
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an administrator. The password is read from
    /// ROSTER_ADMIN_PASSWORD, or else from standard input.
    Create {
        /// 3-50 ASCII letters or digits.
        #[arg(long)]
        username: String,
        /// The admin's email address.
        #[arg(long)]
        email: String,
    },
}

#[rocket::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Admin {
            command: AdminCommand::Create { username, email },
        } => create_admin(username, email).await,
    }
}

async fn serve() -> ExitCode {
    let rocket = match roster::build_rocket(roster::config::figment()) {
        Ok(rocket) => rocket,
        Err(err) => {
            eprintln!("roster: {err}");
            return ExitCode::from(2);
        }
    };
    match rocket.launch().await {
        Ok(rocket) => {
            if let Some(db) = roster::db::Db::fetch(&rocket) {
                db.close_all().await;
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("roster: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn create_admin(username: String, email: String) -> ExitCode {
    let password = match read_password() {
        Ok(password) => password,
        Err(err) => {
            eprintln!("roster: could not read the password: {err}");
            return ExitCode::FAILURE;
        }
    };
    let figment = roster::config::figment();
    match roster::admin::create_admin(&figment, username, email, password).await {
        Ok(user) => {
            eprintln!("created admin {:?} (id {})", user.username, user.id);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("roster: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `ROSTER_ADMIN_PASSWORD`, or one line of standard input (prompted for, and
/// not echoed, on a terminal).
fn read_password() -> std::io::Result<String> {
    if let Ok(password) = std::env::var("ROSTER_ADMIN_PASSWORD") {
        return Ok(password);
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Password for the new admin: ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
