//! Durability: the journal of accepted batches, atomic snapshots of all state, and recovery.

pub mod journal;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use journal::{FsyncPolicy, Journal, JournalEntry, JournalStats, ReadReport};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    #[error("snapshot {0}: {1}")]
    Snapshot(String, String),
    #[error("the journal writer has stopped")]
    Closed,
}

impl StoreError {
    pub fn io(path: &Path, e: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.display().to_string(),
            source: std::sync::Arc::new(e),
        }
    }
}

impl From<StoreError> for std::io::Error {
    fn from(e: StoreError) -> Self {
        std::io::Error::other(e.to_string())
    }
}

const SNAP_MAGIC: &[u8; 4] = b"CDRS";
const SNAP_VERSION: u32 = 1;

fn snapshot_name(seq: u64) -> String {
    format!("snapshot-{seq:020}.bin")
}

/// Snapshot files, newest first.
fn snapshots(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name();
            let seq = n
                .to_str()?
                .strip_prefix("snapshot-")?
                .strip_suffix(".bin")?
                .parse()
                .ok()?;
            Some((seq, e.path()))
        })
        .collect();
    v.sort_by(|a, b| b.cmp(a));
    v
}

/// Writes `state` (covering the journal up to `seq`) atomically: temp file, fsync, rename,
/// fsync of the directory. Keeps the newest `keep` snapshots.
pub fn write_snapshot<T: Serialize>(
    dir: &Path,
    seq: u64,
    state: &T,
    keep: usize,
) -> Result<PathBuf, StoreError> {
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let payload = postcard::to_stdvec(state)
        .map_err(|e| StoreError::Snapshot(dir.display().to_string(), e.to_string()))?;
    let mut data = Vec::with_capacity(payload.len() + 24);
    data.extend_from_slice(SNAP_MAGIC);
    data.extend_from_slice(&SNAP_VERSION.to_le_bytes());
    data.extend_from_slice(&seq.to_le_bytes());
    data.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    data.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    data.extend_from_slice(&payload);
    let path = dir.join(snapshot_name(seq));
    let tmp = dir.join(format!(".{}.tmp", snapshot_name(seq)));
    {
        let mut f = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        f.write_all(&data).map_err(|e| StoreError::io(&tmp, e))?;
        f.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
    }
    fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    for (_, old) in snapshots(dir).into_iter().skip(keep.max(1)) {
        let _ = fs::remove_file(old);
    }
    Ok(path)
}

/// The newest readable snapshot and the journal position it covers. Unreadable ones are
/// reported and skipped (an older snapshot plus a longer replay gives the same state).
pub fn load_snapshot<T: DeserializeOwned>(dir: &Path) -> Option<(u64, T)> {
    for (seq, path) in snapshots(dir) {
        match read_snapshot(&path) {
            Ok(t) => return Some((seq, t)),
            Err(e) => {
                tracing::warn!(snapshot = %path.display(), error = %e, "unreadable snapshot skipped")
            }
        }
    }
    None
}

fn read_snapshot<T: DeserializeOwned>(path: &Path) -> Result<T, String> {
    let data = fs::read(path).map_err(|e| e.to_string())?;
    if data.len() < 28 || &data[..4] != SNAP_MAGIC {
        return Err("not a snapshot".into());
    }
    let version = u32::from_le_bytes(data[4..8].try_into().unwrap());
    if version != SNAP_VERSION {
        return Err(format!(
            "snapshot version {version}, this build reads {SNAP_VERSION}"
        ));
    }
    let len = u64::from_le_bytes(data[16..24].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(data[24..28].try_into().unwrap());
    let payload = data.get(28..28 + len).ok_or("truncated")?;
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".into());
    }
    postcard::from_bytes(payload).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_bad_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), 5, &vec![1u32, 2, 3], 2).unwrap();
        write_snapshot(dir.path(), 9, &vec![4u32], 2).unwrap();
        assert_eq!(load_snapshot::<Vec<u32>>(dir.path()), Some((9, vec![4])));
        // Corrupt the newest: the older one is used.
        let p = dir.path().join(snapshot_name(9));
        let mut d = fs::read(&p).unwrap();
        let n = d.len();
        d[n - 1] ^= 1;
        fs::write(&p, d).unwrap();
        assert_eq!(
            load_snapshot::<Vec<u32>>(dir.path()),
            Some((5, vec![1, 2, 3]))
        );
        write_snapshot(dir.path(), 12, &vec![7u32], 2).unwrap();
        assert_eq!(
            snapshots(dir.path()).len(),
            2,
            "only the newest two are kept"
        );
    }
}
