//! The kubelet's AtomicWriter, step for step, for ConfigMap-volume tests: a new
//! timestamped directory, a `..data_tmp` symlink to it renamed over `..data`, visible
//! names as symlinks into `..data`, then the old directory removed.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

pub struct AtomicDir {
    root: PathBuf,
    generation: u32,
}

impl AtomicDir {
    pub fn new(root: &Path) -> AtomicDir {
        std::fs::create_dir_all(root).expect("volume dir");
        AtomicDir {
            root: root.to_path_buf(),
            generation: 0,
        }
    }

    /// Publishes exactly these files, as one atomic update.
    pub fn publish(&mut self, files: &[(&str, &[u8])]) {
        self.generation += 1;
        let data_dir = format!(
            "..2026_11_25_10_00_{:02}.{}",
            self.generation % 60,
            1000 + self.generation
        );
        let dir = self.root.join(&data_dir);
        std::fs::create_dir(&dir).expect("data dir");
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).expect("payload");
        }
        let old = std::fs::read_link(self.root.join("..data")).ok();
        let tmp = self.root.join("..data_tmp");
        symlink(&data_dir, &tmp).expect("..data_tmp");
        std::fs::rename(&tmp, self.root.join("..data")).expect("rename over ..data");
        for (name, _) in files {
            let visible = self.root.join(name);
            if std::fs::symlink_metadata(&visible).is_err() {
                symlink(format!("..data/{name}"), &visible).expect("visible symlink");
            }
        }
        // Names no longer in the payload disappear.
        for entry in std::fs::read_dir(&self.root)
            .expect("volume")
            .filter_map(Result::ok)
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !files.iter().any(|(f, _)| *f == name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        if let Some(old) = old {
            let _ = std::fs::remove_dir_all(self.root.join(old));
        }
    }
}
