//! The `roster` binary: serves by default; `roster admin create` makes an
//! administrator.

use std::io::{BufRead, IsTerminal, Write};
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
#[command(name = "roster", version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("ROSTER_COMMIT"), ")"))]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default when no command is given); runs pending
    /// migrations first unless migrate_on_start = false.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Write a consistent copy of the SQLite database to FILE, also while
    /// it serves (PostgreSQL: use pg_dump).
    Backup {
        /// Where the copy goes; it must not exist yet.
        file: std::path::PathBuf,
    },
    /// See and requeue email jobs.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Check the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// List the jobs, oldest first: id, kind, status, attempts, next
    /// attempt, queued at, last error.
    List {
        #[arg(long, value_enum)]
        status: Option<JobStatus>,
    },
    /// Put a job (any status), or with --dead every dead job, back in the
    /// queue, due now.
    Retry {
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        id: Option<i64>,
        #[arg(long)]
        dead: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum JobStatus {
    Pending,
    Dead,
    Sent,
}

impl JobStatus {
    fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Dead => "dead",
            JobStatus::Sent => "sent",
        }
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration as serving would and print the effective
    /// settings, secrets redacted; touches nothing.
    Check,
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
        /// Succeed when an admin of that username exists already (a user
        /// who is not an admin is still an error).
        #[arg(long)]
        if_missing: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The runtime is sized from the configuration (`workers`,
    // `max_blocking`): a value it cannot start with is refused first, as a
    // configuration error, instead of a panic.
    let figment = roster::config::figment();
    if let Err(err) = roster::config::check_runtime(&figment) {
        eprintln!("roster: {err}");
        return ExitCode::from(BAD_CONFIG);
    }
    roster::telemetry::logs::init(&figment);
    rocket::async_main(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Backup { file } => {
            match roster::admin::backup(&roster::config::figment(), &file).await {
                Ok(()) => {
                    eprintln!("roster: backed up to {}", file.display());
                    ExitCode::SUCCESS
                }
                Err(err) => fail(err),
            }
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check(),
        Command::Outbox { command } => outbox(command).await,
        Command::Admin {
            command:
                AdminCommand::Create {
                    username,
                    email,
                    if_missing,
                },
        } => create_admin(username, email, if_missing).await,
    }
}

/// The exit status of a configuration Roster refuses.
const BAD_CONFIG: u8 = 2;

fn config_check() -> ExitCode {
    match roster::config::effective(&roster::config::figment()) {
        Ok(settings) => match writeln!(std::io::stdout(), "{settings}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("roster: could not print the settings: {err}");
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            eprintln!("roster: {err}");
            ExitCode::from(BAD_CONFIG)
        }
    }
}

async fn migrate() -> ExitCode {
    match roster::admin::migrate(&roster::config::figment()).await {
        Ok(()) => {
            eprintln!("roster: the database is up to date");
            ExitCode::SUCCESS
        }
        Err(err) => fail(err),
    }
}

async fn outbox(command: OutboxCommand) -> ExitCode {
    let figment = roster::config::figment();
    match command {
        OutboxCommand::List { status } => {
            let jobs = roster::admin::outbox_list(&figment, status.map(JobStatus::as_str));
            match jobs.await {
                Ok(jobs) => {
                    let mut out = std::io::stdout().lock();
                    let time = |at: time::OffsetDateTime| {
                        at.format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default()
                    };
                    let mut lines = vec![
                        "id\tkind\tstatus\tattempts\tnext_attempt_at\tqueued_at\tlast_error"
                            .to_owned(),
                    ];
                    lines.extend(jobs.iter().map(|job| {
                        format!(
                            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                            job.id,
                            job.kind,
                            job.status,
                            job.attempts,
                            time(job.next_attempt_at),
                            time(job.created_at),
                            job.last_error
                                .as_deref()
                                .unwrap_or("-")
                                .replace(['\n', '\t'], " ")
                        )
                    }));
                    match lines.iter().try_for_each(|line| writeln!(out, "{line}")) {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(err) => {
                            eprintln!("roster: could not print the jobs: {err}");
                            ExitCode::FAILURE
                        }
                    }
                }
                Err(err) => fail(err),
            }
        }
        OutboxCommand::Retry { id, dead: _ } => {
            match roster::admin::outbox_retry(&figment, id).await {
                Ok(n) => {
                    eprintln!("roster: {n} job(s) queued again");
                    ExitCode::SUCCESS
                }
                Err(err) => fail(err),
            }
        }
    }
}

fn fail(err: roster::admin::AdminError) -> ExitCode {
    eprintln!("roster: {err}");
    match err {
        roster::admin::AdminError::Config(_) => ExitCode::from(BAD_CONFIG),
        _ => ExitCode::FAILURE,
    }
}

async fn serve() -> ExitCode {
    let rocket = match roster::build_rocket(roster::config::figment()) {
        Ok(rocket) => rocket,
        Err(err) => {
            eprintln!("roster: {err}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    let rocket = rocket
        .attach(roster::shutdown::signals())
        .attach(roster::shutdown::close_connections_while_draining());
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

async fn create_admin(username: String, email: String, if_missing: bool) -> ExitCode {
    let password = match read_password() {
        Ok(password) => password,
        Err(err) => {
            eprintln!("roster: could not read the password: {err}");
            return ExitCode::FAILURE;
        }
    };
    let figment = roster::config::figment();
    let created = roster::admin::create_admin(&figment, username, email, password, if_missing);
    match created.await {
        Ok(roster::admin::Created::New(user)) => {
            eprintln!("created admin {:?} (id {})", user.username, user.id);
            ExitCode::SUCCESS
        }
        Ok(roster::admin::Created::Existing(user)) => {
            eprintln!(
                "admin {:?} (id {}) exists already: nothing to do",
                user.username, user.id
            );
            ExitCode::SUCCESS
        }
        Err(err) => fail(err),
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
