//! [`SyncedFile`]: the message ids a sync service synced, kept in a file so a
//! repeat of one is recognised after a restart too.

use std::{
    collections::HashSet,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// How long a synced message id is kept by default: longer than order-sync
/// re-delivers one message (relay.max_attempts with its backoff, downtime).
pub(crate) const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// The message ids synced, one line each (`<unix seconds> <id as JSON>`),
/// appended and flushed to disk before the ack is published: a crash after
/// that brings the message back, and it is recognised. Lines older than
/// `keep` are dropped when the file is opened (it is rewritten then).
///
/// The write is a small synchronous `write` + `fdatasync` per synced order:
/// cheap next to a call to an ERP, and it keeps the promise simple.
pub struct SyncedFile {
    path: PathBuf,
    state: Mutex<(File, HashSet<String>)>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl SyncedFile {
    /// Opens (or creates) the file, keeping ids synced within 30 days.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        Self::open_keeping(path, KEEP)
    }

    /// Opens (or creates) the file, keeping ids synced within `keep`.
    pub fn open_keeping(path: impl AsRef<Path>, keep: Duration) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let cutoff = now().saturating_sub(keep.as_secs());
        let mut kept: Vec<(u64, String)> = Vec::new();
        match File::open(&path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line?;
                    // A line cut short by a crash mid-write is skipped: its
                    // ack was never published, so the order comes again.
                    let Some((at, id)) = line.split_once(' ') else {
                        continue;
                    };
                    let (Ok(at), Ok(id)) = (at.parse::<u64>(), serde_json::from_str::<String>(id))
                    else {
                        continue;
                    };
                    if at >= cutoff {
                        kept.push((at, id));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Rewritten without what expired, then swapped in whole.
        let fresh = path.with_extension("compacting");
        {
            let mut out = File::create(&fresh)?;
            for (at, id) in &kept {
                writeln!(out, "{at} {}", serde_json::Value::from(id.as_str()))?;
            }
            out.sync_all()?;
        }
        std::fs::rename(&fresh, &path)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        let ids = kept.into_iter().map(|(_, id)| id).collect();
        Ok(Self {
            path,
            state: Mutex::new((file, ids)),
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `message_id` was synced.
    pub fn contains(&self, message_id: &str) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1.contains(message_id)
    }

    /// Records `message_id` as synced, on disk before this returns.
    pub fn remember(&self, message_id: &str) -> std::io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.1.contains(message_id) {
            return Ok(());
        }
        let line = format!("{} {}\n", now(), serde_json::Value::from(message_id));
        state.0.write_all(line.as_bytes())?;
        state.0.sync_data()?;
        state.1.insert(message_id.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_synced_is_known_after_reopening_and_expired_lines_go() {
        let dir = std::env::temp_dir().join(format!("synced-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("synced.log");
        let _ = std::fs::remove_file(&path);
        let file = SyncedFile::open(&path).unwrap();
        assert!(!file.contains("shop:1:erp"));
        file.remember("shop:1:erp").unwrap();
        file.remember("shop with space:2:\"erp\"").unwrap();
        drop(file);
        // A crash cut the last line short: skipped, the rest kept.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"17000")
            .unwrap();
        let again = SyncedFile::open(&path).unwrap();
        assert!(again.contains("shop:1:erp"));
        assert!(again.contains("shop with space:2:\"erp\""));
        drop(again);
        std::fs::write(&path, "1 \"shop:old:erp\"\n").unwrap();
        let later = SyncedFile::open(&path).unwrap();
        assert!(!later.contains("shop:old:erp"), "older than KEEP");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
