//! The state directory: event log, tokens, and the runtime file that lets `trigger`, `tail`
//! and `replay` find the running daemon's actual addresses (ports may be 0 in the config).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `--state-dir`, else the platform data dir (e.g. `~/.local/share/ongwatch`).
pub fn resolve_state_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    directories::ProjectDirs::from("", "", "ongwatch")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".ongwatch"))
}

/// Creates the directory (0700: it holds tokens).
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Replaces `path` atomically with `contents`, readable by the owner only: write a temp file
/// next to it, fsync, rename, fsync the directory. A crash leaves either the old or the new file.
pub fn write_private_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(dir) = std::fs::File::open(dir) {
        // Some filesystems refuse to fsync a directory; the rename itself already happened.
        let _ = dir.sync_all();
    }
    Ok(())
}

/// What the running daemon writes to `<state dir>/runtime.json` once it is ready.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Runtime {
    pub pid: u32,
    pub version: String,
    pub started_at: String,
    pub topic_root: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_ws: Option<SocketAddr>,
    /// The broker's own WebSocket listener behind `mqtt_ws`'s origin check (loopback, private:
    /// named so every listening socket of the daemon is accounted for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_ws_backend: Option<SocketAddr>,
    /// The external broker URL, without credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<SocketAddr>,
}

impl Runtime {
    pub const FILE: &'static str = "runtime.json";

    pub fn write(&self, state_dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_private_atomic(&state_dir.join(Self::FILE), &text)
    }

    pub fn read(state_dir: &Path) -> Option<Self> {
        let text = std::fs::read(state_dir.join(Self::FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn remove(state_dir: &Path) {
        let _ = std::fs::remove_file(state_dir.join(Self::FILE));
    }

    /// What the state dir says about its daemon. A daemon that stops cleanly removes the file;
    /// one that was killed or crashed leaves it behind with a pid that no longer runs.
    pub fn find(state_dir: &Path) -> Found {
        match Self::read(state_dir) {
            None => Found::Nothing,
            Some(runtime) if process_running(runtime.pid) => Found::Running(runtime),
            Some(runtime) => Found::Stale(runtime),
        }
    }
}

/// The daemon of a state dir, as `runtime.json` tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// No readable runtime.json: no daemon was started with this state dir, or it stopped.
    Nothing,
    /// Written by a process that no longer runs: the daemon was killed or crashed.
    Stale(Runtime),
    /// Written by a process that is still running.
    Running(Runtime),
}

/// Whether a process with this id exists (signal 0 probes without sending anything; a process of
/// another user answers "not permitted", which still means it runs).
#[cfg(unix)]
pub fn process_running(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

/// Without a portable probe, a recorded process counts as running; connecting tells the rest.
#[cfg(not(unix))]
pub fn process_running(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_are_private_and_replace_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        write_private_atomic(&path, b"one").unwrap();
        write_private_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }

    #[test]
    fn runtime_files_of_dead_processes_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Runtime::find(dir.path()), Found::Nothing);
        let mut runtime = Runtime {
            pid: std::process::id(),
            version: "0".into(),
            started_at: "now".into(),
            topic_root: "stream".into(),
            mqtt: None,
            mqtt_ws: None,
            mqtt_ws_backend: None,
            mqtt_url: None,
            http: None,
        };
        runtime.write(dir.path()).unwrap();
        assert_eq!(Runtime::find(dir.path()), Found::Running(runtime.clone()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        runtime.pid = child.id();
        child.wait().unwrap();
        runtime.write(dir.path()).unwrap();
        assert_eq!(Runtime::find(dir.path()), Found::Stale(runtime));
    }
}
