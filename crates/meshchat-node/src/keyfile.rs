//! The identity key on disk: created once with mode 0600 in a 0700 directory, then only read.
//! A damaged key file is an error, never replaced: losing a key means losing an identity.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use meshchat_core::Keypair;

/// File name of the key inside the data directory.
pub const KEY_FILE: &str = "identity.key";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is unusable ({source}); it was left untouched — restore it from a backup, or move it away to start with a new identity")]
    Corrupt {
        path: PathBuf,
        source: meshchat_core::identity::Error,
    },
}

/// Creates `dir` (mode 0700) if it does not exist.
pub fn ensure_data_dir(dir: &Path) -> Result<(), Error> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| Error::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
    }
    Ok(())
}

/// Loads the key from `dir`, or creates it on first run. The boolean is true when it was created.
pub fn load_or_create(dir: &Path) -> Result<(Keypair, bool), Error> {
    ensure_data_dir(dir)?;
    let path = dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let key = Keypair::from_key_file(&bytes).map_err(|source| Error::Corrupt {
                path: path.clone(),
                source,
            })?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate(&mut rand::rngs::OsRng);
            write_new(&path, &key)?;
            Ok((key, true))
        }
        Err(source) => Err(Error::Read { path, source }),
    }
}

/// Makes the data directory 0700 and the key file 0600 if they are looser (someone or something
/// changed them, or the directory came from elsewhere), and says what it did: fixed and said,
/// rather than refusing to start, since the owner can always tighten them and a refusal would
/// only leave the node off. A key file others could read may have been copied: the notice says
/// so. Returns one line per change (or per change that failed), for the user.
pub fn tighten(dir: &Path) -> Vec<String> {
    let mut said = Vec::new();
    for (path, want, what) in [
        (dir.to_owned(), 0o700, "data directory"),
        (dir.join(KEY_FILE), 0o600, "key file"),
    ] {
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            continue;
        }
        let copied = if what == "key file" {
            "; others may have copied the key: if that matters, move it away to get a new identity"
        } else {
            ""
        };
        match fs::set_permissions(&path, fs::Permissions::from_mode(want)) {
            Ok(()) => said.push(format!(
                "{what} {} was open to others (mode {mode:o}); set to {want:o}{copied}",
                path.display()
            )),
            Err(e) => said.push(format!(
                "{what} {} is open to others (mode {mode:o}) and could not be set to {want:o}: \
                 {e}{copied}",
                path.display()
            )),
        }
    }
    said
}

/// Writes the key to a temporary file with mode 0600, syncs it, and links it into place only if
/// no key file exists (so a concurrent first start can never overwrite another's key).
fn write_new(path: &Path, key: &Keypair) -> Result<(), Error> {
    let err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    let text = key.to_key_file();
    // Whatever fails (a full disk, most likely), the temporary file goes: nothing half-written
    // is left, and the key file appears whole or not at all.
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| {
            drop(f);
            fs::hard_link(&tmp, path)
        });
    let _ = fs::remove_file(&tmp);
    written.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused_with_strict_modes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (k1, created) = load_or_create(&data).unwrap();
        assert!(created);
        let (k2, created) = load_or_create(&data).unwrap();
        assert!(!created);
        assert_eq!(k1.public(), k2.public());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join(KEY_FILE)), 0o600);
    }

    #[test]
    fn loose_modes_are_tightened_and_said() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        load_or_create(&data).unwrap();
        assert!(
            tighten(&data).is_empty(),
            "nothing to say when they are right"
        );
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(data.join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        let said = tighten(&data);
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(
            said[0].contains("mode 755") && said[0].contains("set to 700"),
            "{said:?}"
        );
        assert!(
            said[1].contains("mode 644") && said[1].contains("copied"),
            "{said:?}"
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join(KEY_FILE)), 0o600);
        assert!(tighten(&data).is_empty());
    }

    #[test]
    fn corrupt_key_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::write(&path, b"not a key").unwrap();
        let err = load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"not a key");
    }
}
