//! `ongwatch check`: every problem of config and credentials at once, then what would run.

use super::{Failure, Global, default_file};
use crate::config::Config;
use crate::credentials::Credentials;
use crate::section::Problems;
use crate::state;

pub(super) fn check(global: &Global) -> Result<(), Failure> {
    let config_path = default_file(global.config.clone(), "ongwatch.toml");
    let credentials_path = default_file(global.credentials.clone(), "credentials.toml");
    let mut problems = Vec::new();
    let config = match Config::load(config_path.as_deref()) {
        Ok(mut config) => {
            if let Some(environment) = &global.environment {
                config.environment = environment.clone();
            }
            Some(config)
        }
        Err(Problems(found)) => {
            problems.extend(found);
            None
        }
    };
    let credentials = match Credentials::load(credentials_path.as_deref()) {
        Ok(credentials) => Some(credentials),
        Err(Problems(found)) => {
            problems.extend(found);
            None
        }
    };
    if let (Some(config), Some(credentials)) = (&config, &credentials)
        && let Err(Problems(found)) = config.access(credentials)
    {
        problems.extend(found);
    }
    if !problems.is_empty() {
        return Err(Failure::usage(Problems(problems)));
    }
    let state_dir = state::resolve_state_dir(global.state_dir.as_deref());
    let probe = state_dir.join(".check");
    state::ensure_dir(&state_dir)
        .and_then(|_| state::write_private_atomic(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            Failure::usage(format!(
                "state dir {}: not writable ({e}); pass --state-dir with a writable directory",
                state_dir.display()
            ))
        })?;
    let source = config_path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults".into());
    if let Some(config) = &config {
        println!(
            "ok: config ({source}), environment {:?}, topic root {:?}, mqtt {:?}",
            config.environment,
            config.topic_root.template(),
            config.mqtt.mode
        );
    }
    println!("ok: state dir {}", state_dir.display());
    if let (Some(config), Some(credentials)) = (&config, &credentials) {
        for line in crate::sources::twitch::auth::logins::check_lines(
            config.twitch_env(),
            credentials,
            &state_dir,
        ) {
            println!("{line}");
        }
        if let Some(line) =
            crate::sources::obs::check_line(&config.obs, credentials, &config.environment)
        {
            println!("{line}");
        }
    }
    Ok(())
}
