//! Errors of `observe` / `crosscheck`: each says what was being done and why it failed.

use std::fmt;
use std::format;
use std::io;
use std::path::Path;
use std::string::String;

use super::parse::ParseError;

#[derive(Debug)]
pub enum ObserveError {
    /// The command needs root (debugfs, the bdi knobs, losetup, mount).
    NotRoot(String),
    /// debugfs (or its `bdi/` directory) is not available and could not be mounted.
    NoDebugfs(String),
    /// Reading or writing a file failed.
    Io {
        what: String,
        source: io::Error,
    },
    /// A kernel file did not have the expected format.
    Parse {
        what: String,
        source: ParseError,
    },
    /// The core rejected something (e.g. a knob value it considers invalid).
    Model {
        what: String,
        source: String,
    },
    /// An external command (losetup, mkfs.ext4, mount, …) failed or is missing.
    Command {
        cmd: String,
        detail: String,
    },
    /// Stopped by Ctrl-C / SIGTERM.
    Interrupted,
    /// The environment cannot run the experiment (used by `crosscheck --skip-unavailable`).
    Unavailable(String),
    /// Bad user input (arguments).
    Usage(String),
    Other(String),
}

impl ObserveError {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        ObserveError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn io_path(verb: &str, path: &Path, source: io::Error) -> Self {
        ObserveError::Io {
            what: format!("{verb} {}", path.display()),
            source,
        }
    }

    pub fn parse(what: impl Into<String>, source: ParseError) -> Self {
        ObserveError::Parse {
            what: what.into(),
            source,
        }
    }
}

impl fmt::Display for ObserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObserveError::NotRoot(why) => write!(f, "must run as root: {why}"),
            ObserveError::NoDebugfs(why) => write!(f, "debugfs is not available: {why}"),
            ObserveError::Io { what, source } => write!(f, "{what}: {source}"),
            ObserveError::Parse { what, source } => write!(f, "parsing {what}: {source}"),
            ObserveError::Model { what, source } => write!(f, "{what}: {source}"),
            ObserveError::Command { cmd, detail } => write!(f, "`{cmd}` failed: {detail}"),
            ObserveError::Interrupted => write!(f, "interrupted"),
            ObserveError::Unavailable(why) => write!(f, "cannot run here: {why}"),
            ObserveError::Usage(why) => write!(f, "{why}"),
            ObserveError::Other(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ObserveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ObserveError::Io { source, .. } => Some(source),
            ObserveError::Parse { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = ObserveError> = std::result::Result<T, E>;
