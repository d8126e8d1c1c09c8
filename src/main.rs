use std::process::ExitCode;

use clap::Parser;
use emeterai::cli::{Cli, Command};
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
    let cli = Cli::parse();
    emeterai::telemetry::init(cli.settings.log_format);

    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.settings),
        Command::Migrate => migrate(cli.settings),
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

fn migrate(settings: emeterai::config::Settings) -> Result<(), String> {
    let url = db::DbUrl::parse(&settings.database_url).map_err(|e| e.to_string())?;
    let pool = db::build_pool(&url, 1, settings.db_timeout()).map_err(|e| e.to_string())?;
    let applied = db::migrate(&pool).map_err(|e| e.to_string())?;
    println!(
        "{applied} migration(s) applied to the {} database",
        url.backend_name()
    );
    Ok(())
}
