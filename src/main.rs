use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cairn::cli::Cli::parse();
    let is_diff = matches!(cli.command, cairn::cli::Command::Diff(_));
    match cairn::cli::run(cli) {
        Ok(code) => code,
        // A reader that went away (`cairn cache ls | head`) is not an error:
        // stop quietly, as the usual Unix tools do.
        Err(err) if cairn::error::is_broken_pipe(err.as_ref()) => ExitCode::SUCCESS,
        Err(err) => {
            cairn::error::render(err.as_ref(), &mut std::io::stderr());
            // diff(1) convention: 0 same, 1 different, 2 trouble.
            ExitCode::from(if is_diff { 2 } else { 1 })
        }
    }
}
