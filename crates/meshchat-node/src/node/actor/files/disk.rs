//! The disk side of transfers: hashing a file to offer, the whole-file check of a finished
//! download, the verified-chunk bitmap, the free space, and moving a file into place.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use meshchat_core::room::human_size;
use meshchat_core::transfer::{self, Manifest};
use meshchat_core::MessageId;

use crate::node::Error;

/// A finished download's whole-file check: the chunks that do not match, after the file was
/// synced to disk (so a file moved into place is on the disk too).
pub(crate) struct Checked {
    pub(super) id: MessageId,
    pub(super) result: std::io::Result<Vec<u32>>,
}

/// Reads `file` back against `manifest`: the chunks that do not match; then syncs it.
pub(super) fn check_whole(file: &File, manifest: &Manifest) -> std::io::Result<Vec<u32>> {
    let mut lost = Vec::new();
    let mut buf = Vec::new();
    for i in 0..manifest.count() {
        let len = manifest.chunk_len(i).unwrap_or(0);
        buf.resize(len, 0);
        if file.read_exact_at(&mut buf, manifest.offset(i)).is_err() || !manifest.check(i, &buf) {
            lost.push(i);
        }
    }
    if lost.is_empty() {
        file.sync_all()?;
    }
    Ok(lost)
}

/// A bitmap: chunk i in bit i % 8 of byte i / 8.
pub(super) fn bitmap(have: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; have.len().div_ceil(8)];
    for (i, h) in have.iter().enumerate() {
        if *h {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

pub(super) fn unpack(bits: &[u8], count: u32) -> Vec<bool> {
    (0..count as usize)
        .map(|i| bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
        .collect()
}

/// Bytes free for us on the disk that holds `dir`.
pub(super) fn free_space(dir: &Path) -> Result<u64, Error> {
    let s = nix::sys::statvfs::statvfs(dir).map_err(|e| {
        Error::File(format!(
            "cannot read the free space of {}: {e}",
            dir.display()
        ))
    })?;
    Ok((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
}

/// Moves a verified partial file into `dir` as `name`, or `name (1)`, `name (2)`… when taken;
/// never over an existing file.
pub(super) fn place(dir: &Path, name: &str, part: &Path) -> std::io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    for n in 0..1000u32 {
        let candidate = dir.join(transfer::numbered_name(name, n));
        // A hard link fails on an existing name, so nothing is ever replaced.
        match fs::hard_link(part, &candidate) {
            Ok(()) => {
                fs::remove_file(part)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("a thousand files of that name"))
}

/// Reads and hashes a file to offer: its manifest (off the actor: a large file takes seconds).
pub(crate) fn hash_file(path: &Path) -> Result<Manifest, Error> {
    use std::io::Read;
    let meta = fs::metadata(path)
        .map_err(|e| Error::File(format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Error::File(format!("{} is not a file", path.display())));
    }
    let size = meta.len();
    let mut builder = Manifest::builder(size).map_err(|_| {
        Error::File(format!(
            "{} is {}; files up to {} can be sent",
            path.display(),
            human_size(size),
            human_size(transfer::MAX_FILE_SIZE)
        ))
    })?;
    let chunk = transfer::chunk_size_for(size).unwrap_or(transfer::MAX_CHUNK) as u64;
    let mut file = File::open(path)
        .map_err(|e| Error::File(format!("cannot read {}: {e}", path.display())))?;
    let mut buf = Vec::new();
    let mut left = size;
    while left > 0 {
        let len = left.min(chunk);
        buf.resize(len as usize, 0);
        file.read_exact(&mut buf)
            .map_err(|e| Error::File(format!("cannot read {}: {e}", path.display())))?;
        builder
            .push(&buf)
            .map_err(|e| Error::File(format!("{}: {e}", path.display())))?;
        left -= len;
    }
    builder
        .finish()
        .map_err(|e| Error::File(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_name_gets_a_number() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..3 {
            let part = dir.path().join(format!("p{n}"));
            fs::write(&part, [n]).unwrap();
            let placed = place(&dir.path().join("out"), "photo.jpg", &part).unwrap();
            let want = ["photo.jpg", "photo (1).jpg", "photo (2).jpg"][n as usize];
            assert_eq!(placed.file_name().unwrap(), want);
            assert_eq!(fs::read(&placed).unwrap(), [n]);
            assert!(!part.exists());
        }
    }

    #[test]
    fn bitmaps_round_trip() {
        let have: Vec<bool> = (0..19).map(|i| i % 3 == 0).collect();
        assert_eq!(unpack(&bitmap(&have), 19), have);
        assert_eq!(unpack(&[], 5), vec![false; 5]);
    }
}
