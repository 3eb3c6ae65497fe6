//! Durability: the journal of accepted batches, atomic snapshots of all state, and recovery.

pub mod journal;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use journal::{Damage, Entry, FsyncPolicy, Journal, JournalStats, ReadReport};

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
/// 2: the tracker owns correlation (calls list their legs), sessions kept per Call Bridge.
const SNAP_VERSION: u32 = 3;

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
/// fsync of the directory. Keeps the newest `keep` snapshots and returns the seq of the
/// oldest one kept: the journal must reach back to it, since any kept snapshot may be the
/// one that loads.
pub fn write_snapshot<T: Serialize>(
    dir: &Path,
    seq: u64,
    state: &T,
    keep: usize,
) -> Result<u64, StoreError> {
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let payload = postcard::to_stdvec(state)
        .map_err(|e| StoreError::Snapshot(dir.display().to_string(), e.to_string()))?;
    let mut data = Vec::with_capacity(payload.len() + 28);
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
    let all = snapshots(dir);
    let keep = keep.max(1);
    for (_, old) in all.iter().skip(keep) {
        let _ = fs::remove_file(old);
    }
    Ok(all.iter().take(keep).map(|s| s.0).min().unwrap_or(seq))
}

/// What [`load_snapshot`] found.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The newest readable snapshot and the journal position it covers.
    pub state: Option<(u64, T)>,
    /// Snapshots that could not be read (moved to `damaged/`), with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// The newest readable snapshot. Unreadable ones are reported, moved aside (kept for
/// diagnosis, never counted as kept) and skipped: an older snapshot plus a longer replay
/// gives the same state, since the journal reaches back to the oldest one kept.
pub fn load_snapshot<T: DeserializeOwned>(dir: &Path) -> Loaded<T> {
    let mut out = Loaded {
        state: None,
        unreadable: Vec::new(),
    };
    for (seq, path) in snapshots(dir) {
        match read_snapshot(&path) {
            Ok(t) => {
                out.state = Some((seq, t));
                break;
            }
            Err(e) => {
                tracing::error!(snapshot = %path.display(), error = %e, "unreadable snapshot skipped");
                let _ = journal::move_aside(dir, &path);
                out.unreadable.push((path, e));
            }
        }
    }
    out
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
    let payload = data
        .get(28..28usize.saturating_add(len))
        .ok_or("truncated")?;
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".into());
    }
    postcard::from_bytes(payload).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_bad_ones_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            write_snapshot(dir.path(), 5, &vec![1u32, 2, 3], 2).unwrap(),
            5
        );
        assert_eq!(write_snapshot(dir.path(), 9, &vec![4u32], 2).unwrap(), 5);
        let l = load_snapshot::<Vec<u32>>(dir.path());
        assert_eq!((l.state, l.unreadable.len()), (Some((9, vec![4])), 0));
        // Corrupt the newest: the older one is used, the bad one reported and moved aside.
        let p = dir.path().join(snapshot_name(9));
        let mut d = fs::read(&p).unwrap();
        let n = d.len();
        d[n - 1] ^= 1;
        fs::write(&p, d).unwrap();
        let l = load_snapshot::<Vec<u32>>(dir.path());
        assert_eq!(l.state, Some((5, vec![1, 2, 3])));
        assert_eq!(l.unreadable.len(), 1);
        assert!(!p.exists());
        assert_eq!(
            fs::read_dir(dir.path().join(journal::DAMAGED_DIR))
                .unwrap()
                .count(),
            1
        );
        assert_eq!(write_snapshot(dir.path(), 12, &vec![7u32], 2).unwrap(), 5);
        assert_eq!(write_snapshot(dir.path(), 14, &vec![8u32], 2).unwrap(), 12);
        assert_eq!(
            snapshots(dir.path()).len(),
            2,
            "only the newest two are kept"
        );
        // Truncated and foreign files are unreadable too; none left means no state.
        for (seq, _) in snapshots(dir.path()) {
            let p = dir.path().join(snapshot_name(seq));
            let d = fs::read(&p).unwrap();
            fs::write(&p, &d[..d.len() / 2]).unwrap();
        }
        let l = load_snapshot::<Vec<u32>>(dir.path());
        assert_eq!((l.state, l.unreadable.len()), (None, 2));
    }
}
