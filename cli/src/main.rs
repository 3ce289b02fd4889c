//! `lbaasctl`: the operators' CLI for what the `openstack` CLI does not cover — driver
//! versions, devices, placement explanations and the audit log — against a running `lbaasd`.
//!
//! Tables for people, `--json` for scripts. Exit codes: 0 done, 1 the host refused (its
//! message is printed), 2 bad usage, 3 the host could not be reached.

mod args;
mod client;
mod commands;
mod render;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::Cli;
use crate::client::Client;
use crate::commands::run;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = Client::new(&cli.target);
    match run(&client, cli.json, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.code())
        }
    }
}
