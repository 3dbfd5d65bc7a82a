//! `ongwatch.toml` and `credentials.toml`: the same text through both parsers, including the
//! problem rendering the CLI prints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ongwatch::config::{Config, Credentials};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(problems) = Config::parse(None, text) {
        let _ = problems.to_string();
    }
    if let Err(problems) = Credentials::parse(None, text) {
        let _ = problems.to_string();
    }
});
