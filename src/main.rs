use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use emeterai::cli::{Cli, Command, KeysCommand, PhotosCommand, StaffCommand};
use emeterai::db;
use emeterai::startup::Application;

fn main() -> ExitCode {
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("emeterai: cannot read .env: {e}");
        return ExitCode::from(2);
    }
    // Malformed settings end here with clap's one-line message naming the
    // setting, and exit code 2.
    // `--help` names each variable without showing its value (a set secret
    // stays out of the terminal; an unset one no longer reads as `NAME=`).
    let command = Cli::command().mut_args(|arg| arg.hide_env_values(true));
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    emeterai::telemetry::init(cli.settings.log_format);

    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.settings),
        Command::Migrate => migrate(cli.settings),
        Command::Staff(command) => staff(cli.settings, command),
        Command::Photos(PhotosCommand::Reencode) => reencode_photos(cli.settings),
        Command::Keys(command) => keys(cli.settings, command),
        Command::Backup { to } => backup(cli.settings, &to),
        Command::Restore { from } => restore(cli.settings, &from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("emeterai: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: emeterai::config::Settings) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).map_err(|e| e.to_string())?;
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

fn backup(settings: emeterai::config::Settings, to: &std::path::Path) -> Result<(), String> {
    let url = db::DbUrl::parse(&settings.database_url).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let held = db::backup::backup(&url, to).map_err(|e| e.to_string())?;
    println!(
        "backup written to {}: {} accounts, {} registrations, {} bytes, in {:.1} s (sealed as in the database: restoring it needs the same EMETERAI_KEY_FILE)",
        to.display(),
        held.accounts,
        held.registrations,
        held.bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn restore(settings: emeterai::config::Settings, from: &std::path::Path) -> Result<(), String> {
    let url = db::DbUrl::parse(&settings.database_url).map_err(|e| e.to_string())?;
    let held = db::backup::restore(&url, from).map_err(|e| e.to_string())?;
    println!(
        "restored {} into {}: {} accounts, {} registrations; start the portal (it brings the schema up to date)",
        from.display(),
        settings.database_url,
        held.accounts,
        held.registrations
    );
    Ok(())
}

fn migrate(settings: emeterai::config::Settings) -> Result<(), String> {
    let (url, pool) = settings.maintenance_pool()?;
    let applied = db::migrate(&pool).map_err(|e| e.to_string())?;
    println!(
        "{applied} migration(s) applied to the {} database",
        url.backend_name()
    );
    Ok(())
}

fn keys(settings: emeterai::config::Settings, command: KeysCommand) -> Result<(), String> {
    use std::io::Write;
    let path = settings.key_file_path().map_err(|e| e.to_string())?;
    if let KeysCommand::Rotate = command {
        // The file as it is (it may hold only the index key, before the
        // first version is made in a token).
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let version = emeterai::domain::sealed::KeyRing::next_version(&text);
        // With a token configured, the new version is a key made inside it.
        let line = if settings.pkcs11_module.is_some() {
            let token = emeterai::pkcs11::Token::open(&settings.pkcs11_config()?)?;
            let label = format!("emeterai-kek-{version}");
            token.generate_key(&label)?;
            format!("kek {version} pkcs11:{label}\n")
        } else {
            emeterai::domain::sealed::KeyRing::kek_line(version)
        };
        let text = format!("{}\n{line}", text.trim_end());
        emeterai::config::write_private(&path, &text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // The file with the new version must load as it will at start-up.
        settings.load_keys().map_err(|e| e.to_string())?;
        println!(
            "key-encryption key version {version} added to {}; running instances that read this file take it within a minute and re-wrap the data keys in the background (`emeterai keys rewrap` does it now, `emeterai keys status` shows how far they are)",
            path.display()
        );
        return Ok(());
    }
    let ring = settings.load_keys().map_err(|e| e.to_string())?;
    let (_, pool) = settings.maintenance_pool()?;
    db::migrate(&pool).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let clock = emeterai::clock::Clock::system();
    let status = |conn: &mut db::DbConn| -> Result<(i64, i64, i64), String> {
        let by_version = db::keys::count_by_version(conn).map_err(|e| e.to_string())?;
        let total: i64 = by_version.iter().map(|(_, n)| n).sum();
        let newest: i64 = by_version
            .iter()
            .filter(|(v, _)| *v == ring.newest())
            .map(|(_, n)| n)
            .sum();
        let clear = db::keys::clear_count(conn).map_err(|e| e.to_string())?;
        Ok((total, newest, clear))
    };
    // One line, redrawn: `[#####.....] 50% 500/1000 what`.
    let bar = |done: i64, total: i64, what: &str| {
        let share = if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        };
        let filled = (share * 30.0).round() as usize;
        print!(
            "\r[{}{}] {:>3}% {done}/{total} {what}",
            "#".repeat(filled),
            ".".repeat(30 - filled),
            (share * 100.0).round() as i64
        );
        let _ = std::io::stdout().flush();
    };
    match command {
        KeysCommand::Rotate => unreachable!("handled above"),
        KeysCommand::Status => {
            for (version, count) in
                db::keys::count_by_version(&mut conn).map_err(|e| e.to_string())?
            {
                println!("key-encryption key version {version}: {count} data key(s)");
            }
            let (_, _, clear) = status(&mut conn)?;
            println!(
                "rows in clear (photos, registrations, accounts, failures, mails): {clear}; key file {} has version(s) {:?}, newest {}",
                path.display(),
                ring.versions(),
                ring.newest()
            );
        }
        KeysCommand::Rewrap => {
            let (total, mut done, _) = status(&mut conn)?;
            bar(done, total, "data keys under the newest version");
            loop {
                let n = db::keys::rewrap_batch(&mut conn, &ring, 500).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                done += n as i64;
                bar(done, total, "data keys under the newest version");
            }
            println!();
            let (total, newest, _) = status(&mut conn)?;
            println!(
                "{newest} of {total} data key(s) under version {}",
                ring.newest()
            );
        }
        KeysCommand::SealExisting => {
            let (_, _, clear) = status(&mut conn)?;
            let mut done = 0;
            bar(0, clear, "rows sealed");
            loop {
                let n = db::keys::seal_clear(&mut conn, &ring, 100, clock.now())
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                done += n as i64;
                bar(done, clear, "rows sealed");
            }
            println!();
            let (_, _, left) = status(&mut conn)?;
            println!("{done} sealed; {left} left in clear");
            if left == 0 && done > 0 {
                // What was in clear leaves the free pages and the log too.
                println!("compacting the database (VACUUM) ...");
                db::keys::compact(&mut conn).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

fn reencode_photos(settings: emeterai::config::Settings) -> Result<(), String> {
    let (_, pool) = settings.maintenance_pool()?;
    db::migrate(&pool).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let keys = settings.load_keys().map_err(|e| e.to_string())?;
    let now = emeterai::clock::Clock::system().now();
    let report = db::accounts::reencode_photos(&mut conn, &keys, now).map_err(|e| e.to_string())?;
    println!(
        "{} photo(s) re-encoded, {} already normalised, {} unreadable (left as they were)",
        report.reencoded, report.already_normalized, report.unreadable
    );
    Ok(())
}

fn staff(settings: emeterai::config::Settings, command: StaffCommand) -> Result<(), String> {
    use emeterai::db::staff as staff_db;
    let (_, pool) = settings.maintenance_pool()?;
    db::migrate(&pool).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let now = emeterai::clock::Clock::system().now();
    match command {
        StaffCommand::Add { email } => {
            let email = emeterai::domain::Email::parse(&email)
                .map_err(|p| p.text(emeterai::i18n::Lang::En).to_string())?;
            let password = read_new_password()?;
            if password.chars().count() < 12 {
                return Err("staff passwords need at least 12 characters".into());
            }
            let common = emeterai::domain::CommonPasswords::load();
            emeterai::domain::Password::parse(
                &password,
                &password,
                Some(&email),
                None,
                None,
                &common,
            )
            .map_err(|p| p.text(emeterai::i18n::Lang::En).to_string())?;
            let hash = bcrypt::hash(&password, settings.bcrypt_cost).map_err(|e| e.to_string())?;
            staff_db::create(&mut conn, email.as_str(), &hash, now).map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => {
                    format!("a staff account for {} already exists", email.as_str())
                }
                other => other.to_string(),
            })?;
            println!("staff account created: {}", email.as_str());
            if settings.staff_second_factor_required() {
                let secret = settings.load_secret().map_err(|e| e.to_string())?;
                let log = emeterai::services::failures::FailureLog::new(&secret);
                let key = emeterai::services::staff::sign_in::sealing_key(&log);
                enrol_second_factor(&mut conn, email.as_str(), &key)?;
            }
        }
        StaffCommand::List => {
            for s in staff_db::list(&mut conn).map_err(|e| e.to_string())? {
                let status = match (s.disabled_at, s.is_locked(now)) {
                    (Some(_), _) => "disabled",
                    (None, true) => "locked",
                    (None, false) => "active",
                };
                println!(
                    "{}\t{}\tcreated {}",
                    s.email,
                    status,
                    s.created_at.format("%Y-%m-%d %H:%M UTC")
                );
            }
        }
        StaffCommand::ResetSecondFactor { email } => {
            let email = email.trim().to_lowercase();
            if !staff_db::reset_second_factor(&mut conn, &email, now).map_err(|e| e.to_string())? {
                return Err(format!("no staff account for {email}"));
            }
            println!(
                "second factor removed for {email}; their next sign-in sets up the authenticator app"
            );
        }
        StaffCommand::Disable { email } => {
            let email = email.trim().to_lowercase();
            if !staff_db::disable(&mut conn, &email, now).map_err(|e| e.to_string())? {
                return Err(format!("no staff account for {email}"));
            }
            println!("staff account disabled: {email}");
        }
    }
    Ok(())
}

/// Enrols a new staff member's authenticator app from the command line:
/// prints the key (and its otpauth:// address for a QR code generator) and
/// the recovery codes, which are shown nowhere else.
fn enrol_second_factor(
    conn: &mut db::DbConn,
    email: &str,
    key: &emeterai::domain::second_factor::SealingKey,
) -> Result<(), String> {
    use emeterai::domain::second_factor::{self, TotpSecret};
    let staff = emeterai::db::staff::find_by_email(conn, email)
        .map_err(|e| e.to_string())?
        .ok_or("the staff account just created is missing")?;
    let secret = TotpSecret::generate();
    let codes = second_factor::new_recovery_codes();
    let hashes: Vec<String> = codes
        .iter()
        .filter_map(|c| second_factor::recovery_code_hash(c))
        .collect();
    let sealed = key
        .seal(&secret, &staff.id)
        .ok_or("cannot seal the TOTP secret")?;
    emeterai::db::staff::enrol_second_factor(conn, &staff.id, &sealed, None, &hashes, false)
        .map_err(|e| e.to_string())?;
    println!();
    println!("Second factor: add this key to the authenticator app (TOTP, 6 digits, 30 s):");
    println!("  key: {}", secret.grouped());
    println!("  otpauth address: {}", secret.otpauth_url(email));
    println!("Recovery codes (each signs in once; keep them safe, they are not shown again):");
    for code in codes {
        println!("  {code}");
    }
    Ok(())
}

/// The new password: one line from standard input when it is piped, or
/// typed twice at a hidden prompt.
fn read_new_password() -> Result<String, String> {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
    let second = rpassword::prompt_password("Password again: ").map_err(|e| e.to_string())?;
    if first != second {
        return Err("the passwords do not match".into());
    }
    Ok(first)
}
