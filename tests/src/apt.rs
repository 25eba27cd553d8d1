//! Debian kernel packages through `apt-get download` with a private apt state, so the
//! machine's own apt configuration is never changed. The archive address comes from
//! the machine's apt sources; none is written into the repository.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{run, Fallible};

/// A private apt state directory under the cache.
pub struct Apt {
    dir: PathBuf,
}

/// The Debian archive the machine's own apt sources point at, and its signing key.
#[derive(Debug, Clone, PartialEq)]
pub struct Archive {
    pub uri: String,
    pub signed_by: String,
}

const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Find the main Debian archive in apt sources text: deb822 (`*.sources`) stanzas or
/// one-line `deb` entries. Security and backports-only entries are passed over.
pub fn archive_from_sources(text: &str) -> Option<Archive> {
    // deb822: blank-line separated stanzas.
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
            })
        };
        if let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) {
            let main = suites
                .split_whitespace()
                .any(|s| !s.contains('-') && s != "sid");
            if let Some(uri) = uris.split_whitespace().next() {
                if main && !uri.contains("security") {
                    let signed_by = field("Signed-By").unwrap_or_else(|| DEFAULT_KEYRING.into());
                    return Some(Archive {
                        uri: uri.to_string(),
                        signed_by,
                    });
                }
            }
        }
    }
    // One-line format: deb [opts] URI SUITE COMPONENTS...
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut signed_by = DEFAULT_KEYRING.to_string();
        let rest = if let Some(opts) = rest.trim_start().strip_prefix('[') {
            let (opts, after) = opts.split_once(']')?;
            for o in opts.split_whitespace() {
                if let Some(k) = o.strip_prefix("signed-by=") {
                    signed_by = k.to_string();
                }
            }
            after
        } else {
            rest
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        if !suite.contains('-') && !uri.contains("security") {
            return Some(Archive {
                uri: uri.to_string(),
                signed_by,
            });
        }
    }
    None
}

/// The archive named by this machine's apt configuration.
pub fn machine_archive() -> Fallible<Archive> {
    let mut files: Vec<PathBuf> = vec!["/etc/apt/sources.list".into()];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let name = f.to_string_lossy();
        if !(name.ends_with(".list") || name.ends_with(".sources")) {
            continue;
        }
        if let Ok(text) = fs::read_to_string(&f) {
            if let Some(a) = archive_from_sources(&text) {
                return Ok(a);
            }
        }
    }
    Err("no Debian archive found in /etc/apt/sources.list{,.d}".into())
}

impl Apt {
    /// Set up (or reuse) a private apt state for `suites` of the machine's archive.
    pub fn new(dir: &Path, suites: &[&str]) -> Fallible<Apt> {
        let archive = machine_archive()?;
        for sub in ["lists/partial", "cache/archives/partial", "etc"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let mut list = String::new();
        for s in suites {
            list += &format!(
                "deb [signed-by={}] {} {s} main\n",
                archive.signed_by, archive.uri
            );
        }
        fs::write(dir.join("etc/sources.list"), list)?;
        Ok(Apt { dir: dir.into() })
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        vec![
            format!("-oDir::Etc::SourceList={d}/etc/sources.list"),
            "-oDir::Etc::SourceParts=/nonexistent".into(),
            format!("-oDir::State::Lists={d}/lists"),
            format!("-oDir::Cache={d}/cache"),
            "-oDir::State::status=/dev/null".into(),
            "-oDebug::NoLocking=1".into(),
            "-oAPT::Sandbox::User=root".into(),
            "-qq".into(),
        ]
    }

    /// `apt-get update` of the private lists.
    pub fn update(&self) -> Fallible<()> {
        run(Command::new("apt-get").args(self.options()).arg("update"))?;
        Ok(())
    }

    /// Whether lists were fetched before.
    pub fn has_lists(&self) -> bool {
        fs::read_dir(self.dir.join("lists"))
            .map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.path().is_file()))
            .unwrap_or(false)
    }

    /// `apt-cache show PKG`: every stanza as `(Version, Depends)`.
    pub fn versions(&self, pkg: &str) -> Fallible<Vec<(String, String)>> {
        let out = run(Command::new("apt-cache")
            .args(self.options())
            .args(["show", pkg]))?;
        let mut res = Vec::new();
        for stanza in out.split("\n\n") {
            let get = |k: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
            };
            if let (Some(v), Some(d)) = (get("Version:"), get("Depends:")) {
                res.push((v, d));
            }
        }
        Ok(res)
    }

    /// `apt-get download PKG` into `dest`; returns the `.deb` path.
    pub fn download(&self, pkg: &str, dest: &Path) -> Fallible<PathBuf> {
        fs::create_dir_all(dest)?;
        run(Command::new("apt-get")
            .current_dir(dest)
            .args(self.options())
            .args(["download", pkg]))?;
        let prefix = format!("{pkg}_");
        fs::read_dir(dest)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            })
            .ok_or_else(|| {
                format!("apt-get download {pkg} left no .deb in {}", dest.display()).into()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_main_archive() {
        let text = "Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            archive_from_sources(text),
            Some(Archive {
                uri: "http://mirror.example/debian".into(),
                signed_by: "/k.gpg".into()
            })
        );
    }

    #[test]
    fn one_line_format_skips_security() {
        let text = "deb http://sec.example/debian-security bookworm-security main\ndeb [arch=amd64 signed-by=/x.gpg] http://m.example/debian bookworm main\n";
        assert_eq!(
            archive_from_sources(text),
            Some(Archive {
                uri: "http://m.example/debian".into(),
                signed_by: "/x.gpg".into()
            })
        );
        assert_eq!(archive_from_sources("# nothing\n"), None);
    }
}
