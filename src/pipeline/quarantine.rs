//! Rejected bodies kept for diagnosis in `data_dir/quarantine`, bounded in total bytes and in
//! number of files (oldest removed first); what the bounds drop is counted.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// The bounds; either at 0 keeps nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuarantineLimits {
    pub max_bytes: u64,
    pub max_files: usize,
}

/// What the quarantine holds and what it dropped, for `/metrics`.
#[derive(Debug, Default)]
pub struct QuarantineStats {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    /// Bodies not kept (too large, or bounds at 0) or removed to make room.
    pub dropped: AtomicU64,
}

#[derive(Default)]
struct Kept {
    files: VecDeque<(PathBuf, u64)>,
    bytes: u64,
}

pub struct Quarantine {
    dir: PathBuf,
    limits: QuarantineLimits,
    kept: Mutex<Kept>,
    seq: AtomicU64,
    stats: Arc<QuarantineStats>,
}

impl Quarantine {
    /// Picks up what an earlier run left, oldest first, and trims it to the bounds.
    pub fn new(dir: PathBuf, limits: QuarantineLimits) -> Quarantine {
        let mut found: Vec<(PathBuf, u64, SystemTime)> = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if let Ok(md) = e.metadata() {
                    if md.is_file() {
                        found.push((e.path(), md.len(), md.modified().unwrap_or(UNIX_EPOCH)));
                    }
                }
            }
        }
        found.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
        let q = Quarantine {
            dir,
            limits,
            kept: Mutex::new(Kept {
                bytes: found.iter().map(|f| f.1).sum(),
                files: found.into_iter().map(|f| (f.0, f.1)).collect(),
            }),
            seq: AtomicU64::new(0),
            stats: Arc::default(),
        };
        let doomed = q.make_room(0, 0);
        for p in doomed {
            let _ = std::fs::remove_file(p);
        }
        q.publish();
        q
    }

    pub fn stats(&self) -> Arc<QuarantineStats> {
        self.stats.clone()
    }

    fn publish(&self) {
        let k = self.kept.lock();
        self.stats
            .files
            .store(k.files.len() as u64, Ordering::Relaxed);
        self.stats.bytes.store(k.bytes, Ordering::Relaxed);
    }

    /// Removes the oldest entries until `incoming` more files of `size` bytes fit; returns
    /// their paths.
    fn make_room(&self, incoming: usize, size: u64) -> Vec<PathBuf> {
        let mut k = self.kept.lock();
        let mut doomed = Vec::new();
        while !k.files.is_empty()
            && (k.bytes + size > self.limits.max_bytes
                || k.files.len() + incoming > self.limits.max_files)
        {
            if let Some((p, s)) = k.files.pop_front() {
                k.bytes -= s;
                doomed.push(p);
            }
        }
        self.stats
            .dropped
            .fetch_add(doomed.len() as u64, Ordering::Relaxed);
        doomed
    }

    /// Keeps `body` (rejected for `reason`), removing the oldest kept bodies to make room.
    pub async fn keep(&self, body: &[u8], reason: &str) {
        let size = body.len() as u64;
        if self.limits.max_files == 0 || size > self.limits.max_bytes {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let name = format!(
            "{}-{}-{}.body",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
            self.seq.fetch_add(1, Ordering::Relaxed),
            reason
        );
        let path = self.dir.join(name);
        let doomed = self.make_room(1, size);
        {
            let mut k = self.kept.lock();
            k.files.push_back((path.clone(), size));
            k.bytes += size;
        }
        self.publish();
        let body = body.to_vec();
        let dir = self.dir.clone();
        let res = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for p in doomed {
                let _ = std::fs::remove_file(p);
            }
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&path, body)
        })
        .await;
        if let Ok(Err(e)) = res {
            crate::warn_limited!(error = %e, dir = %self.dir.display(), "could not quarantine a rejected body");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }

    #[tokio::test]
    async fn empty_bodies_count_as_files_and_both_bounds_hold() {
        let dir = tempfile::tempdir().unwrap();
        let limits = QuarantineLimits {
            max_bytes: 1000,
            max_files: 10,
        };
        let q = Quarantine::new(dir.path().to_owned(), limits);
        for _ in 0..100 {
            q.keep(b"", "empty").await;
        }
        assert_eq!(files(dir.path()), 10);
        for _ in 0..100 {
            q.keep(&[b'x'; 300], "malformed_xml").await;
        }
        assert_eq!(
            files(dir.path()),
            3,
            "1000 bytes hold three 300-byte bodies"
        );
        let s = q.stats();
        assert_eq!(s.files.load(Ordering::Relaxed), 3);
        assert_eq!(s.bytes.load(Ordering::Relaxed), 900);
        assert_eq!(s.dropped.load(Ordering::Relaxed), 197);
        // A restart with lower bounds trims what is there.
        let q2 = Quarantine::new(
            dir.path().to_owned(),
            QuarantineLimits {
                max_bytes: 1000,
                max_files: 1,
            },
        );
        assert_eq!(files(dir.path()), 1);
        assert_eq!(q2.stats().files.load(Ordering::Relaxed), 1);
    }
}
